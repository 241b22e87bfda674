"""Pure decisions of a failback: no I/O, no Temporal. The workflows call these; tests prove them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

from domain.models import (
    AgentWait,
    Architecture,
    AzureVmState,
    DataSync,
    DiscoveredMachine,
    MachineStatus,
    OnPremVmState,
    RecoveryPoint,
    RecoveryPointChoice,
    Verification,
)
from domain.phases import BEFORE_CUTOVER, Phase, PlanPhase
from domain.readiness import MachinePlan
from domain.recovery_points import how_to_ask

# Before the on-premises VM was verified: an approval is not taken yet.
BEFORE_VERIFIED = frozenset(
    {
        Phase.STARTING,
        Phase.DISCOVERING,
        Phase.CHECKING,
        Phase.REPROTECTING_TO_ONPREM,
        Phase.WAITING_FOR_REPLICATION,
        Phase.FAILING_OVER,
        Phase.AWAITING_CUTOVER,
        Phase.CUTTING_OVER,
        Phase.VERIFYING,
    }
)


def fails_over_as_plan(machines: Iterable[DiscoveredMachine]) -> bool:
    """FO-PLAN: ASR fails the members of a replication group a person made over only together,
    through their recovery plan's failover (Azure PowerShell refuses an item failover of one:
    asr-sim-audit.md row 2). A plan holding such a member therefore fails over whole, in one ASR
    job that boots its groups in ASR's order; a plan without one fails over machine by machine,
    boot group by boot group, each group verified before the next starts. A modernized plan
    always fails back through the plan's planned failover, with useMultiVmSyncPoint when it
    holds a group, as ASR's documentation and Azure PowerShell do it."""
    return any(m.replication_group or m.architecture == "modernized" for m in machines)


def hyperv_fails_over_as_plan(
    machines: Sequence[DiscoveredMachine],
    data_sync: DataSync,
    placements: Iterable[MachinePlan | None],
) -> bool:
    """FO-PLAN, Hyper-V: a plan of Hyper-V machines that `hyperv_plan_fails_over_whole`."""
    placed = list(placements)
    return (
        bool(machines)
        and all(m.architecture == "hyperv" for m in machines)
        and len(placed) == len(machines)
        and hyperv_plan_fails_over_whole(data_sync, placed)
    )


def hyperv_plan_fails_over_whole(
    data_sync: DataSync, placements: Iterable[MachinePlan | None]
) -> bool:
    """FO-PLAN, Hyper-V: a plan whose machines fail back for synchronization, each to the VM it
    came from, fails over through the recovery plan's planned failover, as the portal's failback
    of a plan does: one ASR job that boots its groups in ASR's order (recorded:
    hyperv-RPFailback.json, ForSynchronization with NoAction), not one job per machine with a
    round trip per boot group. Machine by machine, boot group by boot group, otherwise:
    for-downtime (what a plan's job does at the suspension was never recorded; each machine's
    own job is resumed at the cut-over), or a VM to be created at an alternate location (the
    plan's input cannot name the host: asr-modernized-hyperv.md 3.4)."""
    placed = list(placements)
    return (
        bool(placed)
        and data_sync == "for-synchronization"
        and all(p is not None and p.location == "original" for p in placed)
    )


class NoRecoveryPointError(ValueError):
    """R13: a machine without any recovery point cannot fail back."""


def select_latest_point(
    points: Iterable[RecoveryPoint], architecture: Architecture = "classic"
) -> RecoveryPointChoice:
    """`latest`: the machine's own newest point, whatever its type, named as the architecture's
    failover names it (RP-ASK)."""
    ordered = sorted(points, key=lambda p: (p.time, p.id))
    if not ordered:
        raise NoRecoveryPointError(
            "R13: the machine has no recovery point; wait until replication to on-premises "
            "has produced one (check replication health in the vault)"
        )
    latest = ordered[-1]
    return RecoveryPointChoice(
        chosen=latest,
        latest=latest,
        data_loss_window_seconds=0.0,
        asked_as=how_to_ask("latest", architecture),
    )


