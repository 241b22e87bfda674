"""Every reliability case: the full matrix (`python -m lab.reliability`) and the subsets `make test`
runs (tests/reliability). Each case has a unit (a plan with machines) of its own."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from domain.models import ApprovalRequest, MachineStatus
from lab.reliability.harness import (
    KILL_APPROVE_RESTART,
    KILL_TEMPORAL,
    KILL_WORKER,
    RESTART_TEMPORAL,
    Action,
    Case,
    CaseResult,
    Lab,
    PlanRun,
    Snapshot,
    Trigger,
    Unit,
    UnitKind,
    accepted,
    arm,
    at_machine_phase,
    at_plan_phase,
    drive,
    in_job,
    item_of,
    judge,
    pause_vcenter,
    unit_fault,
    while_held,
)
from workflows.machine import MachineFailbackWorkflow
from workflows.plan import PlanFailbackWorkflow

REPROTECT_FIRST: UnitKind = "reprotect"


# --- holds: a short phase made long enough to be hit, by a slow answer of the ASR simulator ---


def hold_get(path_suffix: Callable[[Unit], str], seconds: float = 2.0) -> Callable[[Unit], dict]:
    def fault(unit: Unit) -> dict[str, Any]:
        return {
            "kind": "delay",
            "method": "GET",
            "path_suffix": path_suffix(unit),
            "seconds": seconds,
            "count": 1,
        }

    return fault


HOLD_DISCOVERING = (hold_get(lambda u: f"/replicationRecoveryPlans/{u.plan}"),)
HOLD_READINESS = (hold_get(lambda u: "/replicationvCenters"),)
# The first verification read's Azure side, made by the failover's activity as its job ends
# (machine revision 2): no `verifying` phase is seen when that read finds the VM up, so the
# cases act while this read is held.
AZURE_VM_READ = lambda u: f"/virtualMachines/{u.vms[0]}/instanceView"  # noqa: E731
# The verifications read Azure in rounds (activities/azure_vm_rounds.py): a machine's read is
# its own GET, or, when several wait at once, one list of the subscription's VMs. Both are held,
# and the case acts while whichever comes first is.
AZURE_VM_LIST = lambda u: "/providers/Microsoft.Compute/virtualMachines"  # noqa: E731
HOLD_VERIFYING = (hold_get(AZURE_VM_READ), hold_get(AZURE_VM_LIST))
IN_FIRST_VERIFICATION_READ = while_held(
    (AZURE_VM_READ, AZURE_VM_LIST), "first verification read held"
)


# --- crashes: kill -9 the worker at every phase of a plan that reprotects first ------------------


def crash(
    key: str,
    what: str,
    trigger: Any,
    action: Action = KILL_WORKER,
    holds: tuple[Callable[[Unit], dict], ...] = (),
    group: str = "crash",
    unit: Unit | None = None,
) -> Case:
    return Case(
        name=key,
        group=group,
        what=what,
        unit=unit or Unit(key, REPROTECT_FIRST),
        expect="completed",
        arm=arm(*holds) if holds else None,
        trigger=trigger,
        action=action,
        disruptive=True,
    )


CRASH_DISCOVERING = crash(
    "kill-discovering",
    "worker killed while discovering (inside discover_recovery_plan, held 2 s)",
    at_plan_phase("discovering"),
    holds=HOLD_DISCOVERING,
)
CRASH_READINESS = crash(
    "kill-readiness",
    "worker killed while checking readiness (inside read_asr_facts, held 2 s)",
    at_plan_phase("checking-readiness"),
    holds=HOLD_READINESS,
)
CRASH_REPROTECT_ONPREM_JOB = crash(
    "kill-reprotect-onprem-job",
    "worker killed while the reProtect to on-premises job runs",
    in_job("reProtect", "reProtect to on-premises accepted"),
)
CRASH_WAITING_REPLICATION = crash(
    "kill-waiting-replication",
    "worker killed while waiting for replication (inside wait_until_replicating)",
    at_plan_phase("waiting-for-replication"),
)
CRASH_FAILING_OVER = crash(
    "kill-failing-over",
    "worker killed as the plan enters failing-over (children starting)",
    at_plan_phase("failing-over"),
)
CRASH_FAILOVER_JOB = crash(
    "kill-failover-job",
    "worker killed while the unplannedFailover job runs",
    in_job("unplannedFailover", "unplannedFailover accepted"),
)
CRASH_VERIFYING = crash(
    "kill-verifying",
    "worker killed during the first verification read (inside fail_over_then_read, its "
    "Azure read held 2 s)",
    IN_FIRST_VERIFICATION_READ,
    holds=HOLD_VERIFYING,
)
CRASH_AWAITING_APPROVAL = crash(
    "kill-awaiting-approval",
    "worker killed while awaiting approval",
    at_plan_phase("awaiting-approval"),
)
CRASH_APPROVAL_WHILE_DOWN = crash(
    "kill-approve-while-down",
    "worker killed at awaiting approval; the approval arrives while no worker runs",
    at_plan_phase("awaiting-approval"),
    action=KILL_APPROVE_RESTART,
)
CRASH_COMMITTING = crash(
    "kill-committing",
    "worker killed while committing (inside the failoverCommit job)",
    at_machine_phase("committing"),
)
CRASH_WAITING_AGENT = crash(
    "kill-waiting-agent",
    "worker killed while waiting for the mobility agent",
    at_machine_phase("waiting-for-agent"),
)
CRASH_REPROTECTING = crash(
    "kill-reprotecting",
    "worker killed while re-protecting to Azure (inside the reProtect job)",
    at_machine_phase("reprotecting"),
)

TEMPORAL_WAITING_REPLICATION = crash(
    "temporal-waiting-replication",
    "Temporal server restarted while waiting for replication",
    at_plan_phase("waiting-for-replication"),
    action=RESTART_TEMPORAL,
    group="temporal",
)
TEMPORAL_FAILOVER_JOB = crash(
    "temporal-failover-job",
    "Temporal server restarted while the unplannedFailover job runs",
    in_job("unplannedFailover", "unplannedFailover accepted"),
    action=RESTART_TEMPORAL,
    group="temporal",
)
TEMPORAL_AWAITING_APPROVAL = crash(
    "temporal-awaiting-approval",
    "Temporal server restarted while awaiting approval",
    at_plan_phase("awaiting-approval"),
    action=RESTART_TEMPORAL,
    group="temporal",
)
TEMPORAL_COMMITTING = crash(
    "temporal-committing",
    "Temporal server restarted while committing",
    at_machine_phase("committing"),
    action=RESTART_TEMPORAL,
    group="temporal",
)
TEMPORAL_KILLED_FAILOVER_JOB = crash(
    "temporal-kill9-failover-job",
    "Temporal server killed (-9) and started again while the unplannedFailover job runs",
    in_job("unplannedFailover", "unplannedFailover accepted"),
    action=KILL_TEMPORAL,
    group="temporal",
)
TEMPORAL_KILLED_REPROTECTING = crash(
    "temporal-kill9-reprotecting",
    "Temporal server killed (-9) and started again while re-protecting to Azure",
    at_machine_phase("reprotecting"),
    action=KILL_TEMPORAL,
    group="temporal",
)

# --- faults through the lab ----------------------------------------------------------------------


def fault_case(
    key: str,
    what: str,
    expect: Any = "completed",
    faults: tuple[Callable[[Unit], dict], ...] = (),
    unit: Unit | None = None,
    reason: str | None = None,
    overrides: tuple[tuple[str, float], ...] = (),
    group: str = "fault",
    **extra: Any,
) -> Case:
    return Case(
        name=key,
        group=group,
        what=what,
        unit=unit or Unit(key),
        expect=expect,
        reason=reason,
        arm=arm(*faults) if faults else None,
        overrides=overrides,
        **extra,
    )


def http(action: str, status: int, count: int, retry_after: int | None = 1) -> Callable:
    return lambda u: unit_fault(
        u, 0, action, kind="http", status=status, count=count, retry_after=retry_after
    )


def on_item_get(kind: str, count: int, **fault: Any) -> Callable[[Unit], dict]:
    """Every GET of the machine's protected item (the workflow reads it often)."""
    return lambda u: {
        "kind": kind,
        "method": "GET",
        "path_suffix": f"/replicationProtectedItems/{u.items[0]}",
        "count": count,
        **fault,
    }


