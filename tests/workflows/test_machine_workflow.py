"""The one-machine workflow on the time-skipping server, with mocked activities."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
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
    DiscoverMachineInput,
    FailoverInput,
    FailoverThenRead,
    FailoverThenReadInput,
    ItemOperationInput,
    MachineFailbackInput,
    MachineFailbackResult,
    OnPremVmQuery,
    OnPremVmState,
    OperationResult,
    OperatorDecision,
    Phase,
    ProtectedItemRef,
    ReadAsrFactsInput,
    RecoveryPoint,
    RecoveryPointChoice,
    ReprotectToAzureInput,
    ResolvedReprotectToAzure,
    SelectRecoveryPointInput,
    UndoRequest,
    VaultRef,
    VerificationRead,
    VerificationReadInput,
)
from domain.readiness import (
    ApplianceFacts,
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
from workflows.machine import MachineFailbackWorkflow

POINT_TIME = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


class FakeWorld:
    """Stands in for ASR and vCenter; registration time is measured in the server's skipped time."""

    def __init__(
        self,
        agent_delay: timedelta | None = timedelta(minutes=15),
        boot_reads: int = 0,
        agent_missing_on_first_reprotect: bool = False,
        reprotect_failures: int = 0,
        replication_group: str | None = None,
        architecture: str = "classic",
        decision_rules: DecisionRules | None = None,
    ) -> None:
        self.calls: Counter[str] = Counter()
        self.decision_rules = decision_rules or DecisionRules()
        self.replication_group = replication_group
        self.architecture = architecture
        self.agent_delay = agent_delay
        self.boot_reads = boot_reads
        self.agent_missing_on_first_reprotect = agent_missing_on_first_reprotect
        # Re-protects that fail with a code nobody taught the client (R16 retries them anyway).
        self.reprotect_failures = reprotect_failures
        self.committed_at: datetime | None = None

    def _op(self, name: str) -> OperationResult:
        now = activity.info().current_attempt_scheduled_time
        return OperationResult(
            operation=name,
            job_id=f"job-{name}",
            state="Succeeded",
            started_at=now,
            ended_at=now,
            resumed=False,
        )

    @fake_of(AsrActivities.discover_machine)
    async def discover_machine(self, params: DiscoverMachineInput) -> DiscoveredMachine:
        self.calls["discover_machine"] += 1
        return DiscoveredMachine(
            item=ProtectedItemRef(fabric="f", container="c", name="web-01-item"),
            vm_name="web-01",
            architecture=self.architecture,
            replication_group=self.replication_group,
            os_type="Linux",
            protection_state="Protected",
            allowed_operations=["UnplannedFailover"],
            azure_vm=AzureVmRef(resource_group=params.recovery_resource_group, name="web-01"),
            reprotect_to_azure=ResolvedReprotectToAzure(
                process_server_id="ps",
                master_target_id="mt",
                policy_id="pol",
                run_as_account_id="2",
            ),
        )

    @fake_of(AsrActivities.read_asr_facts)
    async def read_asr_facts(self, params: ReadAsrFactsInput) -> AsrFacts:
        """Readiness of a machine on its own: replicating back, healthy, with points."""
        self.calls["read_asr_facts"] += 1
        return AsrFacts(
            architecture=self.architecture,
            configuration_server=ConfigServerFacts(name="cs01", reachable=True),
            master_targets=[
                MasterTargetFacts(id="mt", name="mt-lnx", os_type="Linux", datastores=["ds"])
            ],
            vcenters=[VCenterFacts(name="vc", connected=True)],
            failback_policy_id="pol",
            machines=[
                MachineFacts(
                    item_name=m.item.name,
                    vm_name=m.vm_name,
                    os_type="Linux",
                    replication_group=m.replication_group,
                    state="replicating-back",
                    protection_state="Protected",
                    replication_health="Normal",
                    recovery_point_count=5,
                    master_target_id="mt",
                )
                for m in params.machines
            ],
            appliances=[
                ApplianceFacts(
                    id="app-1",
                    name="appliance-01",
                    healthy=True,
                    last_heartbeat=POINT_TIME,
                    datastores=["ds"],
                )
            ],
        )

    @fake_of(VSphereActivities.read_onprem_facts)
    async def read_onprem_facts(self, params: OnPremFactsQuery) -> OnPremFacts:
        return OnPremFacts(
            hosts=[HostFacts(name="esx-01")],
            datastores=[DatastoreFacts(name="ds", type="VMFS", hosts=["esx-01"])],
            vms=[
                OnPremVmFacts(name=n, host="esx-01", datastores=["ds"])
                for n in ("web-01", "mt-lnx")
            ],
        )

    @fake_of(AsrActivities.select_recovery_point)
    async def select_recovery_point(self, params: SelectRecoveryPointInput) -> RecoveryPointChoice:
        point = RecoveryPoint(id="rp-1", name="rp-1", time=POINT_TIME, type="CrashConsistent")
        return RecoveryPointChoice(
            chosen=point, latest=point, data_loss_window_seconds=0, asked_as="LatestTime"
        )

    @fake_of(AsrActivities.fail_over)
    async def fail_over(self, params: FailoverInput) -> OperationResult:
        self.calls["fail_over"] += 1
        # RP-ASK: a machine's latest point is ASR's latest when it fails over, named as such.
        assert (params.recovery_point_type, params.recovery_point_id) == ("LatestTime", None)
        assert params.architecture == self.architecture
        return self._op("unplannedFailover")

    @fake_of(AsrActivities.cancel_failover)
    async def cancel_failover(self, params: ItemOperationInput) -> OperationResult:
        self.calls["cancel_failover"] += 1
        return self._op("failoverCancel")

    @fake_of(VSphereActivities.read_onprem_vm)
    async def read_onprem_vm(self, params: OnPremVmQuery) -> OnPremVmState:
        self.calls["read_onprem_vm"] += 1
        booted = self.calls["read_onprem_vm"] > self.boot_reads
        return OnPremVmState(
            vm_name=params.vm_name,
            found=True,
            power_state="poweredOn" if booted else "poweredOff",
            tools_running_status="guestToolsRunning" if booted else "guestToolsNotRunning",
        )

    @fake_of(ComputeActivities.read_azure_vm)
    async def read_azure_vm(self, params: AzureVmRef) -> AzureVmState:
        return AzureVmState(
            resource_group=params.resource_group,
            name=params.name,
            exists=True,
            power_state="deallocated",
        )

    @fake_of(VerificationActivities.read_verification_state)
    async def read_verification_state(self, params: VerificationReadInput) -> VerificationRead:
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

    @fake_of(AsrActivities.commit_failover)
    async def commit_failover(self, params: ItemOperationInput) -> OperationResult:
        self.calls["commit_failover"] += 1
        self.committed_at = activity.info().current_attempt_scheduled_time
        return self._op("failoverCommit")

    @fake_of(AsrActivities.check_agent_registered)
    async def check_agent_registered(self, params: AgentCheckInput) -> AgentRegistration:
        self.calls["check_agent_registered"] += 1
        now = activity.info().current_attempt_scheduled_time
        registered = self.agent_delay is not None and now - params.committed_at >= self.agent_delay
        return AgentRegistration(
            registered=registered, last_heartbeat=now if registered else None, agent_version=None
        )

    @fake_of(AsrActivities.reprotect_to_azure)
    async def reprotect_to_azure(self, params: ReprotectToAzureInput) -> OperationResult:
        self.calls["reprotect_to_azure"] += 1
        if self.agent_missing_on_first_reprotect and self.calls["reprotect_to_azure"] == 1:
            raise ApplicationError(
                "the agent is not installed",
                "job-r1",
                type=errors.AGENT_NOT_REGISTERED,
                non_retryable=True,
            )
        assert "job-r1" in params.exclude_job_ids or not self.agent_missing_on_first_reprotect
        attempt = self.calls["reprotect_to_azure"]
        if attempt <= self.reprotect_failures:
            assert [f"job-x{n}" for n in range(1, attempt)] == params.exclude_job_ids
            raise ApplicationError(
                f"re-protect of web-01 to Azure (job job-x{attempt}) failed: 78093 Protection "
                "could not be enabled",
                f"job-x{attempt}",
                "78093",
                "Protection could not be enabled",
                type=errors.REPROTECT_TO_AZURE_FAILED,
                non_retryable=True,
            )
        return self._op("reProtect")

    def activities(self) -> list[object]:
        return [
            # The real one: pure, it reads the rules it is given (none here).
            DecisionActivities(self.decision_rules).decision_policy,
            self.discover_machine,
            self.read_asr_facts,
            self.read_onprem_facts,
            self.select_recovery_point,
            self.fail_over,
            self.read_onprem_vm,
            self.read_azure_vm,
            self.read_verification_state,
            self.fail_over_then_read,
            self.commit_failover,
            self.cancel_failover,
            self.check_agent_registered,
            self.reprotect_to_azure,
        ]


