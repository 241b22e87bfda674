"""The plan workflow on the time-skipping server with mocked activities: boot group order, one
approval for the whole plan, and a failure that stops later groups with nothing committed."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.asr import AsrActivities
from activities.compute import ComputeActivities
from activities.decisions import DecisionActivities, DecisionRules
from activities.verification import VerificationActivities
from activities.vsphere import OnPremFactsQuery, VSphereActivities
from domain import errors
from domain.models import (
    AgentCheckInput,
    AgentRegistration,
    ApprovalRequest,
    AzureVmRef,
    AzureVmState,
    DiscoveredMachine,
    DiscoveredPlan,
    DiscoverPlanInput,
    FailoverInput,
    FailoverThenRead,
    FailoverThenReadInput,
    ItemOperationInput,
    MachinePoints,
    OnPremVmQuery,
    OnPremVmState,
    OperationResult,
    PlanFailbackInput,
    PlanFailbackResult,
    PlanFailoverInput,
    PlanFailoverThenRead,
    PlanFailoverThenReadInput,
    PlanStatus,
    ProtectedItemRef,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    RecoveryPoint,
    ReprotectToAzureInput,
    ResolvedReprotectToAzure,
    Timings,
    VaultRef,
    VerificationRead,
    VerificationReadInput,
    VerificationReads,
    VerificationReadsInput,
)
from domain.readiness import (
    AsrFacts,
    ConfigServerFacts,
    DatastoreFacts,
    HostFacts,
    MachineFacts,
    MasterTargetFacts,
    OnPremFacts,
    OnPremVmFacts,
    VCenterFacts,
)
from starter import commands
from tests.fakes.names import fake_of
from tests.workflows.cli_connection import cli_client, signals_in, worker_too_busy_to_answer
from workflows.calls import readiness_task_queue
from workflows.machine import MachineFailbackWorkflow
from workflows.plan import PlanFailbackWorkflow

T0 = datetime(2026, 11, 25, tzinfo=UTC)
GROUPS = [["db-01", "db-02"], ["app-01"], ["web-01"]]
# VMs of vCenter that are not in the plan.
OTHER_VMS = [f"other-{i:02d}" for i in range(20)]


def machine(name: str, group: str | None = None) -> DiscoveredMachine:
    return DiscoveredMachine(
        item=ProtectedItemRef(fabric="f", container="c", name=f"{name}-item"),
        vm_name=name,
        replication_group=group,
        os_type="Linux",
        protection_state="Protected",
        allowed_operations=["UnplannedFailover"],
        azure_vm=AzureVmRef(resource_group="rg-rec", name=name),
        reprotect_to_azure=ResolvedReprotectToAzure(
            process_server_id="ps", master_target_id="mt", policy_id="pol", run_as_account_id="2"
        ),
    )


class FakePlanWorld:
    def __init__(
        self,
        failing_failover: str | None = None,
        groups: list[list[str]] = GROUPS,
        windows_2008: str | None = None,
        replication_group: bool = True,
        failing_plan_failover: bool = False,
        decision_rules: DecisionRules | None = None,
        reads_to_boot: int = 2,
        plan_job_seconds: float = 0.0,
        reads_to_boot_of: dict[str, int] | None = None,
        own_read_seconds: float = 0.0,
        failing_read_again: bool = False,
    ) -> None:
        self.groups = groups
        # How long the plan's failover job runs, in real seconds (the time-skipping server does
        # not skip an activity's own time).
        self.plan_job_seconds = plan_job_seconds
        # Reads of a VM after its failover before it reads as booted.
        self.reads_to_boot = reads_to_boot
        # A VM's own count where it differs (one still booting when the others are up).
        self.reads_to_boot_of = reads_to_boot_of or {}
        # How long a machine's own verification read takes, in real seconds.
        self.own_read_seconds = own_read_seconds
        self.failing_read_again = failing_read_again
        self.decision_rules = decision_rules or DecisionRules()
        # db-01 and db-02 in replication group rg-db: the plan then fails over whole (FO-PLAN).
        self.replication_group = replication_group
        self.failing_plan_failover = failing_plan_failover
        self.windows_2008 = windows_2008
        self.events: list[tuple[str, str]] = []
        self.failover_reads: dict[str, int] = {}
        self.failing_failover = failing_failover
        self.onprem_queries: list[list[str] | None] = []

    @fake_of(AsrActivities.discover_recovery_plan)
    async def discover_recovery_plan(self, params: DiscoverPlanInput) -> DiscoveredPlan:
        return DiscoveredPlan(
            name=params.recovery_plan,
            boot_groups=[
                [
                    machine(n, "rg-db" if n.startswith("db") and self.replication_group else None)
                    for n in group
                ]
                for group in self.groups
            ],
        )

    @fake_of(AsrActivities.read_asr_facts)
    async def read_asr_facts(self, params: ReadAsrFactsInput) -> AsrFacts:
        return AsrFacts(
            configuration_server=ConfigServerFacts(name="cs01", reachable=True),
            master_targets=[
                MasterTargetFacts(
                    id="mt",
                    name="mt-lnx",
                    os_type="Linux",
                    datastores=["ds"],
                    retention_volumes=["/r"],
                )
            ],
            vcenters=[VCenterFacts(name="vc", connected=True)],
            machines=[
                MachineFacts(
                    item_name=m.item.name,
                    vm_name=m.vm_name,
                    os_type="Linux",
                    os_version=(
                        "Windows Server 2008 R2 SP1" if m.vm_name == self.windows_2008 else None
                    ),
                    replication_group=m.replication_group,
                    state="replicating-back",
                    protection_state="Protected",
                    replication_health="Normal",
                    recovery_point_count=5,
                    master_target_id="mt",
                )
                for m in params.machines
            ],
        )

    @fake_of(VSphereActivities.read_onprem_facts)
    async def read_onprem_facts(self, params: OnPremFactsQuery) -> OnPremFacts:
        # vCenter holds more than the plan's VMs; like the real activity, it answers for those
        # asked (every VM when none are named).
        self.onprem_queries.append(params.vm_names)
        names = [n for group in self.groups for n in group] + ["mt-lnx", *OTHER_VMS]
        if params.vm_names is not None:
            names = [n for n in names if n in params.vm_names]
        return OnPremFacts(
            hosts=[HostFacts(name="esx-01")],
            datastores=[DatastoreFacts(name="ds", type="VMFS", hosts=["esx-01"])],
            vms=[OnPremVmFacts(name=n, host="esx-01", datastores=["ds"]) for n in names],
        )

    @fake_of(AsrActivities.read_recovery_points)
    async def read_recovery_points(self, params: ReadRecoveryPointsInput) -> list[MachinePoints]:
        result = []
        for m in params.machines:
            points = [
                RecoveryPoint(
                    id=f"{m.item.name}/rp-{minute}",
                    name=f"rp-{minute}",
                    time=T0 + timedelta(minutes=minute),
                    type="ApplicationConsistent" if minute % 60 == 0 else "CrashConsistent",
                    multi_vm_sync_point=minute % 60 == 0 and m.replication_group is not None,
                )
                for minute in range(0, 125, 5)
                # db-02 lags: its newest points are missing.
                if not (m.vm_name == "db-02" and minute > 90)
            ]
            result.append(
                MachinePoints(
                    item_name=m.item.name, replication_group=m.replication_group, points=points
                )
            )
        return result

    def _op(self, name: str) -> OperationResult:
        now = activity.info().current_attempt_scheduled_time
        return OperationResult(
            operation=name,
            job_id="j",
            state="Succeeded",
            started_at=now,
            ended_at=now,
            resumed=False,
        )

    @fake_of(AsrActivities.fail_over)
    async def fail_over(self, params: FailoverInput) -> OperationResult:
        name = params.item.name.removesuffix("-item")
        self.events.append(("fail_over", name))
        point = f"{params.recovery_point_type}:{params.recovery_point_id}"
        self.events.append(("point", f"{name}={point}"))
        if name == self.failing_failover:
            raise ApplicationError(
                "ASR job failed: 8038 failed to bring up the on-premises VM",
                type=errors.ASR_JOB_FAILED,
                non_retryable=True,
            )
        self.failover_reads[name] = 0
        return self._op("unplannedFailover")

    @fake_of(AsrActivities.fail_over_plan)
    async def fail_over_plan(self, params: PlanFailoverInput) -> OperationResult:
        self.events.append(("fail_over_plan", params.recovery_plan))
        self.events.append(("point", f"{params.recovery_plan}={params.recovery_point_type}"))
        await asyncio.sleep(self.plan_job_seconds)
        if self.failing_plan_failover:
            raise ApplicationError(
                "ASR job j (unplannedFailover of recovery plan plan-erp) ended Failed: 8038 "
                "db-02: failed to bring up the on-premises VM",
                type=errors.ASR_JOB_FAILED,
                non_retryable=True,
            )
        for name in (n for group in self.groups for n in group):
            self.failover_reads[name] = 0
        return self._op("unplannedFailover")

    @fake_of(VSphereActivities.read_onprem_vm)
    async def read_onprem_vm(self, params: OnPremVmQuery) -> OnPremVmState:
        reads = self.failover_reads.get(params.vm_name, 0) + 1
        self.failover_reads[params.vm_name] = reads
        booted = reads > self.reads_to_boot_of.get(params.vm_name, self.reads_to_boot)
        if booted and ("verified", params.vm_name) not in self.events:
            self.events.append(("verified", params.vm_name))
        return OnPremVmState(
            vm_name=params.vm_name,
            found=True,
            power_state="poweredOn" if booted else "poweredOff",
            tools_running_status="guestToolsRunning" if booted else "guestToolsNotRunning",
        )

    @fake_of(ComputeActivities.read_azure_vm)
    async def read_azure_vm(self, params: AzureVmRef) -> AzureVmState:
        return AzureVmState(resource_group=params.resource_group, name=params.name, exists=False)

    @fake_of(VerificationActivities.read_verification_state)
    async def read_verification_state(self, params: VerificationReadInput) -> VerificationRead:
        await asyncio.sleep(self.own_read_seconds)
        self.events.append(("verification read", params.onprem.vm_name))
        return await self._read_both(params)

    @fake_of(VerificationActivities.read_verification_states)
    async def read_verification_states(self, params: VerificationReadsInput) -> VerificationReads:
        if self.failing_read_again:
            self.events.append(("plan's read again failed", ""))
            raise ApplicationError("vCenter is unreachable", non_retryable=True)
        return VerificationReads(
            states=await self._plans_reads(params.verifications, "plan's read again")
        )

    async def _plans_reads(
        self, verifications: dict[str, VerificationReadInput], event: str
    ) -> dict[str, VerificationRead]:
        states = {}
        for item, query in verifications.items():
            self.events.append((event, query.onprem.vm_name))
            states[item] = await self._read_both(query)
        return states

    async def _read_both(self, params: VerificationReadInput) -> VerificationRead:
        return VerificationRead(
            onprem=await self.read_onprem_vm(params.onprem),
            azure=await self.read_azure_vm(params.azure),
        )

    @fake_of(VerificationActivities.fail_over_then_read)
    async def fail_over_then_read(self, params: FailoverThenReadInput) -> FailoverThenRead:
        return FailoverThenRead(
            operation=await self.fail_over(params.failover),
            state=await self.read_verification_state(params.verification),
        )

    @fake_of(VerificationActivities.fail_over_plan_then_read)
    async def fail_over_plan_then_read(
        self, params: PlanFailoverThenReadInput
    ) -> PlanFailoverThenRead:
        operation = await self.fail_over_plan(params.failover)
        states = await self._plans_reads(params.verifications, "plan's verification read")
        return PlanFailoverThenRead(operation=operation, states=states)

    @fake_of(AsrActivities.commit_failover)
    async def commit_failover(self, params: ItemOperationInput) -> OperationResult:
        self.events.append(("commit", params.item.name.removesuffix("-item")))
        return self._op("failoverCommit")

    @fake_of(AsrActivities.cancel_failover)
    async def cancel_failover(self, params: ItemOperationInput) -> OperationResult:
        self.events.append(("cancel", params.item.name.removesuffix("-item")))
        return self._op("failoverCancel")

    @fake_of(AsrActivities.check_agent_registered)
    async def check_agent_registered(self, params: AgentCheckInput) -> AgentRegistration:
        return AgentRegistration(
            registered=True, last_heartbeat=params.committed_at, agent_version="9"
        )

    @fake_of(AsrActivities.reprotect_to_azure)
    async def reprotect_to_azure(self, params: ReprotectToAzureInput) -> OperationResult:
        self.events.append(("reprotect", params.item.name.removesuffix("-item")))
        return self._op("reProtect")

    def activities(self) -> list[object]:
        return [
            # The real one: pure, it reads the rules it is given (none here).
            DecisionActivities(self.decision_rules).decision_policy,
            self.discover_recovery_plan,
            self.read_asr_facts,
            self.read_onprem_facts,
            self.read_recovery_points,
            self.fail_over,
            self.fail_over_plan,
            self.read_onprem_vm,
            self.read_verification_states,
            self.read_azure_vm,
            self.read_verification_state,
            self.fail_over_then_read,
            self.fail_over_plan_then_read,
            self.commit_failover,
            self.cancel_failover,
            self.check_agent_registered,
            self.reprotect_to_azure,
        ]


@asynccontextmanager
async def started_plan(
    env: WorkflowEnvironment,
    world: FakePlanWorld,
    params: PlanFailbackInput | None = None,
    task_queue: str | None = None,
) -> AsyncIterator[WorkflowHandle]:
    """A worker with the fake world's activities, and a plan failback started on it; as
    `failback worker` does, it polls the readiness queue beside the workflows'."""
    queue = task_queue or f"tq-{uuid.uuid4()}"
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=[PlanFailbackWorkflow, MachineFailbackWorkflow],
            activities=world.activities(),
            max_concurrent_workflow_tasks=50,
        ),
        Worker(env.client, task_queue=readiness_task_queue(queue), activities=world.activities()),
    ):
        yield await env.client.start_workflow(
            PlanFailbackWorkflow.run,
            params or plan_input(),
            id=f"plan-{uuid.uuid4()}",
            task_queue=queue,
        )


