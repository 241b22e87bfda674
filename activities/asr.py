"""Activities against Azure Site Recovery and Azure Compute, through the Azure SDK.

Every write is idempotent: before sending, it looks for its own job (in the heartbeat of an
earlier attempt, then in the vault's job list, then in the item's state), so a retry after a
crash never sends a second unplannedFailover, failoverCommit or reProtect.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ServiceRequestError,
    ServiceResponseError,
    map_error,
)
from azure.core.polling import LROPoller
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.recoveryservicessiterecovery import models as asr_models
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.budget import TokenBucket
from activities.handover import Handover
from activities.job_watch import JobWatch, job_state, running_jobs_filter
from activities.liveness import beat_interval, kept_alive
from activities.threads import in_activity_threads
from domain import errors
from domain.decisions import NoRecoveryPointError, select_latest_point
from domain.models import (
    AgentCheckInput,
    AgentRegistration,
    AzureVmRef,
    AzureVmState,
    DiscoveredMachine,
    DiscoveredPlan,
    DiscoverMachineInput,
    DiscoverPlanInput,
    FailoverInput,
    ItemOperationInput,
    OperationResult,
    ProtectedItemRef,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    RecoveryPoint,
    RecoveryPointChoice,
    ReplicationState,
    ReplicationWaitInput,
    ReplicationWaitResult,
    ReprotectToAzureInput,
    ReprotectToAzureOptions,
    ReprotectToOnPremInput,
    ResolvedReprotectToAzure,
    SelectRecoveryPointInput,
    VaultRef,
)
from domain.operations import AsrOperation
from domain.readiness import (
    AsrFacts,
    ConfigServerFacts,
    MachineFacts,
    MachineState,
    MasterTargetFacts,
    VCenterFacts,
)
from domain.recovery_points import MachinePoints, selectable_points

# Codes the lab (and, where named in Microsoft's docs, ASR) uses; see lab/ASR_SIMULATOR.md.
MT_HOST_NOT_DISCOVERED = "MasterTargetHostNotDiscovered"
VM_NOT_IN_CS_DATABASE = "VmNotInConfigurationServerDatabase"
CS_DOWN_CODES = {"ConfigurationServerUnreachable", "95226"}
# The configuration server reports every few minutes; half an hour of silence means it is down.
CS_HEARTBEAT_LIMIT = timedelta(minutes=30)

# Jobs that started this long before the attempt are still ours: ASR's clock and ours may differ.
CLOCK_SKEW = timedelta(minutes=5)
AGENT_NOT_INSTALLED_CODES = {"MobilityAgentNotInstalled"}

_T = TypeVar("_T")
# The errors the SDK's generated GET operations raise for these statuses.
_GET_ERRORS = {
    304: ResourceNotModifiedError,
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
}
# ARM's write bucket per subscription and principal (Azure Resource Manager throttling docs).
ARM_WRITE_BURST = 200
ARM_WRITES_PER_SECOND = 10.0
WRITE_BUDGET_HEARTBEAT_SECONDS = 2.0
_In = TypeVar("_In")
# Reads of a plan's machines in flight at once, per activity.
READ_PARALLELISM = 8
# How old the recovery points readiness listed may be when the point selection takes them
# instead of listing them again; a plan's selection follows its readiness by seconds.
POINTS_HANDOVER_SECONDS = 30.0


@dataclass(frozen=True)
class _OperationSpec:
    name: AsrOperation
    job_scenarios: frozenset[str]
    allowed_operation: frozenset[str]
    already_done: Callable[[Any], bool]
    send: Callable[..., LROPoller[Any]]
    agent_may_be_missing: bool = False


def _text(value: Any) -> str:
    """The wire value of a string or an SDK enum (whose str() is 'Class.MEMBER')."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _state(item: Any) -> str:
    return _text(item.properties.protection_state)


def _details(item: Any) -> Any:
    return item.properties.provider_specific_details


def _instance_type(item: Any) -> str:
    details = _details(item)
    return _text(getattr(details, "instance_type", None))


def _job_name(job_id: str | None) -> str | None:
    """ASR gives job ARM ids in some places and bare names in others."""
    if not job_id:
        return None
    return job_id.rstrip("/").rsplit("/", 1)[-1]


def _item_ref_from_id(item_id: str) -> ProtectedItemRef:
    parts = item_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        fabric = parts[lowered.index("replicationfabrics") + 1]
        container = parts[lowered.index("replicationprotectioncontainers") + 1]
        name = parts[lowered.index("replicationprotecteditems") + 1]
    except (ValueError, IndexError) as err:
        raise ApplicationError(
            f"cannot read fabric and container from protected item id {item_id}",
            type=errors.MACHINE_NOT_FOUND,
            non_retryable=True,
        ) from err
    return ProtectedItemRef(fabric=fabric, container=container, name=name)


def _arm_error(err: HttpResponseError) -> tuple[str, str]:
    code = getattr(err.error, "code", None) or str(err.status_code or "")
    message = getattr(err.error, "message", None) or err.message or str(err)
    return str(code), str(message)


def _is_agent_missing(code: str, message: str) -> bool:
    return code in AGENT_NOT_INSTALLED_CODES or "agent is not installed" in message.lower()