def job_failure(operation: str, code: str, vm_index: int = 0, task: str | None = None) -> Callable:
    return lambda u: {
        "kind": "job_failure",
        "operation": operation,
        "item": u.items[vm_index],
        "code": code,
        "message": f"Injected by the reliability harness: {operation} fails with {code}.",
        **({"task": task} if task else {}),
    }


def drop(action: str, after_processing: bool) -> Callable[[Unit], dict]:
    return lambda u: unit_fault(u, 0, action, kind="drop", after_processing=after_processing)


BASELINE_REPROTECT = Case(
    "baseline-reprotect",
    "baseline",
    "no fault",
    Unit("baseline-reprotect", REPROTECT_FIRST),
    "completed",
)
BASELINE_REPLICATING = Case(
    "baseline-replicating", "baseline", "no fault", Unit("baseline-replicating"), "completed"
)

THROTTLED = fault_case(
    "http-429",
    "unplannedFailover answered 429 + Retry-After: 1, 3 times",
    faults=(http("unplannedFailover", 429, 3),),
)
THROTTLED_LONG = fault_case(
    "http-429-outlasting-sdk",
    "unplannedFailover answered 429 + Retry-After: 1, 8 times (each retried after ARM's "
    "Retry-After, not the retry policy's growing backoff, 8.6 min for 8 tries)",
    faults=(http("unplannedFailover", 429, 8),),
)
SERVER_ERROR_COMMIT = fault_case(
    "http-503-commit",
    "failoverCommit answered 503, twice",
    faults=(http("failoverCommit", 503, 2, retry_after=None),),
)
SERVER_ERROR_READS = fault_case(
    "http-500-reads",
    "GET of the protected item answered 500, 4 times",
    faults=(on_item_get("http", 4, status=500, retry_after=None),),
)
DROP_FAILOVER_BEFORE = fault_case(
    "drop-failover-before",
    "connection to unplannedFailover closed without an answer, before ASR saw it",
    faults=(drop("unplannedFailover", after_processing=False),),
)
DROP_FAILOVER_AFTER = fault_case(
    "drop-failover-after",
    "connection to unplannedFailover closed without an answer, after ASR started the job",
    faults=(drop("unplannedFailover", after_processing=True),),
)
DROP_COMMIT_AFTER = fault_case(
    "drop-commit-after",
    "connection to failoverCommit closed without an answer, after ASR started the job",
    faults=(drop("failoverCommit", after_processing=True),),
)
DROP_REPROTECT_AFTER = fault_case(
    "drop-reprotect-after",
    "connection to reProtect (to Azure) closed without an answer, after ASR started the job",
    faults=(drop("reProtect", after_processing=True),),
)
DROP_READS = fault_case(
    "drop-reads",
    "connections of 3 GETs of the protected item closed without an answer",
    faults=(on_item_get("drop", 3),),
)
SLOW_READS = fault_case(
    "slow-reads",
    # As many as a failback of one machine surely reads its item (4 since the job watch reads
    # the vault's job list instead): a fault left unused fails the case.
    "GET of the protected item answered 3 s late, 3 times",
    faults=(on_item_get("delay", 3, seconds=3),),
)
SLOW_FAILOVER_ANSWER = fault_case(
    "slow-failover-answer",
    "unplannedFailover answered 12 s late (after the job started; longer than the activity's "
    "10 s heartbeat timeout)",
    faults=(
        lambda u: unit_fault(
            u, 0, "unplannedFailover", kind="delay", seconds=12, after_processing=True
        ),
    ),
)
FAILOVER_JOB_FAILS = fault_case(
    "job-failure-failover",
    "the unplannedFailover job of 1 of 2 machines fails (8038, VmFoStartVmOnSecondary)",
    expect="stopped",
    unit=Unit("job-failure-failover", machines=2),
    reason="8038",
    faults=(job_failure("unplannedFailover", "8038"),),
)
COMMIT_JOB_FAILS = fault_case(
    "job-failure-commit",
    "the failoverCommit job fails in its prerequisite check",
    expect="commit-failed",
    reason="InjectedCommitFailure",
    faults=(job_failure("failoverCommit", "InjectedCommitFailure"),),
)
REPROTECT_JOB_FAILS = fault_case(
    "job-failure-reprotect",
    "the reProtect (to Azure) job fails once after the commit (78052)",
    expect="reprotect-retried",
    faults=(job_failure("reProtect", "78052"),),
)
AGENT_NEVER = fault_case(
    "agent-never-registers",
    "the mobility agent never registers; the operator runs `failback agent ID "
    "--finish-without-reprotect` when it is stuck (agent wait 4 s)",
    expect="completed-without-reprotect",
    unit=Unit("agent-never-registers", agent_never_registers=True),
    overrides=(("agent_wait_timeout_seconds", 4.0),),
)
CS_FORGOT_MACHINE = fault_case(
    "cs-unknown-machine",
    "the configuration server does not know one machine (scenario: "
    "known_to_configuration_server false)",
    expect="refused",
    unit=Unit("cs-unknown-machine", REPROTECT_FIRST, unknown_to_cs=True),
    reason="R10",
)
CS_LOSES_MACHINE = fault_case(
    "cs-loses-machine",
    "the configuration server loses a machine during the reprotect to on-premises (job fails "
    "with the lab's stand-in code 99010, the configuration server not knowing the VM)",
    expect="stopped",
    unit=Unit("cs-loses-machine", REPROTECT_FIRST),
    reason="99010",
    faults=(job_failure("reProtect", "99010"),),
)
DROPPED_FAILED_FAILOVER = fault_case(
    "drop-failover-job-fails",
    "unplannedFailover answer lost (connection closed after ASR started the job), and that "
    "job fails (8038)",
    expect="stopped",
    reason="8038",
    faults=(
        drop("unplannedFailover", after_processing=True),
        job_failure("unplannedFailover", "8038"),
    ),
)