def failback_input() -> MachineFailbackInput:
    # Production timings: 60 s agent polls, 30 min before stuck. Time is skipped, not waited.
    return MachineFailbackInput(
        vault=VaultRef(resource_group="rg", vault="vault"),
        vm_name="web-01",
        recovery_resource_group="rg-recovery",
    )


async def start(client: Client, world: FakeWorld, task_queue: str) -> WorkflowHandle:
    return await client.start_workflow(
        MachineFailbackWorkflow.run,
        failback_input(),
        id=f"failback-test-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def wait_for_phase(handle: WorkflowHandle, phase: Phase, tries: int = 200) -> None:
    for _ in range(tries):
        status = await handle.query(MachineFailbackWorkflow.status)
        if status.phase == phase:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {phase}; last phase {status.phase}")


async def approve_when_verified(handle: WorkflowHandle, approver: str, comment: str = "") -> None:
    await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
    await handle.signal(
        MachineFailbackWorkflow.approve_commit,
        ApprovalRequest(approved_by=approver, comment=comment),
    )


def worker(env: WorkflowEnvironment, world: FakeWorld, task_queue: str) -> Worker:
    return Worker(
        env.client,
        task_queue=task_queue,
        workflows=[MachineFailbackWorkflow],
        activities=world.activities(),
    )


async def test_agent_taking_the_full_fifteen_minutes_still_completes(env: WorkflowEnvironment):
    world = FakeWorld(agent_delay=timedelta(minutes=15))
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "alice", "web-01 checked")
        result = await handle.result()

    assert result.outcome == "completed"
    status = result.status
    assert status.approval is not None and status.approval.approved_by == "alice"
    assert status.approval.comment == "web-01 checked"
    assert world.calls["fail_over"] == 1
    assert world.calls["commit_failover"] == 1
    assert world.calls["reprotect_to_azure"] == 1
    wait = status.agent_wait
    assert wait is not None and wait.registered_at is not None
    assert wait.registered_at - wait.started_at >= timedelta(minutes=15)
    # One check a minute for 15 minutes, and the one that found the agent.
    assert 15 <= world.calls["check_agent_registered"] <= 17
    phases = [change.phase for change in status.history]
    assert phases.index(Phase.AWAITING_APPROVAL) < phases.index(Phase.COMMITTING)
    assert phases[-1] == Phase.COMPLETED


