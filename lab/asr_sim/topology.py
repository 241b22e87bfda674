"""ARM ids and the configuration server's view of the lab (process servers, master targets)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from lab.scenario import OsType, Scenario

# Stable GUIDs for things ASR identifies by GUID, derived from names so that restarting the
# simulator with the same scenario yields the same ids.
_LAB_NAMESPACE = uuid.UUID("6f7c3f1e-3a55-4c0e-9d77-0c4f0a1b2c3d")


def stable_guid(*parts: str) -> str:
    return str(uuid.uuid5(_LAB_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class ArmIds:
    subscription: str
    resource_group: str
    vault: str
    fabric: str
    container: str
    recovery_resource_group: str

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> ArmIds:
        azure = scenario.azure
        return cls(
            subscription=azure.subscription_id,
            resource_group=azure.resource_group,
            vault=azure.vault,
            fabric=azure.fabric,
            container=azure.protection_container,
            recovery_resource_group=azure.recovery_resource_group,
        )

    @property
    def vault_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.vault}"
        )

    @property
    def fabric_id(self) -> str:
        return f"{self.vault_id}/replicationFabrics/{self.fabric}"

    @property
    def container_id(self) -> str:
        return f"{self.fabric_id}/replicationProtectionContainers/{self.container}"

    def item(self, name: str) -> str:
        return f"{self.container_id}/replicationProtectedItems/{name}"

    def recovery_point(self, item_name: str, point_name: str) -> str:
        return f"{self.item(item_name)}/recoveryPoints/{point_name}"

    def job(self, name: str) -> str:
        return f"{self.vault_id}/replicationJobs/{name}"

    def recovery_plan(self, name: str) -> str:
        return f"{self.vault_id}/replicationRecoveryPlans/{name}"

    def operation_status(self, job_name: str) -> str:
        return f"{self.vault_id}/replicationOperationStatus/{job_name}"

    def operation_result(self, item_name: str, job_name: str) -> str:
        return f"{self.item(item_name)}/operationresults/{job_name}"

    def policy(self, name: str) -> str:
        return f"{self.vault_id}/replicationPolicies/{name}"

    def vcenter(self, name: str) -> str:
        return f"{self.fabric_id}/replicationvCenters/{name}"

    def compute_vm(self, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.recovery_resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )


Site = Literal["Azure", "OnPrem"]


@dataclass(frozen=True)
class ProcessServerInfo:
    id: str
    friendly_name: str
    site: Site
    ip_address: str


@dataclass(frozen=True)
class DatastoreInfo:
    name: str
    type: str
    capacity_gb: int


@dataclass(frozen=True)
class MasterTargetInfo:
    id: str
    name: str
    os_type: OsType
    ip_address: str
    # "failback": the on-premises VM that receives failback data (InMage);
    # "builtin": the configuration server's own master target, used when replicating to Azure.
    role: Literal["failback", "builtin"]
    retention_volume: str
    datastores: tuple[DatastoreInfo, ...]


@dataclass(frozen=True)
class RunAsAccountInfo:
    account_id: str
    account_name: str


@dataclass(frozen=True)
class VCenterInfo:
    name: str
    friendly_name: str
    ip_address: str
    port: int


class FabricCatalog:
    """What the configuration server knows: derived from the scenario, fixed for a run."""

    def __init__(self, scenario: Scenario, vcenter_address: tuple[str, int] | None) -> None:
        azure = scenario.azure
        self.configuration_server = azure.configuration_server
        self.process_servers = (
            ProcessServerInfo(
                azure.process_server_id, azure.process_server_id, "Azure", "10.1.0.5"
            ),
            ProcessServerInfo(
                azure.onprem_process_server_id, azure.onprem_process_server_id, "OnPrem", "10.0.0.6"
            ),
        )
        mt_vm = scenario.vm(azure.master_target_vm)
        mt_host = next(h for h in scenario.vcenter.hosts if h.name == mt_vm.host)
        datastores = tuple(
            DatastoreInfo(ds.name, ds.type, ds.capacity_gb)
            for ds in scenario.vcenter.datastores
            if ds.name in mt_host.datastores
        )
        self.failback_master_target = MasterTargetInfo(
            id=mt_vm.name,
            name=mt_vm.name,
            os_type=mt_vm.os_type,
            ip_address="10.0.0.7",
            role="failback",
            retention_volume="F" if mt_vm.os_type == "Windows" else "/mnt/retention",
            datastores=datastores,
        )
        self.builtin_master_target = MasterTargetInfo(
            id=azure.azure_master_target_id,
            name=azure.configuration_server,
            os_type="Windows",
            ip_address="10.0.0.4",
            role="builtin",
            retention_volume="E",
            datastores=(),
        )
        self.master_targets = (self.failback_master_target, self.builtin_master_target)
        self.run_as_accounts = (
            RunAsAccountInfo("1", "vcenter-discovery"),
            RunAsAccountInfo("2", "mobility-push-install"),
        )
        host, port = vcenter_address or ("vcenter.corp.local", 443)
        self.vcenter = VCenterInfo("vcenter-01", host, host, port)

    def process_server(self, server_id: str) -> ProcessServerInfo | None:
        return next((p for p in self.process_servers if p.id.lower() == server_id.lower()), None)

    def master_target(self, target_id: str) -> MasterTargetInfo | None:
        return next((m for m in self.master_targets if m.id.lower() == target_id.lower()), None)

    def run_as_account(self, account_id: str) -> RunAsAccountInfo | None:
        return next((a for a in self.run_as_accounts if a.account_id == account_id), None)
