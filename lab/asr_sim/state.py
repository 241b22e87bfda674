"""The simulator's model of the vault: items walking through failback, jobs, faults, journal.

Everything here runs on the simulator's event loop, so plain attributes need no locks. A job's
end and the item's new state are applied in one synchronous step: whoever sees the job
`Succeeded` also sees the item in its new state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from lab.asr_sim import hyperv, modernized
from lab.asr_sim.arm import ArmError, asr_refusal, bad_request, utcnow
from lab.asr_sim.effects import VCenterEffectError, VCenterEffects
from lab.asr_sim.faults import FaultBook, JobFailureFault, JobStateFault
from lab.asr_sim.hyperv_effects import HyperVHostEffects
from lab.asr_sim.operations import (
    Operation,
    OperationSpec,
    TaskSpec,
    operation_spec,
    task_names,
)
from lab.asr_sim.recovery_points import RecoveryPoint, generate_recovery_points
from lab.asr_sim.topology import ArmIds, FabricCatalog, stable_guid
from lab.scenario import (
    ProtectedItemSpec,
    RecoveryPlanSpec,
    Scenario,
    WireSpec,
    registration_delay,
)

log = logging.getLogger(__name__)

AGENT_VERSION = "9.62.7172.1"

# Lab stand-ins, in ASR's numeric style, for codes ASR does not publish (all in 990xx, which no
# document names): the client never keys on them (lab/ASR_SIMULATOR.md, "Wire truth").
# The job error for a reprotect attempted before the booted VM's mobility agent re-registered
# ("the agent is not installed", the article's words; azure.wire.agent_not_registered_code).
AGENT_NOT_INSTALLED_CODE = "99016"
OPERATION_IN_PROGRESS_CODE = "99409"
OPERATION_NOT_ALLOWED_CODE = "99400"
GROUP_MEMBER_ALONE_CODE = "99030"
FAILBACK_VM_START_CODE = "8038"
# Codes from Microsoft's troubleshooting docs (see asr-rest-notes.md).
CS_UNREACHABLE_CODE = "95226"
PROTECTION_FAILED_CODE = "78052"
DATASTORE_NOT_ACCESSIBLE_CODE = "8061"
# Lab stand-ins (990xx) for unpublished codes, also used as health error codes.
VM_NOT_IN_CS_DATABASE_CODE = "99010"
VCENTER_NOT_CONNECTED_CODE = "99011"
OS_NOT_SUPPORTED_FOR_FAILBACK_CODE = "99012"


class Phase(StrEnum):
    """Where an item is in the failback walk."""

    # Failed over to Azure and committed there; not reprotected to on-premises yet.
    FAILED_OVER_TO_AZURE = "FailedOverToAzure"
    REPLICATING_TO_ONPREM = "ReplicatingToOnPrem"
    FAILOVER_COMMIT_PENDING = "FailoverCommitPending"
    FAILOVER_COMMITTED = "FailoverCommitted"
    REPLICATING_TO_AZURE = "ReplicatingToAzure"


JobState = Literal["NotStarted", "InProgress", "Succeeded", "Failed", "Suspended", "Other"]


@dataclass
class AzureVm:
    name: str
    vm_id: str
    power_state: Literal["running", "deallocated"] = "running"
    deallocated_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None


@dataclass(frozen=True)
class AzureProtectionRequest:
    """What the reprotect to Azure was given; shown in the item's InMageAzureV2 details."""

    master_target_id: str
    process_server_id: str
    run_as_account_id: str | None
    policy_id: str


@dataclass(frozen=True)
class AzureProtection:
    request: AzureProtectionRequest
    protected_at: dt.datetime


@dataclass(frozen=True)
class OnPremProtectionRequest:
    """What the reprotect to on-premises (InMage) was given, validated."""

    master_target_id: str
    process_server_id: str
    retention_drive: str
    run_as_account_id: str | None
    datastore_name: str | None
    profile_id: str
    # The VM does not exist on-premises (or the machine is physical): ASR re-creates it.
    alternate_location: bool
    # Modernized: where the replication logs go in Azure (InMageRcmReprotectInput).
    log_storage_account_id: str | None = None


@dataclass(frozen=True)
class OnPremProtection:
    request: OnPremProtectionRequest
    protected_at: dt.datetime
    # Initial replication done: health from the scenario and recovery points from then on.
    healthy_at: dt.datetime


@dataclass(frozen=True)
class JobErrorRecord:
    code: str
    message: str
    possible_causes: str
    recommended_action: str
    time: dt.datetime
    task_id: str


@dataclass
class TaskRecord:
    spec: TaskSpec
    task_id: str
    state: JobState = "NotStarted"
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    errors: list[JobErrorRecord] = field(default_factory=list)


@dataclass
class Job:
    name: str
    operation: Operation
    # None for a recovery plan's job, whose items are `members`.
    item: ItemState | None
    start_time: dt.datetime
    tasks: list[TaskRecord]
    activity_id: str
    injected_failure: JobFailureFault | None
    injected_state: JobStateFault | None = None
    state_description: str | None = None
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    # The request body as received (parsed JSON), e.g. which recovery point a failover asked for.
    request_body: Any = None
    state: JobState = "InProgress"
    end_time: dt.datetime | None = None
    errors: list[JobErrorRecord] = field(default_factory=list)
    plan: RecoveryPlanSpec | None = None
    members: tuple[ItemState, ...] = ()

    architecture: str = "classic"

    @property
    def spec(self) -> OperationSpec:
        return operation_spec(self.architecture, self.operation)

    @property
    def targets(self) -> tuple[ItemState, ...]:
        """The items the job acts on: its item, or its plan's members."""
        return self.members if self.item is None else (self.item,)

    @property
    def target_name(self) -> str:
        """What the job names as its target: the VM's or the plan's friendly name."""
        if self.item is not None:
            return self.item.spec.vm_name
        assert self.plan is not None
        return self.plan.name

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed")


