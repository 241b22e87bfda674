"""ASR's answers (SDK models and raw JSON) translated into domain facts, in this one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError

from domain import errors
from domain.architectures import (
    Architecture,
    ArchitectureName,
    ItemView,
    UnknownArchitectureError,
    architecture_of,
)
from domain.errors import FailbackError
from domain.jobs import JobFact, is_replication_group
from domain.models import (
    AzureVmRef,
    DiscoveredMachine,
    HyperVReverseReplication,
    ProtectedItemRef,
    RecoveryPoint,
    ReprotectToAzureOptions,
    ResolvedReprotectToAzure,
)
from domain.placement import (
    FabricInventory,
    ItemPlacement,
    MasterTargetFact,
    ProcessServerFact,
    choose_reprotect_to_azure,
    choose_reprotect_to_azure_modernized,
)
from domain.readiness import ApplianceFacts, ConfigServerFacts, HyperVProviderFacts

# ASR's error codes are numeric and mostly unpublished: nothing here is keyed on a code except
# those Microsoft's documents name (lab/ASR_SIMULATOR.md, "Wire truth"). 95226: the
# configuration server cannot be reached (troubleshooting docs).
CS_DOWN_CODES = {"95226"}
# The configuration server reports every few minutes; half an hour of silence means it is down.
CS_HEARTBEAT_LIMIT = timedelta(minutes=30)


def text(value: Any) -> str:
    """The wire value of a string or an SDK enum (whose str() is 'Class.MEMBER')."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def state(item: Any) -> str:
    return text(item.properties.protection_state)


def details(item: Any) -> Any:
    return item.properties.provider_specific_details


def instance_type(item: Any) -> str:
    return text(getattr(details(item), "instance_type", None))


def item_view(item: Any) -> ItemView:
    """What the architectures decide on, from an SDK item."""
    return ItemView(
        instance_type=instance_type(item),
        protection_state=state(item),
        allowed_operations=frozenset(text(o) for o in item.properties.allowed_operations or []),
    )


def architecture_of_item(item: Any, name: str) -> Architecture:
    try:
        return architecture_of(instance_type(item))
    except UnknownArchitectureError as err:
        raise FailbackError(f"{name}: {err}", errors.UNSUPPORTED_ARCHITECTURE) from err


def job_name(job_id: str | None) -> str | None:
    """ASR gives job ARM ids in some places and bare names in others."""
    if not job_id:
        return None
    return job_id.rstrip("/").rsplit("/", 1)[-1]


def item_ref_from_id(item_id: str) -> ProtectedItemRef:
    parts = item_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        fabric = parts[lowered.index("replicationfabrics") + 1]
        container = parts[lowered.index("replicationprotectioncontainers") + 1]
        name = parts[lowered.index("replicationprotecteditems") + 1]
    except (ValueError, IndexError) as err:
        raise FailbackError(
            f"cannot read fabric and container from protected item id {item_id}",
            errors.MACHINE_NOT_FOUND,
        ) from err
    return ProtectedItemRef(fabric=fabric, container=container, name=name)


def arm_error(err: HttpResponseError) -> tuple[str, str]:
    code = getattr(err.error, "code", None) or str(err.status_code or "")
    message = getattr(err.error, "message", None) or err.message or str(err)
    return str(code), str(message)


def is_agent_missing(code: str, message: str) -> bool:
    """Microsoft's failback article words it so ("the agent is not installed"); no code is
    published, and R16 retries whatever the words: this only names the cause for a person."""
    return "agent is not installed" in message.lower()


def says_vm_unknown_to_configuration_server(message: str) -> bool:
    """R10's second half from a health error's words: the failback article's prerequisite is
    that "the virtual machine must exist in the Configuration server database"; ASR's code for
    its absence is unpublished, so its message is read (a GUESS, lab/ASR_SIMULATOR.md)."""
    words = message.lower()
    return "configuration server" in words and "database" in words and " not " in f" {words} "


def says_host_not_discovered(message: str) -> bool:
    """R3: a master target's validation error saying its ESXi host is not discovered (words,
    not ASR's unpublished code; the vCenter entries decide when there is none)."""
    return "not discovered" in message.lower()


def recovery_point(document: dict[str, Any]) -> RecoveryPoint | None:
    props = document.get("properties") or {}
    if not props.get("recoveryPointTime"):
        return None
    return RecoveryPoint(
        id=str(document.get("id")),
        name=str(document.get("name")),
        time=props["recoveryPointTime"],
        type=str(props.get("recoveryPointType") or "Unknown"),
        multi_vm_sync_point=is_multi_vm_sync_point(props.get("providerSpecificDetails")),
    )


