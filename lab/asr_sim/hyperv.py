"""Hyper-V to Azure (HyperVReplicaAzure) in the simulator: the item's states and details, the
site's fabric and its recovery services providers (the hosts), and the failback's operations,
modelled on Microsoft's recorded run (lab/asr_wire/recordings/hyperv-*.json; reference
asr-modernized-hyperv.md §3). What no recording shows is marked GUESS here and in
lab/ASR_SIMULATOR.md.

The on-premises side is the lab's Hyper-V host stand-in (lab/hyperv_host), which the failback
drives as ASR's provider on the host would: it checks the VM is off, creates it at an alternate
location when asked, and starts it at the end of the failover.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lab.asr_sim.arm import bad_request, iso
from lab.asr_sim.hyperv_effects import HostEffectError
from lab.asr_sim.operations import Operation
from lab.asr_sim.topology import stable_guid

if TYPE_CHECKING:
    from lab.asr_sim.state import ItemState, SimulatorState, _JobPlan

PROVIDER = "HyperVReplicaAzure"
FAILBACK_INPUT = "HyperVReplicaAzureFailback"
# GUESS: codes of the lab's own job failures (no recording shows a failed Hyper-V failback).
VM_RUNNING_CODE = "99050"
VM_NOT_FOUND_CODE = "99051"
HOST_REFUSED_CODE = "99052"

# (protectionState, description, allowedOperations, activeLocation) per phase, as recorded
# (NET:REC PlannedFailover.json, CommitFailover.json, Reprotect.json; PS:REC TestReprotect.json).
_STATES: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "FailedOverToAzure": (
        "UnplannedFailoverCommitted",
        "Failover committed",
        ("CompleteMigration", "DisableProtection", "Failback"),
        "Recovery",
    ),
    "FailoverCommitPending": (
        "FinalizeRestorePending",
        "Finalize failback pending",
        ("DisableProtection", "FinalizeFailback"),
        "Primary",
    ),
    "FailoverCommitted": (
        "RestoreFinalized",
        "Failback finalized",
        ("ReverseReplicate", "DisableProtection"),
        "Primary",
    ),
    "ReplicatingToAzure": (
        "Protected",
        "Protected",
        ("PlannedFailover", "UnplannedFailover", "DisableProtection", "TestFailover"),
        "Primary",
    ),
}
INITIAL_REPLICATION = ("InitialReplicationInProgress", "Initial replication is in progress")


def protection_state(item: ItemState, now: dt.datetime) -> str:
    if _initial_replication(item, now):
        return INITIAL_REPLICATION[0]
    return _STATES[item.phase.value][0]


def protection_state_description(item: ItemState, now: dt.datetime) -> str:
    if _initial_replication(item, now):
        return INITIAL_REPLICATION[1]
    return _STATES[item.phase.value][1]


def allowed_operations(item: ItemState, now: dt.datetime) -> list[str]:
    if _initial_replication(item, now):
        return ["DisableProtection"]
    return list(_STATES[item.phase.value][2])


# A recovery plan names its operations in a plan's words, not its items': recorded after a
# Hyper-V plan's failback (its items offering FinalizeFailback), the plan offered these four
# (hyperv-RPFailback.json). Before the failback (its items offering Failback) the plan's words
# were not recorded: GUESS, PlannedFailover, the operation the plan's failback is sent as.
PLAN_OPERATIONS = {
    "Failback": ("PlannedFailover",),
    "FinalizeFailback": ("PlannedFailover", "UnplannedFailover", "TestFailover", "Commit"),
}


def plan_allowed_operations(allowed_by_every_member: list[str]) -> list[str]:
    """A Hyper-V plan's allowedOperations, from what every one of its items allows."""
    words: list[str] = []
    for op in allowed_by_every_member:
        words += [w for w in PLAN_OPERATIONS.get(op, ()) if w not in words]
    return words


def active_location(item: ItemState) -> str:
    return _STATES[item.phase.value][3]