def vcenter_paused_from_start(seconds: float) -> Callable[[Lab, Unit], None]:
    def do(lab: Lab, unit: Unit) -> None:
        lab.signal_group("vcsim", signal.SIGSTOP)
        threading.Timer(seconds, lambda: lab.signal_group("vcsim", signal.SIGCONT)).start()

    return do


VCENTER_DOWN_VERIFYING = Case(
    "vcenter-down-verifying",
    "fault",
    "vCenter unreachable for 8 s during verification (SIGSTOP vcsim)",
    Unit("vcenter-down-verifying"),
    "completed",
    # The Azure side is read first: vCenter is paused before its side is read.
    arm=arm(*HOLD_VERIFYING),
    trigger=IN_FIRST_VERIFICATION_READ,
    action=pause_vcenter(8),
    disruptive=True,
)
VCENTER_DOWN_READINESS = Case(
    "vcenter-down-readiness",
    "fault",
    "vCenter unreachable for the first 10 s, during the readiness check (SIGSTOP vcsim)",
    Unit("vcenter-down-readiness", REPROTECT_FIRST),
    "completed",
    arm=vcenter_paused_from_start(10),
    disruptive=True,
)

# --- safety --------------------------------------------------------------------------------------


async def _signal(client: Client, workflow_id: str, signal_method: Any, who: str) -> None:
    request = ApprovalRequest(approved_by=who, comment="sent before verification")
    await client.get_workflow_handle(workflow_id).signal(signal_method, request)


async def _machine_status(lab: Lab, workflow_id: str) -> MachineStatus:
    client = await lab.client()
    status: MachineStatus = await client.get_workflow_handle(workflow_id).query(
        MachineFailbackWorkflow.status
    )
    return status


@dataclass(frozen=True)
class CliAnswer:
    code: int
    stdout: str
    stderr: str
    began: datetime
    ended: datetime


class _PowerHold:
    """Holds a machine's verification open for as long as the harness needs: the on-premises VM
    is powered off each time it is seen on (the failover powers it on) until `release`, then
    powered on. Verification needs the VM on with its guest up, so it cannot pass meanwhile,
    however long the CLI takes to start on a loaded machine."""

    def __init__(self, lab: Lab, vm: str, limit: float = 300.0) -> None:
        self.lab, self.vm, self.limit = lab, vm, limit
        self.held = threading.Event()  # the failover powered the VM on and it was powered off
        self.release = threading.Event()
        self.powered_off = 0

    def run(self) -> str:
        from activities import vsphere_client
        from lab import vcenter_client

        settings = self.lab.settings()
        assert settings.vcenter_host and settings.vcenter_user and settings.vcenter_password
        si = vsphere_client.connect(
            settings.vcenter_host,
            settings.vcenter_port,
            settings.vcenter_user,
            settings.vcenter_password.get_secret_value(),
            verify_tls=settings.vcenter_verify_tls,
        )
        try:
            deadline = time.monotonic() + self.limit
            while not self.release.is_set() and time.monotonic() < deadline:
                state = vsphere_client.read_vm_states(si, [self.vm]).get(self.vm)
                if state is not None and state.power_state == "poweredOn":
                    vcenter_client.power_off_vm(si, self.vm)
                    self.powered_off += 1
                    self.held.set()
                time.sleep(0.05)
            vcenter_client.power_on_vm(si, self.vm)
            released = "released" if self.release.is_set() else f"not released in {self.limit} s"
            return (
                f"{self.vm} kept powered off after the failover powered it on "
                f"({self.powered_off} power-off(s)), {released}, then powered on"
            )
        finally:
            vsphere_client.disconnect(si)