def data_loss_window_seconds(latest: RecoveryPoint, chosen: RecoveryPoint) -> float:
    return max(0.0, (latest.time - chosen.time).total_seconds())


AZURE_VM_OFF_STATES = frozenset({"stopped", "deallocated"})


def evaluate_verification(
    onprem: OnPremVmState, azure: AzureVmState, checked_at: datetime
) -> Verification:
    """Step 5: the on-premises VM runs with its guest up, and the Azure VM no longer runs."""
    problems: list[str] = []
    if onprem.platform == "hyperv":
        problems += _hyperv_vm_problems(onprem)
    elif not onprem.found:
        problems.append(f"on-premises VM {onprem.vm_name} was not found in vCenter")
    else:
        if onprem.power_state != "poweredOn":
            problems.append(
                f"on-premises VM {onprem.vm_name} is {onprem.power_state}, not poweredOn"
            )
        if onprem.tools_running_status != "guestToolsRunning":
            problems.append(
                f"the guest of {onprem.vm_name} is not up yet "
                f"(VMware Tools: {onprem.tools_running_status or 'unknown'})"
            )
    if azure.exists and azure.power_state not in AZURE_VM_OFF_STATES:
        problems.append(
            f"Azure VM {azure.name} is {azure.power_state or 'in an unknown power state'}, "
            "not stopped or deallocated"
        )
    return Verification(
        passed=not problems, checked_at=checked_at, onprem=onprem, azure=azure, problems=problems
    )


def _hyperv_vm_problems(onprem: OnPremVmState) -> list[str]:
    """On its Hyper-V host: the VM exists, is Running, and its guest's heartbeat is OK."""
    where = f"on Hyper-V host {onprem.host}" if onprem.host else "on its Hyper-V host"
    if not onprem.found:
        return [f"on-premises VM {onprem.vm_name} was not found {where}"]
    problems = []
    if onprem.power_state != "Running":
        problems.append(f"on-premises VM {onprem.vm_name} is {onprem.power_state}, not Running")
    elif not (onprem.heartbeat or "").startswith("Ok"):
        problems.append(
            f"the guest of {onprem.vm_name} is not up yet "
            f"(heartbeat: {onprem.heartbeat or 'no contact'})"
        )
    return problems


def approval_refusal(phase: Phase) -> str | None:
    """Why an approval received in this phase is refused; None when it is accepted."""
    if phase == Phase.AWAITING_APPROVAL:
        return None
    if phase in BEFORE_VERIFIED:
        return (
            f"the failback is {phase}: an approval is only taken after the on-premises VM "
            "has been verified; approve again when it is awaiting approval"
        )
    if phase == Phase.FAILED:
        return "the failback failed before commit; nothing will be committed"
    return f"the commit was already approved (the failback is {phase})"


def undo_refusal(
    phase: Phase, approved: bool, can_undo: bool, architecture: str = "classic"
) -> str | None:
    """Why an undo received in this phase is refused; None when it is taken. Never after the
    commit's approval: the commit deletes the Azure VM, and an undo cannot follow it."""
    if not can_undo and architecture == "hyperv":
        return (
            "a Hyper-V failback cannot be undone: ASR offers no cancel after it, and cancelling "
            "its job during data synchronization leaves the on-premises VM corrupt, possibly "
            "unbootable (ASR's documentation). Let the failback finish; nothing is committed "
            "without an approval, so the Azure VM's disks stay until you approve"
        )
    if not can_undo:
        return (
            "this machine's architecture (classic) cannot undo a failback: ASR has no cancel "
            "for it; leave it unapproved and cancel the failback's workflow instead, which "
            "commits nothing and leaves the Azure VM intact"
        )
    if approved or phase not in (Phase.FAILING_OVER, Phase.VERIFYING, Phase.AWAITING_APPROVAL):
        if phase in (
            Phase.STARTING,
            Phase.DISCOVERING,
            Phase.CHECKING,
            Phase.REPROTECTING_TO_ONPREM,
            Phase.WAITING_FOR_REPLICATION,
        ):
            return f"the failback is {phase}: nothing has failed over yet, so nothing to undo"
        if phase in (Phase.UNDOING, Phase.UNDONE):
            return "the failback is already being undone"
        return (
            f"the failback is {phase}: the commit was approved or done, which deletes the Azure "
            "VM; a committed failback cannot be undone"
        )
    return None