async def test_no_commit_without_approval(env: WorkflowEnvironment):
    world = FakeWorld()
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        await env.sleep(timedelta(days=7))
        status = await handle.query(MachineFailbackWorkflow.status)
        assert status.phase == Phase.AWAITING_APPROVAL
        assert "failback approve" in status.waiting_for
        assert world.calls["commit_failover"] == 0
        await handle.terminate("test over")


async def test_approval_before_verification_is_refused(env: WorkflowEnvironment):
    world = FakeWorld(boot_reads=3)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.VERIFYING)
        await handle.signal(
            MachineFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="eager")
        )
        await env.sleep(timedelta(minutes=2))
        await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        status = await handle.query(MachineFailbackWorkflow.status)
        assert status.approval is None
        assert [r.approved_by for r in status.rejected_approvals] == ["eager"]
        assert "verified" in status.rejected_approvals[0].reason
        assert world.calls["commit_failover"] == 0
        await handle.terminate("test over")


async def test_agent_that_never_registers_reaches_the_stuck_state(env: WorkflowEnvironment):
    world = FakeWorld(agent_delay=None)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "alice")
        await env.sleep(timedelta(minutes=31))
        await wait_for_phase(handle, Phase.AGENT_STUCK)
        status = await handle.query(MachineFailbackWorkflow.status)
        assert status.agent_wait is not None and status.agent_wait.stuck_since is not None
        assert "never registered" in status.waiting_for
        assert world.calls["reprotect_to_azure"] == 0
        # It stays stuck, visibly, until an operator decides.
        await env.sleep(timedelta(hours=6))
        assert (await handle.query(MachineFailbackWorkflow.status)).phase == Phase.AGENT_STUCK
        await handle.signal(
            MachineFailbackWorkflow.operator_decision,
            OperatorDecision(decided_by="bob", action="finish-without-reprotect"),
        )
        result = await handle.result()
    assert result.outcome == "completed-without-reprotect"
    assert world.calls["reprotect_to_azure"] == 0
    assert world.calls["commit_failover"] == 1