async def approval_only_after_verification(lab: Lab, case: Case) -> CaseResult:
    """Approvals sent before verification (straight to the plan and machine workflows, and by
    `failback approve`) are refused; nothing is committed while the plan waits; the commit
    follows the approval, which follows the verification.

    The verification is held open until the CLI has answered (`_PowerHold`): the CLI is a
    process of its own, and on a loaded machine it once took longer to start than the rest of
    the failover, found the plan awaiting approval and rightly approved it (exit 0, its answer
    on stdout). A fixed delay cannot rule that out; the hold does."""
    unit = case.unit
    run = PlanRun(lab, unit, overrides=dict(case.overrides))
    run.auto_approve = False
    client = await lab.client()
    item, vm = unit.items[0], unit.vms[0]
    machine_id = run.machine_ids[vm]
    early: dict[str, Any] = {}
    waited_from: list[float] = []
    problems: list[str] = []
    hold = _PowerHold(lab, vm)

    async def operator(snap: Snapshot) -> None:
        if not early and hold.held.is_set():
            early["sent_in"] = snap.describe()
            await _signal(
                client, run.workflow_id, PlanFailbackWorkflow.approve_commit, "eager-plan"
            )
            await _signal(client, machine_id, MachineFailbackWorkflow.approve_commit, "eager-vm")
            began = datetime.now(UTC)
            shown = await asyncio.to_thread(lab.cli, "approve", run.workflow_id, "--by", "eager")
            early["cli"] = CliAnswer(
                shown.returncode,
                shown.stdout.strip(),
                shown.stderr.strip(),
                began,
                datetime.now(UTC),
            )
            hold.release.set()
        if snap.phase == "awaiting-approval" and not run.approved:
            waited_from.append(time.monotonic())
            if time.monotonic() - waited_from[0] >= 3:
                if any(
                    e["path"].lower().endswith("/failovercommit") for e in _unit_posts(lab, unit)
                ):
                    problems.append("a failoverCommit was sent before the approval")
                run.auto_approve = True

    # The failover's answer comes 4 s after its job started (the job takes 3 s and powers the VM
    # on in its last task): the hold has powered the VM off again before the first verification.
    lab.add_fault(
        **unit_fault(unit, 0, "unplannedFailover", kind="delay", seconds=4, after_processing=True)
    )
    holding = asyncio.create_task(asyncio.to_thread(hold.run))
    try:
        await run.start()
        end = await drive(lab, case, run, on_snapshot=operator)
    finally:
        hold.release.set()
        run.notes.append(await holding)
    status = await _machine_status(lab, machine_id)
    cli: CliAnswer | None = early.get("cli")
    awaiting = (
        [h.at for h in end.plan.history if h.phase == "awaiting-approval"]
        if end and end.plan
        else []
    )
    if cli is None:
        problems.append("the early approvals were never sent (the verification was never held)")
    else:
        if awaiting and awaiting[0] <= cli.ended:
            problems.append(
                f"the hold failed: the plan awaited approval from {awaiting[0]:%H:%M:%S.%f}, "
                f"before the CLI answered at {cli.ended:%H:%M:%S.%f}"
            )
        if cli.code != 2 or "not approved" not in cli.stderr or cli.stdout:
            problems.append(
                f"`failback approve` sent while {early['sent_in']} did not refuse: exit "
                f"{cli.code}, stdout {cli.stdout!r}, stderr {cli.stderr!r}"
            )
        run.notes.append(
            f"`failback approve` sent while {early['sent_in']}: exit {cli.code} after "
            f"{(cli.ended - cli.began).total_seconds():.1f} s"
        )
    plan_approval = end.plan.approval if end and end.plan else None
    if plan_approval is None or plan_approval.approved_by != "reliability":
        problems.append(f"the plan was approved by {plan_approval}, not by the harness's approval")
    plan_rejected = [r.approved_by for r in end.plan.rejected_approvals] if end and end.plan else []
    if "eager-plan" not in plan_rejected:
        problems.append(f"the plan did not refuse the early approval: {plan_rejected}")
    vm_rejected = {r.approved_by: r for r in status.rejected_approvals}
    if "eager-vm" not in vm_rejected:
        problems.append(f"{vm} did not refuse the early approval: {list(vm_rejected)}")
    if status.approval is None or status.approval.approved_by != "reliability":
        problems.append(f"{vm} was committed on {status.approval}")
    commit = accepted(lab.journal(), item, "failoverCommit")
    why = vm_rejected["eager-vm"].reason if "eager-vm" in vm_rejected else "-"
    if status.approval and status.verification and commit:
        committed = _time(commit[0]["time"])
        if not status.verification.checked_at < status.approval.approved_at < committed:
            problems.append(
                f"order: verified {status.verification.checked_at}, approved "
                f"{status.approval.approved_at}, commit sent {committed}"
            )
        if cli is not None and cli.code == 2 and cli.stderr:
            by_cli = f"refused by the CLI ({cli.stderr.splitlines()[-1]}), "
        else:
            by_cli = "not refused by the CLI, "
        run.notes.append(
            f"verified {status.verification.checked_at:%H:%M:%S.%f}, approved "
            f"{status.approval.approved_at:%H:%M:%S.%f}, commit sent {committed:%H:%M:%S.%f}; "
            f"early approval {by_cli}the plan and {vm} ({why})"
        )
    return await judge(lab, case, run, end, problems)


async def verification_failure_never_commits(lab: Lab, case: Case) -> CaseResult:
    """The on-premises VM is powered off again between the failover and its verification: the
    verification fails until its timeout, an approval sent meanwhile is refused, the plan stops,
    and nothing is committed."""
    unit = case.unit
    item, vm = unit.items[0], unit.vms[0]
    run = PlanRun(lab, unit, overrides=dict(case.overrides))
    run.auto_approve = False
    client = await lab.client()
    armed: list[str] = []
    tried: list[str] = []
    problems: list[str] = []
    power: dict[str, Any] = {}

    async def operator(snap: Snapshot) -> None:
        if not armed and accepted(lab.journal(), item, "unplannedFailover"):
            job = lab.job_of(item, "unplannedFailover")
            if job is None:
                return
            # The activity reads its finished job once more before returning: make that read
            # slow, and power the VM off meanwhile (it has just been powered on by the failover).
            lab.add_fault(
                kind="delay", method="GET", path_suffix=f"/replicationJobs/{job}", seconds=6
            )
            armed.append(job)
            power["task"] = asyncio.create_task(asyncio.to_thread(_power_off_when_on, lab, vm))
        if snap.machine_phases().get(vm) == "verifying" and not tried:
            tried.append("sent")
            await _signal(
                client, run.machine_ids[vm], MachineFailbackWorkflow.approve_commit, "eager-vm"
            )

    await run.start()
    end = await drive(lab, case, run, on_snapshot=operator)
    if "task" in power:
        run.notes.append(await power["task"])
    status = await _machine_status(lab, run.machine_ids[vm])
    if not tried:
        problems.append("no approval was tried during verification")
    elif not any(r.approved_by == "eager-vm" for r in status.rejected_approvals):
        problems.append("the approval sent during verification was not refused")
    if status.verification is None or status.verification.passed:
        problems.append(f"the verification did not fail: {status.verification}")
    else:
        run.notes.append("verification: " + "; ".join(status.verification.problems))
    return await judge(lab, case, run, end, problems)