async def failed_plan(
    env: WorkflowEnvironment, world: FakePlanWorld, params: PlanFailbackInput
) -> tuple[str, PlanStatus]:
    """A plan failback expected to fail: its error message and its last status."""
    async with started_plan(env, world, params) as handle:
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 60)
        return str(failure.value.cause), await handle.query(PlanFailbackWorkflow.status)


async def until_awaiting_approval(env: WorkflowEnvironment, handle: WorkflowHandle) -> None:
    for _ in range(600):
        status = await handle.query(PlanFailbackWorkflow.status)
        if status.phase in ("awaiting-approval", "failed"):
            break
        await env.sleep(timedelta(seconds=10))
    assert status.phase == "awaiting-approval", status.error


async def approved_to_the_end(
    env: WorkflowEnvironment, handle: WorkflowHandle
) -> tuple[PlanFailbackResult, WorkflowHistory, list[WorkflowHistory]]:
    """Approve a plan awaiting approval; its result, its history and its machines'."""
    await handle.signal(PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="ops"))
    result: PlanFailbackResult = await asyncio.wait_for(handle.result(), 60)
    machines = [
        await env.client.get_workflow_handle(m.workflow_id).fetch_history()
        for m in result.status.machines
    ]
    return result, await handle.fetch_history(), machines