@dataclass
class ItemState:
    spec: ProtectedItemSpec
    vm_id: str
    # The history present at lab start (items that start replicating back).
    recovery_points: list[RecoveryPoint]
    azure_vm: AzureVm
    phase: Phase = Phase.REPLICATING_TO_ONPREM
    # The master target an item replicating back at lab start goes through.
    start_master_target_id: str | None = None
    current_job: Job | None = None
    failover_point: RecoveryPoint | None = None
    failover_completed_at: dt.datetime | None = None
    committed_at: dt.datetime | None = None
    onprem_protection: OnPremProtection | None = None
    azure_protection: AzureProtection | None = None
    # "classic" or "modernized": which words the item speaks on the wire.
    architecture: str = "classic"
    # Modernized: the protection state shown after the failback's commit (a reality variant).
    committed_state: str = ""
    # Modernized: the planned failover's start and status, as the item's details show them.
    failover_started_at: dt.datetime | None = None
    last_planned_failover_status: str | None = None
    # Hyper-V: when a for-downtime failback finished its first sync (the job then suspended),
    # and until when the reverse replication's initial replication runs.
    hyperv_synchronized_at: dt.datetime | None = None
    hyperv_initial_replication_until: dt.datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def master_target_id(self) -> str | None:
        """The master target it replicates back (or replicated back) through."""
        if self.onprem_protection is not None:
            return self.onprem_protection.request.master_target_id
        return self.start_master_target_id

    def initial_replication_running(self, now: dt.datetime) -> bool:
        protection = self.onprem_protection
        return (
            self.phase is Phase.REPLICATING_TO_ONPREM
            and protection is not None
            and now < protection.healthy_at
        )

    def replication_health(self, now: dt.datetime) -> str:
        if self.initial_replication_running(now):
            return "Warning"
        if self.phase in (Phase.FAILED_OVER_TO_AZURE, Phase.REPLICATING_TO_ONPREM):
            return self.spec.replication_health
        return "Normal"

    def agent_registers_at(self) -> dt.datetime | None:
        """When the booted VM's mobility agent registers (after the commit); None: not planned."""
        delay = registration_delay(self.spec)
        if self.committed_at is None or delay is None:
            return None
        return self.committed_at + delay

    def agent_registered(self, now: dt.datetime) -> bool:
        if self.phase is Phase.REPLICATING_TO_AZURE:
            return True
        registers_at = self.agent_registers_at()
        return registers_at is not None and now >= registers_at

    def visible_recovery_points(self, now: dt.datetime) -> list[RecoveryPoint]:
        # No InMage (Azure -> on-premises) points before the reprotect to on-premises; that
        # replication ends with the commit, and a fresh replication to Azure has no points yet.
        # UNVERIFIED, the lab's choice. GUESS: a Hyper-V item keeps the points it had when it
        # failed over to Azure until its failback is committed.
        if self.architecture == "hyperv":
            return (
                self.recovery_points
                if self.phase
                in (
                    Phase.FAILED_OVER_TO_AZURE,
                    Phase.FAILOVER_COMMIT_PENDING,
                )
                else []
            )
        if self.phase in (
            Phase.FAILED_OVER_TO_AZURE,
            Phase.FAILOVER_COMMITTED,
            Phase.REPLICATING_TO_AZURE,
        ):
            return []
        protection = self.onprem_protection
        if protection is None:
            return self.recovery_points
        # Reprotected while the lab runs: the history begins when the initial replication
        # completes and grows until the failover stops replication. Gaps count back from lab
        # start, so they belong to the start history only.
        until = now
        if self.phase is Phase.FAILOVER_COMMIT_PENDING and self.failover_completed_at is not None:
            until = min(now, self.failover_completed_at)
        return generate_recovery_points(
            self.spec.recovery_points.model_copy(update={"gaps": []}),
            until,
            in_replication_group=self.spec.replication_group is not None,
            begins_at=protection.healthy_at,
        )


_PROTECTION_STATES: dict[Phase, tuple[str, str]] = {
    # UNVERIFIED: what ASR shows for a VMware VM failed over to Azure and committed.
    Phase.FAILED_OVER_TO_AZURE: ("UnplannedFailoverCommitted", "Failover committed"),
    Phase.REPLICATING_TO_ONPREM: ("Protected", "Protected"),
    # Recorded (spec example ReplicationProtectedItems_UnplannedFailover, a Hyper-V item) and seen
    # in public A2A scripts; for a VMware item UNVERIFIED, but no other spelling is recorded.
    Phase.FAILOVER_COMMIT_PENDING: (
        "UnplannedFailoverCommitPendingStatesBegin",
        "Failover commit pending",
    ),
    Phase.FAILOVER_COMMITTED: ("UnplannedFailoverCommitted", "Failover committed"),
    Phase.REPLICATING_TO_AZURE: ("Protected", "Protected"),
}

_ALLOWED_OPERATIONS: dict[Phase, tuple[str, ...]] = {
    Phase.FAILED_OVER_TO_AZURE: ("ReverseReplicate", "DisableProtection"),
    Phase.REPLICATING_TO_ONPREM: ("UnplannedFailover", "DisableProtection"),
    # As the same recorded example lists them.
    Phase.FAILOVER_COMMIT_PENDING: (
        "CompleteMigration",
        "Commit",
        "DisableProtection",
        "ChangePit",
    ),
    Phase.FAILOVER_COMMITTED: ("CompleteMigration", "DisableProtection", "SwitchProtection"),
    Phase.REPLICATING_TO_AZURE: (
        "PlannedFailover",
        "UnplannedFailover",
        "TestFailover",
        "DisableProtection",
    ),
}


# Recorded (InMageRcmFailback and HyperVReplicaAzure items in lab/asr_wire): while a reprotect's
# initial replication runs, the item says so and offers nothing but DisableProtection.
INITIAL_REPLICATION_STATE = "InitialReplicationInProgress"


def protection_state(item: ItemState, now: dt.datetime) -> str:
    if item.architecture == "hyperv":
        return hyperv.protection_state(item, now)
    if item.initial_replication_running(now):
        return INITIAL_REPLICATION_STATE
    if item.architecture == "modernized":
        return modernized.protection_state(item, item.committed_state)
    return _PROTECTION_STATES[item.phase][0]


# UNVERIFIED: the protectionStateDescription while a reprotect's initial replication runs.
INITIAL_REPLICATION_DESCRIPTION = "Initial replication in progress"


def protection_state_description(item: ItemState, now: dt.datetime) -> str:
    if item.architecture == "hyperv":
        return hyperv.protection_state_description(item, now)
    if item.initial_replication_running(now):
        return INITIAL_REPLICATION_DESCRIPTION
    if item.architecture == "modernized":
        return modernized.protection_state_description(item)
    return _PROTECTION_STATES[item.phase][1]


def allowed_operations(item: ItemState, now: dt.datetime) -> list[str]:
    if item.architecture == "hyperv":
        return hyperv.allowed_operations(item, now)
    if item.initial_replication_running(now):
        return ["DisableProtection"]
    if item.architecture == "modernized":
        return modernized.allowed_operations(item)
    return list(_ALLOWED_OPERATIONS[item.phase])


def is_windows_2008_r2(os_version: str) -> bool:
    """R8: a Windows Server 2008 R2 (SP1) machine failed over to Azure cannot fail back."""
    return "2008 r2" in os_version.lower()