def _power_off_when_on(lab: Lab, vm: str) -> str:
    from activities import vsphere_client
    from lab import vcenter_client

    settings = lab.settings()
    assert settings.vcenter_host and settings.vcenter_user and settings.vcenter_password
    si = vsphere_client.connect(
        settings.vcenter_host,
        settings.vcenter_port,
        settings.vcenter_user,
        settings.vcenter_password.get_secret_value(),
        verify_tls=settings.vcenter_verify_tls,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = vsphere_client.read_vm_states(si, [vm]).get(vm)
            if state is not None and state.power_state == "poweredOn":
                vcenter_client.power_off_vm(si, vm)
                return f"{vm} powered off in vCenter right after the failover powered it on"
            time.sleep(0.05)
        return f"{vm} was never seen powered on"
    finally:
        vsphere_client.disconnect(si)


async def app_consistent_group_points(lab: Lab, case: Case) -> CaseResult:
    """`failback preview` then `failback start` (CLI) with --recovery-point app-consistent: the
    plan holds a replication group, so it fails over whole, once (FO-PLAN), asking LatestTag;
    every member of the group fails over at the group's common point, the one previewed, and
    the standalone machine at its own; the journal's request bodies and the simulator's record
    of the points it took prove it."""
    unit = case.unit
    plan = unit.plan
    problems: list[str] = []
    shown = await asyncio.to_thread(
        lab.cli, "preview", "--recovery-plan", plan, "--recovery-point", "app-consistent", "--json"
    )
    if shown.returncode != 0:
        raise AssertionError(f"preview failed: {shown.stderr}")
    preview = json.loads(shown.stdout)
    run = PlanRun(lab, unit, "app-consistent")
    started = await asyncio.to_thread(
        lab.cli, "start", "--recovery-plan", plan, "--recovery-point", "app-consistent"
    )
    if started.returncode != 0 or started.stdout.strip() != run.workflow_id:
        raise AssertionError(
            f"start failed: {started.returncode} {started.stdout} {started.stderr}"
        )
    end = await drive(lab, case, run)
    chosen = {m["item_name"]: m for m in preview["machines"]}
    group = next(g for g in preview["groups"] if g["group"] == f"rg-{unit.key}")
    entries = lab.journal()
    sim_items = {i["name"]: i for i in lab.sim_state()["items"]}
    whole = accepted(entries, "", "unplannedFailover", plan=plan)
    if len(whole) != 1:
        problems.append(f"{len(whole)} accepted failovers of plan {plan}, expected 1")
    else:
        details = whole[0]["body"]["properties"]["providerSpecificDetails"]
        if details != [{"instanceType": "InMage", "recoveryPointType": "LatestTag"}]:
            problems.append(f"plan {plan} failed over with {details}")
    for item in unit.items:
        if accepted(entries, item, "unplannedFailover"):
            problems.append(f"{item}: failed over on its own, not through its plan")
        want = chosen[item]["chosen"]
        if chosen[item]["asked_as"] != "LatestTag":
            problems.append(f"{item}: previewed as {chosen[item]['asked_as']}")
        used = sim_items[item]["failover_recovery_point"]
        # The lab names a point by its second on the epoch grid: later is larger. A newer
        # point may arrive between the preview and the failover; an older one may not be taken.
        if used is None or int(used) < int(want["name"]):
            problems.append(f"{item}: ASR used point {used}, previewed {want['name']}")
        if want["type"] != "ApplicationConsistent":
            problems.append(f"{item}: previewed a {want['type']} point")
    members = [item_of(vm) for vm in unit.vms[:2]]
    times = {_time(chosen[m]["chosen"]["time"]) for m in members}
    if times != {_time(group["common_point_time"])}:
        problems.append(f"group members at {times}, common point {group['common_point_time']}")
    leader = chosen[members[0]]
    if not _time(leader["chosen"]["time"]) < _time(leader["latest"]["time"]):
        problems.append("the lagging member did not pull the group back: nothing was tested")
    run.notes.append(
        f"group rg-{unit.key} common point {group['common_point_time']}; "
        + ", ".join(
            f"{m.removesuffix('-item')} at {chosen[m]['chosen']['time']} "
            f"(its latest {chosen[m]['latest']['time']})"
            for m in unit.items
        )
    )
    return await judge(lab, case, run, end, problems, data={"preview": preview})


async def plan_member_approved_alone(lab: Lab, case: Case) -> CaseResult:
    """One machine of a plan is verified and waits for the plan's approval, while the other is
    still failing over (its failover is answered 15 s late: room for the first to be verified
    and seen while the batch's other cases load the machine) and then fails. The operator runs
    `failback approve` with the first machine's own workflow id. The plan's one approval covers
    every machine, and a plan with a failed machine commits nothing: that approval must be
    refused, and nothing may be committed."""
    unit = case.unit
    run = PlanRun(lab, unit)
    run.auto_approve = False
    first, second = unit.vms
    tried: dict[str, Any] = {}
    lab.add_fault(
        **unit_fault(unit, 1, "unplannedFailover", kind="delay", seconds=15, after_processing=False)
    )
    lab.add_fault(**job_failure("unplannedFailover", "8038", vm_index=1)(unit))

    async def operator(snap: Snapshot) -> None:
        phases = snap.machine_phases()
        if not tried and phases.get(first) == "awaiting-approval" and phases.get(second):
            shown = await asyncio.to_thread(
                lab.cli, "approve", run.machine_ids[first], "--by", "alice"
            )
            tried.update(code=shown.returncode, out=(shown.stdout + shown.stderr).strip())
            run.notes.append(
                f"`failback approve {run.machine_ids[first]}` while {second} was "
                f"{phases.get(second)}: exit {shown.returncode}: {tried['out']}"
            )

    await run.start()
    end = await drive(lab, case, run, on_snapshot=operator)
    problems = [] if tried else ["the member was never seen awaiting approval alone"]
    return await judge(lab, case, run, end, problems)


async def _cancel(lab: Lab, run: PlanRun) -> str:
    run.auto_approve = False
    client = await lab.client()
    await client.get_workflow_handle(run.workflow_id).cancel()
    return "cancel requested (client handle.cancel())"


CANCEL = Action("cancel the plan", _cancel)


def _unit_posts(lab: Lab, unit: Unit) -> list[dict[str, Any]]:
    names = [f"/replicationprotecteditems/{i}/".lower() for i in unit.items]
    return [
        e
        for e in lab.journal()
        if e["method"] == "POST" and any(n in e["path"].lower() for n in names)
    ]


def _time(text: Any) -> Any:
    if isinstance(text, datetime):
        return text
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)


SAFETY_APPROVAL = Case(
    "approval-before-verification",
    "safety",
    "approvals sent before verification (plan signal, machine signal, `failback approve`), the "
    "verification held until the CLI answered (on-premises VM kept off); the real approval "
    "withheld 3 s",
    Unit("approval-before-verification"),
    "completed",
    # The hold makes the verification fail until released: room for a CLI slow to start.
    overrides=(("verify_timeout_seconds", 180.0),),
    custom=approval_only_after_verification,
)
SAFETY_VERIFICATION_FAILS = Case(
    "verification-fails",
    "safety",
    "on-premises VM powered off again before verification (timeout 6 s); approval tried "
    "while verifying",
    Unit("verification-fails"),
    "stopped",
    reason="verification failed",
    overrides=(("verify_timeout_seconds", 6.0),),
    custom=verification_failure_never_commits,
)
SAFETY_APP_CONSISTENT = Case(
    "app-consistent-group",
    "safety",
    "--recovery-point app-consistent: preview, then start, through the CLI",
    Unit("app-consistent-group", "group"),
    "completed",
    recovery_point="app-consistent",
    custom=app_consistent_group_points,
)
SAFETY_APP_CONSISTENT_CRASH = Case(
    "app-consistent-group-kill",
    "safety",
    "--recovery-point app-consistent through the CLI; worker killed while the failover jobs run",
    Unit("app-consistent-group-kill", "group"),
    "completed",
    recovery_point="app-consistent",
    trigger=in_job("unplannedFailover", "unplannedFailover accepted"),
    action=KILL_WORKER,
    custom=app_consistent_group_points,
    disruptive=True,
)
SAFETY_MEMBER_APPROVED_ALONE = Case(
    "approve-plan-member-alone",
    "safety",
    "`failback approve` with one plan member's own id while the other member still fails over "
    "(and then fails)",
    Unit("approve-plan-member-alone", machines=2),
    "stopped",
    reason="8038",
    custom=plan_member_approved_alone,
)
SAFETY_CANCEL_AWAITING = Case(
    "cancel-awaiting-approval",
    "safety",
    "plan cancelled (client handle.cancel()) while awaiting approval",
    Unit("cancel-awaiting-approval", machines=2),
    "cancelled",
    trigger=at_plan_phase("awaiting-approval"),
    action=CANCEL,
)
SAFETY_CANCEL_FAILOVER_JOB = Case(
    "cancel-failover-job",
    "safety",
    "plan cancelled (client handle.cancel()) while the unplannedFailover jobs run",
    Unit("cancel-failover-job", machines=2),
    "cancelled",
    trigger=in_job("unplannedFailover", "unplannedFailover accepted"),
    action=CANCEL,
)
SAFETY_CANCEL_REPROTECT_ONPREM = Case(
    "cancel-waiting-replication",
    "safety",
    "plan cancelled (client handle.cancel()) while waiting for replication to on-premises",
    Unit("cancel-waiting-replication", REPROTECT_FIRST),
    "cancelled",
    trigger=at_plan_phase("waiting-for-replication"),
    action=CANCEL,
)