def plan_input(
    policy: str = "app-consistent", machines_start_into_plan_job_seconds: float = 30.0
) -> PlanFailbackInput:
    return PlanFailbackInput(
        vault=VaultRef(resource_group="rg", vault="vault"),
        recovery_plan="plan-erp",
        recovery_point=policy,  # type: ignore[arg-type]
        recovery_resource_group="rg-rec",
        timings=Timings(
            verify_poll_interval_seconds=10,
            machines_start_into_plan_job_seconds=machines_start_into_plan_job_seconds,
        ),
    )


async def test_boot_groups_in_order_and_one_approval(env: WorkflowEnvironment) -> None:
    """A plan without a replication group fails over machine by machine, each boot group
    verified before the next starts, each machine at the point shown (RP-ASK)."""
    world = FakePlanWorld(replication_group=False)
    async with started_plan(env, world) as handle:
        await until_awaiting_approval(env, handle)
        assert not [e for e in world.events if e[0] == "commit"]
        # A machine of the plan is never approved on its own.
        db1 = env.client.get_workflow_handle("failback-vault-db-01")
        await db1.signal(MachineFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="x"))
        await env.sleep(timedelta(seconds=30))
        db1_status = await db1.query(MachineFailbackWorkflow.status)
        assert db1_status.approval is None and db1_status.phase == "awaiting-approval"
        assert "part of recovery plan plan-erp" in db1_status.rejected_approvals[0].reason
        assert not [e for e in world.events if e[0] == "commit"]
        await handle.signal(PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="ops"))
        result = await asyncio.wait_for(handle.result(), 60)

    assert result.outcome == "completed"
    assert sorted(result.machines) == ["app-01-item", "db-01-item", "db-02-item", "web-01-item"]
    assert not [e for e in world.events if e[0] == "fail_over_plan"]
    order = [(kind, name) for kind, name in world.events if kind in ("fail_over", "verified")]
    position = {event: index for index, event in enumerate(order)}
    for earlier, later in itertools.pairwise(GROUPS):
        for first in earlier:
            for second in later:
                assert position[("verified", first)] < position[("fail_over", second)]
    # app-consistent: each machine at ASR's newest application-consistent point, named as Azure
    # PowerShell names it, never by id.
    points = dict(e[1].split("=", 1) for e in world.events if e[0] == "point")
    assert points == {name: "LatestTag:None" for group in GROUPS for name in group}
    for machine_result in result.machines.values():
        approval = machine_result.status.approval
        assert approval is not None and approval.approved_by == "ops"
        assert "plan-erp" in approval.comment
    commits = [e for e in world.events if e[0] == "commit"]
    assert len(commits) == 4
    # Classic: vCenter is asked for the plan's VMs and, after ASR named it, its master target's
    # (R9, R11), not for every VM it holds (patch onprem-facts-of-the-plan).
    [asked] = world.onprem_queries
    assert asked is not None
    assert sorted(asked) == sorted([*(n for group in GROUPS for n in group), "mt-lnx"])