def is_multi_vm_sync_point(provider_details: Any) -> bool | None:
    """The flag is a string, "true" or "false"; None when the point carries no flag at all (the
    spec example's points have no providerSpecificDetails)."""
    value = (
        provider_details.get("isMultiVmSyncPoint") if isinstance(provider_details, dict) else None
    )
    if value is None:
        return None
    return str(value).lower() == "true"


def job_fact(job: Any) -> JobFact:
    """A job (SDK model) as the rules of domain/jobs.py read it."""
    props = job.properties
    return JobFact(
        name=str(job.name),
        scenario_name=text(props.scenario_name),
        state=text(props.state),
        state_description=text(props.state_description),
        target_object_id=text(props.target_object_id),
        target_object_name=text(props.target_object_name),
        start_time=props.start_time,
        end_time=props.end_time,
    )


def job_error(job: Any) -> tuple[str, str]:
    for error in job.properties.errors or []:
        service = error.service_error_details
        if service is not None:
            return str(service.code or ""), str(service.message or "")
        provider = error.provider_error_details
        if provider is not None:
            return str(provider.error_code or ""), str(provider.error_message or "")
    return "", str(job.properties.state_description or "no error details")


def fabric_inventory(fabric: Any) -> FabricInventory:
    custom = getattr(fabric.properties, "custom_details", None)
    return FabricInventory(
        host_name=getattr(custom, "host_name", None),
        process_servers=[
            ProcessServerFact(id=str(ps.id), healthy=healthy(ps))
            for ps in getattr(custom, "process_servers", None) or []
            if ps.id
        ],
        master_targets=[
            MasterTargetFact(id=str(mt.id), name=str(mt.name))
            for mt in getattr(custom, "master_target_servers", None) or []
            if mt.id
        ],
        run_as_accounts=[
            str(a.account_id)
            for a in getattr(custom, "run_as_accounts", None) or []
            if a.account_id
        ],
    )


def item_placement(item: Any) -> ItemPlacement:
    item_details = details(item)
    kind = text(getattr(item_details, "instance_type", None))
    # Modernized: InMageRcm names the policy it replicates with; InMageRcmFailback the one it
    # last replicated to Azure with (recorded: lastUsedPolicyId).
    forward_policy = (
        getattr(item.properties, "policy_id", None)
        if kind == "InMageRcm"
        else getattr(item_details, "last_used_policy_id", None)
    )
    return ItemPlacement(
        instance_type=kind,
        process_server_id=getattr(item_details, "process_server_id", None),
        master_target_id=getattr(item_details, "master_target_id", None),
        log_storage_account_id=getattr(item_details, "recovery_azure_log_storage_account_id", None),
        forward_policy_id=forward_policy,
        run_as_account_id=getattr(item_details, "run_as_account_id", None),
    )


def appliance_facts(custom: Any) -> list[ApplianceFacts]:
    """Modernized: the replication appliances, as the fabric lists their reprotect agents."""
    return [
        ApplianceFacts(
            id=str(agent.id),
            name=str(agent.name or agent.id),
            healthy=healthy(agent),
            last_heartbeat=getattr(agent, "last_heartbeat_utc", None),
            datastores=[str(d) for d in getattr(agent, "accessible_datastores", None) or []],
            attached_disks=int(getattr(agent, "protected_item_count", None) or 0),
        )
        for agent in getattr(custom, "reprotect_agents", None) or []
        if agent.id
    ]


def healthy(process_server: Any) -> bool:
    health = getattr(process_server, "health", None)
    return health in (None, "Normal", "None")


def describe_item(
    item: Any,
    fabric: Any,
    recovery_resource_group: str,
    azure_vm_name: str | None,
    reprotect: ReprotectToAzureOptions,
    hosts: dict[str, str] | None = None,
) -> DiscoveredMachine:
    """`hosts`: Hyper-V, the site's providers by id (hyperv_provider_names)."""
    ref = item_ref_from_id(str(item.id))
    vm_name = str(item.properties.friendly_name or ref.name)
    architecture = architecture_of_item(item, vm_name)
    item_details = details(item)
    os_details = getattr(item_details, "os_details", None)
    provider = str(getattr(item.properties, "recovery_services_provider_id", None) or "")
    onprem_host = (hosts or {}).get(provider.lower())
    if architecture.name == ArchitectureName.HYPERV:
        reprotect_to_azure = ResolvedReprotectToAzure(
            hyperv=hyperv_reverse_replication(item, vm_name, reprotect)
        )
    else:
        choose = (
            choose_reprotect_to_azure_modernized
            if architecture.name == ArchitectureName.MODERNIZED
            else choose_reprotect_to_azure
        )
        reprotect_to_azure = choose(reprotect, fabric_inventory(fabric), item_placement(item))
    return DiscoveredMachine(
        item=ref,
        vm_name=vm_name,
        onprem_host=onprem_host,
        onprem_via_vmm=is_vmm_site(fabric),
        architecture=architecture.name.value,
        replication_group=replication_group(item_details),
        os_type=getattr(os_details, "os_type", None) or getattr(item_details, "os_type", None),
        protection_state=item.properties.protection_state,
        allowed_operations=list(item.properties.allowed_operations or []),
        azure_vm=AzureVmRef(resource_group=recovery_resource_group, name=azure_vm_name or vm_name),
        reprotect_to_azure=reprotect_to_azure,
    )


