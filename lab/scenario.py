"""Scenario files: what the lab's vCenter (vcsim) and ASR simulator hold.

A scenario is a JSON file validated by these pydantic models; `failback lab schema` writes the
JSON Schema. Every timing is in seconds so that a lab run takes seconds, not hours.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

OsType = Literal["Windows", "Linux"]
DatastoreType = Literal["VMFS", "vsan", "NFS"]


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
        "stays in vcsim's inventory, marked by the host custom attribute "
        "failback.lab.managedBy = standalone-esxi)",
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


class ProtectedItemSpec(_Strict):
    """One replicated machine as ASR knows it, already reprotected to on-premises (InMage)."""

    name: str = Field(min_length=1, description="ASR protected item name (ARM resource name)")
    vm_name: str = Field(min_length=1, description="On-premises VM name (the item's friendlyName)")
    azure_vm_name: str = Field(min_length=1, description="The failed-over VM in Azure")
    os_type: OsType = "Linux"
    os_version: str = "Ubuntu 22.04"
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


class JobTimings(_Strict):
    failover_seconds: float = Field(default=2.0, ge=0)
    commit_seconds: float = Field(default=1.0, ge=0)
    reprotect_seconds: float = Field(default=1.0, ge=0)


# ASR's limits for one recovery plan.
MAX_BOOT_GROUPS = 7
MAX_PLAN_ITEMS = 100


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
    protection_container: str = "cloud_container"
    process_server_id: str = Field(
        default="ps-azure-01", description="Process server in Azure used for the failback"
    )
    onprem_process_server_id: str = Field(
        default="ps-onprem-01", description="On-premises process server for re-protect to Azure"
    )
    azure_master_target_id: str = Field(
        default="mt-cs-builtin", description="Master target id used by re-protect to Azure"
    )
    master_target_vm: str = Field(description="Name of the master target VM in vCenter")
    azure_policy_id: str = Field(
        default="policy-vmware-to-azure", description="Replication policy for re-protect to Azure"
    )
    items: list[ProtectedItemSpec] = Field(min_length=1)
    jobs: JobTimings = JobTimings()
    recovery_plans: list[RecoveryPlanSpec] = Field(default_factory=list)


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    vcenter: VCenterSpec
    azure: AzureSpec

    @model_validator(mode="after")
    def _machines_exist(self) -> Scenario:
        vm_names = {vm.name for vm in self.vcenter.vms}
        if self.azure.master_target_vm not in vm_names:
            raise ValueError(
                f"azure.master_target_vm names {self.azure.master_target_vm!r}, "
                "which is not in vcenter.vms"
            )
        seen: set[str] = set()
        for index, item in enumerate(self.azure.items):
            if item.name in seen:
                raise ValueError(f"azure.items[{index}].name {item.name!r} is used twice")
            seen.add(item.name)
            if item.vm_name not in vm_names:
                raise ValueError(
                    f"azure.items[{index}].vm_name names {item.vm_name!r}, "
                    "which is not in vcenter.vms"
                )
        return self

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
        for vm in self.vcenter.vms:
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


def default_scenario_path() -> Path:
    return Path(__file__).parent / "scenarios" / "single-vm.json"


def registration_delay(item: ProtectedItemSpec) -> timedelta | None:
    """When the agent registers after commit; None when it never does."""
    if item.agent_never_registers:
        return None
    return timedelta(seconds=item.agent_registration_delay_seconds)