def _initial_replication(item: ItemState, now: dt.datetime) -> bool:
    until = item.hyperv_initial_replication_until
    return item.phase.value == "ReplicatingToAzure" and until is not None and now < until


# --- the site: hosts as recovery services providers ------------------------------------------


def provider_id(state: SimulatorState, host: str) -> str:
    return (
        f"{state.ids.fabric_id}/replicationRecoveryServicesProviders/"
        f"{stable_guid('hyperv-provider', host.lower())}"
    )


def item_host(state: SimulatorState, item: ItemState) -> str:
    site = state.scenario.hyperv
    assert site is not None
    return item.spec.hyperv_host or site.hosts[0].name


def providers(state: SimulatorState, now: dt.datetime) -> list[dict[str, Any]]:
    """The fabric's replicationRecoveryServicesProviders, one per host (or the VMM server), in
    the spec example's shape."""
    site = state.scenario.hyperv
    assert site is not None
    fabric_type = "VMM" if site.vmm else "HyperVSite"
    servers = (
        [(site.vmm, True, 30.0)]
        if site.vmm
        else [(h.name, h.connected, h.heartbeat_age_seconds) for h in site.hosts]
    )
    return [
        {
            "id": provider_id(state, name),
            "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/"
            "replicationRecoveryServicesProviders",
            "name": stable_guid("hyperv-provider", name.lower()),
            "properties": {
                "fabricType": fabric_type,
                "friendlyName": name,
                "providerVersion": "5.1.8095.0",
                "serverVersion": "3.2.7510.0",
                "providerVersionState": "Latest",
                "fabricFriendlyName": state.scenario.azure.fabric,
                "lastHeartBeat": iso(now - dt.timedelta(seconds=age)),
                "connectionStatus": "Connected" if connected else "NotConnected",
                "protectedItemCount": sum(
                    1 for i in state.items.values() if item_host(state, i) == name
                ),
                "allowedScenarios": ["Refresh"],
            },
        }
        for name, connected, age in servers
    ]


def fabric_details(state: SimulatorState) -> dict[str, Any]:
    site = state.scenario.hyperv
    assert site is not None
    if site.vmm:
        return {"instanceType": "VMM"}
    return {
        "instanceType": "HyperVSite",
        "hyperVHosts": [
            {
                "id": stable_guid("hyperv-host", h.name.lower()),
                "name": h.name,
                "marsAgentVersion": "2.0.9249.0",
            }
            for h in site.hosts
        ],
    }


# --- the item ---------------------------------------------------------------------------------


def item_properties(state: SimulatorState, item: ItemState) -> dict[str, Any]:
    """What a Hyper-V item's properties add to (or change in) the common ones."""
    site = state.scenario.hyperv
    assert site is not None
    host = site.vmm or item_host(state, item)
    return {
        "protectedItemType": "HyperVVirtualMachine",
        "recoveryServicesProviderId": provider_id(state, host),
        "primaryFabricProvider": "VMM" if site.vmm else "SingleHostHyperVFabric",
        "activeLocation": active_location(item),
    }