# Before a machine the plan failed over can take its plan's undo: its workflow has not yet
# begun waiting for the plan's job (a workflow started after the job's end, not yet run).
_BEFORE_ITS_FAILOVER = frozenset({Phase.STARTING, Phase.DISCOVERING})


def plan_decision_waits(
    decision: Literal["approve", "undo"], phase: Phase, failed_over_by_plan: bool
) -> bool:
    """FO-PLAN: a plan that failed its machines over in its own job verifies each from its own
    read at the job's end, and from then on takes the approval (or the undo) for all of them,
    while each machine's workflow may not yet have recorded that read as its own verification.
    Such a decision from the machine's own plan waits for the machine's turn (the approval:
    awaiting approval, after its own verification passed; the undo: failing over) and is judged
    then by the same rules, never taken earlier: step 6's "an approval sent before verification
    is refused" still holds for the machine, and the plan never waits on its machines' word."""
    if not failed_over_by_plan:
        return False
    if decision == "approve":
        return phase in BEFORE_VERIFIED
    return phase in _BEFORE_ITS_FAILOVER


def cutover_refusal(status: MachineStatus) -> str | None:
    """Why a cut-over is refused for this machine's failback; None when it is taken."""
    if status.data_sync is None:
        return (
            f"{status.vm_name or 'the machine'} has no cut-over: only a Hyper-V failback "
            "started with --data-sync for-downtime waits for one"
            if status.phase not in (Phase.STARTING, Phase.DISCOVERING)
            else "the failback is still reading the machine from the vault; try again"
        )
    if status.data_sync != "for-downtime":
        return (
            "this failback synchronizes during the failover (for-synchronization): the Azure VM "
            "was shut down at once, there is no cut-over to give"
        )
    if status.cutover is not None:
        return f"{status.cutover.cut_over_by} already gave the cut-over"
    if status.phase not in BEFORE_CUTOVER:
        return f"the failback is {status.phase}: its cut-over has begun or is past"
    return None


class AgentWaitVerdict(StrEnum):
    REGISTERED = "registered"
    KEEP_WAITING = "keep-waiting"
    STUCK = "stuck"


def agent_wait_verdict(
    wait: AgentWait,
    now: datetime,
    registered: bool,
    timeout_seconds: float,
    failed_reprotects: int = 0,
) -> AgentWaitVerdict:
    """R16: re-protect once the agent has registered; a re-protect that fails, whatever ASR's
    code, is tried again while the wait lasts (ASR publishes no code for "the agent is not
    installed"), and once the wait is over a person decides: the retries are bounded."""
    late = (now - wait.started_at).total_seconds() >= timeout_seconds
    if registered and not (late and failed_reprotects):
        return AgentWaitVerdict.REGISTERED
    if late:
        return AgentWaitVerdict.STUCK
    return AgentWaitVerdict.KEEP_WAITING


