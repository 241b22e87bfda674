"""Scenario files: what the lab's vCenter (vcsim) and ASR simulator hold.

A scenario is a JSON file validated by these pydantic models; `failback lab schema` writes the
JSON Schema. Every timing is in seconds so that a lab run takes seconds, not hours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

OsType = Literal["Windows", "Linux"]
DatastoreType = Literal["VMFS", "vsan", "NFS"]
# ASR's ProtectionHealth values as the lab uses them (the SDK also has "None").
Health = Literal["Normal", "Warning", "Critical"]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatastoreSpec(_Strict):
    name: str = Field(min_length=1, description="Datastore name as vCenter shows it")
    type: DatastoreType = "VMFS"
    capacity_gb: int = Field(default=1024, gt=0)


class HostSpec(_Strict):
    name: str = Field(min_length=1, description="ESXi host name")
    datastores: list[str] = Field(description="Names of the datastores this host can access")
    managed_by_vcenter: bool = Field(
        default=True,
        description="False: a standalone ESXi host that vCenter does not manage (in the lab it "
        "stays in vcsim's inventory, and the lab's settings name it in "
        "FAILBACK_VCENTER_STANDALONE_HOSTS)",
    )


DiskKind = Literal["vmdk", "rdm", "vsan"]


class DiskSpec(_Strict):
    """One virtual disk: a flat vmdk, a vmdk on a vSAN datastore, or a raw device mapping."""

    kind: DiskKind = Field(
        default="vmdk",
        description="vmdk: flat vmdk on a VMFS or NFS datastore; vsan: vmdk on a vsan datastore; "
        "rdm: raw device mapping whose mapping file is on a VMFS datastore",
    )
    datastore: str | None = Field(
        default=None,
        description="Datastore of the disk (rdm: of its mapping file); default: the VM's datastore",
    )
    size_gb: int = Field(default=40, gt=0)


class VirtualMachineSpec(_Strict):
    name: str = Field(min_length=1)
    host: str = Field(description="ESXi host the VM is registered on")
    datastore: str = Field(
        description="Datastore holding the VM's configuration files and, by default, its disks"
    )
    os_type: OsType = "Linux"
    power_state: Literal["poweredOn", "poweredOff"] = "poweredOff"
    disks: list[DiskSpec] = Field(
        default_factory=lambda: [DiskSpec()], description="Virtual disks; default one vmdk"
    )
    snapshots: int = Field(default=0, ge=0, description="Number of snapshots the VM has")
    guest_os_version: str | None = Field(
        default=None,
        description="Guest OS as VMware Tools reports it (guest.guestFullName), e.g. "
        "'Windows Server 2008 R2 SP1'; default: the descriptive name of the guest id",
    )
    role: Literal["vm", "master-target"] = Field(
        default="vm", description="master-target: an ASR master target server"
    )

    def disk_datastore(self, disk: DiskSpec) -> str:
        """The datastore a disk of this VM is on (its own, else the VM's)."""
        return disk.datastore if disk.datastore is not None else self.datastore


class VCenterSpec(_Strict):
    datacenter: str = "DC0"
    datastores: list[DatastoreSpec] = Field(min_length=1)
    hosts: list[HostSpec] = Field(min_length=1)
    vms: list[VirtualMachineSpec] = Field(
        default_factory=list, description="On-premises VMs, master targets included"
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> VCenterSpec:
        datastore_names = {d.name for d in self.datastores}
        host_names = {h.name for h in self.hosts}
        for index, host in enumerate(self.hosts):
            for ds in host.datastores:
                if ds not in datastore_names:
                    raise ValueError(
                        f"hosts[{index}].datastores names {ds!r}, which is not in datastores"
                    )
        for field, names in (
            ("datastores", [d.name for d in self.datastores]),
            ("hosts", [h.name for h in self.hosts]),
            ("vms", [vm.name for vm in self.vms]),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    raise ValueError(f"{field}[{index}].name {name!r} is used twice")
                seen.add(name)
        datastore_types = {d.name: d.type for d in self.datastores}
        for index, vm in enumerate(self.vms):
            if vm.host not in host_names:
                raise ValueError(f"vms[{index}].host names {vm.host!r}, which is not in hosts")
            host = next(h for h in self.hosts if h.name == vm.host)
            if vm.datastore not in host.datastores:
                raise ValueError(
                    f"vms[{index}].datastore {vm.datastore!r} is not accessible from host "
                    f"{vm.host!r}"
                )
            for disk_index, disk in enumerate(vm.disks):
                _check_disk(f"vms[{index}].disks[{disk_index}]", vm, disk, host, datastore_types)
        return self


def _check_disk(
    path: str,
    vm: VirtualMachineSpec,
    disk: DiskSpec,
    host: HostSpec,
    datastore_types: dict[str, DatastoreType],
) -> None:
    datastore = vm.disk_datastore(disk)
    if datastore not in datastore_types:
        raise ValueError(f"{path}.datastore names {datastore!r}, which is not in datastores")
    if datastore not in host.datastores:
        raise ValueError(f"{path}.datastore {datastore!r} is not accessible from host {vm.host!r}")
    ds_type = datastore_types[datastore]
    if disk.kind == "vsan" and ds_type != "vsan":
        raise ValueError(f"{path}.kind is 'vsan' but datastore {datastore!r} is of type {ds_type}")
    if disk.kind == "vmdk" and ds_type == "vsan":
        raise ValueError(
            f"{path}.kind is 'vmdk' but datastore {datastore!r} is of type vsan; use kind 'vsan'"
        )
    if disk.kind == "rdm" and ds_type != "VMFS":
        raise ValueError(
            f"{path}.kind is 'rdm' but its mapping file's datastore {datastore!r} is of type "
            f"{ds_type}; RDM mapping files need VMFS"
        )


RecoveryPointKind = Literal["CrashConsistent", "ApplicationConsistent"]
_BOTH_KINDS: tuple[RecoveryPointKind, ...] = ("CrashConsistent", "ApplicationConsistent")


class Gap(_Strict):
    """A window without recovery points (replication paused, snapshots failed)."""

    from_seconds_ago: int = Field(gt=0, description="Start of the gap, seconds before lab start")
    to_seconds_ago: int = Field(ge=0, description="End of the gap, seconds before lab start")
    types: list[RecoveryPointKind] = Field(
        default_factory=lambda: list(_BOTH_KINDS),
        min_length=1,
        description="Which kinds of point are missing in the window (default: both)",
    )

    @model_validator(mode="after")
    def _window_runs_back(self) -> Gap:
        if self.from_seconds_ago <= self.to_seconds_ago:
            raise ValueError(
                f"from_seconds_ago ({self.from_seconds_ago}) must be greater than "
                f"to_seconds_ago ({self.to_seconds_ago}): the gap runs from further back "
                "towards lab start"
            )
        return self


class RecoveryPointHistory(_Strict):
    """Recovery points the simulator generates, counted back from lab start.

    Point times sit on a grid aligned to the Unix epoch (multiples of each interval), so items
    with the same intervals share point times.
    """

    crash_consistent_every_seconds: int = Field(default=300, gt=0)
    app_consistent_every_seconds: int = Field(default=3600, gt=0)
    retention_seconds: int = Field(default=86400, gt=0)
    lag_seconds: int = Field(
        default=0,
        ge=0,
        description="Replication lag: the newest point is at or before lab start minus this",
    )
    gaps: list[Gap] = Field(default_factory=list, description="Windows without points")
    none: bool = Field(default=False, description="The machine has no recovery point at all")


ItemStartState = Literal["replicating-back", "failed-over-to-azure"]
DiscoveryType = Literal["vCenter", "Physical"]


class HyperVHostSpec(_Strict):
    """A Hyper-V host of the site (or behind the VMM server), registered with the vault."""

    name: str = Field(min_length=1, description="The host's name, as its provider reports it")
    switches: list[str] = Field(default_factory=list, description="Its virtual switches (by name)")
    connected: bool = Field(default=True, description="Its provider is connected to the vault")
    heartbeat_age_seconds: float = Field(default=30.0, ge=0)


class HyperVVmSpec(_Strict):
    """A VM on a Hyper-V host at lab start (a failed-back machine's VM, or any other)."""

    name: str = Field(min_length=1)
    host: str = Field(description="The host it is on")
    state: Literal["Off", "Running"] = "Off"
    checkpoints: int = Field(default=0, ge=0)
    switches: list[str] = Field(default_factory=list, description="Its adapters' switches")
    heartbeat_after_seconds: float = Field(
        default=1.0, ge=0, description="The guest's heartbeat is OK this long after it starts"
    )
    heartbeat_never: bool = Field(default=False, description="The guest never reports OK")


class HyperVSiteSpec(_Strict):
    """The Hyper-V side of a hyperv scenario: the hosts (the lab's WinRM stand-in serves each)
    and their VMs; with `vmm`, a VMM server fronts them (the host the product asks)."""

    hosts: list[HyperVHostSpec] = Field(min_length=1)
    vms: list[HyperVVmSpec] = Field(default_factory=list)
    vmm: str | None = Field(default=None, min_length=1, description="VMM server's name, if any")


class ProtectedItemSpec(_Strict):
    """One replicated machine as ASR knows it at lab start.

    `replicating-back`: failed over to Azure and already reprotected to on-premises (InMage).
    `failed-over-to-azure`: failed over to Azure and committed, not reprotected yet
    (InMageAzureV2); the orchestrator reprotects it to on-premises itself.
    """

    name: str = Field(min_length=1, description="ASR protected item name (ARM resource name)")
    vm_name: str = Field(
        min_length=1,
        description="On-premises VM name (the item's friendlyName). A name that is not in "
        "vcenter.vms is a machine whose VM no longer exists on-premises (alternate location "
        "recovery: the reprotect re-creates it); allowed only in state failed-over-to-azure",
    )
    azure_vm_name: str = Field(min_length=1, description="The failed-over VM in Azure")
    os_type: OsType = "Linux"
    os_version: str = Field(
        default="Ubuntu 22.04",
        description="OS product string as ASR shows it (osVersion), e.g. "
        "'Windows Server 2008 R2 SP1'",
    )
    state: ItemStartState = Field(
        default="replicating-back",
        description="replicating-back: already reprotected to on-premises; "
        "failed-over-to-azure: failed over and committed in Azure, waiting for the reprotect",
    )
    discovery_type: DiscoveryType = Field(
        default="vCenter",
        description="How ASR discovered the machine: vCenter (a VMware VM) or Physical (a "
        "physical server, which fails back as a VMware VM to an alternate location)",
    )
    known_to_configuration_server: bool = Field(
        default=True,
        description="False: the configuration server's database lost the machine (the item "
        "shows a health error saying so, code 99010 (a lab stand-in), and cannot be reprotected)",
    )
    replication_health: Health = Field(
        default="Normal",
        description="The item's replicationHealth while it is in its start state and once a "
        "reprotect to on-premises finished its initial replication",
    )
    master_target: str | None = Field(
        default=None,
        min_length=1,
        description="Id of the master target it replicates back through (replicating-back); "
        "default: the first of azure.master_targets",
    )
    initial_replication_seconds: float = Field(
        default=3.0,
        ge=0,
        description="Seconds from the end of a reprotect to on-premises (original location) "
        "until replication is healthy and the first recovery point exists",
    )
    full_copy_seconds: float = Field(
        default=6.0,
        ge=0,
        description="The same for alternate location (the VM is re-created: full initial copy)",
    )
    disk_sizes_gb: list[int] = Field(
        default_factory=lambda: [40],
        min_length=1,
        description="Disk sizes of the machine; an alternate location reprotect re-creates the "
        "VM on-premises with these disks",
    )
    recovery_points: RecoveryPointHistory = RecoveryPointHistory()
    replication_group: str | None = Field(
        default=None,
        min_length=1,
        description="ASR replication group (multiVmGroupName); its members share multi-VM "
        "sync points",
    )
    agent_registration_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Seconds after the failback commit until the booted VM's mobility agent "
        "registers with the configuration server",
    )
    agent_never_registers: bool = False
    hyperv_host: str | None = Field(
        default=None, description="Hyper-V: the host it was protected from (default: the first)"
    )
    hyperv_switches: list[str] = Field(
        default_factory=lambda: ["vSwitch-Prod"],
        description="Hyper-V: the virtual switches of its network adapters",
    )
    managed_disks: bool = Field(
        default=False, description="Hyper-V: replicated to managed disks in Azure"
    )

    @field_validator("disk_sizes_gb")
    @classmethod
    def _disks_have_a_size(cls, sizes: list[int]) -> list[int]:
        if any(size <= 0 for size in sizes):
            raise ValueError(f"disk sizes must be positive, got {sizes}")
        return sizes


class ProcessServerSpec(_Strict):
    """A process server registered with the configuration server."""

    id: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1, description="friendlyName; default: id")
    location: Literal["Azure", "OnPrem"] = Field(
        description="Azure: serves the failback (Azure -> on-premises); OnPrem: serves "
        "replication to Azure"
    )
    health: Health = "Normal"
    heartbeat_age_seconds: float = Field(default=0, ge=0)


class RetentionVolumeSpec(_Strict):
    volume_name: str = Field(min_length=1, description="e.g. 'F' (Windows), '/mnt/retention'")
    capacity_gb: int = Field(default=512, gt=0)
    free_gb: int = Field(default=400, ge=0)

    @model_validator(mode="after")
    def _free_fits(self) -> RetentionVolumeSpec:
        if self.free_gb > self.capacity_gb:
            raise ValueError(
                f"free_gb ({self.free_gb}) is larger than capacity_gb ({self.capacity_gb})"
            )
        return self


class ApplianceSpec(_Strict):
    """A modernized replication appliance: its process server (replication to Azure) and its
    reprotect agent (failback), registered with the vault (recordings/modernized-*.json: the
    fabric lists each appliance as a process server, an RCM proxy and a reprotect agent)."""

    name: str = Field(min_length=1, description="The appliance's name (its VM in vCenter, if any)")
    host: str | None = Field(
        default=None,
        description="The ESXi host it runs on; default: the first host. Its datastores are the "
        "ones it can reach unless accessible_datastores says otherwise",
    )
    accessible_datastores: list[str] | None = Field(
        default=None, description="Datastores its reprotect agent can read and write"
    )
    health: Health = "Normal"
    heartbeat_age_seconds: float = Field(default=30.0, ge=0)
    attached_disks: int = Field(
        default=0,
        ge=0,
        description="Disks already attached to it by failbacks (an appliance holds up to 60)",
    )


class MasterTargetSpec(_Strict):
    """A failback master target: an on-premises VM registered with the configuration server."""

    name: str = Field(min_length=1, description="The master target's VM name in vcenter.vms")
    id: str | None = Field(default=None, min_length=1, description="ASR id; default: name")
    os_type: OsType | None = Field(default=None, description="Default: the VM's os_type")
    host: str | None = Field(
        default=None, description="Its ESXi host; default: the VM's host in vcenter"
    )
    datastores: list[str] | None = Field(
        default=None,
        description="Datastores ASR lists for it (dataStores); default: all that its host "
        "mounts. Empty when its host is not discovered (azure.vcenters[].hosts)",
    )
    retention_volumes: list[RetentionVolumeSpec] | None = Field(
        default=None,
        min_length=1,
        description="Default: one volume, 'F' on Windows, '/mnt/retention' on Linux",
    )
    health: Health = "Normal"
    heartbeat_age_seconds: float = Field(default=0, ge=0)


class AsrVCenterSpec(_Strict):
    """A vCenter or standalone ESXi host added to the configuration server (replicationvCenters).

    ASR's model has no list of discovered hosts: `hosts` shows on the wire through the master
    targets (one on an undiscovered host has no dataStores and a validation error).
    """

    name: str = Field(min_length=1, description="ARM name of the replicationvCenters entry")
    kind: Literal["vcenter", "esxi"] = "vcenter"
    address: str | None = Field(
        default=None,
        min_length=1,
        description="friendlyName and ipAddress; default: the lab vCenter's address (vcenter) "
        "or the host's name (esxi)",
    )
    port: int | None = Field(
        default=None, gt=0, lt=65536, description="Default: the lab vCenter's port, or 443"
    )
    connected: bool = Field(
        default=True,
        description="False: discoveryStatus 'Disconnected', lastHeartbeat stale and health "
        "error 99011 (a lab stand-in) (R14)",
    )
    hosts: list[str] | None = Field(
        default=None,
        description="ESXi hosts (vcenter.hosts) discovered through it; default: every "
        "vCenter-managed host (vcenter), the host of the same name (esxi)",
    )


# How old the configuration server's heartbeat is when the scenario says it is unreachable and
# gives no age of its own: long past any "try again in a few minutes".
UNREACHABLE_HEARTBEAT_AGE_SECONDS = 7200.0


@dataclass(frozen=True)
class MasterTarget:
    """A failback master target with every default resolved against the vCenter side."""

    id: str
    name: str
    os_type: OsType
    host: str
    datastores: tuple[str, ...]
    retention_volumes: tuple[RetentionVolumeSpec, ...]
    health: Health
    heartbeat_age_seconds: float


@dataclass(frozen=True)
class AsrVCenter:
    """A replicationvCenters entry with its discovered hosts resolved (address: at run time)."""

    name: str
    kind: Literal["vcenter", "esxi"]
    address: str | None
    port: int | None
    connected: bool
    hosts: tuple[str, ...]


class JobTimings(_Strict):
    failover_seconds: float = Field(default=2.0, ge=0)
    commit_seconds: float = Field(default=1.0, ge=0)
    reprotect_seconds: float = Field(default=1.0, ge=0)


# ASR's limits for one recovery plan.
MAX_BOOT_GROUPS = 7
MAX_PLAN_ITEMS = 100


class ThrottlingSpec(_Strict):
    """ARM's request budgets per principal (Azure Resource Manager's documented token buckets:
    reads 250 refilled at 25 a second, writes 200 refilled at 10). The simulator refuses a
    request that overdraws its bucket with 429 and Retry-After, as ARM does."""

    enabled: bool = True
    read_burst: int = Field(default=250, ge=1)
    reads_per_second: float = Field(default=25.0, gt=0)
    write_burst: int = Field(default=200, ge=1)
    writes_per_second: float = Field(default=10.0, gt=0)
    subscription_multiplier: float = Field(
        default=15.0,
        ge=1,
        description="The subscription's own buckets, shared by all its principals, are this "
        "many times a principal's (ARM's documented global limit: 15 times)",
    )
    lab_clock_factor: float = Field(
        default=15.0,
        ge=1,
        description="The lab polls ASR every second where production polls every 15 s (and its "
        "jobs take seconds, not minutes), so it runs ARM's budgets this many times faster too: "
        "bursts and refill rates above are multiplied by it, and lab up gives the worker the "
        "same figures. 1: ARM's own figures against the lab's fast polls (the bench)",
    )

    def effective(self) -> tuple[float, float, float, float]:
        """(read burst, reads per second, write burst, writes per second) at the lab's clock."""
        f = self.lab_clock_factor
        return (
            self.read_burst * f,
            self.reads_per_second * f,
            self.write_burst * f,
            self.writes_per_second * f,
        )


class WireSpec(_Strict):
    """How the simulator behaves where real ASR's behaviour is a setting or unknown.

    Each field is a reality variant: the tests run the client under each plausible value.
    """

    page_size: int = Field(
        default=100,
        ge=1,
        description="Resources per page of every list; the rest follows through nextLink "
        "(ASR pages every list, x-ms-pageable in its API; its page size is UNKNOWN)",
    )
    next_link_api_version: bool = Field(
        default=True,
        description="Whether nextLink carries api-version (UNKNOWN for ASR; the SDK adds it back, "
        "a client that follows nextLink verbatim must too)",
    )
    retry_after_seconds: int = Field(
        default=1,
        ge=1,
        description="Retry-After of a 202 and of a running operation's status; real ASR sends 30 "
        "(recorded), the lab's 1 keeps tests fast",
    )
    custom_recovery_point: Literal["accepted", "refused"] = Field(
        default="accepted",
        description="Whether an InMage failover takes recoveryPointType Custom (the API lists it; "
        "Azure PowerShell never sends it; UNKNOWN): refused answers 400",
    )
    point_details: Literal["InMageAzureV2", "none"] = Field(
        default="InMageAzureV2",
        description="Recovery points' providerSpecificDetails with isMultiVmSyncPoint, or none "
        "(the spec example has none; UNKNOWN for InMage)",
    )
    vcenter_discovery_status: str = Field(
        default="Connected",
        min_length=1,
        description="A connected vCenter's discoveryStatus (a free string in the API; the only "
        "example says Pending; UNKNOWN)",
    )
    agent_not_registered_code: str = Field(
        default="99016",
        min_length=1,
        description="The error code of a reprotect to Azure before the agent registered (ASR "
        "publishes none; UNKNOWN)",
    )
    unknown_plan_filter: Literal["not-found", "empty"] = Field(
        default="not-found",
        description="`RecoveryPlanName eq '<unknown plan>'`: 404, or an empty list (UNKNOWN)",
    )
    disk_exclusion: Literal["optional", "required"] = Field(
        default="optional",
        description="A reprotect to on-premises without diskExclusionInput excluding the Azure "
        "VM's 'Temporary Storage' volume: accepted, or refused (Azure PowerShell always sends "
        "it; UNKNOWN whether ASR needs it)",
    )
    log_storage_account: Literal["optional", "required"] = Field(
        default="optional",
        description="A reprotect to Azure without logStorageAccountId: accepted, or refused "
        "(optional in the API, Azure PowerShell passes it; UNKNOWN)",
    )
    standalone_group: Literal["auto-created", "none"] = Field(
        default="auto-created",
        description="A VM outside any replication group: in a group ASR created for it alone "
        "(multiVmGroupName = multiVmGroupId = a GUID; Azure PowerShell's InMage failover checks "
        "for exactly that; LIKELY), or with no group at all",
    )
    hyperv_plan_operations: Literal["plan-words", "item-words"] = Field(
        default="plan-words",
        description="Hyper-V: the words of a plan's allowedOperations while its items are in "
        "Azure: the plan's own (PlannedFailover; recorded as a plan's words after its failback), "
        "or its items' (Failback; UNKNOWN which ASR sends before the failback)",
    )
    modernized_committed_state: str = Field(
        default="UnplannedFailoverCommitted",
        min_length=1,
        description="Modernized: the protectionState of an InMageRcmFailback item after the "
        "failback's commit (no recording shows it; UNKNOWN). The client reads its "
        "allowedOperations, never this name",
    )
    auto_cancel_failed_failover: Literal["yes", "no"] = Field(
        default="yes",
        description="Modernized: a failed planned failover is cancelled by ASR itself (a "
        "CancelFailover job; ASR's documentation), or left for a person to cancel (the "
        "documentation's 'if the cancellation fails')",
    )
    vm_status_list: Literal["honoured", "ignored", "refused"] = Field(
        default="honoured",
        description="Compute's List All with statusOnly=true: each VM with its instanceView "
        "statuses (the API's stated purpose: 'the run time status of all Virtual Machines in the "
        "subscription'), the VMs without them (statusOnly ignored), or 400 (UNKNOWN: no "
        "recording). The verification's rounds read VM by VM under the last two",
    )
    group_member_failover: Literal["plan-only", "item-too"] = Field(
        default="plan-only",
        description="A member of a replication group a person made: fails over only through a "
        "recovery plan's failover, its item failover refused (Azure PowerShell refuses to send "
        "one; LIKELY), or on its own too",
    )


class RecoveryPlanSpec(_Strict):
    """An ASR recovery plan: boot groups start one after the other, items in a group together."""

    name: str = Field(min_length=1, description="Recovery plan name (ARM resource name)")
    boot_groups: list[list[str]] = Field(
        description="Protected item names (azure.items[].name), one list per boot group, in order"
    )


class AzureSpec(_Strict):
    subscription_id: str = "00000000-0000-0000-0000-000000000001"
    resource_group: str = "rg-dr"
    vault: str = "vault-dr"
    location: str = "westeurope"
    recovery_resource_group: str = Field(
        default="rg-dr-recovery", description="Resource group of the failed-over Azure VMs"
    )
    fabric: str = "cs-fabric"
    configuration_server: str = "cs01.corp.local"
    configuration_server_reachable: bool = Field(
        default=True,
        description="False: the fabric shows a stale lastHeartbeat, csServiceStatus 'Stopped' "
        "and health error 95226; reprotects and failovers fail (95226)",
    )
    configuration_server_heartbeat_age_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Age of the fabric's lastHeartbeat; default 0, or 7200 when unreachable",
    )
    protection_container: str = "cloud_container"
    process_server_id: str = Field(
        default="ps-azure-01",
        description="Process server in Azure that items replicating back at lab start use",
    )
    onprem_process_server_id: str = Field(
        default="ps-onprem-01", description="On-premises process server for re-protect to Azure"
    )
    process_servers: list[ProcessServerSpec] | None = Field(
        default=None,
        description="Process servers of the configuration server; default: process_server_id "
        "(Azure) and onprem_process_server_id (OnPrem)",
    )
    azure_master_target_id: str = Field(
        default="mt-cs-builtin",
        description="The configuration server's own master target, used by re-protect to Azure",
    )
    master_target_vm: str | None = Field(
        default=None,
        description="Shorthand for master_targets: [{name: <this>}] (the master target VM in "
        "vCenter); give this or master_targets",
    )
    master_targets: list[MasterTargetSpec] | None = Field(
        default=None,
        description="Failback master targets ASR has discovered; [] means none (R9)",
    )
    vcenters: list[AsrVCenterSpec] | None = Field(
        default=None,
        description="vCenters and ESXi hosts added to the configuration server; default: "
        "'vcenter-01' for every vCenter-managed host, plus one esxi entry per standalone host",
    )
    azure_policy_id: str = Field(
        default="policy-vmware-to-azure", description="Replication policy for re-protect to Azure"
    )
    other_failback_policies: list[str] = Field(
        default_factory=list,
        description="Failback (InMage) policies of other configuration servers of the vault, "
        "listed before this one's and mapped on no container of it: a reprotect must take its "
        "policy from the container mapping, not the first failback policy in the vault",
    )
    architecture: Literal["classic", "modernized", "hyperv"] = Field(
        default="classic",
        description="classic: configuration server, master targets, InMage/InMageAzureV2 "
        "(out of support since March 2026); modernized: replication appliances, "
        "InMageRcm/InMageRcmFailback; hyperv: Hyper-V hosts (the `hyperv` section), "
        "HyperVReplicaAzure",
    )
    appliances: list[ApplianceSpec] = Field(
        default_factory=list,
        description="modernized: the replication appliances registered with the vault",
    )
    items: list[ProtectedItemSpec] = Field(min_length=1)
    jobs: JobTimings = JobTimings()
    recovery_plans: list[RecoveryPlanSpec] = Field(default_factory=list)
    wire: WireSpec = WireSpec()
    throttling: ThrottlingSpec = ThrottlingSpec()


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    vcenter: VCenterSpec | None = Field(
        default=None, description="The VMware side (classic and modernized scenarios)"
    )
    hyperv: HyperVSiteSpec | None = Field(
        default=None, description="The Hyper-V side (hyperv scenarios)"
    )
    azure: AzureSpec

    @property
    def vmware(self) -> VCenterSpec:
        """The vCenter of a VMware scenario (the validator makes sure there is one)."""
        if self.vcenter is None:
            raise ScenarioError(f"scenario {self.name!r} has no vcenter section")
        return self.vcenter

    @model_validator(mode="after")
    def _machines_exist(self) -> Scenario:
        azure = self.azure
        if azure.architecture == "hyperv":
            self._check_hyperv()
            return self
        if self.vcenter is None:
            raise ValueError(
                f"vcenter is required for a {azure.architecture} scenario (its VMware side)"
            )
        vm_names = {vm.name for vm in self.vmware.vms}
        if azure.master_target_vm is not None and azure.master_targets is not None:
            raise ValueError(
                "azure.master_target_vm and azure.master_targets are both given; give "
                "master_targets only (master_target_vm is its one-entry shorthand)"
            )
        if azure.architecture == "modernized":
            if not azure.appliances:
                raise ValueError(
                    "azure.appliances is required for a modernized scenario: the replication "
                    "appliances that reprotect and replicate its machines"
                )
        elif azure.master_target_vm is None and azure.master_targets is None:
            raise ValueError(
                "azure.master_target_vm or azure.master_targets is required "
                "(master_targets: [] for a configuration server without master targets)"
            )
        if azure.master_target_vm is not None and azure.master_target_vm not in vm_names:
            raise ValueError(
                f"azure.master_target_vm names {azure.master_target_vm!r}, "
                "which is not in vcenter.vms"
            )
        self._check_process_servers()
        self._check_master_targets()
        self._check_asr_vcenters()
        mt_ids = [mt.id for mt in self.master_targets()]
        seen: set[str] = set()
        for index, item in enumerate(azure.items):
            where = f"azure.items[{index}]"
            if item.name in seen:
                raise ValueError(f"{where}.name {item.name!r} is used twice")
            seen.add(item.name)
            if item.state == "replicating-back" and item.vm_name not in vm_names:
                # Once reprotected, the VM exists on-premises: the reprotect re-created it if
                # it was missing. Only a machine still failed over can lack it.
                raise ValueError(
                    f"{where}.vm_name names {item.vm_name!r}, which is not in vcenter.vms; an "
                    "item replicating back has its VM on-premises (a missing VM is only "
                    "possible in state 'failed-over-to-azure')"
                )
            if item.master_target is not None and item.master_target not in mt_ids:
                raise ValueError(
                    f"{where}.master_target names {item.master_target!r}, which is not a "
                    f"master target id of azure.master_targets {mt_ids}"
                )
            if item.state == "replicating-back" and not mt_ids and azure.architecture == "classic":
                raise ValueError(
                    f"{where} replicates back through a master target, but the configuration "
                    "server has none (azure.master_targets is empty)"
                )
        return self

    def _check_hyperv(self) -> None:
        site = self.hyperv
        if site is None:
            raise ValueError("hyperv is required for a hyperv scenario: its hosts and VMs")
        hosts = {h.name for h in site.hosts}
        for index, vm in enumerate(site.vms):
            if vm.host not in hosts:
                raise ValueError(
                    f"hyperv.vms[{index}].host names {vm.host!r}, which is not in hyperv.hosts"
                )
        seen: set[str] = set()
        for index, item in enumerate(self.azure.items):
            where = f"azure.items[{index}]"
            if item.name in seen:
                raise ValueError(f"{where}.name {item.name!r} is used twice")
            seen.add(item.name)
            if item.hyperv_host is not None and item.hyperv_host not in hosts:
                raise ValueError(
                    f"{where}.hyperv_host names {item.hyperv_host!r}, which is not in hyperv.hosts"
                )
            if item.state != "failed-over-to-azure":
                raise ValueError(
                    f"{where}.state must be 'failed-over-to-azure' in a hyperv scenario: a "
                    "Hyper-V machine fails back from Azure with no reprotect before it"
                )

    def _check_process_servers(self) -> None:
        azure = self.azure
        servers = azure.process_servers
        if servers is None:
            return
        seen: set[str] = set()
        for index, server in enumerate(servers):
            if server.id.lower() in seen:
                raise ValueError(f"azure.process_servers[{index}].id {server.id!r} is used twice")
            seen.add(server.id.lower())
        by_id = {s.id: s for s in servers}
        for field, wanted in (
            ("process_server_id", "Azure"),
            ("onprem_process_server_id", "OnPrem"),
        ):
            server_id = getattr(azure, field)
            found = by_id.get(server_id)
            if found is None or found.location != wanted:
                raise ValueError(
                    f"azure.{field} {server_id!r} must be a process server in {wanted} of "
                    f"azure.process_servers ({[(s.id, s.location) for s in servers]})"
                )

    def _check_master_targets(self) -> None:
        azure = self.azure
        specs = azure.master_targets or []
        vm_names = {vm.name for vm in self.vmware.vms}
        hosts = {h.name: h for h in self.vmware.hosts}
        ids: set[str] = set()
        names: set[str] = set()
        for index, spec in enumerate(specs):
            where = f"azure.master_targets[{index}]"
            if spec.name not in vm_names:
                raise ValueError(f"{where}.name {spec.name!r} is not in vcenter.vms")
            mt_id = spec.id or spec.name
            if mt_id.lower() in ids or spec.name in names:
                raise ValueError(f"{where} ({mt_id!r}, {spec.name!r}) is listed twice")
            if mt_id.lower() == azure.azure_master_target_id.lower():
                raise ValueError(
                    f"{where}.id {mt_id!r} is azure.azure_master_target_id, the configuration "
                    "server's own master target; give the failback master target another id"
                )
            ids.add(mt_id.lower())
            names.add(spec.name)
            if spec.host is not None and spec.host not in hosts:
                raise ValueError(f"{where}.host {spec.host!r} is not in vcenter.hosts")
            host = hosts[spec.host or self.vm(spec.name).host]
            for ds in spec.datastores or []:
                if ds not in host.datastores:
                    raise ValueError(
                        f"{where}.datastores names {ds!r}, which its host {host.name!r} does "
                        f"not mount ({host.datastores})"
                    )
            volumes = [v.volume_name for v in spec.retention_volumes or []]
            if len(set(volumes)) != len(volumes):
                raise ValueError(f"{where}.retention_volumes repeats a volume_name: {volumes}")

    def _check_asr_vcenters(self) -> None:
        entries = self.azure.vcenters
        if entries is None:
            return
        hosts = {h.name: h for h in self.vmware.hosts}
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            where = f"azure.vcenters[{index}]"
            if entry.name.lower() in seen:
                raise ValueError(f"{where}.name {entry.name!r} is used twice")
            seen.add(entry.name.lower())
            if entry.hosts is None and entry.kind == "esxi" and entry.name not in hosts:
                raise ValueError(
                    f"{where} is an ESXi host entry named {entry.name!r}, which is not in "
                    "vcenter.hosts; name it after the host or give hosts: [<host>]"
                )
            for host_name in entry.hosts or []:
                host = hosts.get(host_name)
                if host is None:
                    raise ValueError(f"{where}.hosts names {host_name!r}, not in vcenter.hosts")
                if entry.kind == "vcenter" and not host.managed_by_vcenter:
                    raise ValueError(
                        f"{where}.hosts names {host_name!r}, a standalone ESXi host that vCenter "
                        "does not manage; add it as its own entry with kind 'esxi'"
                    )
            if entry.kind == "esxi" and entry.hosts is not None and len(entry.hosts) != 1:
                raise ValueError(f"{where} is an ESXi host entry: hosts must name exactly one host")

    # -- the Azure side with defaults resolved --------------------------------------------------

    def process_servers(self) -> list[ProcessServerSpec]:
        if self.azure.process_servers is not None:
            return list(self.azure.process_servers)
        return [
            ProcessServerSpec(id=self.azure.process_server_id, location="Azure"),
            ProcessServerSpec(id=self.azure.onprem_process_server_id, location="OnPrem"),
        ]

    def master_targets(self) -> list[MasterTarget]:
        """The failback master targets, in scenario order, every default filled in."""
        azure = self.azure
        specs = azure.master_targets
        if specs is None:
            if azure.master_target_vm is None:
                return []  # modernized: replication appliances, no master targets
            specs = [MasterTargetSpec(name=azure.master_target_vm)]
        hosts = {h.name: h for h in self.vmware.hosts}
        resolved = []
        for spec in specs:
            vm = self.vm(spec.name)
            os_type = spec.os_type or vm.os_type
            host = hosts[spec.host or vm.host]
            datastores = spec.datastores
            if datastores is None:
                # In vCenter's datastore order, the order ASR's discovery lists them in the lab.
                datastores = [d.name for d in self.vmware.datastores if d.name in host.datastores]
            volumes = spec.retention_volumes or [
                RetentionVolumeSpec(volume_name="F" if os_type == "Windows" else "/mnt/retention")
            ]
            resolved.append(
                MasterTarget(
                    id=spec.id or spec.name,
                    name=spec.name,
                    os_type=os_type,
                    host=host.name,
                    datastores=tuple(datastores),
                    retention_volumes=tuple(volumes),
                    health=spec.health,
                    heartbeat_age_seconds=spec.heartbeat_age_seconds,
                )
            )
        return resolved

    def master_target(self, target_id: str) -> MasterTarget:
        for mt in self.master_targets():
            if mt.id.lower() == target_id.lower():
                return mt
        raise KeyError(target_id)

    def appliance_datastores(self, appliance: ApplianceSpec) -> list[str]:
        """What an appliance's reprotect agent reaches: as given, or its host's datastores."""
        if appliance.accessible_datastores is not None:
            return list(appliance.accessible_datastores)
        hosts = self.vmware.hosts
        host = next((h for h in hosts if h.name == appliance.host), hosts[0] if hosts else None)
        return list(host.datastores) if host is not None else []

    def item_master_target(self, item: ProtectedItemSpec) -> MasterTarget | None:
        """The master target an item replicating back at lab start goes through."""
        targets = self.master_targets()
        if item.master_target is not None:
            return self.master_target(item.master_target)
        return targets[0] if targets else None

    def asr_vcenters(self) -> list[AsrVCenter]:
        """The configuration server's vCenter and ESXi host entries with their hosts resolved."""
        entries = self.azure.vcenters
        if self.vcenter is None:
            return []  # Hyper-V: no vCenter
        if entries is None:
            managed = [h.name for h in self.vmware.hosts if h.managed_by_vcenter]
            resolved = [AsrVCenter("vcenter-01", "vcenter", None, None, True, tuple(managed))]
            resolved += [
                AsrVCenter(h.name, "esxi", h.name, 443, True, (h.name,))
                for h in self.vmware.hosts
                if not h.managed_by_vcenter
            ]
            return resolved
        result = []
        for entry in entries:
            if entry.hosts is not None:
                hosts = tuple(entry.hosts)
            elif entry.kind == "esxi":
                hosts = (entry.name,)
            else:
                hosts = tuple(h.name for h in self.vmware.hosts if h.managed_by_vcenter)
            address = entry.address
            if address is None and entry.kind == "esxi":
                address = hosts[0]
            port = entry.port
            if port is None and entry.kind == "esxi":
                # A vCenter entry's default is the lab vCenter's port, known only at run time.
                port = 443
            result.append(AsrVCenter(entry.name, entry.kind, address, port, entry.connected, hosts))
        return result

    def configuration_server_heartbeat_age(self) -> float:
        age = self.azure.configuration_server_heartbeat_age_seconds
        if age is not None:
            return age
        return (
            0.0 if self.azure.configuration_server_reachable else UNREACHABLE_HEARTBEAT_AGE_SECONDS
        )

    def onprem_vm_exists(self, item: ProtectedItemSpec) -> bool:
        """Original location (R1) is possible: a vCenter-discovered machine whose VM exists."""
        return item.discovery_type == "vCenter" and any(
            vm.name == item.vm_name for vm in self.vmware.vms
        )

    @model_validator(mode="after")
    def _groups_and_plans_resolve(self) -> Scenario:
        # Members of a replication group share one replication policy, hence one schedule of
        # application-consistent (multi-VM sync) points.
        first_member: dict[str, int] = {}
        for index, item in enumerate(self.azure.items):
            group = item.replication_group
            if group is None:
                continue
            if group not in first_member:
                first_member[group] = index
                continue
            leader = self.azure.items[first_member[group]]
            every = item.recovery_points.app_consistent_every_seconds
            expected = leader.recovery_points.app_consistent_every_seconds
            if every != expected:
                raise ValueError(
                    f"azure.items[{index}].recovery_points.app_consistent_every_seconds is "
                    f"{every}, but replication group {group!r} takes its multi-VM sync points "
                    f"every {expected} s (azure.items[{first_member[group]}], {leader.name!r}); "
                    "members of a replication group share one replication policy"
                )

        item_names = {item.name for item in self.azure.items}
        plan_names: set[str] = set()
        for p, plan in enumerate(self.azure.recovery_plans):
            where = f"azure.recovery_plans[{p}]"
            if plan.name.lower() in plan_names:
                raise ValueError(f"{where}.name {plan.name!r} is used twice")
            plan_names.add(plan.name.lower())
            groups = plan.boot_groups
            if not groups:
                raise ValueError(f"{where}.boot_groups is empty; a plan needs a boot group")
            if len(groups) > MAX_BOOT_GROUPS:
                raise ValueError(
                    f"{where}.boot_groups has {len(groups)} boot groups; ASR allows at most "
                    f"{MAX_BOOT_GROUPS} per recovery plan"
                )
            total = sum(len(members) for members in groups)
            if total > MAX_PLAN_ITEMS:
                raise ValueError(
                    f"{where}.boot_groups holds {total} items; ASR allows at most "
                    f"{MAX_PLAN_ITEMS} per recovery plan"
                )
            placed: dict[str, str] = {}
            for g, members in enumerate(groups):
                if not members:
                    raise ValueError(
                        f"{where}.boot_groups[{g}] is empty; remove it or put an item in it"
                    )
                for i, name in enumerate(members):
                    here = f"{where}.boot_groups[{g}][{i}]"
                    if name not in item_names:
                        raise ValueError(f"{here} names {name!r}, which is not in azure.items")
                    if name in placed:
                        raise ValueError(
                            f"{here} names {name!r} again (already at {placed[name]}); an item "
                            "is in a recovery plan at most once"
                        )
                    placed[name] = here
        return self

    def recovery_plan(self, name: str) -> RecoveryPlanSpec:
        for plan in self.azure.recovery_plans:
            if plan.name.lower() == name.lower():
                return plan
        raise KeyError(name)

    def replication_group_members(self, group: str) -> list[ProtectedItemSpec]:
        """The items naming `group` as their replication group, in scenario order."""
        return [item for item in self.azure.items if item.replication_group == group]

    def item(self, name: str) -> ProtectedItemSpec:
        for item in self.azure.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def vm(self, name: str) -> VirtualMachineSpec:
        for vm in self.vmware.vms:
            if vm.name == name:
                return vm
        raise KeyError(name)


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; the error names the file and the failing field."""
    path = Path(path)
    try:
        raw = path.read_text()
    except OSError as err:
        raise ScenarioError(f"cannot read scenario file {path}: {err.strerror}") from err
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ScenarioError(
            f"scenario file {path} is not valid JSON: {err.msg} at line {err.lineno}, "
            f"column {err.colno}"
        ) from err
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            location = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"  {location}: {error['msg']}")
        raise ScenarioError(
            f"scenario file {path} is invalid ({len(problems)} problem(s)); fix these fields:\n"
            + "\n".join(problems)
        ) from err


def scenario_json_schema() -> dict[str, object]:
    return Scenario.model_json_schema()


def scenario_path_named(name: str) -> Path:
    """A scenario file, or the name of one the lab ships (`hyperv` is lab/scenarios/hyperv.json)."""
    given = Path(name)
    if given.exists() or given.suffix == ".json":
        return given
    shipped = Path(__file__).parent / "scenarios" / f"{name}.json"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in shipped.parent.glob("*.json")))
    raise ScenarioError(f"no scenario file or shipped scenario named {name!r}; shipped: {known}")


def default_scenario_path() -> Path:
    """The lab's default: modernized VMware (classic is out of support since March 2026; its
    scenarios stay, e.g. single-vm.json)."""
    return Path(__file__).parent / "scenarios" / "modernized-single-vm.json"


def registration_delay(item: ProtectedItemSpec) -> timedelta | None:
    """When the agent registers after commit; None when it never does."""
    if item.agent_never_registers:
        return None
    return timedelta(seconds=item.agent_registration_delay_seconds)