def item_details(state: SimulatorState, item: ItemState, now: dt.datetime) -> dict[str, Any]:
    """HyperVReplicaAzureReplicationDetails, as recorded for VMforSDK."""
    spec = item.spec
    vhd_id = stable_guid("hyperv-vhd", spec.name)
    committed = item.phase.value in ("FailoverCommitted", "ReplicatingToAzure")
    account = state.ids.log_storage_account.replace("logs", "replica")
    return {
        "instanceType": PROVIDER,
        "azureVmDiskDetails": [
            {
                "vhdType": "OperatingSystem",
                "vhdId": vhd_id,
                "diskId": f"{item.vm_id.upper()}_{vhd_id.upper()}_0_0",
                "vhdName": spec.vm_name,
                "maxSizeMB": str(sum(spec.disk_sizes_gb) * 1024),
                # Recorded: null once the failback is committed (the Azure copies are gone).
                "targetDiskLocation": None
                if committed
                else f"https://replica.blob.core.windows.net/asr/{vhd_id}.vhd",
                "targetDiskName": f"{spec.vm_name}_vhdx",
                "lunId": "0",
                "diskEncryptionSetId": None,
            }
        ],
        "recoveryAzureVmName": spec.azure_vm_name,
        "recoveryAzureVMSize": "Standard_D2s_v3",
        "recoveryAzureStorageAccount": account,
        "recoveryAzureLogStorageAccountId": None,
        "lastReplicatedTime": iso(now - dt.timedelta(minutes=5)),
        "vmId": item.vm_id,
        "vmProtectionState": protection_state(item, now),
        "vmProtectionStateDescription": protection_state_description(item, now),
        "initialReplicationDetails": {
            "initialReplicationType": "InitialReplication",
            "initialReplicationProgressPercentage": "100"
            if not _initial_replication(item, now)
            else "40",
        },
        "vmNics": [
            {
                "nicId": stable_guid("hyperv-nic", f"{spec.name}/{switch}"),
                "vMNetworkName": switch,
                "recoveryVMNetworkId": f"/subscriptions/{state.scenario.azure.subscription_id}/"
                "resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-dr",
                "selectionType": "SelectedByUser",
                "reuseExistingNic": False,
                "tfoReuseExistingNic": False,
            }
            for switch in spec.hyperv_switches
        ],
        "oSDetails": {"osType": spec.os_type, "oSVersion": spec.os_version},
        "useManagedDisks": "true" if spec.managed_disks else "false",
        "lastRecoveryPointReceived": iso(now - dt.timedelta(minutes=5)),
    }


# --- the operations ---------------------------------------------------------------------------


def plan_operation(
    state: SimulatorState, item: ItemState, operation: Operation, body: Any
) -> _JobPlan:
    if operation is Operation.PLANNED_FAILOVER:
        return _failback(state, item, body)
    if operation is Operation.FAILOVER_COMMIT:
        # "Finalize failback": the commit deletes the Azure VM and its disks (documentation).
        return state.commit_plan(item, "HyperVFinalizeFailback")
    if operation is Operation.REPROTECT:
        return _reverse_replicate(state, item, body)
    raise bad_request(f"Operation {operation.value} is not offered for a Hyper-V item.")


def plan_failover_item_body(plan: str, body: Any) -> dict[str, Any]:
    """RecoveryPlanPlannedFailoverInput for Hyper-V: failoverDirection RecoveryToPrimary, one
    HyperVReplicaAzureFailback input with both options required (reference 3.4); as the item
    failover body each member gets. GUESS: at plan level no alternate host can be named, so a
    member's VM that is gone is created on the host it came from."""
    from lab.asr_sim.state import _object, _string

    props = _object(body, "properties", "the request body")
    direction = _string(props, "failoverDirection", "properties")
    if direction != "RecoveryToPrimary":
        raise bad_request(
            f"properties.failoverDirection is '{direction}'; failing recovery plan '{plan}' back "
            "to on-premises is 'RecoveryToPrimary'.",
            target="properties.failoverDirection",
        )
    inputs = [
        d
        for d in props.get("providerSpecificDetails") or []
        if isinstance(d, dict) and str(d.get("instanceType", "")) == FAILBACK_INPUT
    ]
    if len(inputs) != 1:
        raise bad_request(
            f"properties.providerSpecificDetails must hold one input with instanceType "
            f"'{FAILBACK_INPUT}' for recovery plan '{plan}'.",
            target="properties.providerSpecificDetails",
        )
    where = "properties.providerSpecificDetails[0]"
    for required in ("dataSyncOption", "recoveryVmCreationOption"):
        _string(inputs[0], required, where)
    sync, create, _ = failback_options(inputs[0], where)
    return {
        "properties": {
            "providerSpecificDetails": {
                "instanceType": FAILBACK_INPUT,
                "dataSyncOption": sync,
                "recoveryVmCreationOption": create,
            }
        }
    }