async def run_with_a_missing_agent_at_first(
    env: WorkflowEnvironment, world: FakeWorld
) -> tuple[MachineFailbackResult, WorkflowHistory, WorkflowExecutionDescription]:
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "alice")
        result = await handle.result()
        return result, await handle.fetch_history(), await handle.describe()


async def test_reprotect_refused_for_a_missing_agent_waits_and_retries(env: WorkflowEnvironment):
    world = FakeWorld(agent_delay=timedelta(minutes=2), agent_missing_on_first_reprotect=True)
    result, _, _ = await run_with_a_missing_agent_at_first(env, world)
    assert result.outcome == "completed"
    assert world.calls["reprotect_to_azure"] == 2
    phases = [change.phase for change in result.status.history]
    assert phases.count(Phase.REPROTECTING) == 2


async def test_a_reprotect_failing_with_any_code_is_retried_within_the_wait(
    env: WorkflowEnvironment,
) -> None:
    """R16: ASR publishes no code for "the agent is not installed"; whatever it says, a failed
    re-protect is tried again while the agent wait lasts, and its words are kept."""
    world = FakeWorld(agent_delay=timedelta(minutes=2), reprotect_failures=2)
    result, _, _ = await run_with_a_missing_agent_at_first(env, world)
    assert result.outcome == "completed"
    assert world.calls["reprotect_to_azure"] == 3
    notes = [c.note for c in result.status.history if c.phase == Phase.WAITING_FOR_AGENT]
    assert sum("78093 Protection could not be enabled" in note for note in notes) == 2


async def test_reprotect_failures_are_bounded_by_the_wait_then_a_person_decides(
    env: WorkflowEnvironment,
) -> None:
    world = FakeWorld(agent_delay=timedelta(minutes=2), reprotect_failures=10_000)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "alice")
        await env.sleep(timedelta(minutes=35))
        await wait_for_phase(handle, Phase.AGENT_STUCK)
        status = await handle.query(MachineFailbackWorkflow.status)
        stuck = status.history[-1]
        assert stuck.phase == Phase.AGENT_STUCK and "78093" in stuck.note
        attempts = world.calls["reprotect_to_azure"]
        # One try per 60 s poll once registered (2 min in), over the 30 min wait.
        assert 20 <= attempts <= 30, attempts
        await env.sleep(timedelta(hours=3))
        assert world.calls["reprotect_to_azure"] == attempts, "retried past the wait"
        await handle.signal(
            MachineFailbackWorkflow.operator_decision,
            OperatorDecision(decided_by="bob", action="finish-without-reprotect"),
        )
        result = await handle.result()
    assert result.outcome == "completed-without-reprotect"