# --- the matrices --------------------------------------------------------------------------------

CRASHES = [
    CRASH_DISCOVERING,
    CRASH_READINESS,
    CRASH_REPROTECT_ONPREM_JOB,
    CRASH_WAITING_REPLICATION,
    CRASH_FAILING_OVER,
    CRASH_FAILOVER_JOB,
    CRASH_VERIFYING,
    CRASH_AWAITING_APPROVAL,
    CRASH_APPROVAL_WHILE_DOWN,
    CRASH_COMMITTING,
    CRASH_WAITING_AGENT,
    CRASH_REPROTECTING,
]
TEMPORAL = [
    TEMPORAL_WAITING_REPLICATION,
    TEMPORAL_FAILOVER_JOB,
    TEMPORAL_AWAITING_APPROVAL,
    TEMPORAL_COMMITTING,
    TEMPORAL_KILLED_FAILOVER_JOB,
    TEMPORAL_KILLED_REPROTECTING,
]
FAULTS = [
    THROTTLED,
    THROTTLED_LONG,
    SERVER_ERROR_COMMIT,
    SERVER_ERROR_READS,
    DROP_FAILOVER_BEFORE,
    DROP_FAILOVER_AFTER,
    DROP_COMMIT_AFTER,
    DROP_REPROTECT_AFTER,
    DROP_READS,
    SLOW_READS,
    SLOW_FAILOVER_ANSWER,
    FAILOVER_JOB_FAILS,
    COMMIT_JOB_FAILS,
    REPROTECT_JOB_FAILS,
    DROPPED_FAILED_FAILOVER,
    VCENTER_DOWN_VERIFYING,
    VCENTER_DOWN_READINESS,
    AGENT_NEVER,
    CS_FORGOT_MACHINE,
    CS_LOSES_MACHINE,
]
SAFETY = [
    SAFETY_APPROVAL,
    SAFETY_VERIFICATION_FAILS,
    SAFETY_MEMBER_APPROVED_ALONE,
    SAFETY_APP_CONSISTENT,
    SAFETY_APP_CONSISTENT_CRASH,
    SAFETY_CANCEL_AWAITING,
    SAFETY_CANCEL_FAILOVER_JOB,
    SAFETY_CANCEL_REPROTECT_ONPREM,
]
FULL_MATRIX = [BASELINE_REPROTECT, BASELINE_REPLICATING, *CRASHES, *TEMPORAL, *FAULTS, *SAFETY]

# What `make test` runs (tests/reliability): 3 kill points (one inside a job), one Temporal
# restart, each fault kind once, the safety cases; the rest is `python -m lab.reliability`'s job.
# Two of them on plans already replicating back (no reprotect first: 8 s quicker each).
TEST_CRASHES = [
    CRASH_FAILOVER_JOB,
    crash(
        "kill-awaiting-approval-2vm",
        "worker killed while awaiting approval",
        at_plan_phase("awaiting-approval"),
        unit=Unit("kill-awaiting-approval-2vm", machines=2),
    ),
    crash(
        "kill-committing-2vm",
        "worker killed while committing (inside the failoverCommit job)",
        at_machine_phase("committing"),
        unit=Unit("kill-committing-2vm", machines=2),
    ),
]
TEST_TEMPORAL = [TEMPORAL_WAITING_REPLICATION]
TEST_FAULTS = [
    THROTTLED,
    THROTTLED_LONG,
    SERVER_ERROR_COMMIT,
    DROP_FAILOVER_AFTER,
    SLOW_FAILOVER_ANSWER,
    FAILOVER_JOB_FAILS,
    VCENTER_DOWN_VERIFYING,
    AGENT_NEVER,
    CS_FORGOT_MACHINE,
    CS_LOSES_MACHINE,
    DROPPED_FAILED_FAILOVER,
]
TEST_SAFETY = [
    SAFETY_APPROVAL,
    SAFETY_VERIFICATION_FAILS,
    SAFETY_MEMBER_APPROVED_ALONE,
    SAFETY_APP_CONSISTENT,
    SAFETY_CANCEL_AWAITING,
]
TEST_BATCH = [BASELINE_REPROTECT, BASELINE_REPLICATING, *TEST_FAULTS, *TEST_SAFETY]
TEST_CASES = [*TEST_CRASHES, *TEST_TEMPORAL, *TEST_BATCH]


# --- modernized: the same guarantees, in a lab of its own (the simulator speaks one architecture
# per lab). Its plans reprotect through the replication appliance, fail back through the plan's
# planned failover, and can be undone before commit (failoverCancel). ---------------------------


def plan_fault(action: str, **fault: Any) -> Callable[[Unit], dict]:
    """A fault on the POST `action` of the unit's own recovery plan."""
    return lambda u: {
        "method": "POST",
        "path_suffix": f"/replicationRecoveryPlans/{u.plan}/{action}",
        **fault,
    }


def modern(key: str) -> str:
    return f"modernized-{key}"


