"""Modernized VMware/physical, as the simulator speaks it.

Replication appliances instead of a configuration server and master targets; an item replicates
to Azure with InMageRcm and, once reprotected toward on-premises, back with InMageRcmFailback,
under the same item id. Its failback is a planned failover, undone by failoverCancel until it is
committed. Every state, allowed operation, request field, job scenario and task name here is
modelled on Microsoft's recorded runs (lab/asr_wire/recordings/modernized-*.json, summarised in
asr-modernized-hyperv.md section 2); where no recording shows a behaviour, the comment says GUESS.
The failback walk itself (Phase) is the classic one: only the words on the wire differ.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.asr_sim.arm import bad_request, iso
from lab.asr_sim.effects import VCenterEffectError
from lab.asr_sim.operations import Operation
from lab.asr_sim.topology import stable_guid
from lab.scenario import ApplianceSpec

if TYPE_CHECKING:
    from lab.asr_sim.state import ItemState, SimulatorState, _JobPlan

TO_AZURE = "InMageRcm"
TO_ONPREM = "InMageRcmFailback"
# A replication appliance takes up to 60 disks (ASR's documentation); a reprotect that would
# pass it is refused.
APPLIANCE_DISK_LIMIT = 60
# An appliance whose heartbeat is older than this is not seen as running (the classic process
# servers use the same 15 minutes).
APPLIANCE_HEARTBEAT_LIMIT_SECONDS = 900.0

APPLIANCE_UNHEALTHY_CODE = "99040"
DATASTORE_NOT_REACHABLE_CODE = "99041"
APPLIANCE_DISK_LIMIT_CODE = "99042"
AGENT_NOT_REGISTERED_CODE = "99043"


# (protectionState, description, allowedOperations) per failback phase, as recorded for the VM
# Rcm-W2K19-152, except where marked.
_STATES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "FailedOverToAzure": (
        "UnplannedFailoverCommitted",
        "Failover committed",
        ("CompleteMigration", "DisableProtection", "SwitchProtection"),
    ),
    "ReplicatingToOnPrem": ("Protected", "Protected", ("PlannedFailover", "DisableProtection")),
    "FailoverCommitPending": (
        "CommitPendingStatesBegin",
        "Planned failover finished",
        ("CompleteMigration", "Commit", "DisableProtection", "SwitchProtection", "CancelFailover"),
    ),
    # GUESS: no recording shows an InMageRcmFailback item after its commit. The state's name is a
    # switch (azure.wire.modernized_committed_state); the client reads allowedOperations only.
    "FailoverCommitted": (
        "",
        "Failover committed",
        ("CompleteMigration", "DisableProtection", "SwitchProtection"),
    ),
    "ReplicatingToAzure": (
        "Protected",
        "Protected",
        ("UnplannedFailover", "DisableProtection", "TestFailover"),
    ),
}


def protection_state(item: ItemState, committed_state: str) -> str:
    return _STATES[item.phase.value][0] or committed_state


def protection_state_description(item: ItemState) -> str:
    return _STATES[item.phase.value][1]


def allowed_operations(item: ItemState) -> list[str]:
    return list(_STATES[item.phase.value][2])


def provider(item: ItemState) -> str:
    """InMageRcmFailback from the reprotect toward on-premises until the reprotect back."""
    phase = item.phase.value
    return TO_AZURE if phase in ("FailedOverToAzure", "ReplicatingToAzure") else TO_ONPREM


# --- the appliances ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Appliance:
    spec: ApplianceSpec
    id: str
    datastores: tuple[str, ...]

    def running(self) -> bool:
        return (
            self.spec.health != "Critical"
            and self.spec.heartbeat_age_seconds <= APPLIANCE_HEARTBEAT_LIMIT_SECONDS
        )


def appliances(state: SimulatorState) -> list[Appliance]:
    return [
        Appliance(
            spec=spec,
            id=stable_guid("appliance", spec.name),
            datastores=tuple(state.scenario.appliance_datastores(spec)),
        )
        for spec in state.scenario.azure.appliances
    ]


def _vcenter_name(state: SimulatorState) -> str:
    default = state.fabric.default_vcenter
    return default.name if default is not None else "vcenter-01"


def appliance(state: SimulatorState, appliance_id: str) -> Appliance | None:
    return next((a for a in appliances(state) if a.id.lower() == appliance_id.lower()), None)


def fabric_details(state: SimulatorState, now: dt.datetime) -> dict[str, Any]:
    """InMageRcmFabricSpecificDetails as recorded: each appliance is a process server, an RCM
    proxy, a push installer, a replication agent and a reprotect agent, under one id."""
    ids = state.ids
    site = (
        f"/subscriptions/{ids.subscription}/resourceGroups/{state.scenario.azure.resource_group}"
        "/providers/Microsoft.OffAzure/VMwareSites/lab-vmwaresite"
    )
    servers: list[dict[str, Any]] = []
    proxies: list[dict[str, Any]] = []
    components: list[dict[str, Any]] = []
    agents: list[dict[str, Any]] = []
    vcenter = _vcenter_name(state)
    for one in appliances(state):
        heartbeat = iso(now - dt.timedelta(seconds=one.spec.heartbeat_age_seconds))
        health = one.spec.health
        common = {"id": one.id, "name": one.spec.name, "fqdn": one.spec.name}
        servers.append(
            {
                **common,
                "version": "9.44.6071.1",
                "lastHeartbeatUtc": heartbeat,
                "health": health,
                "healthErrors": [],
                "historicHealth": health,
            }
        )
        proxies.append(
            {
                **common,
                "clientAuthenticationType": "Certificate",
                "version": "1.30.8056.17787",
                "lastHeartbeatUtc": heartbeat,
                "health": health,
                "healthErrors": [],
            }
        )
        component: dict[str, Any] = {
            **common,
            "version": "9.44.6071.1",
            "lastHeartbeatUtc": heartbeat,
            "health": health,
            "healthErrors": [],
        }
        components.append(component)
        agents.append(
            {
                **component,
                "protectedItemCount": one.spec.attached_disks,
                "accessibleDatastores": list(one.datastores),
                "vcenterId": f"{site}/vcenters/{vcenter}",
                "lastDiscoveryInUtc": heartbeat,
            }
        )
    return {
        "instanceType": "InMageRcm",
        "vmwareSiteId": site,
        "physicalSiteId": site.replace("VMwareSites/lab-vmwaresite", "ServerSites/lab-site"),
        "serviceEndpoint": "https://lab-srs1.hypervrecoverymanager.windowsazure.com",
        "processServers": servers,
        "rcmProxies": proxies,
        "pushInstallers": [dict(c) for c in components],
        "replicationAgents": [dict(c) for c in components],
        "reprotectAgents": agents,
        "marsAgents": [],
        "dras": [],
        "agentDetails": [],
    }


# --- the item's provider details ----------------------------------------------------------------


def item_details(state: SimulatorState, item: ItemState, now: dt.datetime) -> dict[str, Any]:
    if provider(item) == TO_AZURE:
        return _rcm_details(state, item, now)
    return _rcm_failback_details(state, item, now)


def _rcm_details(state: SimulatorState, item: ItemState, now: dt.datetime) -> dict[str, Any]:
    spec = item.spec
    protection = item.azure_protection
    servers = appliances(state)
    process_server = (
        protection.request.process_server_id
        if protection is not None
        else (servers[0].id if servers else None)
    )
    return {
        "instanceType": TO_AZURE,
        "internalIdentifier": stable_guid("internal", spec.name),
        "fabricDiscoveryMachineId": f"lab/machines/{item.vm_id}",
        "multiVmGroupName": spec.replication_group,
        "discoveryType": spec.discovery_type,
        "processServerId": process_server,
        "processorCoreCount": 2,
        "allocatedMemoryInMB": 4096.0,
        "processServerName": next((a.spec.name for a in servers if a.id == process_server), None),
        "runAsAccountId": protection.request.run_as_account_id if protection else None,
        "osType": spec.os_type,
        "firmwareType": "BIOS",
        "targetVmName": spec.azure_vm_name,
        "licenseType": "NoLicenseType",
        "initialReplicationProgressPercentage": 100 if protection is not None else None,
        "resyncRequired": "false",
        "resyncState": "None",
        # Recorded on the item failed over to Azure: the Azure VM's agent registered (the
        # failover was from on-premises); after the failback the on-premises VM's agent must
        # register again before the reprotect back to Azure (asr-modernized-hyperv.md 2.1).
        "isAgentRegistrationSuccessfulAfterFailover": True,
        "agentUpgradeState": "None",
        "lastAgentUpgradeType": "None",
        # The storage account replication to Azure keeps its logs in.
        "storageAccountId": state.ids.log_storage_account,
        "protectedDisks": [
            {
                "diskId": f"disk-{index}",
                "isOSDisk": "true" if index == 0 else "false",
                "capacityInBytes": size * 1024**3,
            }
            for index, size in enumerate(spec.disk_sizes_gb)
        ],
        "vmNics": [],
    }


def _rcm_failback_details(
    state: SimulatorState, item: ItemState, now: dt.datetime
) -> dict[str, Any]:
    spec = item.spec
    protection = item.onprem_protection
    agent = appliance(state, protection.request.master_target_id) if protection else None
    ids = state.ids
    progress, processed = initial_replication_progress(item, now)
    # After the failback, the booted VM's agent reports again only once it has registered.
    heartbeat_known = item.committed_at is None or item.agent_registered(now)
    return {
        "instanceType": TO_ONPREM,
        "internalIdentifier": stable_guid("internal", spec.name),
        "azureVirtualMachineId": ids.compute_vm(spec.azure_vm_name),
        "multiVmGroupName": spec.replication_group,
        "reprotectAgentId": agent.id if agent else None,
        "reprotectAgentName": agent.spec.name if agent else None,
        "osType": spec.os_type,
        "logStorageAccountId": protection.request.log_storage_account_id if protection else None,
        "targetvCenterId": f"lab/vcenters/{_vcenter_name(state)}",
        "targetDataStoreName": protection.request.datastore_name if protection else None,
        "targetVmName": spec.vm_name,
        "initialReplicationProgressPercentage": progress,
        "initialReplicationProcessedBytes": processed,
        "initialReplicationTransferredBytes": processed,
        "initialReplicationProgressHealth": "None" if progress in (None, 100) else "InProgress",
        "resyncRequired": "false",
        "resyncState": "None",
        "protectedDisks": [
            {
                "diskId": f"disk-{index}",
                "isOSDisk": "true" if index == 0 else "false",
                "capacityInBytes": size * 1024**3,
                "isInitialReplicationComplete": "false" if progress not in (None, 100) else "true",
            }
            for index, size in enumerate(spec.disk_sizes_gb)
        ],
        "mobilityAgentDetails": {
            "version": "9.44.6071.1",
            "lastHeartbeatUtc": iso(now) if heartbeat_known else None,
            "reasonsBlockingUpgrade": ["UnsupportedProtectionScenario"],
            "isUpgradeable": "false",
        },
        "vmNics": [],
        "lastPlannedFailoverStartTime": iso(item.failover_started_at),
        "lastPlannedFailoverStatus": item.last_planned_failover_status,
        "discoveredVmDetails": {
            "datastores": state.vm_datastores(item),
            "powerStatus": "ON" if item.phase.value != "ReplicatingToOnPrem" else "OFF",
            "isDeleted": False,
        },
        "lastUsedPolicyId": ids.policy(state.scenario.azure.azure_policy_id),
        "lastUsedPolicyFriendlyName": state.scenario.azure.azure_policy_id,
        # After the failback commit: the on-premises VM's agent registering again (the flag the
        # reprotect back to Azure waits for).
        "isAgentRegistrationSuccessfulAfterFailover": (
            item.agent_registered(now) if item.committed_at is not None else False
        ),
    }


def initial_replication_progress(
    item: ItemState, now: dt.datetime
) -> tuple[int | None, int | None]:
    """Percent and bytes of the reprotect's initial replication, growing linearly (GUESS: the
    recorded item had finished it)."""
    protection = item.onprem_protection
    if protection is None or item.phase.value != "ReplicatingToOnPrem":
        return None, None
    total = sum(item.spec.disk_sizes_gb) * 1024**3
    span = (protection.healthy_at - protection.protected_at).total_seconds()
    done = 1.0 if span <= 0 else min(1.0, (now - protection.protected_at).total_seconds() / span)
    return int(done * 100), int(done * total)


# --- the operations -----------------------------------------------------------------------------


def plan_operation(
    state: SimulatorState, item: ItemState, operation: Operation, body: Any
) -> _JobPlan:
    if operation is Operation.REPROTECT:
        if provider(item) == TO_AZURE:
            return _reprotect_to_onprem(state, item, body)
        return _reprotect_to_azure(state, item, body)
    if operation is Operation.PLANNED_FAILOVER:
        return _planned_failover(state, item, body)
    if operation is Operation.FAILOVER_CANCEL:
        return _cancel(state, item)
    assert operation is Operation.FAILOVER_COMMIT
    return state.commit_plan(item, "VmCommit")


def plan_failover_item_body(plan: str, body: Any) -> dict[str, Any]:
    """RecoveryPlanPlannedFailoverInput for modernized: failoverDirection RecoveryToPrimary
    (required), one InMageRcmFailback input with recoveryPointType and useMultiVmSyncPoint
    (asr-modernized-hyperv.md 2.4); as the item failover body each member gets. GUESS: what
    useMultiVmSyncPoint changes for a group is not modelled (the lab's crash-consistent point
    is made at the failover for every member alike)."""
    from lab.asr_sim.state import _object, _string

    props = _object(body, "properties", "the request body")
    direction = _string(props, "failoverDirection", "properties")
    if direction.lower() != "recoverytoprimary":
        raise bad_request(
            f"properties.failoverDirection is '{direction}'; failing recovery plan '{plan}' back "
            "to on-premises is 'RecoveryToPrimary'.",
            target="properties.failoverDirection",
        )
    inputs = [
        d
        for d in props.get("providerSpecificDetails") or []
        if isinstance(d, dict) and str(d.get("instanceType", "")).lower() == TO_ONPREM.lower()
    ]
    if len(inputs) != 1:
        raise bad_request(
            f"properties.providerSpecificDetails must hold one input with instanceType "
            f"'{TO_ONPREM}' for recovery plan '{plan}'.",
            target="properties.providerSpecificDetails",
        )
    sync = inputs[0].get("useMultiVmSyncPoint")
    if sync is not None and str(sync) not in ("True", "False"):
        raise bad_request(
            f"useMultiVmSyncPoint is '{sync}'; use 'True' or 'False'.",
            target="properties.providerSpecificDetails[0].useMultiVmSyncPoint",
        )
    kind = _string(inputs[0], "recoveryPointType", "properties.providerSpecificDetails[0]")
    return {
        "properties": {
            "providerSpecificDetails": {"instanceType": TO_ONPREM, "recoveryPointType": kind}
        }
    }


def _details(body: Any, instance_type: str, item: ItemState) -> dict[str, Any]:
    from lab.asr_sim.state import _object, _string

    props = _object(body, "properties", "the request body")
    details = _object(props, "providerSpecificDetails", "properties")
    where = "properties.providerSpecificDetails"
    given = _string(details, "instanceType", where)
    if given.lower() != instance_type.lower():
        raise bad_request(
            f"{where}.instanceType is '{given}', but protected item '{item.name}' "
            f"({item.spec.vm_name}) needs '{instance_type}' for this operation now.",
            target=f"{where}.instanceType",
        )
    return details


def _reprotect_to_onprem(state: SimulatorState, item: ItemState, body: Any) -> _JobPlan:
    """InMageRcmReprotectInput: reprotectAgentId, datastoreName, logStorageAccountId required,
    policyId optional (the container's failback policy). Commits a pending failover on the way
    and powers the on-premises VM off; an absent VM is created (alternate location)."""
    from lab.asr_sim.state import (
        JobFailure,
        OnPremProtection,
        OnPremProtectionRequest,
        Phase,
        _JobPlan,
        _string,
    )

    details = _details(body, TO_AZURE, item)
    where = "properties.providerSpecificDetails"
    agent_id = _string(details, "reprotectAgentId", where)
    agent = appliance(state, agent_id)
    if agent is None:
        known = [a.id for a in appliances(state)]
        raise bad_request(
            f"{where}.reprotectAgentId '{agent_id}' is not a reprotect agent of this vault's "
            f"appliances; the fabric lists {known}.",
            target=f"{where}.reprotectAgentId",
        )
    datastore = _string(details, "datastoreName", where)
    log_account = _string(details, "logStorageAccountId", where)
    policy = details.get("policyId")
    if (
        policy is not None
        and str(policy).lower() != state.ids.policy(state.failback_policy_name).lower()
    ):
        raise bad_request(
            f"{where}.policyId '{policy}' is not the failback (InMageRcmFailback) policy mapped "
            f"on container '{state.scenario.azure.protection_container}'.",
            target=f"{where}.policyId",
        )
    spec = item.spec
    vm_name = spec.vm_name
    alternate = spec.discovery_type == "Physical" or not state.vm_exists(vm_name)
    request = OnPremProtectionRequest(
        master_target_id=agent.id,
        process_server_id=agent.id,
        retention_drive="",
        run_as_account_id=None,
        datastore_name=datastore,
        profile_id=str(policy or state.ids.policy(state.failback_policy_name)),
        alternate_location=alternate,
        log_storage_account_id=log_account,
    )
    host = agent.spec.host or (state.scenario.vmware.hosts[0].name)

    async def preflight() -> None:
        if not agent.running():
            raise JobFailure(
                APPLIANCE_UNHEALTHY_CODE,
                f"Reprotect of '{vm_name}' failed: the replication appliance "
                f"'{agent.spec.name}' is not healthy or has not sent a heartbeat for "
                f"{int(agent.spec.heartbeat_age_seconds)} s.",
                possible_causes="The appliance is shut down or its services are stopped.",
                recommended_action="Bring the appliance back, or reprotect with another one.",
            )
        if datastore not in agent.datastores:
            raise JobFailure(
                DATASTORE_NOT_REACHABLE_CODE,
                f"Reprotect of '{vm_name}' failed: datastore '{datastore}' is not accessible by "
                f"the appliance '{agent.spec.name}' (it reaches {list(agent.datastores)}).",
                possible_causes="The appliance's ESXi host does not mount the datastore.",
                recommended_action="Choose a datastore the appliance can access.",
            )
        disks = len(spec.disk_sizes_gb)
        if agent.spec.attached_disks + disks > APPLIANCE_DISK_LIMIT:
            raise JobFailure(
                APPLIANCE_DISK_LIMIT_CODE,
                f"Reprotect of '{vm_name}' failed: the appliance '{agent.spec.name}' has "
                f"{agent.spec.attached_disks} disks attached and can take {APPLIANCE_DISK_LIMIT}.",
                possible_causes="An appliance holds up to 60 disks during failback.",
                recommended_action="Use another appliance for failback.",
            )
        state.require_connected_vcenter("Reprotect", item, host)

    async def commit_pending() -> None:
        # Recorded: the reprotect commits a failover to Azure still pending commit.
        return None

    async def protect() -> None:
        try:
            if alternate:
                await state.effects.create_vm(
                    vm_name, host, datastore, spec.os_type, spec.disk_sizes_gb
                )
            else:
                # ASR's documentation: the on-premises VM is turned off during reprotection.
                await state.effects.power_off(vm_name)
        except VCenterEffectError as err:
            raise JobFailure(
                "78052",
                f"Protection of '{vm_name}' could not be completed: {err}",
                possible_causes="vCenter refused the operation.",
                recommended_action="Check the virtual machine and the datastore in vCenter, "
                "then retry the reprotect.",
            ) from err

    def on_success(now: dt.datetime) -> None:
        seconds = spec.full_copy_seconds if alternate else spec.initial_replication_seconds
        item.phase = Phase.REPLICATING_TO_ONPREM
        item.onprem_protection = OnPremProtection(
            request=request, protected_at=now, healthy_at=now + dt.timedelta(seconds=seconds)
        )

    return _JobPlan(
        effects={
            "SwitchReplicationGroupProtectionPreflightTask": preflight,
            "VmCommitFailover": commit_pending,
            "ProtectReplicaTask": protect,
        },
        on_success=on_success,
    )


def _planned_failover(state: SimulatorState, item: ItemState, body: Any) -> _JobPlan:
    """InMageRcmFailbackPlannedFailoverProviderInput: recoveryPointType CrashConsistent or
    ApplicationConsistent (no point id, no failoverDirection: recorded). A crash-consistent point
    is made at the failover, after the Azure VM is shut down (no data lost); an
    application-consistent failover takes the newest such point."""
    from lab.asr_sim.state import JobFailure, Phase, _JobPlan, _string

    details = _details(body, TO_ONPREM, item)
    where = "properties.providerSpecificDetails"
    kind = _string(details, "recoveryPointType", where)
    if kind not in ("CrashConsistent", "ApplicationConsistent"):
        raise bad_request(
            f"{where}.recoveryPointType is '{kind}'; use 'CrashConsistent' or "
            "'ApplicationConsistent'.",
            target=f"{where}.recoveryPointType",
        )
    points = item.visible_recovery_points(state.clock())
    if not points:
        raise bad_request(f"Protected item '{item.name}' has no recovery point.")
    if kind == "ApplicationConsistent" and not any(
        p.type == "ApplicationConsistent" for p in points
    ):
        raise bad_request(
            f"Protected item '{item.name}' has no application-consistent recovery point; fail "
            "it back to a crash-consistent one."
        )
    vm_name = item.spec.vm_name

    async def prepare() -> None:
        item.failover_started_at = state.clock()
        item.last_planned_failover_status = "Unknown"

    async def shut_down_azure_vm() -> None:
        vm = item.azure_vm
        if vm.deleted_at is None and vm.power_state != "deallocated":
            vm.power_state = "deallocated"
            vm.deallocated_at = state.clock()

    async def start_onprem_vm() -> None:
        try:
            await state.effects.power_on(vm_name)
        except VCenterEffectError as err:
            raise JobFailure(
                "8038",
                f"Failed to bring up the on-premises virtual machine '{vm_name}': {err}",
                possible_causes="The virtual machine could not be found or powered on.",
                recommended_action="Check the virtual machine in vCenter, then retry.",
            ) from err

    def on_success(now: dt.datetime) -> None:
        current = item.visible_recovery_points(now)
        chosen = (
            current[0]
            if kind == "CrashConsistent"
            else next(p for p in current if p.type == "ApplicationConsistent")
        )
        item.phase = Phase.FAILOVER_COMMIT_PENDING
        item.failover_point = chosen
        item.failover_completed_at = now
        item.last_planned_failover_status = "Succeeded"

    return _JobPlan(
        effects={
            "VmPrepareForFailover": prepare,
            "VmFailover": shut_down_azure_vm,
            "VmFoStartVmOnSecondary": start_onprem_vm,
        },
        on_success=on_success,
    )


def _cancel(state: SimulatorState, item: ItemState) -> _JobPlan:
    """Undo the failback before commit: the on-premises VM off, the Azure VM on again,
    replication toward on-premises resumed (ASR's documentation)."""
    from lab.asr_sim.state import JobFailure, Phase, _JobPlan

    vm_name = item.spec.vm_name

    async def recover() -> None:
        try:
            await state.effects.power_off(vm_name)
        except VCenterEffectError as err:
            raise JobFailure(
                "99044",
                f"Cancel failover of '{vm_name}' could not power the on-premises VM off: {err}",
                possible_causes="vCenter refused the operation.",
                recommended_action="Retry the cancel; do not disable replication.",
            ) from err

    async def start_azure_vm() -> None:
        vm = item.azure_vm
        if vm.deleted_at is None:
            vm.power_state = "running"
            vm.deallocated_at = None

    def on_success(now: dt.datetime) -> None:
        item.phase = Phase.REPLICATING_TO_ONPREM
        item.failover_point = None
        item.last_planned_failover_status = "Cancelled"

    return _JobPlan(
        effects={"CancelFailoverRecovery": recover, "StartVmOnPrimary": start_azure_vm},
        on_success=on_success,
    )


def _reprotect_to_azure(state: SimulatorState, item: ItemState, body: Any) -> _JobPlan:
    """InMageRcmFailbackReprotectInput: processServerId and policyId required, runAsAccountId
    optional (recorded). Commits a pending failback on the way; the on-premises VM's agent must
    have registered again (isAgentRegistrationSuccessfulAfterFailover)."""
    from lab.asr_sim.state import (
        AzureProtection,
        AzureProtectionRequest,
        JobFailure,
        Phase,
        _JobPlan,
        _string,
    )

    details = _details(body, TO_ONPREM, item)
    where = "properties.providerSpecificDetails"
    server_id = _string(details, "processServerId", where)
    server = appliance(state, server_id)
    if server is None:
        raise bad_request(
            f"{where}.processServerId '{server_id}' is not a process server of this vault's "
            f"appliances; the fabric lists {[a.id for a in appliances(state)]}.",
            target=f"{where}.processServerId",
        )
    policy = _string(details, "policyId", where)
    forward = state.scenario.azure.azure_policy_id
    if policy.lower() not in (forward.lower(), state.ids.policy(forward).lower()):
        raise bad_request(
            f"{where}.policyId '{policy}' is not the replication (InMageRcm) policy mapped on "
            f"container '{state.scenario.azure.protection_container}'.",
            target=f"{where}.policyId",
        )
    request = AzureProtectionRequest(
        master_target_id="",
        process_server_id=server.id,
        run_as_account_id=details.get("runAsAccountId"),
        policy_id=state.ids.policy(forward),
    )
    vm_name = item.spec.vm_name

    async def preflight() -> None:
        if not server.running():
            raise JobFailure(
                APPLIANCE_UNHEALTHY_CODE,
                f"Reprotect of '{vm_name}' failed: the replication appliance "
                f"'{server.spec.name}' is not healthy.",
                possible_causes="The appliance is shut down or its services are stopped.",
                recommended_action="Bring the appliance back, or reprotect with another one.",
            )
        if not item.agent_registered(state.clock()):
            raise JobFailure(
                state.wire.agent_not_registered_code,
                f"Reprotect of '{vm_name}' failed: the mobility agent has not registered "
                "with Site Recovery since the failback yet.",
                possible_causes="The agent registers by itself after the failback.",
                recommended_action="Wait until the item's agent registration succeeds, then "
                "retry the reprotect.",
            )

    async def commit_pending() -> None:
        if item.azure_vm.deleted_at is None:
            item.azure_vm.deleted_at = state.clock()
        if item.committed_at is None:
            item.committed_at = state.clock()

    def on_success(now: dt.datetime) -> None:
        item.phase = Phase.REPLICATING_TO_AZURE
        item.azure_protection = AzureProtection(request=request, protected_at=now)

    return _JobPlan(
        effects={
            "SwitchReplicationGroupProtectionPreflightTask": preflight,
            "VmCommitFailover": commit_pending,
        },
        on_success=on_success,
    )