async def test_a_plan_with_a_replication_group_fails_over_whole(env: WorkflowEnvironment) -> None:
    """FO-PLAN: db-01 and db-02 are a replication group, so the plan fails over in one ASR job
    (LatestTag: the group's common multi-VM point); no machine sends a failover of its own, each
    verifies, boot group by boot group, and all are committed after the one approval."""
    world = FakePlanWorld()
    async with started_plan(env, world) as handle:
        await until_awaiting_approval(env, handle)
        status = await handle.query(PlanFailbackWorkflow.status)
        await handle.signal(PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="ops"))
        result = await asyncio.wait_for(handle.result(), 60)

    assert result.outcome == "completed"
    assert [e for e in world.events if e[0] in ("fail_over_plan", "fail_over")] == [
        ("fail_over_plan", "plan-erp")
    ]
    assert ("point", "plan-erp=LatestTag") in world.events
    assert status.failover is not None and status.failover.operation == "unplannedFailover"
    rg_db = next(g for g in status.recovery_points.groups if g.group == "rg-db")
    assert rg_db.common_point_time == T0 + timedelta(minutes=60)  # db-02 lags
    verified = [name for kind, name in world.events if kind == "verified"]
    assert sorted(verified) == sorted(n for group in GROUPS for n in group)
    for machine_result in result.machines.values():
        operations = [op.operation for op in machine_result.status.operations]
        assert operations == ["unplannedFailover", "failoverCommit", "reProtect"]
    assert len([e for e in world.events if e[0] == "commit"]) == 4