async def test_search_attributes_are_upserted_once_per_workflow_task(env: WorkflowEnvironment):
    """Each upsert costs the server a history event and a visibility write: what a workflow
    task changed (labels and phases) goes as one upsert."""
    from workflows import search_attributes

    world = FakeWorld(agent_delay=timedelta(minutes=2), agent_missing_on_first_reprotect=True)
    result, history, description = await run_with_a_missing_agent_at_first(env, world)
    upserts_in_task = 0
    sent: list[dict[str, str]] = []
    for event in history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            upserts_in_task = 0
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) == {"TemporalChangeVersion"}:
                # The SDK's own, with a patch marker (workflows/versioning.py), not ours.
                continue
            upserts_in_task += 1
            assert upserts_in_task == 1, f"a second upsert in one workflow task: {event}"
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            sent.append({name: json.loads(p.data) for name, p in fields.indexed_fields.items()})
    phases_sent = [upsert["FailbackPhase"] for upsert in sent if "FailbackPhase" in upsert]
    phases = [change.phase.value for change in result.status.history]
    # The labels go with the first phase, and every phase a workflow task ends in is sent,
    # never twice in a row. Here the failover's own read finds the VM up (revision 2): the
    # failback passes through verifying within that task, so only its history shows it.
    assert sent[0] == {"Vault": "vault", "FailbackPhase": "discovering"}
    assert "verifying" in phases
    assert set(phases_sent) == set(phases) - {"starting", "verifying"}
    assert all(a != b for a, b in itertools.pairwise(phases_sent))
    assert phases.count("reprotecting") == 2 and phases_sent.count("reprotecting") == 2
    assert phases_sent[-1] == "completed"
    assert description.typed_search_attributes.get(search_attributes.PHASE) == "completed"


async def test_failed_verification_fails_the_failback_without_commit(env: WorkflowEnvironment):
    world = FakeWorld(boot_reads=10_000)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(MachineFailbackWorkflow.status)
    assert status.phase == Phase.FAILED
    assert status.verification is not None and not status.verification.passed
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == errors.FAILBACK_FAILED
    assert "verification failed" in str(cause)
    assert "poweredOff" in str(cause)
    assert world.calls["commit_failover"] == 0


async def test_a_replication_group_member_alone_is_refused_before_anything_is_sent(
    env: WorkflowEnvironment,
) -> None:
    """R17: a member of a replication group fails back only with its group, through its plan."""
    world = FakeWorld(replication_group="rg-web")
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(MachineFailbackWorkflow.status)
    assert status.phase == Phase.FAILED and status.operations == []
    message = str(failure.value.cause)
    assert "R17" in message and "rg-web" in message and "--recovery-plan" in message
    assert world.calls["discover_machine"] == 1
    assert set(world.calls) == {"discover_machine"}


async def test_workflows_and_activities_are_traced(env: WorkflowEnvironment) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.contrib.opentelemetry import TracingInterceptor

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    config = env.client.config()
    # Keep the environment's own interceptors: they are what skips time while we wait.
    config["interceptors"] = [
        *config["interceptors"],
        TracingInterceptor(provider.get_tracer("failback-test")),
    ]
    client = Client(**config)
    world = FakeWorld(agent_delay=timedelta(minutes=1))
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[MachineFailbackWorkflow],
        activities=world.activities(),
    ):
        handle = await start(client, world, task_queue)
        await approve_when_verified(handle, "alice")
        await handle.result()
    names = {span.name for span in exported.get_finished_spans()}
    assert "StartWorkflow:MachineFailbackWorkflow" in names
    assert "RunWorkflow:MachineFailbackWorkflow" in names
    assert {"RunActivity:fail_over_then_read", "RunActivity:commit_failover"} <= names