class JobFailure(Exception):
    def __init__(
        self, code: str, message: str, *, possible_causes: str = "", recommended_action: str = ""
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.possible_causes = possible_causes
        self.recommended_action = recommended_action


TaskEffect = Callable[[], Awaitable[None]]


@dataclass
class _JobPlan:
    effects: dict[str, TaskEffect]
    on_success: Callable[[dt.datetime], None]


# A JSON object of WireSpec fields that overrides every scenario's `azure.wire`: how the test
# suite runs every simulator with small pages, or under one reality variant, without editing
# the scenarios.
WIRE_OVERRIDES_ENV = "FAILBACK_SIM_WIRE"


def wire_with_overrides(wire: WireSpec) -> WireSpec:
    raw = os.environ.get(WIRE_OVERRIDES_ENV)
    if not raw:
        return wire
    return WireSpec.model_validate({**wire.model_dump(), **json.loads(raw)})


PLAN_PREREQUISITES = "RecoveryPlanPrerequisitesCheck"


class SimulatorState:
    def __init__(
        self,
        scenario: Scenario,
        effects: VCenterEffects,
        *,
        vcenter_address: tuple[str, int] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        hyperv_effects: HyperVHostEffects | None = None,
    ) -> None:
        self.scenario = scenario
        self.hyperv_effects = hyperv_effects or HyperVHostEffects(None)
        self.wire = wire_with_overrides(scenario.azure.wire)
        self.architecture = scenario.azure.architecture
        self.effects = effects
        self.clock = clock
        self.started_at = clock()
        self.ids = ArmIds.from_scenario(scenario)
        self.fabric = FabricCatalog(scenario, vcenter_address)
        self.faults = FaultBook()
        self.journal: list[dict[str, Any]] = []
        # Set when every answer is walked against the SDK's models (lab/asr_sim/schema.py).
        self.schema_check = False
        self.schema_violations: list[dict[str, str]] = []
        self.jobs: dict[str, Job] = {}
        # Each recovery plan's last job, which the plan shows as its currentScenario.
        self.plan_jobs: dict[str, Job] = {}
        self.items: dict[str, ItemState] = {}
        for spec in scenario.azure.items:
            replicating = spec.state == "replicating-back"
            # A Hyper-V item keeps its points while it runs in Azure (it has no reprotect).
            has_points = replicating or self.architecture == "hyperv"
            start_mt = scenario.item_master_target(spec) if replicating else None
            self.items[spec.name.lower()] = ItemState(
                spec=spec,
                vm_id=stable_guid("vm", spec.name),
                recovery_points=(
                    generate_recovery_points(
                        spec.recovery_points,
                        self.started_at,
                        in_replication_group=spec.replication_group is not None,
                    )
                    if has_points
                    else []
                ),
                azure_vm=AzureVm(spec.azure_vm_name, stable_guid("azure-vm", spec.azure_vm_name)),
                phase=Phase.REPLICATING_TO_ONPREM if replicating else Phase.FAILED_OVER_TO_AZURE,
                start_master_target_id=start_mt.id if start_mt is not None else None,
                architecture=self.architecture,
                committed_state=self.wire.modernized_committed_state,
            )
        # Azure VM reads look their item up by name: a scan of every item made each read
        # O(items) (10,000 at the bench's largest size).
        self._by_azure_vm = {item.azure_vm.name.lower(): item for item in self.items.values()}
        self._running: set[asyncio.Task[None]] = set()

    @property
    def failback_policy_name(self) -> str:
        return f"{self.scenario.azure.azure_policy_id}-failback"

    def item(self, name: str) -> ItemState | None:
        return self.items.get(name.lower())

    def job(self, name: str) -> Job | None:
        return self.jobs.get(name.lower())

    def azure_vm(self, name: str) -> AzureVm | None:
        item = self.item_of_azure_vm(name)
        return item.azure_vm if item is not None else None

    def item_of_azure_vm(self, name: str) -> ItemState | None:
        return self._by_azure_vm.get(name.lower())

    def start_operation(self, item: ItemState, operation: Operation, body: Any) -> Job:
        """Validate and start `operation` on `item`; raises ArmError for a synchronous refusal."""
        self._refuse_if_busy_or_not_allowed(item, operation)
        if self.architecture == "modernized":
            plan = modernized.plan_operation(self, item, operation, body)
        elif self.architecture == "hyperv":
            plan = hyperv.plan_operation(self, item, operation, body)
        elif operation is Operation.UNPLANNED_FAILOVER:
            plan = self._plan_failover(item, body)
        elif operation is Operation.FAILOVER_COMMIT:
            plan = self._plan_commit(item)
        else:
            plan = self._plan_reprotect(item, body)
        return self._launch(
            item,
            operation,
            plan,
            body,
            self.faults.take_job_failure(operation, item.name),
            self.faults.take_job_state(operation, item.name),
        )

    def _launch(
        self,
        item: ItemState,
        operation: Operation,
        plan: _JobPlan,
        body: Any,
        failure: JobFailureFault | None,
        state_fault: JobStateFault | None,
    ) -> Job:
        """Start a job of `operation` on `item`, its tasks run by `plan`."""
        job = Job(
            name=str(uuid.uuid4()),
            operation=operation,
            item=item,
            start_time=self.clock(),
            tasks=[
                TaskRecord(spec=t, task_id=str(uuid.uuid4()))
                for t in operation_spec(self.architecture, operation).tasks
            ],
            activity_id=f"{uuid.uuid4()} ActivityId: {uuid.uuid4()}",
            injected_failure=failure,
            injected_state=state_fault,
            request_body=body,
            architecture=self.architecture,
        )
        self.jobs[job.name.lower()] = job
        item.current_job = job
        runner = asyncio.get_running_loop().create_task(self._run(job, plan))
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)
        return job

    def start_plan_failover(
        self, plan: RecoveryPlanSpec, body: Any, operation: Operation = Operation.UNPLANNED_FAILOVER
    ) -> Job:
        """A recovery plan's failover back to on-premises (classic: unplannedFailover;
        modernized and Hyper-V: plannedFailover, each with its own provider input): one job
        that fails its boot groups over one after the other, the machines of a group together,
        and stops at the first group with a machine that did not fail over (those before stay
        failed over)."""
        members = [self.items[name.lower()] for group in plan.boot_groups for name in group]
        for member in members:
            self._refuse_if_busy_or_not_allowed(member, operation)
        if self.architecture in ("modernized", "hyperv"):
            if self.architecture == "modernized":
                failback_input, item_body_of, member_operation = (
                    modernized.TO_ONPREM,
                    modernized.plan_failover_item_body,
                    modernized.plan_operation,
                )
            else:
                failback_input, item_body_of, member_operation = (
                    hyperv.FAILBACK_INPUT,
                    hyperv.plan_failover_item_body,
                    hyperv.plan_operation,
                )
            if operation is not Operation.PLANNED_FAILOVER:
                raise bad_request(
                    f"Recovery plan '{plan.name}' fails back with plannedFailover "
                    f"({failback_input}); unplannedFailover is not offered for it.",
                )
            item_body = item_body_of(plan.name, body)
            member_plans = {
                m.name: member_operation(self, m, operation, item_body) for m in members
            }
        else:
            if operation is not Operation.UNPLANNED_FAILOVER:
                raise bad_request(
                    f"Recovery plan '{plan.name}' replicates with InMage, which fails back with "
                    "unplannedFailover only.",
                )
            point_type = self._plan_failover_point_type(plan, body)
            member_plans = {
                m.name: self._failover_job_plan(m, self._plan_point(plan, m, point_type))
                for m in members
            }
        failures = {m.name: self.faults.take_job_failure(operation, m.name) for m in members}
        tasks = [TaskSpec(PLAN_PREREQUISITES, "Prerequisites check")]
        # Each machine's own prerequisites are checked as its group fails over.
        effects: dict[str, TaskEffect] = {}
        for index, names in enumerate(plan.boot_groups, start=1):
            task = f"RecoveryPlanGroup{index}Failover"
            tasks.append(TaskSpec(task, f"Group {index}: Fail over and start the machines"))
            group = [self.items[name.lower()] for name in names]
            effects[task] = self._plan_group_effect(group, member_plans, failures, operation)

        now = self.clock()
        name = str(uuid.uuid4())
        job = Job(
            name=name,
            operation=operation,
            item=None,
            plan=plan,
            members=tuple(members),
            start_time=now,
            tasks=[TaskRecord(spec=t, task_id=str(uuid.uuid4())) for t in tasks],
            activity_id=f"{uuid.uuid4()} ActivityId: {uuid.uuid4()}",
            injected_failure=None,
            injected_state=self.faults.take_job_state(operation, plan.name),
            request_body=body,
            architecture=self.architecture,
        )
        self.jobs[name.lower()] = job
        self.plan_jobs[plan.name.lower()] = job
        for member in members:
            member.current_job = job
        runner = asyncio.get_running_loop().create_task(
            self._run(job, _JobPlan(effects=effects, on_success=lambda now: None))
        )
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)
        return job

    def _plan_failover_point_type(self, plan: RecoveryPlanSpec, body: Any) -> str:
        props = _object(body, "properties", "the request body")
        direction = _string(props, "failoverDirection", "properties")
        if direction.lower() != "recoverytoprimary":
            raise bad_request(
                f"properties.failoverDirection is '{direction}', but recovery plan '{plan.name}' "
                "has on-premises as its primary site and its machines run in Azure, so failing "
                "them back is 'RecoveryToPrimary'.",
                target="properties.failoverDirection",
            )
        details = props.get("providerSpecificDetails")
        inmage = [
            d
            for d in details or []
            if isinstance(d, dict) and str(d.get("instanceType", "")).lower() == "inmage"
        ]
        if len(inmage) != 1:
            raise bad_request(
                "properties.providerSpecificDetails must hold one input with instanceType "
                f"'InMage' for recovery plan '{plan.name}', whose machines replicate with it.",
                target="properties.providerSpecificDetails",
            )
        where = "properties.providerSpecificDetails[0]"
        point_type = _string(inmage[0], "recoveryPointType", where)
        if point_type.lower() not in ("latesttime", "latesttag"):
            raise bad_request(
                f"{where}.recoveryPointType is '{point_type}'; a recovery plan fails over to "
                "'LatestTime' or 'LatestTag'.",
                target=f"{where}.recoveryPointType",
            )
        return point_type.lower()

    def _plan_point(
        self, plan: RecoveryPlanSpec, item: ItemState, point_type: str
    ) -> RecoveryPoint:
        """LatestTime: the item's newest point. LatestTag: its newest application-consistent
        one, or for a replication group's member the newest multi-VM sync point common to the
        group's members in the plan (UNVERIFIED: what ASR does, as its documentation says)."""
        now = self.clock()
        points = item.visible_recovery_points(now)
        if not points:
            raise bad_request(f"Protected item '{item.name}' has no recovery point.")
        if point_type == "latesttime":
            return points[0]
        group = item.spec.replication_group
        if group is None:
            tagged = [p for p in points if p.type == "ApplicationConsistent"]
            if not tagged:
                raise bad_request(
                    f"Protected item '{item.name}' has no application-consistent recovery point."
                )
            return tagged[0]
        members = [
            self.items[name.lower()]
            for names in plan.boot_groups
            for name in names
            if self.items[name.lower()].spec.replication_group == group
        ]
        common = set.intersection(
            *(
                {p.time for p in m.visible_recovery_points(now) if p.is_multi_vm_sync_point}
                for m in members
            )
        )
        if not common:
            raise bad_request(
                f"Replication group '{group}' has no multi-VM consistent recovery point common to "
                "all its virtual machines."
            )
        when = max(common)
        return next(p for p in points if p.time == when and p.is_multi_vm_sync_point)

    def _plan_group_effect(
        self,
        group: list[ItemState],
        member_plans: dict[str, _JobPlan],
        failures: dict[str, JobFailureFault | None],
        operation: Operation,
    ) -> TaskEffect:
        """One boot group: each machine's item failover tasks, the machines together."""

        async def fail_over(item: ItemState) -> None:
            plan = member_plans[item.name]
            injected = failures.get(item.name)
            for task in task_names(operation, self.architecture):
                if injected is not None and injected.failing_task(self.architecture) == task:
                    raise JobFailure(
                        injected.code,
                        f"{item.spec.vm_name}: {injected.message}",
                        possible_causes=injected.possible_causes or "",
                        recommended_action=injected.recommended_action or "",
                    )
                effect = plan.effects.get(task)
                if effect is not None:
                    await effect()
            plan.on_success(self.clock())
            item.current_job = None

        async def run() -> None:
            await asyncio.gather(*(fail_over(item) for item in group))

        return run

    async def aclose(self) -> None:
        for runner in list(self._running):
            runner.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    # -- validation -------------------------------------------------------------------------

    def _refuse_if_busy_or_not_allowed(self, item: ItemState, operation: Operation) -> None:
        try:
            spec = operation_spec(self.architecture, operation)
        except KeyError:
            raise asr_refusal(
                400,
                OPERATION_NOT_ALLOWED_CODE,
                f"Protected item '{item.name}' ({item.spec.vm_name}) does not support "
                f"{operation.value} with its replication provider.",
                possible_causes="The operation is not offered for this replication scenario.",
                recommended_action="Check the item's allowed operations.",
            ) from None
        running = item.current_job
        if running is not None:
            raise asr_refusal(
                409,
                OPERATION_IN_PROGRESS_CODE,
                f"Cannot start {spec.friendly_name.lower()} ({operation.value}) on protected item "
                f"'{item.name}' ({item.spec.vm_name}): job '{running.name}' "
                f"({running.spec.scenario_name}) is still in progress on it.",
                possible_causes="Another operation is in progress on the protected item.",
                recommended_action=f"Wait for that job to finish (GET "
                f"{self.ids.job(running.name)}), then retry.",
            )
        now = self.clock()
        allowed = allowed_operations(item, now)
        if not spec.allowed_operation_names & set(allowed):
            raise asr_refusal(
                400,
                OPERATION_NOT_ALLOWED_CODE,
                f"Cannot start {spec.friendly_name.lower()} ({operation.value}) on protected item "
                f"'{item.name}' ({item.spec.vm_name}): its protection state is "
                f"'{protection_state(item, now)}' and the allowed operations are {allowed}.",
                possible_causes="The operation is not allowed in the item's current state.",
                recommended_action="Check the item's allowed operations before retrying.",
            )

    def _plan_failover(self, item: ItemState, body: Any) -> _JobPlan:
        if item.phase is not Phase.REPLICATING_TO_ONPREM:
            raise bad_request(
                f"Failover of protected item '{item.name}' while it replicates to Azure is not "
                "supported by the lab yet; the lab serves the failback from Azure only.",
                code="NotSupportedByLab",
            )
        props = _object(body, "properties", "the request body")
        direction = _string(props, "failoverDirection", "properties")
        if direction.lower() != "primarytorecovery":
            raise bad_request(
                f"properties.failoverDirection is '{direction}', but protected item '{item.name}' "
                "replicates from Azure to on-premises (InMage), so failing it back is "
                "'PrimaryToRecovery'.",
                target="properties.failoverDirection",
            )
        source_ops = props.get("sourceSiteOperations")
        if source_ops is not None and str(source_ops).lower() not in ("required", "notrequired"):
            raise bad_request(
                f"properties.sourceSiteOperations is '{source_ops}'; use 'Required' or "
                "'NotRequired'.",
                target="properties.sourceSiteOperations",
            )
        details = _object(props, "providerSpecificDetails", "properties")
        instance_type = _string(details, "instanceType", "properties.providerSpecificDetails")
        if instance_type.lower() != "inmage":
            raise bad_request(
                f"properties.providerSpecificDetails.instanceType is '{instance_type}', but "
                f"protected item '{item.name}' replicates with the 'InMage' provider (Azure to "
                "on-premises); failover input of another provider is not supported by the lab.",
                target="properties.providerSpecificDetails.instanceType",
            )
        self._refuse_group_member_alone(item)
        return self._failover_job_plan(item, self._choose_point(item, details))

    def _refuse_group_member_alone(self, item: ItemState) -> None:
        group = item.spec.replication_group
        if group is None or self.wire.group_member_failover == "item-too":
            return
        raise asr_refusal(
            400,
            GROUP_MEMBER_ALONE_CODE,
            f"Protected item '{item.name}' ({item.spec.vm_name}) is part of replication group "
            f"'{group}' and cannot be failed over on its own.",
            possible_causes="The virtual machines of a replication group fail over together.",
            recommended_action="Fail the group over with a recovery plan that contains all its "
            "virtual machines.",
        )

    def _failover_job_plan(self, item: ItemState, point: RecoveryPoint) -> _JobPlan:
        """What failing `item` back to `point` does, task by task."""

        async def check_prerequisites() -> None:
            self._require_configuration_server("Failover", item)

        async def shut_down_azure_vm() -> None:
            # ASR shuts the source (Azure) VM down before bringing the on-premises VM up. The lab
            # does so whatever sourceSiteOperations says (UNVERIFIED for InMage failback).
            vm = item.azure_vm
            if vm.deleted_at is None and vm.power_state != "deallocated":
                vm.power_state = "deallocated"
                vm.deallocated_at = self.clock()

        async def fail_over() -> None:
            # The master target detaches the replicated disks and vCenter attaches them to the
            # VM: without a connected vCenter that fails (the article's "common issue", R14).
            self._require_connected_vcenter("Failover", item, self._master_target_host(item))

        async def start_onprem_vm() -> None:
            try:
                await self.effects.power_on(item.spec.vm_name)
            except VCenterEffectError as err:
                raise JobFailure(
                    FAILBACK_VM_START_CODE,
                    f"Failed to bring up the on-premises virtual machine "
                    f"'{item.spec.vm_name}': {err}",
                    possible_causes="The virtual machine could not be found or powered on by "
                    "the master target's vCenter.",
                    recommended_action="Check that the virtual machine exists in vCenter and that "
                    "vCenter is reachable, then retry the failover.",
                ) from err

        def on_success(now: dt.datetime) -> None:
            item.phase = Phase.FAILOVER_COMMIT_PENDING
            item.failover_point = point
            item.failover_completed_at = now

        return _JobPlan(
            effects={
                "VmUfoPrerequisitesCheck": check_prerequisites,
                "VmShutdownVmOnPrimary": shut_down_azure_vm,
                "VmFailover": fail_over,
                "VmFoStartVmOnSecondary": start_onprem_vm,
            },
            on_success=on_success,
        )

    def _choose_point(self, item: ItemState, details: dict[str, Any]) -> RecoveryPoint:
        where = "properties.providerSpecificDetails"
        point_type = _string(details, "recoveryPointType", where)
        point_id = details.get("recoveryPointId")
        points = item.visible_recovery_points(self.clock())
        kind = point_type.lower()
        if kind != "custom" and point_id is not None:
            raise bad_request(
                f"{where}.recoveryPointId is only valid with recoveryPointType 'Custom', not "
                f"'{point_type}'.",
                target=f"{where}.recoveryPointId",
            )
        if kind == "latesttime":
            if not points:
                raise bad_request(f"Protected item '{item.name}' has no recovery point.")
            return points[0]
        if kind == "latesttag":
            tagged = [p for p in points if p.type == "ApplicationConsistent"]
            if not tagged:
                raise bad_request(
                    f"Protected item '{item.name}' has no application-consistent recovery point."
                )
            return tagged[0]
        if kind == "custom":
            if self.wire.custom_recovery_point == "refused":
                raise bad_request(
                    f"{where}.recoveryPointType 'Custom' is not supported for this provider; use "
                    "'LatestTime' or 'LatestTag'.",
                    target=f"{where}.recoveryPointType",
                )
            if not isinstance(point_id, str) or not point_id:
                raise bad_request(
                    f"{where}.recoveryPointId is required with recoveryPointType 'Custom': give "
                    f"the ARM id of one of the item's recovery points "
                    f"({self.ids.item(item.name)}/recoveryPoints/...).",
                    target=f"{where}.recoveryPointId",
                )
            for point in points:
                if self.ids.recovery_point(item.name, point.name).lower() == point_id.lower():
                    return point
            owner = self._point_owner(point_id)
            if owner is not None and owner is not item:
                raise bad_request(
                    f"{where}.recoveryPointId '{point_id}' is a recovery point of protected item "
                    f"'{owner.name}' ({owner.spec.vm_name}), not of '{item.name}' "
                    f"({item.spec.vm_name}): a failover takes a recovery point of the item being "
                    f"failed over; list them with GET {self.ids.item(item.name)}/recoveryPoints.",
                    target=f"{where}.recoveryPointId",
                )
            raise bad_request(
                f"{where}.recoveryPointId '{point_id}' is not a recovery point of protected item "
                f"'{item.name}'; list them with GET {self.ids.item(item.name)}/recoveryPoints.",
                target=f"{where}.recoveryPointId",
            )
        raise bad_request(
            f"{where}.recoveryPointType is '{point_type}'; use 'LatestTime', 'LatestTag' or "
            "'Custom'.",
            target=f"{where}.recoveryPointType",
        )

    def _point_owner(self, point_id: str) -> ItemState | None:
        """The item whose recovery point list `point_id` is under, if any."""
        prefix, _, _ = point_id.lower().rpartition("/recoverypoints/")
        for candidate in self.items.values():
            if self.ids.item(candidate.name).lower() == prefix:
                return candidate
        return None

    def _plan_commit(self, item: ItemState) -> _JobPlan:
        return self.commit_plan(item, "VmDeleteOnPrimary")

    def commit_plan(self, item: ItemState, deleting_task: str) -> _JobPlan:
        """Every architecture's commit: the failed-back Azure VM deleted in `deleting_task` (ASR's
        documentation), the item committed."""

        async def delete_azure_vm() -> None:
            if item.azure_vm.deleted_at is None:
                item.azure_vm.deleted_at = self.clock()

        def on_success(now: dt.datetime) -> None:
            item.phase = Phase.FAILOVER_COMMITTED
            item.committed_at = now

        return _JobPlan(effects={deleting_task: delete_azure_vm}, on_success=on_success)

    def _plan_reprotect(self, item: ItemState, body: Any) -> _JobPlan:
        props = _object(body, "properties", "the request body")
        direction = _string(props, "failoverDirection", "properties")
        details = _object(props, "providerSpecificDetails", "properties")
        where = "properties.providerSpecificDetails"
        instance_type = _string(details, "instanceType", where)
        to_onprem = item.phase is Phase.FAILED_OVER_TO_AZURE
        wanted = "InMage" if to_onprem else "InMageAzureV2"
        if instance_type.lower() != wanted.lower():
            purpose = (
                "reprotecting a machine failed over to Azure back to on-premises"
                if to_onprem
                else "reprotecting the failed-back VM to Azure"
            )
            raise bad_request(
                f"{where}.instanceType is '{instance_type}'; {purpose} needs '{wanted}'.",
                target=f"{where}.instanceType",
            )
        if direction.lower() != "recoverytoprimary":
            raise bad_request(
                f"properties.failoverDirection is '{direction}'; reprotect of protected item "
                f"'{item.name}' is 'RecoveryToPrimary'.",
                target="properties.failoverDirection",
            )
        if to_onprem:
            if self.wire.disk_exclusion == "required" and not _excludes_temporary_storage(details):
                raise bad_request(
                    f"{where}.diskExclusionInput must exclude the Azure VM's temporary storage "
                    "volume: volumeOptions [{volumeLabel: 'Temporary Storage', "
                    "onlyExcludeIfSingleVolume: 'Yes'}].",
                    target=f"{where}.diskExclusionInput",
                )
            return self._plan_reprotect_to_onprem(item, details, where)
        if self.wire.log_storage_account == "required" and not details.get("logStorageAccountId"):
            raise bad_request(
                f"{where}.logStorageAccountId is required: the storage account the machine's "
                "replication logs go to in Azure (its earlier recoveryAzureLogStorageAccountId).",
                target=f"{where}.logStorageAccountId",
            )
        protection = self._validate_azure_protection(details, where)
        vm_name = item.spec.vm_name
        cs = self.fabric.configuration_server

        async def check_agent() -> None:
            self._require_configuration_server("Reprotect", item)
            if not item.agent_registered(self.clock()):
                raise JobFailure(
                    self.wire.agent_not_registered_code,
                    f"Reprotect of '{vm_name}' failed: the agent is not installed or has not "
                    f"registered with the configuration server '{cs}' yet. Wait for the mobility "
                    f"agent on {vm_name} to register with the configuration server (up to 15 "
                    "minutes after the failback commit), then retry the reprotect.",
                    possible_causes=f"The mobility agent on {vm_name} has not yet registered "
                    "with the configuration server after the failback.",
                    recommended_action=f"Wait for the mobility agent on {vm_name} to register "
                    f"with the configuration server '{cs}', then retry the reprotect.",
                )

        def on_success(now: dt.datetime) -> None:
            item.phase = Phase.REPLICATING_TO_AZURE
            item.azure_protection = AzureProtection(request=protection, protected_at=now)

        return _JobPlan(
            effects={"VmReprotectPrerequisitesCheck": check_agent}, on_success=on_success
        )

    # -- reprotect Azure -> on-premises ---------------------------------------------------------

    def _plan_reprotect_to_onprem(
        self, item: ItemState, details: dict[str, Any], where: str
    ) -> _JobPlan:
        request = self._validate_onprem_protection(item, details, where)
        master_target = self.fabric.master_target(request.master_target_id)
        assert master_target is not None and master_target.host is not None, "validated"
        # Bound here: closures do not see the narrowing above.
        mt_host: str = master_target.host
        spec = item.spec
        vm_name = spec.vm_name

        async def check_prerequisites() -> None:
            self._require_configuration_server("Reprotect", item)
            if not spec.known_to_configuration_server:
                raise JobFailure(
                    VM_NOT_IN_CS_DATABASE_CODE,
                    f"Reprotect of '{vm_name}' failed: the configuration server "
                    f"'{self.fabric.configuration_server}' has no record of the machine in its "
                    "database, so it cannot replicate it back.",
                    possible_causes="The configuration server was restored from a backup older "
                    "than the machine's protection, or rebuilt.",
                    recommended_action="Restore the configuration server's database (same IP "
                    "address) or rediscover the machine, then retry the reprotect.",
                )
            if is_windows_2008_r2(spec.os_version):
                raise JobFailure(
                    OS_NOT_SUPPORTED_FOR_FAILBACK_CODE,
                    f"Reprotect of '{vm_name}' failed: a {spec.os_version} machine that was "
                    "failed over to Azure cannot be failed back to on-premises.",
                    recommended_action="Keep the machine in Azure or rebuild it on-premises.",
                )
            self._require_connected_vcenter("Reprotect", item, mt_host)
            if not request.alternate_location:
                # Original location: the VM's own disks receive the data, so the master
                # target's host must reach every datastore they are on (R2, R3).
                reachable = self._host_datastores(mt_host)
                missing = [ds for ds in self._vm_datastores(vm_name) if ds not in reachable]
                if missing:
                    raise JobFailure(
                        DATASTORE_NOT_ACCESSIBLE_CODE,
                        f"Reprotect of '{vm_name}' failed: datastore(s) {', '.join(missing)} "
                        f"holding its disks are not accessible from ESXi host "
                        f"'{mt_host}' of master target '{master_target.name}'.",
                        possible_causes="The master target's ESXi host does not mount the "
                        "datastores of the virtual machine.",
                        recommended_action="Mount the datastores on the master target's host "
                        "or use a master target on a host that reaches them, then retry.",
                    )

        async def enable_protection() -> None:
            if not request.alternate_location:
                return
            datastore = request.datastore_name
            assert datastore is not None, "validated: alternate location names a datastore"
            try:
                await self.effects.create_vm(
                    vm_name, mt_host, datastore, spec.os_type, spec.disk_sizes_gb
                )
            except VCenterEffectError as err:
                raise JobFailure(
                    PROTECTION_FAILED_CODE,
                    f"Protection of '{vm_name}' could not be completed: re-creating the "
                    f"virtual machine on ESXi host '{mt_host}' failed: {err}",
                    possible_causes="vCenter refused to create the virtual machine.",
                    recommended_action="Check the datastore and the host in vCenter, then "
                    "retry the reprotect.",
                ) from err

        def on_success(now: dt.datetime) -> None:
            seconds = (
                spec.full_copy_seconds
                if request.alternate_location
                else spec.initial_replication_seconds
            )
            item.phase = Phase.REPLICATING_TO_ONPREM
            item.onprem_protection = OnPremProtection(
                request=request,
                protected_at=now,
                healthy_at=now + dt.timedelta(seconds=seconds),
            )

        return _JobPlan(
            effects={
                "VmReprotectPrerequisitesCheck": check_prerequisites,
                "VmEnableProtection": enable_protection,
            },
            on_success=on_success,
        )

    def _validate_onprem_protection(
        self, item: ItemState, details: dict[str, Any], where: str
    ) -> OnPremProtectionRequest:
        """InMageReprotectInput, checked field by field; a refusal names the field."""
        fabric = self.fabric
        cs = fabric.configuration_server
        spec = item.spec
        failback_mts = [m.id for m in fabric.failback_master_targets]

        mt_id = _string(details, "masterTargetId", where)
        mt = fabric.master_target(mt_id)
        target = f"{where}.masterTargetId"
        if mt is None:
            raise bad_request(
                f"{target} '{mt_id}' is not a master target of configuration server '{cs}'; "
                f"failback master targets: {failback_mts}.",
                target=target,
            )
        if mt.role == "builtin":
            raise bad_request(
                f"{target} '{mt_id}' is the configuration server's own master target, which "
                f"serves replication to Azure; failback needs one of {failback_mts}.",
                target=target,
            )
        if not mt.host_discovered:
            raise bad_request(
                f"{target} '{mt_id}': the ESXi host '{mt.host}' of master target '{mt.name}' is "
                f"not discovered by configuration server '{cs}'; add the host (or its vCenter) "
                "to the configuration server and wait for discovery before reprotecting.",
                target=target,
            )
        if mt.os_type != spec.os_type:
            raise bad_request(
                f"{target} '{mt_id}' is a {mt.os_type} master target, but '{spec.vm_name}' runs "
                f"{spec.os_type}: {spec.os_type} machines fail back through a {spec.os_type} "
                "master target.",
                target=target,
            )
        group = spec.replication_group
        if group is not None:
            for other in self.items.values():
                other_mt = other.master_target_id
                if (
                    other is not item
                    and other.spec.replication_group == group
                    and other.phase is not Phase.FAILED_OVER_TO_AZURE
                    and other_mt is not None
                    and other_mt.lower() != mt.id.lower()
                ):
                    raise bad_request(
                        f"{target} '{mt_id}': replication group '{group}' already replicates "
                        f"back through master target '{other_mt}' ('{other.name}'); a "
                        "replication group uses one master target.",
                        target=target,
                    )

        ps_id = _string(details, "processServerId", where)
        ps = fabric.process_server(ps_id)
        target = f"{where}.processServerId"
        in_azure = [p.id for p in fabric.process_servers if p.site == "Azure"]
        if ps is None:
            raise bad_request(
                f"{target} '{ps_id}' is not a process server of configuration server '{cs}'; "
                f"process servers in Azure: {in_azure}.",
                target=target,
            )
        if ps.site != "Azure":
            raise bad_request(
                f"{target} '{ps_id}' is an on-premises process server; failback from Azure "
                f"needs a process server in Azure: {in_azure}.",
                target=target,
            )

        drive = _string(details, "retentionDrive", where)
        volumes = [v.volume_name for v in mt.retention_volumes]
        if mt.retention(drive) is None:
            raise bad_request(
                f"{where}.retentionDrive '{drive}' is not a retention volume of master target "
                f"'{mt.name}'; its retention volumes: {volumes}.",
                target=f"{where}.retentionDrive",
            )

        account = details.get("runAsAccountId")
        if account is not None and fabric.run_as_account(str(account)) is None:
            raise bad_request(
                f"{where}.runAsAccountId '{account}' is not a run-as account of configuration "
                f"server '{cs}'; known: {[a.account_id for a in fabric.run_as_accounts]}.",
                target=f"{where}.runAsAccountId",
            )

        target = f"{where}.datastoreName"
        alternate = not self.scenario.onprem_vm_exists(spec)
        datastore_name = details.get("datastoreName")
        if datastore_name is not None and (
            not isinstance(datastore_name, str) or not datastore_name
        ):
            raise bad_request(f"{target} must be a non-empty string.", target=target)
        known = [d.name for d in mt.datastores]
        datastore = mt.datastore(datastore_name) if datastore_name else None
        if datastore_name and datastore is None:
            raise bad_request(
                f"{target} '{datastore_name}' is not a datastore of master target '{mt.name}' "
                f"(ESXi host '{mt.host}'); its datastores: {known}.",
                target=target,
            )
        if alternate:
            why = (
                "is a physical server"
                if spec.discovery_type == "Physical"
                else "does not exist on-premises"
            )
            if datastore is None:
                raise bad_request(
                    f"{target} is required: '{spec.vm_name}' {why}, so it is re-created on the "
                    f"master target's ESXi host '{mt.host}' on this datastore (alternate location "
                    f"recovery); choose a VMFS datastore of {known}.",
                    target=target,
                )
            if datastore.type.upper() != "VMFS":
                vmfs = [d.name for d in mt.datastores if d.type.upper() == "VMFS"]
                raise bad_request(
                    f"{target} '{datastore.name}' is a {datastore.type} datastore; "
                    f"'{spec.vm_name}' {why} and alternate location recovery needs a VMFS "
                    f"datastore (vSAN and RDM are not supported): {vmfs}.",
                    target=target,
                )

        profile = _string(details, "profileId", where)
        policy = self.failback_policy_name
        if profile.lower() not in (policy.lower(), self.ids.policy(policy).lower()):
            raise bad_request(
                f"{where}.profileId '{profile}' is not the failback replication policy of this "
                f"vault; use '{self.ids.policy(policy)}'.",
                target=f"{where}.profileId",
            )
        return OnPremProtectionRequest(
            master_target_id=mt.id,
            process_server_id=ps.id,
            retention_drive=drive,
            run_as_account_id=None if account is None else str(account),
            datastore_name=datastore.name if datastore is not None else None,
            profile_id=self.ids.policy(policy),
            alternate_location=alternate,
        )

    # -- the on-premises infrastructure as jobs need it ---------------------------------------

    def _require_configuration_server(self, action: str, item: ItemState) -> None:
        fabric = self.fabric
        if fabric.reachable:
            return
        age = dt.timedelta(seconds=int(fabric.heartbeat_age_seconds))
        raise JobFailure(
            CS_UNREACHABLE_CODE,
            f"{action} of '{item.spec.vm_name}' could not reach the on-premises configuration "
            f"server '{fabric.configuration_server}' (last heartbeat {age} ago).",
            possible_causes="The configuration server is shut down, its services are stopped, "
            "or it cannot reach Azure.",
            recommended_action="Start the configuration server and its services, check its "
            "connection to Azure, then retry.",
        )

    def _require_connected_vcenter(self, action: str, item: ItemState, host: str | None) -> None:
        vcenter = self.fabric.vcenter_for_host(host)
        if vcenter is None or vcenter.connected:
            return
        raise JobFailure(
            VCENTER_NOT_CONNECTED_CODE,
            f"{action} of '{item.spec.vm_name}' failed: vCenter '{vcenter.name}' "
            f"({vcenter.friendly_name}), through which ESXi host '{host}' is managed, is not "
            "connected to the configuration server, so disks cannot be detached and attached.",
            possible_causes="The configuration server lost its connection to vCenter or the "
            "discovery account's credentials expired.",
            recommended_action="Fix the vCenter connection on the configuration server, "
            "refresh the vCenter in the vault, then retry.",
        )

    def _master_target_host(self, item: ItemState) -> str | None:
        mt_id = item.master_target_id
        mt = self.fabric.master_target(mt_id) if mt_id is not None else None
        return mt.host if mt is not None else None

    def require_connected_vcenter(self, action: str, item: ItemState, host: str | None) -> None:
        self._require_connected_vcenter(action, item, host)

    def vm_exists(self, vm_name: str) -> bool:
        """Whether the VM is in the scenario's vCenter or was created since (a reprotect to an
        alternate location)."""
        try:
            self.scenario.vm(vm_name)
        except KeyError:
            return any(c.action == "create_vm" and c.vm_name == vm_name for c in self.effects.calls)
        return True

    def _host_datastores(self, host: str) -> set[str]:
        return {ds for h in self.scenario.vmware.hosts if h.name == host for ds in h.datastores}

    def _vm_datastores(self, vm_name: str) -> list[str]:
        """The datastores of the VM's configuration and disks, in order, once each."""
        try:
            vm = self.scenario.vm(vm_name)
        except KeyError:
            return []
        names = [vm.datastore, *(vm.disk_datastore(disk) for disk in vm.disks)]
        return list(dict.fromkeys(names))

    def vm_datastores(self, item: ItemState) -> list[str]:
        """Where the item's on-premises VM keeps its files, as the InMage details show it."""
        protection = item.onprem_protection
        if protection is not None and protection.request.alternate_location:
            name = protection.request.datastore_name
            return [name] if name else []
        return self._vm_datastores(item.spec.vm_name)

    def _validate_azure_protection(
        self, details: dict[str, Any], where: str
    ) -> AzureProtectionRequest:
        mt_id = _string(details, "masterTargetId", where)
        master_target = self.fabric.master_target(mt_id)
        known_mts = [m.id for m in self.fabric.master_targets]
        if master_target is None:
            raise bad_request(
                f"{where}.masterTargetId '{mt_id}' is not a master target of configuration "
                f"server '{self.fabric.configuration_server}'; known: {known_mts}.",
                target=f"{where}.masterTargetId",
            )
        builtin = self.fabric.builtin_master_target
        if master_target.role != "builtin":
            # Lab rule: the failback master target receives data from Azure; replication to
            # Azure goes through the configuration server's own master target.
            raise bad_request(
                f"{where}.masterTargetId '{mt_id}' is the failback master target; reprotect to "
                f"Azure uses the configuration server's master target '{builtin.id}'.",
                target=f"{where}.masterTargetId",
            )
        ps_id = _string(details, "processServerId", where)
        process_server = self.fabric.process_server(ps_id)
        if process_server is None:
            raise bad_request(
                f"{where}.processServerId '{ps_id}' is not a process server of configuration "
                f"server '{self.fabric.configuration_server}'; known: "
                f"{[p.id for p in self.fabric.process_servers]}.",
                target=f"{where}.processServerId",
            )
        if process_server.site != "OnPrem":
            onprem = [p.id for p in self.fabric.process_servers if p.site == "OnPrem"]
            raise bad_request(
                f"{where}.processServerId '{ps_id}' is the process server in Azure, which only "
                f"serves failback; reprotect to Azure needs an on-premises one: {onprem}.",
                target=f"{where}.processServerId",
            )
        account = details.get("runAsAccountId")
        if account is not None and self.fabric.run_as_account(str(account)) is None:
            raise bad_request(
                f"{where}.runAsAccountId '{account}' is not a run-as account of configuration "
                f"server '{self.fabric.configuration_server}'; known: "
                f"{[a.account_id for a in self.fabric.run_as_accounts]}.",
                target=f"{where}.runAsAccountId",
            )
        policy_id = _string(details, "policyId", where)
        policy_name = self.scenario.azure.azure_policy_id
        if policy_id.lower() not in (policy_name.lower(), self.ids.policy(policy_name).lower()):
            raise bad_request(
                f"{where}.policyId '{policy_id}' is not a replication policy to Azure of this "
                f"vault; use '{self.ids.policy(policy_name)}'.",
                target=f"{where}.policyId",
            )
        return AzureProtectionRequest(
            master_target_id=master_target.id,
            process_server_id=process_server.id,
            run_as_account_id=None if account is None else str(account),
            policy_id=self.ids.policy(policy_name),
        )

    # -- job execution ----------------------------------------------------------------------

    def _job_duration(self, operation: Operation) -> float:
        timings = self.scenario.azure.jobs
        return {
            Operation.UNPLANNED_FAILOVER: timings.failover_seconds,
            Operation.PLANNED_FAILOVER: timings.failover_seconds,
            Operation.FAILOVER_CANCEL: timings.commit_seconds,
            Operation.FAILOVER_COMMIT: timings.commit_seconds,
            Operation.REPROTECT: timings.reprotect_seconds,
        }[operation]

    def _task_seconds(self, job: Job) -> list[float]:
        """An item's job spends its operation's duration across its tasks. A recovery plan's
        job fails each boot group over as long as one machine's failover takes (the group's
        machines together), so 7 groups take 7 failovers, as in ASR; its prerequisite check
        takes no simulated time."""
        duration = self._job_duration(job.operation)
        if job.plan is None:
            return [duration / len(job.tasks)] * len(job.tasks)
        return [0.0 if t.spec.name == PLAN_PREREQUISITES else duration for t in job.tasks]

    async def _run(self, job: Job, plan: _JobPlan) -> None:
        current: TaskRecord | None = None
        try:
            for task, seconds in zip(job.tasks, self._task_seconds(job), strict=True):
                current = task
                task.state = "InProgress"
                task.start_time = self.clock()
                await asyncio.sleep(seconds)
                injected = job.injected_failure
                if (
                    injected is not None
                    and injected.failing_task(job.architecture) == task.spec.name
                ):
                    raise JobFailure(
                        injected.code,
                        injected.message,
                        possible_causes=injected.possible_causes or "",
                        recommended_action=injected.recommended_action or "",
                    )
                effect = plan.effects.get(task.spec.name)
                if effect is not None:
                    await effect()
                task.state = "Succeeded"
                task.end_time = self.clock()
                await self._injected_state_after(job, task)
            now = self.clock()
            plan.on_success(now)
            job.state = "Succeeded"
            job.end_time = now
            _release(job)
            if job.injected_state is not None and job.injected_state.state == "PartiallySucceeded":
                job.state_description = "PartiallySucceeded"
                job.tasks[-1].state = "Failed"
        except JobFailure as failure:
            self._fail(job, current, failure)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("job %s (%s) crashed", job.name, job.operation.value)
            self._fail(job, current, JobFailure("InternalError", f"The lab job crashed: {err}"))

    async def _injected_state_after(self, job: Job, task: TaskRecord) -> None:
        fault = job.injected_state
        if fault is None or fault.state == "PartiallySucceeded":
            return
        if task.spec.name != (fault.task or job.tasks[0].spec.name):
            return
        job.state = fault.state
        if fault.state == "Suspended":
            await job.resumed.wait()
        else:
            await asyncio.sleep(fault.seconds)
        job.state = "InProgress"

    def resume_job(self, job: Job) -> None:
        """ASR's `replicationJobs/{job}/resume`: a suspended job goes on."""
        if job.state != "Suspended":
            raise ArmError(
                400,
                "BadRequest",
                f"Job '{job.name}' is {job.state}, not Suspended; only a suspended job resumes.",
            )
        job.resumed.set()

    def _fail(self, job: Job, task: TaskRecord | None, failure: JobFailure) -> None:
        now = self.clock()
        record = JobErrorRecord(
            code=failure.code,
            message=failure.message,
            possible_causes=failure.possible_causes,
            recommended_action=failure.recommended_action,
            time=now,
            task_id=task.task_id if task is not None else "",
        )
        if task is not None:
            task.state = "Failed"
            task.end_time = now
            task.errors.append(record)
        job.errors.append(record)
        job.state = "Failed"
        job.end_time = now
        _release(job)
        log.info("job %s (%s) failed: %s", job.name, job.operation.value, failure)
        if (
            job.architecture == "modernized"
            and job.operation is Operation.PLANNED_FAILOVER
            and self.wire.auto_cancel_failed_failover == "yes"
        ):
            # ASR's documentation: a failed planned failover is cancelled by ASR itself.
            for item in job.targets:
                if item.failover_started_at is not None and item.current_job is None:
                    self._start_auto_cancel(item)

    def _start_auto_cancel(self, item: ItemState) -> None:
        """ASR's own cancel: no request, so no refusal and no injected fault."""
        operation = Operation.FAILOVER_CANCEL
        plan = modernized.plan_operation(self, item, operation, None)
        self._launch(item, operation, plan, None, None, None)


def _release(job: Job) -> None:
    for item in job.targets:
        if item.current_job is job:
            item.current_job = None


def _object(container: Any, key: str, where: str) -> dict[str, Any]:
    if not isinstance(container, dict):
        raise bad_request(f"{where} must be a JSON object.")
    value = container.get(key)
    if not isinstance(value, dict):
        path = key if where == "the request body" else f"{where}.{key}"
        raise bad_request(f"{path} is required and must be a JSON object.", target=path)
    return value


def _string(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(
            f"{where}.{key} is required and must be a non-empty string.", target=f"{where}.{key}"
        )
    return value


def _excludes_temporary_storage(details: dict[str, Any]) -> bool:
    exclusion = details.get("diskExclusionInput")
    options = exclusion.get("volumeOptions") if isinstance(exclusion, dict) else None
    return any(
        isinstance(o, dict) and str(o.get("volumeLabel", "")).lower() == "temporary storage"
        for o in options or []
    )