def _details(body: Any, instance_type: str, item: ItemState) -> dict[str, Any]:
    from lab.asr_sim.state import _object

    props = _object(body, "properties", "the request body")
    details = _object(props, "providerSpecificDetails", "properties")
    kind = str(details.get("instanceType", ""))
    if kind != instance_type:
        raise bad_request(
            f"properties.providerSpecificDetails.instanceType is '{kind}'; protected item "
            f"'{item.name}' replicates with {PROVIDER}, whose input here is '{instance_type}'.",
            target="properties.providerSpecificDetails.instanceType",
        )
    return details


def failback_options(details: dict[str, Any], where: str) -> tuple[str, str, str | None]:
    """dataSyncOption, recoveryVmCreationOption and the alternate provider; the defaults are
    Azure PowerShell's (ForSynchronization, NoAction)."""
    sync = str(details.get("dataSyncOption") or "ForSynchronization")
    if sync not in ("ForSynchronization", "ForDownTime"):
        raise bad_request(
            f"{where}.dataSyncOption is '{sync}'; use 'ForSynchronization' or 'ForDownTime'.",
            target=f"{where}.dataSyncOption",
        )
    create = str(details.get("recoveryVmCreationOption") or "NoAction")
    if create not in ("NoAction", "CreateVmIfNotFound"):
        raise bad_request(
            f"{where}.recoveryVmCreationOption is '{create}'; use 'NoAction' or "
            "'CreateVmIfNotFound'.",
            target=f"{where}.recoveryVmCreationOption",
        )
    return sync, create, details.get("providerIdForAlternateRecovery")