async def test_a_plan_failing_over_whole_reads_every_first_verification_itself(
    env: WorkflowEnvironment,
) -> None:
    """FO-PLAN: the plan's failover activity reads both sides of every machine as its job ends
    and hands each machine its read: a machine found booted makes no read of its own (one
    activity and workflow task fewer each in the burst after the job); one found still booting
    reads again itself, as before."""
    world = FakePlanWorld(reads_to_boot=0)
    async with started_plan(env, world) as handle:
        await until_awaiting_approval(env, handle)
        await handle.signal(PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="ops"))
        result = await asyncio.wait_for(handle.result(), 60)
    machines = sorted(n for group in GROUPS for n in group)
    assert result.outcome == "completed"
    assert sorted(n for kind, n in world.events if kind == "plan's verification read") == machines
    assert not [e for e in world.events if e[0] == "verification read"]
    for machine_result in result.machines.values():
        verification = machine_result.status.verification
        assert verification is not None and verification.passed

    booting = FakePlanWorld(reads_to_boot=1)
    async with started_plan(env, booting) as handle:
        await until_awaiting_approval(env, handle)
        await handle.signal(PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="ops"))
        assert (await asyncio.wait_for(handle.result(), 60)).outcome == "completed"
    assert sorted(n for kind, n in booting.events if kind == "verification read") == machines