async def test_reminders_while_waiting_and_search_attributes_for_the_web_ui(
    env: WorkflowEnvironment,
) -> None:
    from workflows import search_attributes

    world = FakeWorld()
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        await env.sleep(timedelta(minutes=95))
        status = await handle.query(MachineFailbackWorkflow.status)
        assert status.approval_reminders == 3  # at 30, 60 and 90 minutes
        description = await handle.describe()
        attributes = description.typed_search_attributes
        assert attributes.get(search_attributes.PHASE) == "awaiting-approval"
        assert attributes.get(search_attributes.VAULT) == "vault"
        assert world.calls["commit_failover"] == 0
        await approve_when_verified(handle, "alice")
        result = await handle.result()
        description = await handle.describe()
    assert result.status.approval_reminders == 3
    assert description.typed_search_attributes.get(search_attributes.PHASE) == "completed"


async def test_opt_in_auto_commit_approves_after_the_set_time(env: WorkflowEnvironment) -> None:
    from domain.models import ApprovalPolicy

    world = FakeWorld(agent_delay=timedelta(minutes=1))
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await env.client.start_workflow(
            MachineFailbackWorkflow.run,
            failback_input().model_copy(
                update={"approval": ApprovalPolicy(auto_commit_after_seconds=45 * 60)}
            ),
            id=f"failback-test-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
    approval = result.status.approval
    assert approval is not None and approval.approved_by.startswith("auto-commit policy (45")
    committing = next(c for c in result.status.history if c.phase == Phase.COMMITTING)
    awaiting = next(c for c in result.status.history if c.phase == Phase.AWAITING_APPROVAL)
    assert committing.at - awaiting.at >= timedelta(minutes=45)
    assert result.status.approval_reminders == 1  # at 30 minutes, before the policy acted


async def test_an_undo_before_the_approval_cancels_and_never_commits(
    env: WorkflowEnvironment,
) -> None:
    world = FakeWorld(architecture="modernized")
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        await handle.signal(
            MachineFailbackWorkflow.undo_failback, UndoRequest(undone_by="gail", comment="no")
        )
        result = await handle.result()
    assert result.outcome == "undone"
    assert result.status.phase == Phase.UNDONE
    assert [o.operation for o in result.status.operations] == [
        "unplannedFailover",
        "failoverCancel",
    ]
    assert world.calls["cancel_failover"] == 1 and world.calls["commit_failover"] == 0


async def test_an_undo_after_the_approval_is_refused_and_the_commit_goes_on(
    env: WorkflowEnvironment,
) -> None:
    world = FakeWorld(architecture="modernized", agent_delay=timedelta(minutes=1))
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "ops")
        await wait_for_phase(handle, Phase.WAITING_FOR_AGENT)
        await handle.signal(
            MachineFailbackWorkflow.undo_failback, UndoRequest(undone_by="late", comment="")
        )
        result = await handle.result()
    assert result.outcome == "completed"
    (refused,) = result.status.rejected_undos
    assert refused.approved_by == "late" and "cannot be undone" in refused.reason
    assert world.calls["cancel_failover"] == 0 and world.calls["commit_failover"] == 1


async def test_classic_cannot_be_undone_and_says_why(env: WorkflowEnvironment) -> None:
    world = FakeWorld()
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        await handle.signal(MachineFailbackWorkflow.undo_failback, UndoRequest(undone_by="h"))
        await env.sleep(timedelta(seconds=5))
        status = await handle.query(MachineFailbackWorkflow.status)
        await handle.terminate("test over")
    assert status.phase == Phase.AWAITING_APPROVAL and status.undo is None
    assert "classic" in status.rejected_undos[0].reason
    assert world.calls["cancel_failover"] == 0