MODERNIZED_BASELINE = Case(
    modern("baseline"),
    "modernized",
    "no fault: reprotect through the appliance, the plan's planned failover, commit, "
    "reprotect back",
    Unit(modern("baseline"), REPROTECT_FIRST),
    "completed",
)
MODERNIZED_UNDO = Case(
    modern("undo"),
    "modernized",
    "`failback undo` once every machine is verified",
    Unit(modern("undo"), REPROTECT_FIRST),
    "undone",
    undo=True,
)
MODERNIZED_CRASHES = [
    crash(
        modern("kill-reprotect-onprem-job"),
        "worker killed while the reProtect (InMageRcm) job runs",
        in_job("reProtect", "reProtect to on-premises accepted"),
        group="modernized",
    ),
    crash(
        modern("kill-waiting-replication"),
        "worker killed while waiting for the initial replication",
        at_plan_phase("waiting-for-replication"),
        group="modernized",
    ),
    crash(
        modern("kill-planned-failover-job"),
        "worker killed while the plan's plannedFailover job runs",
        in_job("plannedFailover", "plannedFailover accepted"),
        group="modernized",
    ),
    crash(
        modern("kill-first-verification-reads"),
        "worker killed during the plan's first verification reads, as its plannedFailover job "
        "ended (inside fail_over_plan_then_read, its Azure reads held 2 s)",
        IN_FIRST_VERIFICATION_READ,
        holds=HOLD_VERIFYING,
        group="modernized",
    ),
    crash(
        modern("kill-awaiting-approval"),
        "worker killed while awaiting approval",
        at_plan_phase("awaiting-approval"),
        group="modernized",
    ),
    crash(
        modern("kill-committing"),
        "worker killed while committing",
        at_machine_phase("committing"),
        group="modernized",
    ),
    crash(
        modern("kill-reprotecting"),
        "worker killed while the reProtect back to Azure (InMageRcmFailback) job runs",
        at_machine_phase("reprotecting"),
        group="modernized",
    ),
    crash(
        modern("temporal-planned-failover-job"),
        "Temporal server restarted while the plan's plannedFailover job runs",
        in_job("plannedFailover", "plannedFailover accepted"),
        action=RESTART_TEMPORAL,
        group="modernized",
    ),
]
MODERNIZED_KILL_UNDOING = Case(
    modern("kill-undoing"),
    "modernized",
    "worker killed while the failoverCancel jobs of an undo run",
    Unit(modern("kill-undoing"), REPROTECT_FIRST),
    "undone",
    trigger=in_job("failoverCancel", "failoverCancel accepted"),
    action=KILL_WORKER,
    disruptive=True,
    undo=True,
)
MODERNIZED_FAULTS = [
    fault_case(
        modern("http-429-planned-failover"),
        "the plan's plannedFailover answered 429 + Retry-After: 1, 3 times",
        unit=Unit(modern("http-429-planned-failover"), REPROTECT_FIRST),
        faults=(plan_fault("plannedFailover", kind="http", status=429, count=3, retry_after=1),),
        group="modernized",
    ),
    fault_case(
        modern("drop-planned-failover-after"),
        "connection to the plan's plannedFailover closed without an answer, after ASR started "
        "the job",
        unit=Unit(modern("drop-planned-failover-after"), REPROTECT_FIRST),
        faults=(plan_fault("plannedFailover", kind="drop", after_processing=True),),
        group="modernized",
    ),
    fault_case(
        modern("job-failure-planned-failover"),
        "a machine's part of the plan's plannedFailover job fails (8038): ASR cancels the "
        "failed failover by itself, the plan stops and says so, nothing is committed",
        expect="stopped",
        reason="ASR cancelled the failed failover by itself",
        unit=Unit(modern("job-failure-planned-failover"), REPROTECT_FIRST),
        faults=(job_failure("plannedFailover", "8038"),),
        group="modernized",
    ),
]


def modernized_write_faults(key: str, write: str, action: str, undo: bool = False) -> list[Case]:
    """429, 503 and a dropped connection (before and after ASR saw it) on one of modernized's
    new writes to the unit's first machine (the web VM, reprotected first)."""
    expect = "undone" if undo else "completed"
    faults: list[tuple[str, str, Callable[[Unit], dict]]] = [
        ("http-429", "answered 429 + Retry-After: 1, 3 times", http(action, 429, 3)),
        ("http-503", "answered 503, twice", http(action, 503, 2, retry_after=None)),
        (
            "drop-before",
            "connection closed without an answer, before ASR saw it",
            drop(action, after_processing=False),
        ),
        (
            "drop-after",
            "connection closed without an answer, after ASR started the job",
            drop(action, after_processing=True),
        ),
    ]
    return [
        fault_case(
            modern(f"{kind}-{key}"),
            f"{write} {what}",
            expect=expect,
            unit=Unit(modern(f"{kind}-{key}"), REPROTECT_FIRST),
            faults=(fault,),
            group="modernized",
            undo=undo,
        )
        for kind, what, fault in faults
    ]


def modernized_reprotect_back_fault(
    key: str, what: str, fault: Callable[[Unit], dict], expect: str = "completed"
) -> Case:
    """A fault on the reProtect back to Azure, of a machine already replicating to on-premises
    (its only reProtect)."""
    return fault_case(
        modern(key),
        f"reProtect back to Azure (InMageRcmFailback) {what}",
        expect=expect,
        unit=Unit(modern(key)),
        faults=(fault,),
        group="modernized",
    )


MODERNIZED_REFUSED = [
    Case(
        modern("refused-unreachable-datastore"),
        "modernized",
        "the operator names a datastore (ds-nfs-01) the appliance's reprotect agent cannot "
        "reach, for the machine whose VM is gone on-premises: R19 refuses the plan before any "
        "write, naming the machine, the datastore and what to do",
        Unit(
            modern("refused-unreachable-datastore"),
            REPROTECT_FIRST,
            reprotect_datastore="ds-nfs-01",
        ),
        "refused",
        reason="R19",
    ),
]


# Every new write of modernized under ARM's answers (issue 15, point 5); the plan's failover
# and the undo are above.
MODERNIZED_WRITE_FAULTS = [
    *modernized_write_faults(
        "reprotect-onprem", "reProtect to on-premises (InMageRcm)", "reProtect"
    ),
    fault_case(
        modern("http-503-planned-failover"),
        "the plan's plannedFailover answered 503, twice",
        unit=Unit(modern("http-503-planned-failover"), REPROTECT_FIRST),
        faults=(plan_fault("plannedFailover", kind="http", status=503, count=2),),
        group="modernized",
    ),
    fault_case(
        modern("drop-planned-failover-before"),
        "connection to the plan's plannedFailover closed without an answer, before ASR saw it",
        unit=Unit(modern("drop-planned-failover-before"), REPROTECT_FIRST),
        faults=(plan_fault("plannedFailover", kind="drop", after_processing=False),),
        group="modernized",
    ),
    *modernized_write_faults("cancel", "undo: failoverCancel", "failoverCancel", undo=True),
    *modernized_write_faults("commit", "failoverCommit (InMageRcmFailback)", "failoverCommit"),
    modernized_reprotect_back_fault(
        "http-429-reprotect-back",
        "answered 429 + Retry-After: 1, 3 times",
        http("reProtect", 429, 3),
    ),
    modernized_reprotect_back_fault(
        "http-503-reprotect-back", "answered 503, twice", http("reProtect", 503, 2, None)
    ),
    modernized_reprotect_back_fault(
        "drop-after-reprotect-back",
        "connection closed without an answer, after ASR started the job",
        drop("reProtect", after_processing=True),
    ),
    modernized_reprotect_back_fault(
        "job-failure-reprotect-back",
        "job fails once after the commit (78052); tried again within the agent wait",
        job_failure("reProtect", "78052"),
        expect="reprotect-retried",
    ),
]
MODERNIZED_MATRIX = [
    MODERNIZED_BASELINE,
    MODERNIZED_UNDO,
    *MODERNIZED_CRASHES,
    MODERNIZED_KILL_UNDOING,
    *MODERNIZED_FAULTS,
    *MODERNIZED_WRITE_FAULTS,
    *MODERNIZED_REFUSED,
]
# What `make test` runs of it (tests/reliability/test_modernized.py).
TEST_MODERNIZED = [
    MODERNIZED_BASELINE,
    MODERNIZED_UNDO,
    MODERNIZED_CRASHES[2],
    MODERNIZED_KILL_UNDOING,
    MODERNIZED_FAULTS[1],
    MODERNIZED_FAULTS[2],
    *MODERNIZED_REFUSED,
    *(
        c
        for c in MODERNIZED_WRITE_FAULTS
        if c.name in (modern("drop-after-reprotect-onprem"), modern("job-failure-reprotect-back"))
    ),
]