async def test_a_failed_plan_failover_starts_no_machine_and_commits_nothing(
    env: WorkflowEnvironment,
) -> None:
    world = FakePlanWorld(failing_plan_failover=True)
    async with started_plan(env, world) as handle:
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 60)
        status = await handle.query(PlanFailbackWorkflow.status)
    message = str(failure.value.cause)
    assert "recovery plan's failover failed" in message and "8038" in message
    assert "Nothing was committed" in message
    assert status.phase == "failed" and status.failed == {}
    assert not [e for e in world.events if e[0] in ("fail_over", "commit", "verified")]


def _event_kinds(history: WorkflowHistory) -> list[str]:
    return [event.WhichOneof("attributes") or "" for event in history.events]


async def test_machines_started_during_the_plans_job_are_told_its_end(
    env: WorkflowEnvironment,
) -> None:
    """FO-PLAN: a job longer than `machines_start_into_plan_job_seconds` has the plan start its
    machines while it runs (their start is not in the burst after the job); each waits, sends
    nothing of its own, and verifies with the plan's read once told the job ended."""
    world = FakePlanWorld(reads_to_boot=0, plan_job_seconds=4)
    params = plan_input(machines_start_into_plan_job_seconds=1)
    async with started_plan(env, world, params) as handle:
        await asyncio.sleep(2.5)  # real time: the job runs 4 s
        db1 = env.client.get_workflow_handle("failback-vault-db-01")
        waiting = await db1.query(MachineFailbackWorkflow.status)
        assert waiting.phase == "failing-over" and waiting.verification is None
        await until_awaiting_approval(env, handle)
        result, plan_history, machine_histories = await approved_to_the_end(env, handle)
    assert result.outcome == "completed"
    kinds = _event_kinds(plan_history)
    job_end = kinds.index(
        "activity_task_completed_event_attributes", kinds.index("timer_started_event_attributes")
    )
    started = [
        i for i, k in enumerate(kinds) if k == "child_workflow_execution_started_event_attributes"
    ]
    assert len(started) == 4 and max(started) < job_end, "a machine started after the job"
    for history in machine_histories:
        assert "plan_job_ended" in signals_in(history)
    assert [e for e in world.events if e[0] in ("fail_over_plan", "fail_over")] == [
        ("fail_over_plan", "plan-erp")
    ]
    assert not [e for e in world.events if e[0] == "verification read"]
    for machine_result in result.machines.values():
        operations = [op.operation for op in machine_result.status.operations]
        assert operations == ["unplannedFailover", "failoverCommit", "reProtect"]
        assert machine_result.status.verification is not None
        assert machine_result.status.verification.passed


async def test_a_plan_job_failing_after_its_machines_started_stands_them_down(
    env: WorkflowEnvironment,
) -> None:
    world = FakePlanWorld(failing_plan_failover=True, plan_job_seconds=3)
    message, status = await failed_plan(
        env, world, plan_input(machines_start_into_plan_job_seconds=1)
    )
    assert "recovery plan's failover failed" in message and "8038" in message
    assert status.phase == "failed"
    assert sorted(status.failed) == ["app-01-item", "db-01-item", "db-02-item", "web-01-item"]
    assert all("stopped before commit" in reason for reason in status.failed.values())
    assert not [e for e in world.events if e[0] in ("fail_over", "commit", "verified")]


