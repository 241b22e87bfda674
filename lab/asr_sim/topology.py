"""ARM ids and the configuration server's view of the lab (process servers, master targets)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from lab.scenario import Health, OsType, Scenario

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
        # ASR's own ids begin "/Subscriptions/" in every recording and spec example; ARM paths are
        # case-insensitive, so a client that compares ids with paths it built must fold case.
        return (
            f"/Subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
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

    @property
    def log_storage_account(self) -> str:
        """The cache storage account replication to Azure writes its logs to."""
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.recovery_resource_group}"
            "/providers/Microsoft.Storage/storageAccounts/asrcachelab01"
        )

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
    health: Health
    heartbeat_age_seconds: float


@dataclass(frozen=True)
class DatastoreInfo:
    name: str
    type: str
    capacity_gb: int


@dataclass(frozen=True)
class RetentionVolumeInfo:
    volume_name: str
    capacity_gb: int
    free_gb: int


@dataclass(frozen=True)
class MasterTargetInfo:
    id: str
    name: str
    os_type: OsType
    ip_address: str
    # "failback": an on-premises VM that receives failback data (InMage);
    # "builtin": the configuration server's own master target, used when replicating to Azure.
    role: Literal["failback", "builtin"]
    retention_volumes: tuple[RetentionVolumeInfo, ...]
    # What ASR lists: empty when the master target's ESXi host is not discovered.
    datastores: tuple[DatastoreInfo, ...]
    # Its ESXi host (None for the built-in one, which runs on the configuration server).
    host: str | None = None
    host_discovered: bool = True
    health: Health = "Normal"
    heartbeat_age_seconds: float = 0.0

    @property
    def retention_volume(self) -> str:
        """The first retention volume (the one a reprotect to Azure's master target uses)."""
        return self.retention_volumes[0].volume_name

    def datastore(self, name: str) -> DatastoreInfo | None:
        return next((d for d in self.datastores if d.name.lower() == name.lower()), None)

    def retention(self, volume: str) -> RetentionVolumeInfo | None:
        return next((v for v in self.retention_volumes if v.volume_name == volume), None)


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
    kind: Literal["vcenter", "esxi"] = "vcenter"
    connected: bool = True
    # The ESXi hosts discovered through this entry.
    hosts: tuple[str, ...] = ()


class FabricCatalog:
    """What the configuration server knows: derived from the scenario, fixed for a run."""

    def __init__(self, scenario: Scenario, vcenter_address: tuple[str, int] | None) -> None:
        azure = scenario.azure
        self.configuration_server = azure.configuration_server
        self.reachable = azure.configuration_server_reachable
        self.heartbeat_age_seconds = scenario.configuration_server_heartbeat_age()
        azure_count = onprem_count = 0
        # The configuration server is itself a process server, with its master target's id
        # (recordings/v2aFailbackReprotect.json): listed first, as there.
        servers = [
            ProcessServerInfo(
                azure.azure_master_target_id,
                azure.configuration_server,
                "OnPrem",
                "10.0.0.4",
                "Normal" if azure.configuration_server_reachable else "Critical",
                self.heartbeat_age_seconds,
            )
        ]
        for ps in scenario.process_servers():
            # The first of each site keeps the address earlier lab versions gave it.
            if ps.location == "Azure":
                ip = f"10.1.0.{5 + azure_count}"
                azure_count += 1
            else:
                ip = "10.0.0.6" if onprem_count == 0 else f"10.0.1.{onprem_count}"
                onprem_count += 1
            servers.append(
                ProcessServerInfo(
                    ps.id, ps.name or ps.id, ps.location, ip, ps.health, ps.heartbeat_age_seconds
                )
            )
        self.process_servers = tuple(servers)

        host, port = vcenter_address or ("vcenter.corp.local", 443)
        self.vcenters = tuple(
            VCenterInfo(
                name=entry.name,
                friendly_name=entry.address or host,
                ip_address=entry.address or host,
                port=entry.port or port,
                kind=entry.kind,
                connected=entry.connected,
                hosts=entry.hosts,
            )
            for entry in scenario.asr_vcenters()
        )
        discovered = {h for entry in self.vcenters for h in entry.hosts}

        datastore_specs = {
            d.name: d for d in (scenario.vcenter.datastores if scenario.vcenter else [])
        }
        failback = []
        for index, mt in enumerate(scenario.master_targets()):
            host_discovered = mt.host in discovered
            failback.append(
                MasterTargetInfo(
                    id=mt.id,
                    name=mt.name,
                    os_type=mt.os_type,
                    ip_address="10.0.0.7" if index == 0 else f"10.0.2.{index}",
                    role="failback",
                    retention_volumes=tuple(
                        RetentionVolumeInfo(v.volume_name, v.capacity_gb, v.free_gb)
                        for v in mt.retention_volumes
                    ),
                    # ASR learns a master target's datastores from the discovery of its ESXi
                    # host: none while that host is not discovered (R3).
                    datastores=tuple(
                        DatastoreInfo(
                            name, datastore_specs[name].type, datastore_specs[name].capacity_gb
                        )
                        for name in mt.datastores
                    )
                    if host_discovered
                    else (),
                    host=mt.host,
                    host_discovered=host_discovered,
                    health=mt.health,
                    heartbeat_age_seconds=mt.heartbeat_age_seconds,
                )
            )
        self.failback_master_targets = tuple(failback)
        self.builtin_master_target = MasterTargetInfo(
            id=azure.azure_master_target_id,
            name=azure.configuration_server,
            os_type="Windows",
            ip_address="10.0.0.4",
            role="builtin",
            retention_volumes=(RetentionVolumeInfo("E", 512, 400),),
            datastores=(),
        )
        # The configuration server's own master target comes first (as recorded).
        self.master_targets = (self.builtin_master_target, *self.failback_master_targets)
        self.run_as_accounts = (
            RunAsAccountInfo("1", "vcenter-discovery"),
            RunAsAccountInfo("2", "mobility-push-install"),
        )

    def process_server(self, server_id: str) -> ProcessServerInfo | None:
        return next((p for p in self.process_servers if p.id.lower() == server_id.lower()), None)

    def master_target(self, target_id: str) -> MasterTargetInfo | None:
        return next((m for m in self.master_targets if m.id.lower() == target_id.lower()), None)

    def run_as_account(self, account_id: str) -> RunAsAccountInfo | None:
        return next((a for a in self.run_as_accounts if a.account_id == account_id), None)

    def vcenter(self, name: str) -> VCenterInfo | None:
        return next((v for v in self.vcenters if v.name.lower() == name.lower()), None)

    def vcenter_for_host(self, host: str | None) -> VCenterInfo | None:
        """The entry through which the configuration server discovered `host`, if any."""
        if host is None:
            return None
        return next((v for v in self.vcenters if host in v.hosts), None)

    @property
    def default_vcenter(self) -> VCenterInfo | None:
        """Where a machine without a known host is attributed: the first vCenter entry."""
        return next((v for v in self.vcenters if v.kind == "vcenter"), None) or next(
            iter(self.vcenters), None
        )