# --- Hyper-V (issue 16): the same guarantees, in a lab of its own. Two VMs per plan: web goes
# back to its VM (original location), app's VM is gone and ASR creates it on the host again.


def hv(key: str) -> str:
    return f"hyperv-{key}"


def hv_unit(key: str, data_sync: str = "for-synchronization") -> Unit:
    return Unit(hv(key), "hyperv", data_sync=data_sync)


def _unit_job_ids(lab: Lab, unit: Unit, operation: str, state: str | None = None) -> list[str]:
    items = {i.lower() for i in unit.items}
    return [
        str(o["job"])
        for o in lab.sim_state()["operations"]
        if o["item"]
        and o["item"].lower() in items
        and o["operation"] == operation
        and (state is None or o["state"] == state)
    ]


def resume_accepted() -> Trigger:
    """Right after ASR took the cut-over's resume of one of the unit's suspended jobs."""

    def probe(lab: Lab, unit: Unit) -> bool:
        jobs = {j.lower() for j in _unit_job_ids(lab, unit, "plannedFailover")}
        return any(
            e["method"] == "POST"
            and e["path"].lower().endswith("/resume")
            and e["path"].rstrip("/").split("/")[-2].lower() in jobs
            and 200 <= int(e["status"]) < 300
            for e in lab.journal()
        )

    return Trigger("a resume accepted (cutting over)", lambda *_: False, probe=probe)


def _drop_resume_answers(lab: Lab, run: PlanRun) -> Awaitable[str]:
    async def do() -> str:
        jobs = _unit_job_ids(lab, run.unit, "plannedFailover", "Suspended")
        for job in jobs:
            lab.add_fault(
                kind="drop",
                method="POST",
                path_suffix=f"/replicationJobs/{job}/resume",
                after_processing=True,
            )
        return f"armed: the answer to the resume of {', '.join(jobs)} will be lost"

    return do()


DROP_RESUME_ANSWER = Action(
    "the resume's answer lost (connection closed after ASR resumed the job)",
    _drop_resume_answers,
)

HYPERV_MATRIX = [
    Case(
        hv("baseline"), "hyperv", "no fault: for-synchronization", hv_unit("baseline"), "completed"
    ),
    Case(
        hv("downtime"),
        "hyperv",
        "no fault: for-downtime, held synchronized until the harness's cut-over",
        hv_unit("downtime", "for-downtime"),
        "completed",
    ),
    crash(
        hv("kill-planned-failover-job"),
        "worker killed while the plannedFailover job runs",
        in_job("plannedFailover", "plannedFailover accepted"),
        group="hyperv",
        unit=hv_unit("kill-planned-failover-job"),
    ),
    crash(
        hv("kill-suspended"),
        "for-downtime: worker killed while ASR holds the job "
        "suspended (synchronized, awaiting the cut-over)",
        at_machine_phase("synchronized-awaiting-cutover"),
        group="hyperv",
        unit=hv_unit("kill-suspended", "for-downtime"),
    ),
    crash(
        hv("kill-resuming"),
        "for-downtime: worker killed right after ASR took the resume",
        resume_accepted(),
        group="hyperv",
        unit=hv_unit("kill-resuming", "for-downtime"),
    ),
    crash(
        hv("temporal-suspended"),
        "for-downtime: Temporal server restarted while the job is suspended",
        at_machine_phase("synchronized-awaiting-cutover"),
        action=RESTART_TEMPORAL,
        group="hyperv",
        unit=hv_unit("temporal-suspended", "for-downtime"),
    ),
    crash(
        hv("kill-committing"),
        "worker killed while committing (finalize failback)",
        at_machine_phase("committing"),
        group="hyperv",
        unit=hv_unit("kill-committing"),
    ),
    Case(
        hv("drop-resume-after"),
        "hyperv",
        "for-downtime: the resume's answer lost after ASR resumed the job; the retry sees the "
        "job running and sends nothing again",
        hv_unit("drop-resume-after", "for-downtime"),
        "completed",
        trigger=at_machine_phase("synchronized-awaiting-cutover"),
        action=DROP_RESUME_ANSWER,
    ),
    fault_case(
        hv("http-429-planned-failover"),
        "plannedFailover answered 429 + Retry-After: 1, 3 times",
        unit=hv_unit("http-429-planned-failover"),
        faults=(http("plannedFailover", 429, 3),),
        group="hyperv",
    ),
    fault_case(
        hv("drop-planned-failover-after"),
        "connection to plannedFailover closed without an answer, after ASR started the job",
        unit=hv_unit("drop-planned-failover-after"),
        faults=(drop("plannedFailover", after_processing=True),),
        group="hyperv",
    ),
    fault_case(
        hv("http-503-commit"),
        "failoverCommit (finalize failback) answered 503, twice",
        unit=hv_unit("http-503-commit"),
        faults=(http("failoverCommit", 503, 2, retry_after=None),),
        group="hyperv",
    ),
    fault_case(
        hv("drop-reprotect-after"),
        "connection to reProtect (reverse replication) "
        "closed without an answer, after ASR started the job",
        unit=hv_unit("drop-reprotect-after"),
        faults=(drop("reProtect", after_processing=True),),
        group="hyperv",
    ),
    fault_case(
        hv("job-failure-planned-failover"),
        "the plannedFailover job fails starting the "
        "VM on the host: the plan stops, nothing is committed",
        expect="stopped",
        unit=hv_unit("job-failure-planned-failover"),
        faults=(job_failure("plannedFailover", "99052"),),
        group="hyperv",
    ),
]
# What `make test` runs of it (tests/reliability/test_hyperv.py).
TEST_HYPERV = [HYPERV_MATRIX[1], HYPERV_MATRIX[3], HYPERV_MATRIX[4], HYPERV_MATRIX[7]]
