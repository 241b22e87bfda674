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


class VirtualMachineSpec(_Strict):
    name: str = Field(min_length=1)
    host: str = Field(description="ESXi host the VM is registered on")
    datastore: str = Field(description="Datastore holding the VM's disks")
    os_type: OsType = "Linux"
    power_state: Literal["poweredOn", "poweredOff"] = "poweredOff"


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
        for index, vm in enumerate(self.vms):
            if vm.host not in host_names:
                raise ValueError(f"vms[{index}].host names {vm.host!r}, which is not in hosts")
            host = next(h for h in self.hosts if h.name == vm.host)
            if vm.datastore not in host.datastores:
                raise ValueError(
                    f"vms[{index}].datastore {vm.datastore!r} is not accessible from host "
                    f"{vm.host!r}"
                )
        return self


class RecoveryPointHistory(_Strict):
    """Recovery points the simulator generates, counted back from lab start."""

    crash_consistent_every_seconds: int = Field(default=300, gt=0)
    app_consistent_every_seconds: int = Field(default=3600, gt=0)
    retention_seconds: int = Field(default=86400, gt=0)
    lag_seconds: int = Field(
        default=0, ge=0, description="Age of the newest point at lab start (replication lag)"
    )


class ProtectedItemSpec(_Strict):
    """One replicated machine as ASR knows it, already reprotected to on-premises (InMage)."""

    name: str = Field(min_length=1, description="ASR protected item name (ARM resource name)")
    vm_name: str = Field(min_length=1, description="On-premises VM name (the item's friendlyName)")
    azure_vm_name: str = Field(min_length=1, description="The failed-over VM in Azure")
    os_type: OsType = "Linux"
    os_version: str = "Ubuntu 22.04"
    recovery_points: RecoveryPointHistory = RecoveryPointHistory()
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