@pytest.mark.parametrize("machines_started", [False, True])
async def test_a_plan_cancelled_during_its_job_stands_down_and_commits_nothing(
    env_of_its_own: WorkflowEnvironment, machines_started: bool
) -> None:
    """`failback cancel` while the plan's job runs, before or after the plan started its
    machines: the job's activity is cancelled, the plan ends cancelled, every machine started
    stands down, nothing is committed."""
    env = env_of_its_own
    world = FakePlanWorld(plan_job_seconds=4)
    params = plan_input(machines_start_into_plan_job_seconds=1 if machines_started else 30)
    async with started_plan(env, world, params) as handle:
        await asyncio.sleep(2.5)  # real time: the job runs 4 s
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 60)
        status = await handle.query(PlanFailbackWorkflow.status)
        kinds = _event_kinds(await handle.fetch_history())
    assert status.phase == "failed" and status.error == "cancelled"
    assert "activity_task_cancel_requested_event_attributes" in kinds
    machines = ["app-01-item", "db-01-item", "db-02-item", "web-01-item"]
    assert sorted(status.failed) == (machines if machines_started else [])
    assert all("stopped before commit" in reason for reason in status.failed.values())
    assert not [e for e in world.events if e[0] in ("fail_over", "commit")]


async def test_a_machine_whose_failback_is_open_elsewhere_stops_the_plan_after_its_job(
    env_of_its_own: WorkflowEnvironment,
) -> None:
    """A machine's workflow id is taken (another failback of it is open): the plan, which
    started its machines during the job, waits for the job's end, stands the others down,
    commits nothing, and says which workflow is in the way."""
    env = env_of_its_own
    await env.client.start_workflow(
        "MachineFailbackWorkflow", id="failback-vault-db-02", task_queue=f"nobody-{uuid.uuid4()}"
    )
    world = FakePlanWorld(plan_job_seconds=3)
    message, status = await failed_plan(
        env, world, plan_input(machines_start_into_plan_job_seconds=1)
    )
    assert "workflow failback-vault-db-02 is open" in message
    assert "nothing was committed" in message
    assert status.phase == "failed"
    assert ("fail_over_plan", "plan-erp") in world.events
    assert not [e for e in world.events if e[0] in ("fail_over", "commit")]
    assert all("stopped before commit" in reason for reason in status.failed.values())


async def test_a_failing_machine_stops_later_groups_and_nothing_is_committed(
    env: WorkflowEnvironment,
) -> None:
    world = FakePlanWorld(failing_failover="db-02", replication_group=False)
    async with started_plan(env, world) as handle:
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 60)
        status = await handle.query(PlanFailbackWorkflow.status)
        db1 = await env.client.get_workflow_handle("failback-vault-db-01").query(
            MachineFailbackWorkflow.status
        )
    assert "db-02" in str(failure.value.cause) and "boot group 1" in str(failure.value.cause)
    assert status.phase == "failed" and "db-02-item" in status.failed
    assert "8038" in status.failed["db-02-item"]
    failed_over = {name for kind, name in world.events if kind == "fail_over"}
    assert failed_over == {"db-01", "db-02"}, "a later boot group was started"
    assert not [e for e in world.events if e[0] == "commit"]
    assert db1.phase == "failed" and "stopped before commit" in (db1.error or "")


async def test_a_hundred_machine_plan_stays_far_below_the_history_limit(
    env: WorkflowEnvironment,
) -> None:
    # ASR's limits: 7 boot groups, 100 items. Temporal's: 10,240 events per history (warns at
    # 10,240, fails at 51,200); "far below" here means under a fifth of it.
    groups = [[f"vm-{g}-{i:02d}" for i in range(15 if g < 6 else 10)] for g in range(7)]
    assert sum(len(g) for g in groups) == 100
    world = FakePlanWorld(groups=groups)
    params = plan_input("latest").model_copy(update={"recovery_plan": "plan-100"})
    async with started_plan(env, world, params) as handle:
        await until_awaiting_approval(env, handle)
        await handle.signal(PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="ops"))
        result = await asyncio.wait_for(handle.result(), 240)
        plan_events = len((await handle.fetch_history()).events)
        child_events = [
            len((await env.client.get_workflow_handle(m.workflow_id).fetch_history()).events)
            for m in result.status.machines[:5]
        ]
    assert len(result.machines) == 100
    print(f"plan history: {plan_events} events; machine histories: {child_events}")
    assert plan_events < 2048
    assert max(child_events) < 2048