class AsrActivities:
    """ASR and Compute activities. Clients come from the worker's wiring; they hold credentials,
    which is why they never travel in an activity's input."""

    def __init__(
        self,
        asr_client: Any,
        compute_client: Any,
        executor: Executor | None = None,
        write_budget: TokenBucket | None = None,
    ) -> None:
        """`executor` runs the blocking SDK calls of the async write activities (the worker's
        activity pool); None: the event loop's default executor. `write_budget`: the writes'
        share of ARM's limits (default: ARM's write bucket)."""
        self._asr = asr_client
        self._compute = compute_client
        self._executor = executor
        self._write_budget = write_budget or TokenBucket(
            capacity=ARM_WRITE_BURST, refill_per_second=ARM_WRITES_PER_SECOND
        )
        self._points_read_for_readiness: Handover[list[RecoveryPoint]] = Handover(
            POINTS_HANDOVER_SECONDS
        )
        self._jobs = JobWatch(
            self._read_running_jobs,
            self._read_job,
            vault_key=lambda vault: (vault.resource_group, vault.vault),
        )

    # --- reads -------------------------------------------------------------------------------

    @activity.defn
    @kept_alive
    def discover_machine(self, params: DiscoverMachineInput) -> DiscoveredMachine:
        vault = params.vault
        items = list(self._asr.replication_protected_items.list(vault.resource_group, vault.vault))
        matches = [i for i in items if i.name == params.machine]
        if not matches:
            matches = [i for i in items if i.properties.friendly_name == params.machine]
        if not matches:
            known = sorted(str(i.properties.friendly_name or i.name) for i in items)[:20]
            raise ApplicationError(
                f"vault {vault.vault} has no protected item or VM named {params.machine!r}; "
                f"known machines: {', '.join(known) or 'none'}",
                type=errors.MACHINE_NOT_FOUND,
                non_retryable=True,
            )
        if len(matches) > 1:
            raise ApplicationError(
                f"{params.machine!r} names {len(matches)} protected items in vault {vault.vault}; "
                "give the item name instead: " + ", ".join(str(m.name) for m in matches),
                type=errors.MACHINE_NOT_FOUND,
                non_retryable=True,
            )
        fabric = self._fabric(vault, _item_ref_from_id(str(matches[0].id)).fabric)
        return _describe_item(
            matches[0],
            fabric,
            params.recovery_resource_group,
            params.azure_vm_name,
            params.reprotect_to_azure,
        )

    @activity.defn
    @kept_alive
    def discover_recovery_plan(self, params: DiscoverPlanInput) -> DiscoveredPlan:
        vault = params.vault
        try:
            plan = self._asr.replication_recovery_plans.get(
                vault.resource_group, vault.vault, params.recovery_plan
            )
        except ResourceNotFoundError as err:
            known = sorted(
                str(p.name)
                for p in self._asr.replication_recovery_plans.list(
                    vault.resource_group, vault.vault
                )
            )
            raise ApplicationError(
                f"vault {vault.vault} has no recovery plan {params.recovery_plan!r}; "
                f"known plans: {', '.join(known) or 'none'}",
                type=errors.PLAN_NOT_FOUND,
                non_retryable=True,
            ) from err
        items = {
            str(i.id).lower(): i
            for i in self._asr.replication_protected_items.list(
                vault.resource_group,
                vault.vault,
                filter=f"RecoveryPlanName eq '{params.recovery_plan}'",
            )
        }
        fabrics: dict[str, Any] = {}
        boot_groups: list[list[DiscoveredMachine]] = []
        for group in plan.properties.groups or []:
            if _text(group.group_type) != "Boot":
                continue
            machines = []
            for member in group.replication_protected_items or []:
                item = items.get(str(member.id).lower())
                if item is None:
                    raise ApplicationError(
                        f"recovery plan {params.recovery_plan} names {member.id}, which is not a "
                        "protected item of the vault",
                        type=errors.MACHINE_NOT_FOUND,
                        non_retryable=True,
                    )
                ref = _item_ref_from_id(str(item.id))
                if ref.fabric not in fabrics:
                    fabrics[ref.fabric] = self._fabric(vault, ref.fabric)
                machines.append(
                    _describe_item(
                        item,
                        fabrics[ref.fabric],
                        params.recovery_resource_group,
                        None,
                        params.reprotect_to_azure,
                    )
                )
            if machines:
                boot_groups.append(machines)
        return DiscoveredPlan(name=params.recovery_plan, boot_groups=boot_groups)

    @activity.defn
    @kept_alive
    def read_asr_facts(self, params: ReadAsrFactsInput) -> AsrFacts:
        """ASR's view for the readiness rules: configuration server, master targets, vCenters,
        and each machine's state, OS, health and recovery points."""
        vault = params.vault
        fabric_names = sorted({m.item.fabric for m in params.machines}) or [params.fabric]
        fabric = self._fabric(vault, fabric_names[0])
        custom = getattr(fabric.properties, "custom_details", None)
        cs_name = str(getattr(custom, "host_name", None) or fabric.name)
        master_targets = []
        undiscovered: list[str] = []
        for mt in getattr(custom, "master_target_servers", None) or []:
            if mt.name == cs_name:
                continue  # the configuration server's own: only for re-protect to Azure
            for error in mt.validation_errors or []:
                if _text(error.error_code) == MT_HOST_NOT_DISCOVERED and error.entity_id:
                    undiscovered.append(str(error.entity_id))
            master_targets.append(
                MasterTargetFacts(
                    id=str(mt.id),
                    name=str(mt.name),
                    os_type=mt.os_type,
                    datastores=[str(d.symbolic_name) for d in mt.data_stores or []],
                    retention_volumes=[str(v.volume_name) for v in mt.retention_volumes or []],
                    healthy=not mt.health_errors,
                )
            )
        vcenters = [
            VCenterFacts(
                name=str(v.properties.friendly_name or v.name),
                connected=_text(v.properties.discovery_status) == "Connected"
                and not v.properties.health_errors,
                discovered_hosts=[str(x) for x in (v.name, v.properties.ip_address) if x],
            )
            for v in self._asr.replicationv_centers.list_by_replication_fabrics(
                vault.resource_group, vault.vault, fabric_names[0]
            )
        ]
        items = self._items_of(vault, params.machines, params.recovery_plan)
        machines = _in_parallel(
            lambda m: self._machine_facts(vault, m, items[m.item.name]), params.machines
        )
        run_as = [a.account_id for a in getattr(custom, "run_as_accounts", None) or []]
        return AsrFacts(
            configuration_server=_configuration_server_facts(fabric, custom, cs_name),
            master_targets=master_targets,
            vcenters=vcenters,
            undiscovered_hosts=undiscovered,
            machines=machines,
            failback_policy_id=self._failback_policy_id(vault),
            azure_process_server_id=self._azure_process_server(list(items.values()), custom),
            run_as_account_id=str(run_as[0]) if run_as else None,
        )

    def _items_of(
        self, vault: VaultRef, machines: list[DiscoveredMachine], recovery_plan: str | None
    ) -> dict[str, Any]:
        """Each machine's protected item by name: one list filtered by the recovery plan when
        there is one (100 GETs are 100 reads of ARM's read budget), a GET for any it missed."""
        listed: dict[str, Any] = {}
        if recovery_plan:
            for item in self._asr.replication_protected_items.list(
                vault.resource_group,
                vault.vault,
                filter=f"RecoveryPlanName eq '{_odata_string(recovery_plan)}'",
            ):
                listed[_item_ref_from_id(str(item.id)).name.lower()] = item
        missing = [m for m in machines if m.item.name.lower() not in listed]
        for machine, item in zip(
            missing, _in_parallel(lambda m: self._get_item(vault, m.item), missing), strict=True
        ):
            listed[machine.item.name.lower()] = item
        return {m.item.name: listed[m.item.name.lower()] for m in machines}

    def _azure_process_server(self, items: list[Any], custom: Any) -> str | None:
        """Replication to Azure ran through the on-premises process server the item names;
        failback data flows through a healthy one other than that: the one in Azure."""
        onprem = set()
        for item in items:
            details = _details(item)
            if _text(getattr(details, "instance_type", None)) == "InMageAzureV2":
                onprem.add(getattr(details, "process_server_id", None))
            elif getattr(details, "process_server_id", None):
                return str(details.process_server_id)  # already replicating back through it
        servers = getattr(custom, "process_servers", None) or []
        return _first(ps.id for ps in servers if ps.id not in onprem and _healthy(ps))

    def _machine_facts(
        self, vault: VaultRef, machine: DiscoveredMachine, item: Any
    ) -> MachineFacts:
        details = _details(item)
        kind = _instance_type(item)
        allowed = {_text(op) for op in item.properties.allowed_operations or []}
        state: MachineState = "other"
        if kind == "InMage" and _state(item) == "Protected":
            state = "replicating-back"
        elif kind == "InMageAzureV2" and "ReverseReplicate" in allowed:
            state = "needs-reprotect"
        os_details = getattr(details, "os_details", None)
        os_type = getattr(details, "os_type", None) or getattr(os_details, "os_type", None)
        os_version = (
            getattr(details, "os_version", None)
            or getattr(os_details, "o_s_version", None)
            or getattr(os_details, "product_type", None)
        )
        codes = {_text(e.error_code) for e in item.properties.health_errors or []}
        points = 0
        if state == "replicating-back":
            listed = self._recovery_points(vault, machine.item)
            self._points_read_for_readiness.keep(_points_key(vault, machine.item), listed)
            points = len(listed)
        return MachineFacts(
            item=machine.item.name,
            vm_name=machine.vm_name,
            os_type=os_type,
            os_version=os_version,
            discovery_type=_text(getattr(details, "discovery_type", None)) or "vCenter",
            replication_group=machine.replication_group,
            state=state,
            protection_state=_state(item) or None,
            replication_health=_text(item.properties.replication_health) or None,
            recovery_point_count=points,
            known_to_configuration_server=VM_NOT_IN_CS_DATABASE not in codes,
            master_target_id=getattr(details, "master_target_id", None)
            if kind == "InMage"
            else None,
        )

    def _failback_policy_id(self, vault: VaultRef) -> str | None:
        for policy in self._asr.replication_policies.list(vault.resource_group, vault.vault):
            details = getattr(policy.properties, "provider_specific_details", None)
            if _text(getattr(details, "instance_type", None)) == "InMage":
                return str(policy.id)
        return None

    @activity.defn
    @kept_alive
    def read_recovery_points(self, params: ReadRecoveryPointsInput) -> list[MachinePoints]:
        """Each machine's selectable points: those the readiness check listed moments ago on
        this worker (at most POINTS_HANDOVER_SECONDS), or a fresh list."""

        def points_of(machine: DiscoveredMachine) -> MachinePoints:
            listed = self._points_read_for_readiness.take(_points_key(params.vault, machine.item))
            if listed is None:
                listed = self._recovery_points(params.vault, machine.item)
            return MachinePoints(
                machine=machine.item.name,
                replication_group=machine.replication_group,
                points=selectable_points(listed),
            )

        return _in_parallel(points_of, params.machines)

    def _fabric(self, vault: VaultRef, fabric: str) -> Any:
        return self._asr.replication_fabrics.get(vault.resource_group, vault.vault, fabric)

    @activity.defn
    @kept_alive
    def select_recovery_point(self, params: SelectRecoveryPointInput) -> RecoveryPointChoice:
        points = self._recovery_points(params.vault, params.item)
        try:
            return select_latest_point(points)
        except NoRecoveryPointError as err:
            raise ApplicationError(
                f"{params.item.name}: {err}", type=errors.NO_RECOVERY_POINT, non_retryable=True
            ) from err

    def _recovery_points(self, vault: VaultRef, item: ProtectedItemRef) -> list[RecoveryPoint]:
        path = (
            f"{self._vault_path(vault)}/replicationFabrics/{quote(item.fabric, safe='')}"
            f"/replicationProtectionContainers/{quote(item.container, safe='')}"
            f"/replicationProtectedItems/{quote(item.name, safe='')}/recoveryPoints"
        )
        points = []
        for document in self._list_json(path):
            props = document.get("properties") or {}
            if not props.get("recoveryPointTime"):
                continue
            points.append(
                RecoveryPoint(
                    id=str(document.get("id")),
                    name=str(document.get("name")),
                    time=props["recoveryPointTime"],
                    type=str(props.get("recoveryPointType") or "Unknown"),
                    multi_vm_sync_point=_is_multi_vm_sync_point(
                        props.get("providerSpecificDetails")
                    ),
                )
            )
        return points

    @activity.defn
    @kept_alive
    def check_agent_registered(self, params: AgentCheckInput) -> AgentRegistration:
        item = self._get_item(params.vault, params.item)
        details = _details(item)
        if _instance_type(item) == "InMageAzureV2":
            # Re-protect to Azure already happened: the agent was there for it.
            return AgentRegistration(
                registered=True,
                last_heartbeat=getattr(details, "last_heartbeat", None),
                agent_version=getattr(details, "agent_version", None),
            )
        heartbeat = getattr(details, "last_heartbeat", None)
        agent = getattr(details, "agent_details", None)
        version = getattr(agent, "agent_version", None) if agent is not None else None
        registered = heartbeat is not None and heartbeat >= params.committed_at
        return AgentRegistration(
            registered=registered, last_heartbeat=heartbeat, agent_version=version
        )

    @activity.defn
    @kept_alive
    def read_azure_vm(self, params: AzureVmRef) -> AzureVmState:
        try:
            view = self._compute.virtual_machines.instance_view(params.resource_group, params.name)
        except ResourceNotFoundError:
            return AzureVmState(
                resource_group=params.resource_group, name=params.name, exists=False
            )
        power = None
        for status in view.statuses or []:
            code = str(status.code or "")
            if code.startswith("PowerState/"):
                power = code.split("/", 1)[1]
        return AzureVmState(
            resource_group=params.resource_group, name=params.name, exists=True, power_state=power
        )

    # --- writes ------------------------------------------------------------------------------

    @activity.defn
    async def fail_over(self, params: FailoverInput) -> OperationResult:
        body = asr_models.UnplannedFailoverInput(
            properties=asr_models.UnplannedFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                source_site_operations="NotRequired",
                provider_specific_details=asr_models.InMageUnplannedFailoverInput(
                    recovery_point_type="Custom", recovery_point_id=params.recovery_point_id
                ),
            )
        )
        ops = self._asr.replication_protected_items
        spec = _OperationSpec(
            name=AsrOperation.UNPLANNED_FAILOVER,
            job_scenarios=frozenset({"UnplannedFailover"}),
            allowed_operation=frozenset({"UnplannedFailover"}),
            # A machine failed over to Azure and not yet reprotected (InMageAzureV2) shows
            # UnplannedFailoverCommitted too: only an InMage item has failed back.
            already_done=lambda item: (
                _instance_type(item) == "InMage"
                and _state(item).startswith("UnplannedFailoverCommit")
            ),
            send=lambda *ids, **kw: ops.begin_unplanned_failover(*ids, body, **kw),
        )
        return await self._run_operation(spec, params)

    @activity.defn
    async def commit_failover(self, params: ItemOperationInput) -> OperationResult:
        ops = self._asr.replication_protected_items
        spec = _OperationSpec(
            name=AsrOperation.FAILOVER_COMMIT,
            job_scenarios=frozenset({"CommitFailover", "FailoverCommit"}),
            allowed_operation=frozenset({"Commit", "FailoverCommit"}),
            # Committed after failback (InMage), or even re-protected to Azure since; an item
            # still failed over to Azure shows UnplannedFailoverCommitted too, but as InMageAzureV2.
            already_done=lambda item: (
                (_instance_type(item) == "InMage" and _state(item) == "UnplannedFailoverCommitted")
                or (_instance_type(item) == "InMageAzureV2" and _state(item) == "Protected")
            ),
            send=lambda *ids, **kw: ops.begin_failover_commit(*ids, **kw),
        )
        return await self._run_operation(spec, params)

    @activity.defn
    async def reprotect_to_azure(self, params: ReprotectToAzureInput) -> OperationResult:
        options = params.options
        body = asr_models.ReverseReplicationInput(
            properties=asr_models.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=asr_models.InMageAzureV2ReprotectInput(
                    master_target_id=options.master_target_id,
                    process_server_id=options.process_server_id,
                    run_as_account_id=options.run_as_account_id,
                    policy_id=options.policy_id,
                ),
            )
        )
        ops = self._asr.replication_protected_items
        spec = _OperationSpec(
            name=AsrOperation.REPROTECT_TO_AZURE,
            job_scenarios=frozenset({"SwitchReplicationGroupProtection", "Reprotect"}),
            allowed_operation=frozenset({"SwitchProtection", "ReverseReplicate", "Reprotect"}),
            already_done=lambda item: (
                _instance_type(item) == "InMageAzureV2" and _state(item) == "Protected"
            ),
            send=lambda *ids, **kw: ops.begin_reprotect(*ids, body, **kw),
            agent_may_be_missing=True,
        )
        return await self._run_operation(spec, params)

    @activity.defn
    async def reprotect_to_onprem(self, params: ReprotectToOnPremInput) -> OperationResult:
        options = params.options
        body = asr_models.ReverseReplicationInput(
            properties=asr_models.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=asr_models.InMageReprotectInput(
                    master_target_id=options.master_target_id,
                    process_server_id=options.process_server_id,
                    retention_drive=options.retention_drive,
                    run_as_account_id=options.run_as_account_id,
                    datastore_name=options.datastore_name,
                    profile_id=options.profile_id,
                ),
            )
        )
        ops = self._asr.replication_protected_items
        spec = _OperationSpec(
            name=AsrOperation.REPROTECT_TO_ONPREM,
            job_scenarios=frozenset({"SwitchReplicationGroupProtection", "Reprotect"}),
            allowed_operation=frozenset({"ReverseReplicate"}),
            already_done=lambda item: _instance_type(item) == "InMage",
            send=lambda *ids, **kw: ops.begin_reprotect(*ids, body, **kw),
        )
        return await self._run_operation(spec, params)

    @activity.defn
    def wait_until_replicating(self, params: ReplicationWaitInput) -> ReplicationWaitResult:
        """R12 and R13 after a reprotect: every item Protected, health Normal, and at least one
        recovery point. Heartbeats while it looks; gives up after the timeout, naming the items."""
        started = time.monotonic()
        while True:
            states = [self._replication_state(params.vault, item) for item in params.items]
            waited = time.monotonic() - started
            if all(s.healthy for s in states):
                return ReplicationWaitResult(items=states, waited_seconds=waited)
            if waited >= params.timeout_seconds:
                pending = ", ".join(
                    f"{s.item} ({s.replication_health}, {s.recovery_points} points)"
                    for s in states
                    if not s.healthy
                )
                raise ApplicationError(
                    f"replication back to on-premises did not become healthy within "
                    f"{params.timeout_seconds / 60:.0f} min: {pending}",
                    type=errors.REPLICATION_NOT_HEALTHY,
                    non_retryable=True,
                )
            activity.heartbeat(", ".join(s.item for s in states if not s.healthy))
            time.sleep(params.poll_interval_seconds)

    def _replication_state(self, vault: VaultRef, ref: ProtectedItemRef) -> ReplicationState:
        item = self._get_item(vault, ref)
        protected = _instance_type(item) == "InMage" and _state(item) == "Protected"
        health = _text(item.properties.replication_health) or None
        points = len(self._recovery_points(vault, ref)) if protected else 0
        return ReplicationState(
            item=ref.name,
            protection_state=_state(item) or None,
            replication_health=health,
            recovery_points=points,
            healthy=protected and health == "Normal" and points > 0,
        )

    # --- the idempotent operation ------------------------------------------------------------

    async def _run_operation(
        self, spec: _OperationSpec, params: ItemOperationInput
    ) -> OperationResult:
        """Find or send the operation's job on a thread (short blocking calls), then await the
        job here on the event loop: a job of minutes holds no thread, so a wave of hundreds of
        failovers is not queued behind a thread pool."""
        started = await self._blocking(self._find_job, spec, params)
        if isinstance(started, OperationResult):
            return started
        if started is None:
            await self._within_write_budget(spec, params)
            started = await self._blocking(self._send, spec, params, self._heartbeat_from_threads())
        job_name, resumed = started
        return await self._await_job(spec, params, job_name, resumed)

    async def _within_write_budget(self, spec: _OperationSpec, params: ItemOperationInput) -> None:
        """Wait for a token of the worker's ARM write budget; heartbeat (with no job name) while
        waiting, so a long queue after a plan's approval does not look like a dead activity."""
        delay = self._write_budget.reserve(time.monotonic())
        if delay <= 0:
            return
        activity.logger.info(
            "%s of %s: waiting %.1f s for ARM's write budget", spec.name, params.item.name, delay
        )
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            activity.heartbeat()
            await asyncio.sleep(min(left, WRITE_BUDGET_HEARTBEAT_SECONDS))

    async def _blocking(self, function: Callable[..., _T], *args: Any) -> _T:
        return await in_activity_threads(self._executor, function, *args)

    @staticmethod
    def _heartbeat_from_threads() -> Callable[[str], None]:
        """activity.heartbeat of an async activity must run on the event loop."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()

        def heartbeat(detail: str) -> None:
            loop.call_soon_threadsafe(activity.heartbeat, detail, context=context)

        return heartbeat

    def _find_job(
        self, spec: _OperationSpec, params: ItemOperationInput
    ) -> tuple[str, bool] | OperationResult | None:
        """The job to await and whether an earlier attempt had sent it; the result when the
        item shows the operation already done; None when it is to be sent."""
        info = activity.info()
        previous = info.heartbeat_details
        if previous:
            job_name = str(previous[0])
            activity.logger.info("%s: resuming job %s from the last attempt", spec.name, job_name)
            return job_name, True

        # Only a retry can have sent the job unseen (a crash or a lost answer before the first
        # heartbeat); the first attempt skips the vault's job list, which grows with every
        # operation of the run.
        if info.attempt > 1:
            job = self._find_own_job(spec, params)
            if job is not None:
                activity.logger.info(
                    "%s: job %s was already sent; not sending again", spec.name, job.name
                )
                return str(job.name), True

        item = self._get_item(params.vault, params.item)
        if spec.already_done(item):
            return OperationResult(
                operation=spec.name,
                job_id=None,
                state="AlreadyDone",
                started_at=None,
                ended_at=None,
                resumed=True,
            )
        in_flight = item.properties.current_scenario
        if in_flight is not None and in_flight.scenario_name in spec.job_scenarios:
            name = _job_name(in_flight.job_id)
            if name:
                return name, True
        allowed = set(item.properties.allowed_operations or [])
        if not allowed & spec.allowed_operation:
            raise ApplicationError(
                f"{spec.name} is not allowed on {params.item.name} now: it is "
                f"{_state(item) or 'in an unknown state'} and allows only "
                f"{', '.join(sorted(allowed)) or 'nothing'}",
                type=errors.OPERATION_NOT_ALLOWED,
                non_retryable=True,
            )
        return None

    def _send(
        self, spec: _OperationSpec, params: ItemOperationInput, heartbeat: Callable[[str], None]
    ) -> tuple[str, bool]:
        captured: dict[str, str] = {}

        def remember_job(response: Any) -> None:
            # The 202's Azure-AsyncOperation URL ends in the job name: record it before polling
            # so that a crash from here on resumes this job instead of sending again.
            headers = response.http_response.headers
            url = headers.get("Azure-AsyncOperation") or headers.get("Location") or ""
            if "job" not in captured and url:
                name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
                captured["job"] = name
                heartbeat(name)

        ids = (
            params.vault.resource_group,
            params.vault.vault,
            params.item.fabric,
            params.item.container,
            params.item.name,
        )
        activity.logger.info("%s: sending for %s", spec.name, params.item.name)
        try:
            # Sent once, never re-sent by the SDK: if the answer is lost, ASR may have started
            # the job, and only a look at the vault can tell. No LRO poller either: the job is
            # awaited by its name, the same way a later attempt resumes it.
            spec.send(*ids, polling=False, retry_total=0, raw_response_hook=remember_job)
        except HttpResponseError as err:
            raise self._refused(spec, params, err) from err
        except (ServiceRequestError, ServiceResponseError):
            time.sleep(params.poll_interval_seconds)
            job = self._find_own_job(spec, params)
            if job is not None:
                activity.logger.warning(
                    "%s: the answer was lost but ASR started job %s", spec.name, job.name
                )
                return str(job.name), True
            raise  # nothing started: the next attempt looks again before it sends
        job_name = captured.get("job")
        if not job_name:
            job = self._find_own_job(spec, params)
            if job is None:
                raise RuntimeError(f"{spec.name} was accepted but its job cannot be found")
            job_name = str(job.name)
        return job_name, False

    async def _await_job(
        self, spec: _OperationSpec, params: ItemOperationInput, job_name: str, resumed: bool
    ) -> OperationResult:
        # A beat a quarter of the heartbeat timeout apart is enough to stay alive, and each one
        # is converted by the worker (with 150 jobs running, beats at every 1 s poll of the lab
        # took 8% of its time: bench/RESULTS.md).
        beat_every = max(params.poll_interval_seconds, beat_interval() or 0.0)
        document = await self._jobs.wait(
            params.vault,
            job_name,
            since=params.not_before - CLOCK_SKEW,
            poll_interval=params.poll_interval_seconds,
            heartbeat=lambda: activity.heartbeat(job_name),
            heartbeat_every=beat_every,
        )
        state = job_state(document)
        job: Any = asr_models.Job(document)
        if state != "Succeeded":
            code, message = _job_error(job)
            if spec.agent_may_be_missing and _is_agent_missing(code, message):
                raise _agent_missing(params, job_name, message)
            raise ApplicationError(
                f"ASR job {job_name} ({spec.name} of {params.item.name}) ended {state}: "
                f"{code} {message}",
                job_name,
                type=errors.ASR_JOB_FAILED,
                non_retryable=True,
            )
        return OperationResult(
            operation=spec.name,
            job_id=job_name,
            state=state,
            started_at=job.properties.start_time,
            ended_at=job.properties.end_time,
            resumed=resumed,
        )

    async def _read_job(self, vault: VaultRef, job_name: str) -> dict[str, Any]:
        return await self._blocking(self._job_document, vault, job_name)

    async def _read_running_jobs(
        self, vault: VaultRef, since: datetime
    ) -> dict[str, dict[str, Any]]:
        return await self._blocking(self._running_jobs, vault, since)

    def _running_jobs(self, vault: VaultRef, since: datetime) -> dict[str, dict[str, Any]]:
        """The vault's jobs in progress that started since `since`, as ASR's JSON by name.
        Raw JSON for the same reason as `_job_document`: 150 `Job` models a second would cost
        more than the GETs this list replaces."""
        return {
            str(document["name"]): document
            for document in self._list_json(
                f"{self._vault_path(vault)}/replicationJobs",
                {"$filter": running_jobs_filter(since)},
            )
            if document.get("name")
        }

    def _vault_path(self, vault: VaultRef) -> str:
        return (
            f"/subscriptions/{quote(self._asr._config.subscription_id, safe='')}/resourceGroups/"
            f"{quote(vault.resource_group, safe='')}/providers/Microsoft.RecoveryServices/"
            f"vaults/{quote(vault.vault, safe='')}"
        )

    def _list_json(self, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every page of an ASR list as JSON documents. The SDK's list operations decode each
        element into its model (~0.6 ms each here), which lists read at scale cannot afford."""
        documents: list[dict[str, Any]] = []
        url: str | None = path
        params: dict[str, str] | None = query or {}
        while url:
            page = self._get_json(url, params)
            documents.extend(d for d in page.get("value") or [] if isinstance(d, dict))
            # nextLink is a whole URL with its query, api-version included.
            url, params = page.get("nextLink") or None, None
        return documents

    def _get_json(self, url: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        """One GET of ASR as JSON, through the client's own pipeline (credentials, retries) and
        with the SDK's errors (`query` None: the URL carries its whole query, as a nextLink)."""
        params = None if query is None else {"api-version": self._asr._config.api_version, **query}
        response = self._asr.send_request(HttpRequest("GET", url, params=params))
        if response.status_code != 200:
            map_error(status_code=response.status_code, response=response, error_map=_GET_ERRORS)
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        document = response.json()
        return document if isinstance(document, dict) else {}

    def _job_document(self, vault: VaultRef, job_name: str) -> dict[str, Any]:
        """The job as ASR's JSON: a poll needs only its state, and decoding the whole `Job`
        model on every poll of hundreds of running jobs was an eighth of the worker's CPU at
        1,000 machines (bench/RESULTS.md). The final document becomes a `Job` once."""
        return self._get_json(
            f"{self._vault_path(vault)}/replicationJobs/{quote(job_name, safe='')}", {}
        )

    def _find_own_job(self, spec: _OperationSpec, params: ItemOperationInput) -> Any | None:
        vault = params.vault
        # Reprotects in both directions share a scenario name: the previous job's end on ASR's
        # clock tells this operation's job from the earlier one on the same item.
        since = params.after_asr_time or params.not_before - CLOCK_SKEW
        candidates = []
        for job in self._asr.replication_jobs.list(vault.resource_group, vault.vault):
            props = job.properties
            if props is None or props.scenario_name not in spec.job_scenarios:
                continue
            if job.name in params.exclude_job_ids:
                continue
            # ASR names the item by ARM id or by bare name here, depending on the job.
            target = str(props.target_object_id or "").rstrip("/").rsplit("/", 1)[-1]
            if params.item.name not in (target, props.target_object_name):
                continue
            if props.start_time is None or props.start_time < since:
                continue
            candidates.append(job)
        return max(candidates, key=lambda j: j.properties.start_time, default=None)

    def _get_item(self, vault: VaultRef, item: ProtectedItemRef) -> Any:
        try:
            return self._asr.replication_protected_items.get(
                vault.resource_group, vault.vault, item.fabric, item.container, item.name
            )
        except ResourceNotFoundError as err:
            raise ApplicationError(
                f"protected item {item.name} is not in vault {vault.vault} any more",
                type=errors.MACHINE_NOT_FOUND,
                non_retryable=True,
            ) from err

    def _refused(
        self, spec: _OperationSpec, params: ItemOperationInput, err: HttpResponseError
    ) -> Exception:
        code, message = _arm_error(err)
        status = err.status_code or 0
        if 400 <= status < 500 and status != 429:
            return ApplicationError(
                f"ASR refused {spec.name} of {params.item.name} ({status} {code}): {message}",
                type=errors.ASR_REQUEST_REFUSED,
                non_retryable=True,
            )
        # Throttled or a server error, with an answer: Temporal retries (a write is sent with no
        # SDK retry), when ARM's Retry-After says rather than after the retry policy's growing
        # backoff; the next attempt looks for a job before it sends anything.
        return ApplicationError(
            f"ASR answered {spec.name} of {params.item.name} with {status} {code}: {message}",
            type=errors.ASR_BUSY,
            next_retry_delay=_retry_after(err),
        )


def _retry_after(err: HttpResponseError) -> timedelta | None:
    """ARM's Retry-After in seconds, kept within 1 s .. 5 min; None when it sent none."""
    response = getattr(err, "response", None)
    text = response.headers.get("Retry-After") if response is not None else None
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None  # an HTTP date: the retry policy's own backoff will do
    return timedelta(seconds=min(max(seconds, 1.0), 300.0))


def _in_parallel(read: Callable[[_In], _T], inputs: Sequence[_In]) -> list[_T]:
    """Independent reads of a plan's machines, a few at a time, in the inputs' order: one after
    the other, 100 machines' round trips add up to seconds before the first failover."""
    if len(inputs) <= 1:
        return [read(i) for i in inputs]
    with ThreadPoolExecutor(max_workers=min(READ_PARALLELISM, len(inputs))) as pool:
        return list(pool.map(read, inputs))


def _points_key(vault: VaultRef, item: ProtectedItemRef) -> tuple[str, ...]:
    return tuple(
        part.lower()
        for part in (vault.resource_group, vault.vault, item.fabric, item.container, item.name)
    )


def _odata_string(value: str) -> str:
    """A value inside an OData string literal: a quote is written twice."""
    return value.replace("'", "''")


def _is_multi_vm_sync_point(details: Any) -> bool:
    # InMage points carry the flag as a string, "true" or "false".
    value = details.get("isMultiVmSyncPoint") if isinstance(details, dict) else None
    return str(value).lower() == "true"


def _describe_item(
    item: Any,
    fabric: Any,
    recovery_resource_group: str,
    azure_vm_name: str | None,
    reprotect: ReprotectToAzureOptions,
) -> DiscoveredMachine:
    ref = _item_ref_from_id(str(item.id))
    vm_name = str(item.properties.friendly_name or ref.name)
    details = _details(item)
    os_details = getattr(details, "os_details", None)
    return DiscoveredMachine(
        item=ref,
        vm_name=vm_name,
        replication_group=getattr(details, "multi_vm_group_name", None) or None,
        os_type=getattr(os_details, "os_type", None),
        protection_state=item.properties.protection_state,
        allowed_operations=list(item.properties.allowed_operations or []),
        azure_vm=AzureVmRef(resource_group=recovery_resource_group, name=azure_vm_name or vm_name),
        reprotect_to_azure=resolve_reprotect_to_azure(reprotect, fabric, details),
    )


def _configuration_server_facts(fabric: Any, custom: Any, name: str) -> ConfigServerFacts:
    heartbeat = getattr(custom, "last_heartbeat", None)
    problems = [
        str(e.error_message or e.error_code)
        for e in fabric.properties.health_error_details or []
        if _text(e.error_code) in CS_DOWN_CODES or _text(e.error_level) == "Error"
    ]
    stale = heartbeat is not None and datetime.now(UTC) - heartbeat > CS_HEARTBEAT_LIMIT
    stopped = _text(getattr(custom, "cs_service_status", None)).lower() == "stopped"
    critical = _text(fabric.properties.health) == "Critical"
    if stale:
        problems.append(f"last heartbeat {heartbeat:%Y-%m-%d %H:%M} UTC")
    if stopped:
        problems.append("its service is stopped")
    return ConfigServerFacts(
        name=name,
        reachable=not (stale or stopped or critical),
        last_heartbeat=heartbeat,
        problem="; ".join(problems) or None,
    )


def _job_error(job: Any) -> tuple[str, str]:
    for error in job.properties.errors or []:
        service = error.service_error_details
        if service is not None:
            return str(service.code or ""), str(service.message or "")
        provider = error.provider_error_details
        if provider is not None:
            return str(provider.error_code or ""), str(provider.error_message or "")
    return "", str(job.properties.state_description or "no error details")


def _agent_missing(params: ItemOperationInput, job_name: str, message: str) -> ApplicationError:
    return ApplicationError(
        f"re-protect of {params.item.name} refused, the mobility agent is not registered yet: "
        f"{message}",
        job_name,
        type=errors.AGENT_NOT_REGISTERED,
        non_retryable=True,
    )


def resolve_reprotect_to_azure(
    options: ReprotectToAzureOptions, fabric: Any, item_details: Any
) -> ResolvedReprotectToAzure:
    """Fill in what the operator did not choose from the configuration server's inventory.

    The failback used the Azure process server and the on-premises master target; re-protect to
    Azure uses the other ones: the on-premises process server and the configuration server's
    own master target.
    """
    custom = getattr(fabric.properties, "custom_details", None)
    process_servers = list(getattr(custom, "process_servers", None) or [])
    master_targets = list(getattr(custom, "master_target_servers", None) or [])
    run_as = list(getattr(custom, "run_as_accounts", None) or [])
    used_ps = getattr(item_details, "process_server_id", None)
    used_mt = getattr(item_details, "master_target_id", None)

    # The on-premises process server is the one forward replication used: still named by an
    # item in Azure (InMageAzureV2); for an item replicating back (InMage), the item names the
    # Azure one, so it is any other healthy one.
    if _text(getattr(item_details, "instance_type", None)) == "InMageAzureV2" and used_ps:
        onprem_ps: str | None = str(used_ps)
    else:
        onprem_ps = _first(ps.id for ps in process_servers if ps.id != used_ps and _healthy(ps))
    process_server_id = options.process_server_id or onprem_ps
    # Re-protect to Azure goes through the configuration server's own master target (the one
    # named after the configuration server), not a failback master target on-premises.
    cs_name = getattr(custom, "host_name", None)
    master_target_id = options.master_target_id or _first(
        [mt.id for mt in master_targets if cs_name and mt.name == cs_name]
        + [mt.id for mt in master_targets if mt.id != used_mt]
    )
    run_as_account_id = options.run_as_account_id or _first(a.account_id for a in run_as)
    known_ps = {ps.id for ps in process_servers}
    problems = []
    if process_server_id is None:
        problems.append("no healthy on-premises process server on the configuration server")
    elif process_server_id not in known_ps:
        problems.append(f"process server {process_server_id} is not on the configuration server")
    if master_target_id is None:
        problems.append("no master target for re-protect to Azure on the configuration server")
    if not options.policy_id:
        problems.append(
            "no replication policy for re-protect to Azure: set FAILBACK_AZURE_REPROTECT_POLICY_ID "
            "or pass --policy"
        )
    if problems:
        raise ApplicationError(
            "cannot plan the re-protect to Azure: " + "; ".join(problems),
            type=errors.CONFIGURATION_INVALID,
            non_retryable=True,
        )
    assert process_server_id and master_target_id and options.policy_id
    return ResolvedReprotectToAzure(
        process_server_id=process_server_id,
        master_target_id=master_target_id,
        policy_id=options.policy_id,
        run_as_account_id=run_as_account_id or "",
    )


def _healthy(process_server: Any) -> bool:
    health = getattr(process_server, "health", None)
    return health in (None, "Normal", "None")


def _first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v), None)