def hyperv_reverse_replication(
    item: Any, vm_name: str, reprotect: ReprotectToAzureOptions
) -> HyperVReverseReplication:
    """HyperVReplicaAzureReprotectInput as Azure PowerShell fills it from the item: the VM's id
    on its host, its OS disk, the storage account it replicated to (reference 3.3 E)."""
    item_details = details(item)
    disks = getattr(item_details, "azure_vm_disk_details", None) or []
    os_disk = next((d for d in disks if text(d.vhd_type) == "OperatingSystem"), None)
    os_details = getattr(item_details, "o_s_details", None)
    return HyperVReverseReplication(
        hv_host_vm_id=getattr(item_details, "vm_id", None),
        vm_name=vm_name,
        os_type=getattr(os_details, "os_type", None),
        vhd_id=os_disk.vhd_id if os_disk is not None else None,
        storage_account_id=getattr(item_details, "recovery_azure_storage_account", None),
        log_storage_account_id=getattr(item_details, "recovery_azure_log_storage_account_id", None)
        or reprotect.log_storage_account_id,
    )


def fabric_type(fabric: Any) -> str | None:
    """The fabric's instanceType: VMware, InMageRcm, HyperVSite, VMM, Azure, ..."""
    return text(getattr(getattr(fabric.properties, "custom_details", None), "instance_type", None))


def is_hyperv_site(fabric: Any) -> bool:
    """A Hyper-V site's fabric, or a VMM server's: its hosts are recovery services providers."""
    return fabric_type(fabric) in ("HyperVSite", "VMM")


def is_vmm_site(fabric: Any) -> bool:
    """A Hyper-V site managed by System Center VMM: the provider is the VMM server."""
    return fabric_type(fabric) == "VMM"


def hyperv_provider_facts(providers: Any) -> list[HyperVProviderFacts]:
    return [
        HyperVProviderFacts(
            id=str(p.id),
            name=str(p.properties.friendly_name or p.name),
            connected=text(p.properties.connection_status) == "Connected",
            last_heartbeat=p.properties.last_heart_beat,
            fabric_type=text(p.properties.fabric_type) or "HyperVSite",
        )
        for p in providers or []
    ]


def hyperv_provider_names(providers: Any) -> dict[str, str]:
    """A Hyper-V site's providers by id (lowercase): the host (or VMM server) each one is."""
    return {str(p.id).lower(): str(p.properties.friendly_name or p.name) for p in providers or []}


def replication_group(item_details: Any) -> str | None:
    """The user's replication group the item is in; None for a VM on its own, whose group ASR
    created for it alone (domain/jobs.is_replication_group)."""
    name = getattr(item_details, "multi_vm_group_name", None) or None
    group_id = getattr(item_details, "multi_vm_group_id", None)
    return name if is_replication_group(name, group_id) else None


def vcenter_connected(vcenter: Any, now: datetime | None = None) -> bool:
    """R14 from what ASR is known to send: no health error and a recent heartbeat. Its
    `discoveryStatus` is a free string whose healthy value no document gives (the only example
    says Pending), so it decides only when there is no heartbeat to go by."""
    props = vcenter.properties
    if props.health_errors:
        return False
    heartbeat = props.last_heartbeat
    if heartbeat is None:
        return text(props.discovery_status) == "Connected"
    return (now or datetime.now(UTC)) - heartbeat <= CS_HEARTBEAT_LIMIT


def configuration_server_facts(fabric: Any, custom: Any, name: str) -> ConfigServerFacts:
    heartbeat = getattr(custom, "last_heartbeat", None)
    problems = [
        str(e.error_message or e.error_code)
        for e in fabric.properties.health_error_details or []
        if text(e.error_code) in CS_DOWN_CODES or text(e.error_level) == "Error"
    ]
    stale = heartbeat is not None and datetime.now(UTC) - heartbeat > CS_HEARTBEAT_LIMIT
    stopped = text(getattr(custom, "cs_service_status", None)).lower() == "stopped"
    critical = text(fabric.properties.health) == "Critical"
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