async def test_a_blocking_readiness_finding_starts_nothing(env: WorkflowEnvironment) -> None:
    world = FakePlanWorld(windows_2008="app-01")
    async with started_plan(env, world) as handle:
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 60)
        status = await handle.query(PlanFailbackWorkflow.status)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == errors.NOT_READY
    assert "R8 app-01-item" in str(cause)
    assert status.readiness is not None and not status.readiness.ready
    assert world.events == [], "something was sent although a rule blocked"


async def test_an_approval_goes_by_the_servers_phase_when_no_worker_answers_the_status(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`failback approve` when the worker cannot answer the status query in time (at 10,000
    machines on two cores no approval's query was answered within its deadline): the CLI reads
    the phase Temporal's server holds, sends the approval on it, and the workflow judges and
    takes it. A deadline no worker can meet stands for the busy worker here."""
    world = FakePlanWorld()
    async with started_plan(env, world) as handle:
        await until_awaiting_approval(env, handle)
        worker_too_busy_to_answer(monkeypatch)
        answer = await commands.approve(await cli_client(env), handle.id, "ops", "worker busy")
        assert "too busy to answer its status" in answer
        result = await asyncio.wait_for(handle.result(), 120)
    assert result.outcome == "completed"
    assert result.status.approval is not None and result.status.approval.approved_by == "ops"
    assert len([e for e in world.events if e[0] == "commit"]) == 4


async def test_without_an_answer_the_cli_refuses_an_approval_the_servers_phase_rules_out(
    env_of_its_own: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "QUERY_TIMEOUT", timedelta(seconds=2))
    queue = f"tq-{uuid.uuid4()}"
    # Started with no worker at all: the server's phase is not "awaiting-approval".
    handle = await env_of_its_own.client.start_workflow(
        PlanFailbackWorkflow.run, plan_input(), id=f"plan-{uuid.uuid4()}", task_queue=queue
    )
    with pytest.raises(commands.CommandError) as refused:
        await commands.approve(await cli_client(env_of_its_own), handle.id, "ops", "too early")
    assert "not approved" in str(refused.value) and "too busy" in str(refused.value)
    # The refusal is recorded in the history; no approval was sent.
    assert signals_in(await handle.fetch_history()) == ["record_refused_decision"]
    await handle.terminate("test over")


async def test_an_undo_sent_while_the_worker_is_busy_is_still_judged_by_the_plan(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`failback undo` on a plan whose worker cannot answer its status: the CLI sends it on the
    server's phase (awaiting approval), and the plan judges it itself: a classic plan cannot
    be undone, so it records the refusal and nothing is cancelled."""
    world = FakePlanWorld()
    async with started_plan(env, world) as handle:
        await until_awaiting_approval(env, handle)
        worker_too_busy_to_answer(monkeypatch)
        answer = await commands.undo(await cli_client(env), handle.id, "gail", "worker busy")
        assert "too busy to answer its status" in answer
        for _ in range(100):
            status = await handle.query(PlanFailbackWorkflow.status)
            if status.rejected_approvals:
                break
            await asyncio.sleep(0.05)
        await handle.terminate("test over")
    assert status.undo is None and status.phase == "awaiting-approval"
    assert "classic plan cannot be undone" in status.rejected_approvals[-1].reason
    assert not [e for e in world.events if e[0] == "commit"]


async def test_without_an_answer_the_cli_sends_no_decision_the_servers_phase_rules_out(
    env_of_its_own: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan no worker has begun: the server holds no phase, so neither an undo nor a
    cut-over is sent, each refused in one line that says why."""
    monkeypatch.setattr(commands, "QUERY_TIMEOUT", timedelta(seconds=2))
    handle = await env_of_its_own.client.start_workflow(
        PlanFailbackWorkflow.run,
        plan_input(),
        id=f"plan-{uuid.uuid4()}",
        task_queue=f"tq-{uuid.uuid4()}",
    )
    client = await cli_client(env_of_its_own)
    with pytest.raises(commands.CommandError) as undo:
        await commands.undo(client, handle.id, "gail", "too early")
    with pytest.raises(commands.CommandError) as cutover:
        await commands.cut_over(client, handle.id, "carol", "too early")
    assert str(undo.value).startswith("not undone: ") and "too busy" in str(undo.value)
    assert str(cutover.value).startswith("not cut over: ") and "no phase" in str(cutover.value)
    assert signals_in(await handle.fetch_history()) == []
    await handle.terminate("test over")
