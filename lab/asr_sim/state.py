"""The simulator's model of the vault: items walking through failback, jobs, faults, journal.

Everything here runs on the simulator's event loop, so plain attributes need no locks. A job's
end and the item's new state are applied in one synchronous step: whoever sees the job
`Succeeded` also sees the item in its new state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from lab.asr_sim.arm import ArmError, bad_request, utcnow
from lab.asr_sim.effects import VCenterEffectError, VCenterEffects
from lab.asr_sim.faults import FaultBook, JobFailureFault
from lab.asr_sim.operations import OPERATIONS, Operation, OperationSpec, TaskSpec
from lab.asr_sim.recovery_points import RecoveryPoint, generate_recovery_points
from lab.asr_sim.topology import ArmIds, FabricCatalog, stable_guid
from lab.scenario import ProtectedItemSpec, Scenario, registration_delay

log = logging.getLogger(__name__)

AGENT_VERSION = "9.62.7172.1"

# The job error for a reprotect attempted before the booted VM's mobility agent re-registered.
# ASR publishes no code for it ("the agent is not installed"): UNVERIFIED, chosen by the lab.
AGENT_NOT_INSTALLED_CODE = "MobilityAgentNotInstalled"
FAILBACK_VM_START_CODE = "8038"


class Phase(StrEnum):
    """Where an item is in the failback walk."""

    REPLICATING_TO_ONPREM = "ReplicatingToOnPrem"
    FAILOVER_COMMIT_PENDING = "FailoverCommitPending"
    FAILOVER_COMMITTED = "FailoverCommitted"
    REPLICATING_TO_AZURE = "ReplicatingToAzure"


JobState = Literal["NotStarted", "InProgress", "Succeeded", "Failed"]


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
    item: ItemState
    start_time: dt.datetime
    tasks: list[TaskRecord]
    activity_id: str
    injected_failure: JobFailureFault | None
    # The request body as received (parsed JSON), e.g. which recovery point a failover asked for.
    request_body: Any = None
    state: JobState = "InProgress"
    end_time: dt.datetime | None = None
    errors: list[JobErrorRecord] = field(default_factory=list)

    @property
    def spec(self) -> OperationSpec:
        return OPERATIONS[self.operation]

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed")


@dataclass
class ItemState:
    spec: ProtectedItemSpec
    vm_id: str
    recovery_points: list[RecoveryPoint]
    azure_vm: AzureVm
    phase: Phase = Phase.REPLICATING_TO_ONPREM
    current_job: Job | None = None
    failover_point: RecoveryPoint | None = None
    failover_completed_at: dt.datetime | None = None
    committed_at: dt.datetime | None = None
    azure_protection: AzureProtection | None = None

    @property
    def name(self) -> str:
        return self.spec.name

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

    def visible_recovery_points(self) -> list[RecoveryPoint]:
        # The InMage (Azure -> on-premises) replication ends with the commit, and a fresh
        # replication to Azure has no points yet. UNVERIFIED, the lab's choice.
        if self.phase in (Phase.FAILOVER_COMMITTED, Phase.REPLICATING_TO_AZURE):
            return []
        return self.recovery_points


_PROTECTION_STATES: dict[Phase, tuple[str, str]] = {
    Phase.REPLICATING_TO_ONPREM: ("Protected", "Protected"),
    # UNVERIFIED for VMware: a Hyper-V recording shows UnplannedFailoverCommitPendingStatesBegin.
    Phase.FAILOVER_COMMIT_PENDING: ("UnplannedFailoverCommitPending", "Failover commit pending"),
    Phase.FAILOVER_COMMITTED: ("UnplannedFailoverCommitted", "Failover committed"),
    Phase.REPLICATING_TO_AZURE: ("Protected", "Protected"),
}

_ALLOWED_OPERATIONS: dict[Phase, tuple[str, ...]] = {
    Phase.REPLICATING_TO_ONPREM: ("UnplannedFailover", "DisableProtection"),
    Phase.FAILOVER_COMMIT_PENDING: ("Commit", "ChangePit"),
    Phase.FAILOVER_COMMITTED: ("CompleteMigration", "DisableProtection", "SwitchProtection"),
    Phase.REPLICATING_TO_AZURE: (
        "PlannedFailover",
        "UnplannedFailover",
        "TestFailover",
        "DisableProtection",
    ),
}


def protection_state(item: ItemState) -> str:
    return _PROTECTION_STATES[item.phase][0]


def protection_state_description(item: ItemState) -> str:
    return _PROTECTION_STATES[item.phase][1]


def allowed_operations(item: ItemState) -> list[str]:
    return list(_ALLOWED_OPERATIONS[item.phase])


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


class SimulatorState:
    def __init__(
        self,
        scenario: Scenario,
        effects: VCenterEffects,
        *,
        vcenter_address: tuple[str, int] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.scenario = scenario
        self.effects = effects
        self.clock = clock
        self.started_at = clock()
        self.ids = ArmIds.from_scenario(scenario)
        self.fabric = FabricCatalog(scenario, vcenter_address)
        self.faults = FaultBook()
        self.journal: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}
        self.items: dict[str, ItemState] = {}
        for spec in scenario.azure.items:
            self.items[spec.name.lower()] = ItemState(
                spec=spec,
                vm_id=stable_guid("vm", spec.name),
                recovery_points=generate_recovery_points(
                    spec.recovery_points,
                    self.started_at,
                    in_replication_group=spec.replication_group is not None,
                ),
                azure_vm=AzureVm(spec.azure_vm_name, stable_guid("azure-vm", spec.azure_vm_name)),
            )
        self._running: set[asyncio.Task[None]] = set()

    @property
    def failback_policy_name(self) -> str:
        return f"{self.scenario.azure.azure_policy_id}-failback"

    def item(self, name: str) -> ItemState | None:
        return self.items.get(name.lower())

    def job(self, name: str) -> Job | None:
        return self.jobs.get(name.lower())

    def azure_vm(self, name: str) -> AzureVm | None:
        for item in self.items.values():
            if item.azure_vm.name.lower() == name.lower():
                return item.azure_vm
        return None

    def start_operation(self, item: ItemState, operation: Operation, body: Any) -> Job:
        """Validate and start `operation` on `item`; raises ArmError for a synchronous refusal."""
        self._refuse_if_busy_or_not_allowed(item, operation)
        if operation is Operation.UNPLANNED_FAILOVER:
            plan = self._plan_failover(item, body)
        elif operation is Operation.FAILOVER_COMMIT:
            plan = self._plan_commit(item)
        else:
            plan = self._plan_reprotect(item, body)

        now = self.clock()
        name = str(uuid.uuid4())
        job = Job(
            name=name,
            operation=operation,
            item=item,
            start_time=now,
            tasks=[
                TaskRecord(spec=t, task_id=str(uuid.uuid4())) for t in OPERATIONS[operation].tasks
            ],
            activity_id=f"{uuid.uuid4()} ActivityId: {uuid.uuid4()}",
            injected_failure=self.faults.take_job_failure(operation, item.name),
            request_body=body,
        )
        self.jobs[name.lower()] = job
        item.current_job = job
        runner = asyncio.get_running_loop().create_task(self._run(job, plan))
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)
        return job

    async def aclose(self) -> None:
        for runner in list(self._running):
            runner.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    # -- validation -------------------------------------------------------------------------

    def _refuse_if_busy_or_not_allowed(self, item: ItemState, operation: Operation) -> None:
        spec = OPERATIONS[operation]
        running = item.current_job
        if running is not None:
            raise ArmError(
                409,
                "OperationInProgress",
                f"Cannot start {spec.friendly_name.lower()} ({operation.value}) on protected item "
                f"'{item.name}' ({item.spec.vm_name}): job '{running.name}' "
                f"({running.spec.scenario_name}) is still in progress on it. Wait for that job "
                f"to finish (GET {self.ids.job(running.name)}).",
            )
        allowed = allowed_operations(item)
        if not spec.allowed_operation_names & set(allowed):
            raise ArmError(
                400,
                "OperationNotAllowed",
                f"Cannot start {spec.friendly_name.lower()} ({operation.value}) on protected item "
                f"'{item.name}' ({item.spec.vm_name}): its protection state is "
                f"'{protection_state(item)}' and the allowed operations are {allowed}.",
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
        point = self._choose_point(item, details)

        async def shut_down_azure_vm() -> None:
            # ASR shuts the source (Azure) VM down before bringing the on-premises VM up. The lab
            # does so whatever sourceSiteOperations says (UNVERIFIED for InMage failback).
            vm = item.azure_vm
            if vm.deleted_at is None and vm.power_state != "deallocated":
                vm.power_state = "deallocated"
                vm.deallocated_at = self.clock()

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
                "VmShutdownVmOnPrimary": shut_down_azure_vm,
                "VmFoStartVmOnSecondary": start_onprem_vm,
            },
            on_success=on_success,
        )

    def _choose_point(self, item: ItemState, details: dict[str, Any]) -> RecoveryPoint:
        where = "properties.providerSpecificDetails"
        point_type = _string(details, "recoveryPointType", where)
        point_id = details.get("recoveryPointId")
        points = item.visible_recovery_points()
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
        async def delete_azure_vm() -> None:
            if item.azure_vm.deleted_at is None:
                item.azure_vm.deleted_at = self.clock()

        def on_success(now: dt.datetime) -> None:
            item.phase = Phase.FAILOVER_COMMITTED
            item.committed_at = now

        return _JobPlan(effects={"VmDeleteOnPrimary": delete_azure_vm}, on_success=on_success)

    def _plan_reprotect(self, item: ItemState, body: Any) -> _JobPlan:
        props = _object(body, "properties", "the request body")
        direction = _string(props, "failoverDirection", "properties")
        details = _object(props, "providerSpecificDetails", "properties")
        where = "properties.providerSpecificDetails"
        instance_type = _string(details, "instanceType", where)
        if instance_type.lower() == "inmage":
            raise bad_request(
                "Reprotect to on-premises (providerSpecificDetails.instanceType 'InMage') is not "
                "supported by the lab yet: lab items start already protected to on-premises.",
                code="NotSupportedByLab",
                target=f"{where}.instanceType",
            )
        if instance_type.lower() != "inmageazurev2":
            raise bad_request(
                f"{where}.instanceType is '{instance_type}'; reprotecting the failed-back VM to "
                "Azure needs 'InMageAzureV2'.",
                target=f"{where}.instanceType",
            )
        if direction.lower() != "recoverytoprimary":
            raise bad_request(
                f"properties.failoverDirection is '{direction}'; reprotect after the failback "
                "commit is 'RecoveryToPrimary'.",
                target="properties.failoverDirection",
            )
        protection = self._validate_azure_protection(details, where)
        vm_name = item.spec.vm_name
        cs = self.fabric.configuration_server

        async def check_agent() -> None:
            if not item.agent_registered(self.clock()):
                raise JobFailure(
                    AGENT_NOT_INSTALLED_CODE,
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
            Operation.FAILOVER_COMMIT: timings.commit_seconds,
            Operation.REPROTECT: timings.reprotect_seconds,
        }[operation]

    async def _run(self, job: Job, plan: _JobPlan) -> None:
        per_task = self._job_duration(job.operation) / len(job.tasks)
        current: TaskRecord | None = None
        try:
            for task in job.tasks:
                current = task
                task.state = "InProgress"
                task.start_time = self.clock()
                await asyncio.sleep(per_task)
                injected = job.injected_failure
                if injected is not None and injected.failing_task == task.spec.name:
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
            now = self.clock()
            plan.on_success(now)
            job.state = "Succeeded"
            job.end_time = now
            job.item.current_job = None
        except JobFailure as failure:
            self._fail(job, current, failure)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("job %s (%s) crashed", job.name, job.operation.value)
            self._fail(job, current, JobFailure("InternalError", f"The lab job crashed: {err}"))

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
        job.item.current_job = None
        log.info("job %s (%s) failed: %s", job.name, job.operation.value, failure)


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