def describe_wait(
    phase: Phase, vm_name: str, waited_seconds: float | None = None, limit: float | None = None
) -> str:
    """What the failback waits on, in words an operator reads in the CLI and the Web UI."""
    vm = vm_name or "the machine"
    if phase == Phase.WAITING_FOR_AGENT and waited_seconds is not None and limit is not None:
        return (
            f"waiting for the mobility agent on {vm} to register: "
            f"{int(waited_seconds // 60)} of {int(limit // 60)} min"
        )
    texts = {
        Phase.STARTING: "starting",
        Phase.DISCOVERING: f"reading {vm} from the vault",
        Phase.CHECKING: f"checking every readiness rule for {vm} (ASR and vCenter)",
        Phase.REPROTECTING_TO_ONPREM: f"ASR is reprotecting {vm} toward on-premises",
        Phase.WAITING_FOR_REPLICATION: f"waiting for {vm}'s initial replication to on-premises "
        "(its progress is the pending activity's last heartbeat)",
        Phase.FAILING_OVER: f"ASR is failing {vm} over to on-premises",
        Phase.AWAITING_CUTOVER: (
            f"{vm} is synchronized while its Azure VM runs; ASR waits for the cut-over: run "
            "`failback cutover ID --by NAME` (or wait for the cut-over time given at start)"
        ),
        Phase.CUTTING_OVER: f"ASR is shutting the Azure VM down and sending {vm}'s last changes",
        Phase.VERIFYING: f"waiting for {vm} to run on-premises and the Azure VM to be off",
        Phase.AWAITING_APPROVAL: (
            f"waiting for a commit approval: verify {vm}, then run `failback approve` (or, "
            "modernized, `failback undo` to bring the Azure VM back)"
        ),
        Phase.COMMITTING: "ASR is committing the failover (deleting the Azure VM)",
        Phase.WAITING_FOR_AGENT: f"waiting for the mobility agent on {vm} to register",
        Phase.AGENT_STUCK: (
            f"the mobility agent on {vm} never registered: check it on the VM, then run "
            "`failback agent ID --keep-waiting` or `--finish-without-reprotect`"
        ),
        Phase.REPROTECTING: f"ASR is re-protecting {vm} to Azure",
        Phase.COMPLETED: "nothing: the failback is complete",
        Phase.COMPLETED_WITHOUT_REPROTECT: (
            "nothing: failed back without re-protect (enable it in the vault)"
        ),
        Phase.UNDOING: f"ASR is undoing the failback of {vm} (failoverCancel): the Azure VM "
        "starts again and replication toward on-premises resumes",
        Phase.UNDONE: f"nothing: the failback was undone; {vm} runs in Azure again",
        Phase.FAILED: "nothing: the failback failed (see the error)",
    }
    return texts[phase]


# A plan's phases in which each decision can still be taken (workflows/plan.py judges it again).
_PLAN_PHASES_TAKING = {
    "approve": frozenset({PlanPhase.AWAITING_APPROVAL}),
    "undo": frozenset({PlanPhase.AWAITING_APPROVAL}),
    "cutover": frozenset(
        {
            PlanPhase.STARTING,
            PlanPhase.DISCOVERING,
            PlanPhase.CHECKING,
            PlanPhase.REPROTECTING,
            PlanPhase.WAITING_FOR_REPLICATION,
            PlanPhase.FAILING_OVER,
        }
    ),
}

# The same for one machine's failback (workflows/machine.py).
_MACHINE_PHASES_TAKING = {
    "approve": frozenset({Phase.AWAITING_APPROVAL}),
    "undo": frozenset({Phase.FAILING_OVER, Phase.VERIFYING, Phase.AWAITING_APPROVAL}),
    "cutover": BEFORE_CUTOVER,
    "agent": frozenset({Phase.AGENT_STUCK}),
}


def refusal_by_phase_alone(decision: str, is_plan: bool, phase: str | None) -> str | None:
    """Why the CLI does not send a decision when all it knows of the failback is the phase
    Temporal's server holds (its search attribute: the worker was too busy to answer the
    status query); None when that phase can take it. The workflow judges whatever is sent (its
    phase when the signal arrives, who sends it, a second one), so this only spares a signal
    that cannot be taken and tells the person why now."""
    taking = (_PLAN_PHASES_TAKING if is_plan else _MACHINE_PHASES_TAKING).get(decision)
    if taking is None:
        return f"a recovery plan takes no {decision} decision"
    if phase is None:
        return (
            "the server holds no phase for it yet (it has not begun); try again when "
            "`failback status` answers"
        )
    if phase in taking:
        return None
    return f"the failback is {phase}, and only {' or '.join(sorted(taking))} takes a {decision}"