async def test_opt_in_auto_undo_after_the_set_time(env: WorkflowEnvironment) -> None:
    from domain.models import ApprovalPolicy

    world = FakeWorld(architecture="modernized")
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await env.client.start_workflow(
            MachineFailbackWorkflow.run,
            failback_input().model_copy(
                update={"approval": ApprovalPolicy(auto_undo_after_seconds=20 * 60)}
            ),
            id=f"failback-test-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
    assert result.outcome == "undone"
    assert result.status.undo is not None
    assert result.status.undo.undone_by.startswith("auto-undo policy (20")
    assert world.calls["commit_failover"] == 0 and world.calls["cancel_failover"] == 1


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.parametrize("boot_reads", [0, 3])
async def test_the_failovers_own_read_is_the_first_verification(
    env: WorkflowEnvironment, boot_reads: int
) -> None:
    """Revision 2: the failover's activity reads both sides as its job ends. A VM already up
    is verified without another activity; one still booting is looked at again by the
    verification's own reads until it is up."""
    world = FakeWorld(boot_reads=boot_reads)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.VERIFYING if boot_reads else Phase.AWAITING_APPROVAL)
        await env.sleep(timedelta(minutes=2))
        await approve_when_verified(handle, "alice")
        result = await handle.result()
        history = await handle.fetch_history()
    activities = scheduled_activities(history)
    # The worker's decision rules first (R28-R31), then a machine on its own checks its
    # readiness (both systems read at once).
    assert activities[:2] == ["decision_policy", "discover_machine"]
    assert sorted(activities[2:4]) == ["read_asr_facts", "read_onprem_facts"]
    assert activities[4:6] == ["select_recovery_point", "fail_over_then_read"]
    assert "fail_over" not in activities
    before_commit = activities[: activities.index("commit_failover")]
    assert before_commit.count("read_verification_state") == boot_reads
    assert world.calls["read_onprem_vm"] == boot_reads + 1
    assert world.calls["fail_over"] == 1
    verification = result.status.verification
    assert verification is not None and verification.passed
    assert [op.operation for op in result.status.operations][:1] == ["unplannedFailover"]


async def test_an_undo_goes_by_the_servers_phase_when_the_worker_cannot_answer(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`failback undo` when the worker cannot answer the status query in time (a deadline no
    worker can meet stands for the busy worker): sent on the server's phase, taken by the
    workflow, which cancels the failover and commits nothing."""
    world = FakeWorld(architecture="modernized")
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        worker_too_busy_to_answer(monkeypatch)
        answer = await commands.undo(await cli_client(env), handle.id, "gail", "worker busy")
        assert "too busy to answer its status" in answer
        result = await handle.result()
    assert result.outcome == "undone" and result.status.undo is not None
    assert result.status.undo.undone_by == "gail"
    assert world.calls["cancel_failover"] == 1 and world.calls["commit_failover"] == 0


async def test_after_the_approval_a_busy_workers_failback_is_not_sent_an_undo(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = FakeWorld(architecture="modernized", agent_delay=timedelta(minutes=1))
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "ops")
        await wait_for_phase(handle, Phase.WAITING_FOR_AGENT)
        worker_too_busy_to_answer(monkeypatch)
        with pytest.raises(commands.CommandError) as refused:
            await commands.undo(await cli_client(env), handle.id, "late", "worker busy")
        result = await handle.result()
    assert str(refused.value).startswith("not undone: ")
    assert "waiting-for-agent" in str(refused.value) and "too busy" in str(refused.value)
    assert signals_in(await handle.fetch_history()) == ["approve_commit"]
    assert result.outcome == "completed" and world.calls["commit_failover"] == 1


async def test_an_agent_decision_goes_by_the_servers_phase_when_the_worker_cannot_answer(
    env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = FakeWorld(agent_delay=None)
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, task_queue):
        handle = await start(env.client, world, task_queue)
        await approve_when_verified(handle, "alice")
        await env.sleep(timedelta(minutes=31))
        await wait_for_phase(handle, Phase.AGENT_STUCK)
        worker_too_busy_to_answer(monkeypatch)
        decision = OperatorDecision(decided_by="bob", action="finish-without-reprotect")
        answer = await commands.decide_agent(await cli_client(env), handle.id, decision)
        assert answer.startswith("sent: finish-without-reprotect") and "too busy" in answer
        result = await handle.result()
    assert result.outcome == "completed-without-reprotect"
    assert world.calls["reprotect_to_azure"] == 0 and world.calls["commit_failover"] == 1