def _failback(state: SimulatorState, item: ItemState, body: Any) -> _JobPlan:
    """HyperVReplicaAzureFailbackProviderInput (recorded body): ForSynchronization shuts the
    Azure VM down at once and downloads; ForDownTime synchronizes while it runs, then suspends
    the job until it is resumed (replicationJobs/{job}/resume), shuts it down and sends the last
    changes. At the end the on-premises VM is started (created first at an alternate location
    when CreateVmIfNotFound asks)."""
    from lab.asr_sim.state import JobFailure, Phase, _JobPlan

    where = "properties.providerSpecificDetails"
    sync, create, alternate = failback_options(_details(body, FAILBACK_INPUT, item), where)
    site = state.scenario.hyperv
    assert site is not None
    vm_name = item.spec.vm_name
    host = item_host(state, item)
    target_host = host
    if create == "CreateVmIfNotFound" and alternate:
        match = [
            h.name for h in site.hosts if provider_id(state, h.name).lower() == alternate.lower()
        ]
        if not match:
            raise bad_request(
                f"{where}.providerIdForAlternateRecovery '{alternate}' is not a recovery services "
                f"provider of fabric '{state.scenario.azure.fabric}'.",
                target=f"{where}.providerIdForAlternateRecovery",
            )
        target_host = match[0]

    async def prerequisites() -> None:
        try:
            found = await state.hyperv_effects.find_vm(vm_name)
        except HostEffectError as err:
            raise JobFailure(
                HOST_REFUSED_CODE,
                f"The Hyper-V host of '{vm_name}' could not be reached: {err}",
                possible_causes="The host is down or its provider cannot reach Site Recovery.",
                recommended_action="Bring the host back, then retry the failback.",
            ) from err
        if found is None and create != "CreateVmIfNotFound":
            raise JobFailure(
                VM_NOT_FOUND_CODE,
                f"The virtual machine '{vm_name}' was not found on the on-premises host.",
                possible_causes="The virtual machine was deleted on-premises.",
                recommended_action="Fail back with 'Create on-premises virtual machine if it "
                "does not exist' (CreateVmIfNotFound).",
            )
        if found is not None and found.get("state") != "Off":
            raise JobFailure(
                VM_RUNNING_CODE,
                f"The on-premises virtual machine '{vm_name}' is {found.get('state')}.",
                possible_causes="The virtual machine was turned on during the failback.",
                recommended_action="Turn the virtual machine off, then retry the failback.",
            )
        item.failover_started_at = state.clock()

    async def synchronize_first() -> None:
        if sync != "ForDownTime":
            return
        job = item.current_job
        assert job is not None
        item.hyperv_synchronized_at = state.clock()
        # ASR suspends the job: the Azure VM still runs until the job is resumed.
        job.state = "Suspended"
        await job.resumed.wait()
        job.state = "InProgress"

    async def shut_down_azure_vm() -> None:
        vm = item.azure_vm
        if vm.deleted_at is None and vm.power_state != "deallocated":
            vm.power_state = "deallocated"
            vm.deallocated_at = state.clock()

    async def final_sync() -> None:
        if create == "CreateVmIfNotFound":
            try:
                await state.hyperv_effects.create_vm(
                    vm_name, target_host, list(item.spec.hyperv_switches)
                )
            except HostEffectError as err:
                raise JobFailure(
                    HOST_REFUSED_CODE,
                    f"The virtual machine '{vm_name}' could not be created on {target_host}: {err}",
                    possible_causes="The host lacks a virtual switch of the same name.",
                    recommended_action="Create the switch on the host, then retry.",
                ) from err

    async def start_onprem_vm() -> None:
        try:
            await state.hyperv_effects.start_vm(vm_name)
        except HostEffectError as err:
            raise JobFailure(
                HOST_REFUSED_CODE,
                f"Failed to start the on-premises virtual machine '{vm_name}': {err}",
                possible_causes="The host refused to start it.",
                recommended_action="Check the virtual machine on the host, then retry.",
            ) from err

    def on_success(now: dt.datetime) -> None:
        item.phase = Phase.FAILOVER_COMMIT_PENDING
        item.failover_completed_at = now
        item.last_planned_failover_status = "Succeeded"

    return _JobPlan(
        effects={
            "HyperVFailbackPrerequisitesCheck": prerequisites,
            "HyperVSyncBeforeFailover": synchronize_first,
            "HyperVShutdownAzureVm": shut_down_azure_vm,
            "HyperVSyncData": final_sync,
            "HyperVStartVmOnPrimary": start_onprem_vm,
        },
        on_success=on_success,
    )


def _reverse_replicate(state: SimulatorState, item: ItemState, body: Any) -> _JobPlan:
    """HyperVReplicaAzureReprotectInput, direction PrimaryToRecovery (Azure PowerShell): only
    the changes since the Azure VM was turned off are replicated; the item then shows its initial
    replication (recorded: InitialReplicationInProgress) until it is Protected."""
    from lab.asr_sim.state import Phase, _JobPlan, _object, _string

    props = _object(body, "properties", "the request body")
    direction = _string(props, "failoverDirection", "properties")
    if direction != "PrimaryToRecovery":
        raise bad_request(
            f"properties.failoverDirection is '{direction}'; reverse replication of a failed-back "
            "Hyper-V machine replicates it to Azure again: 'PrimaryToRecovery'.",
            target="properties.failoverDirection",
        )
    details = _details(body, PROVIDER, item)
    vm_id = details.get("hvHostVmId")
    if vm_id is not None and str(vm_id).lower() != item.vm_id.lower():
        raise bad_request(
            f"properties.providerSpecificDetails.hvHostVmId '{vm_id}' is not the id of "
            f"'{item.spec.vm_name}' on its host.",
            target="properties.providerSpecificDetails.hvHostVmId",
        )

    def on_success(now: dt.datetime) -> None:
        item.phase = Phase.REPLICATING_TO_AZURE
        item.hyperv_initial_replication_until = now + dt.timedelta(
            seconds=item.spec.initial_replication_seconds
        )

    return _JobPlan(effects={}, on_success=on_success)
