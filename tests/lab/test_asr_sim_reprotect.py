"""The configuration server's inventory (fabric, process servers, master targets, vCenters), the
readiness scenarios, and the reprotect from Azure to on-premises, through the real SDK client."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import models as asr_models

from activities import vsphere_client
from lab import vcenter_client
from lab.asr_sim import (
    PyVmomiVCenterEffects,
    RecordingVCenterEffects,
    SimulatorConfig,
    SimulatorThread,
    VCenterEffectError,
    VCenterTarget,
    parse_vcenter_url,
)
from lab.certs import LabTls
from lab.credential import LabTokenCredential
from lab.localhost import free_port
from lab.scenario import Scenario, ScenarioError, load_scenario
from lab.vcenter import inventory_from_scenario, start_vcsim, stop_vcsim
from tests.lab.conftest import SECRET, SimLab, StartLab

SCENARIOS = Path(__file__).resolve().parents[2] / "lab" / "scenarios"
HOUR = dt.timedelta(hours=1)


def scenario_data(file: str) -> dict[str, Any]:
    return dict(json.loads((SCENARIOS / file).read_text()))


def fast(data: dict[str, Any], **item_fields: Any) -> Scenario:
    """The scenario with quick jobs and initial replication, `item_fields` set on every item."""
    data["azure"]["jobs"] = {
        "failover_seconds": 0.4,
        "commit_seconds": 0.2,
        "reprotect_seconds": 0.3,
    }
    for item in data["azure"]["items"]:
        item.update(
            {
                "initial_replication_seconds": 0.6,
                "full_copy_seconds": 1.0,
                "agent_registration_delay_seconds": 0.5,
                **item_fields,
            }
        )
    return Scenario.model_validate(data)


class AsrLab(SimLab):
    """Helpers for any item of the scenario, by item name."""

    def _ids(self, item: str) -> tuple[str, str, str, str, str]:
        a = self.scenario.azure
        return (a.resource_group, a.vault, a.fabric, a.protection_container, item)

    def item(self, name: str) -> Any:
        return self.asr.replication_protected_items.get(*self._ids(name))

    def points(self, name: str) -> list[Any]:
        return list(self.asr.recovery_points.list_by_replication_protected_items(*self._ids(name)))

    def fabric(self) -> Any:
        a = self.scenario.azure
        return self.asr.replication_fabrics.get(a.resource_group, a.vault, a.fabric)

    def vcenters(self) -> list[Any]:
        a = self.scenario.azure
        return list(
            self.asr.replicationv_centers.list_by_replication_fabrics(
                a.resource_group, a.vault, a.fabric
            )
        )

    def failback_policy_id(self) -> str:
        a = self.scenario.azure
        return str(
            self.asr.replication_policies.get(
                a.resource_group, a.vault, f"{a.azure_policy_id}-failback"
            ).id
        )

    def reprotect_to_onprem(self, name: str, **fields: Any) -> Any:
        """InMageReprotectInput through the SDK's own models; `fields` override its values."""
        mt = self.scenario.master_targets()[0]
        values: dict[str, Any] = {
            "master_target_id": mt.id,
            "process_server_id": self.scenario.azure.process_server_id,
            "retention_drive": mt.retention_volumes[0].volume_name,
            "run_as_account_id": "1",
            "datastore_name": mt.datastores[0],
            "profile_id": self.failback_policy_id(),
            **fields,
        }
        body = asr_models.ReverseReplicationInput(
            properties=asr_models.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=asr_models.InMageReprotectInput(**values),
            )
        )
        return self.asr.replication_protected_items.begin_reprotect(*self._ids(name), body)

    def reprotect_raw(self, name: str, properties: dict[str, Any]) -> Any:
        return self.asr.replication_protected_items.begin_reprotect(
            *self._ids(name), {"properties": properties}
        )

    def failover(self, name: str, point_id: str) -> Any:
        return self.asr.replication_protected_items.begin_unplanned_failover(
            *self._ids(name),
            {
                "properties": {
                    "failoverDirection": "PrimaryToRecovery",
                    "sourceSiteOperations": "NotRequired",
                    "providerSpecificDetails": {
                        "instanceType": "InMage",
                        "recoveryPointType": "Custom",
                        "recoveryPointId": point_id,
                    },
                }
            },
        )

    def commit(self, name: str) -> Any:
        return self.asr.replication_protected_items.begin_failover_commit(*self._ids(name))

    def reprotect_to_azure(self, name: str) -> Any:
        a = self.scenario.azure
        return self.reprotect_raw(
            name,
            {
                "failoverDirection": "RecoveryToPrimary",
                "providerSpecificDetails": {
                    "instanceType": "InMageAzureV2",
                    "masterTargetId": a.azure_master_target_id,
                    "processServerId": a.onprem_process_server_id,
                    "runAsAccountId": "2",
                    "policyId": a.azure_policy_id,
                },
            },
        )

    def jobs(self) -> list[Any]:
        a = self.scenario.azure
        return list(self.asr.replication_jobs.list(a.resource_group, a.vault))

    def lab_item(self, name: str) -> dict[str, Any]:
        return next(i for i in self.state()["items"] if i["name"] == name)

    def wait_until_healthy(self, name: str) -> dt.datetime:
        protection = self.lab_item(name)["onprem_protection"]
        healthy_at = dt.datetime.fromisoformat(protection["initial_replication_completes_at"])
        _sleep_until(healthy_at)
        return healthy_at


def _sleep_until(moment: dt.datetime) -> None:
    time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)


@pytest.fixture
def make_lab(start_lab: StartLab) -> Callable[..., AsrLab]:
    def make(scenario: Scenario, effects: RecordingVCenterEffects | None = None) -> AsrLab:
        lab = start_lab(scenario, effects, kind=AsrLab)
        assert isinstance(lab, AsrLab)
        return lab

    return make


def _error(err: HttpResponseError) -> tuple[str, str]:
    assert err.error is not None, f"no ARM error body in {err!r}"
    return str(err.error.code), str(err.error.message)


def _codes(errors: list[Any] | None) -> list[str]:
    return [str(e.error_code) for e in errors or []]


# -- the configuration server's inventory -------------------------------------------------------


def test_readiness_fabric_lists_master_targets_process_servers_and_vcenters(
    make_lab: Callable[..., AsrLab],
) -> None:
    lab = make_lab(load_scenario(SCENARIOS / "readiness.json"))
    fabric = lab.fabric()
    assert fabric.properties.health == "Normal" and fabric.properties.health_error_details == []
    details = fabric.properties.custom_details
    assert isinstance(details, asr_models.VMwareDetails)
    assert (details.host_name, details.cs_service_status) == ("cs01.corp.local", "Running")
    assert dt.datetime.now(dt.UTC) - details.last_heartbeat < dt.timedelta(seconds=30)
    # The configuration server is a process server too, with its master target's id (recorded).
    assert [(p.id, p.health, p.health_errors) for p in details.process_servers] == [
        ("mt-cs-builtin", "Normal", []),
        ("ps-azure-01", "Normal", []),
        ("ps-onprem-01", "Normal", []),
    ]

    mts = {mt.id: mt for mt in details.master_target_servers}
    assert list(mts) == ["mt-cs-builtin", "mt-win-01", "mt-lnx-01", "mt-lnx-02"]
    builtin, win, lnx, lnx2 = mts.values()
    assert (win.name, win.os_type) == ("mt-win-01", "Windows")
    assert [(d.symbolic_name, d.type) for d in win.data_stores] == [
        ("ds-vmfs-01", "VMFS"),
        ("ds-nfs-01", "NFS"),
    ]
    assert [(d.symbolic_name, d.type) for d in lnx.data_stores] == [
        ("ds-vmfs-01", "VMFS"),
        ("ds-vsan-01", "vsan"),
    ]
    assert float(lnx.data_stores[0].capacity) == 2048  # GB, as ASR reports it
    assert [v.volume_name for v in win.retention_volumes] == ["F"]
    assert [v.volume_name for v in lnx2.retention_volumes] == ["/mnt/retention"]
    assert lnx2.retention_volumes[0].free_space_in_bytes == 400 * 1024**3
    assert all(mt.health_errors == [] and mt.validation_errors == [] for mt in mts.values())
    # The configuration server's own master target: on the configuration server, no datastores.
    assert (builtin.name, builtin.data_stores) == (details.host_name, [])

    vcenters = lab.vcenters()
    assert [(v.name, v.properties.discovery_status) for v in vcenters] == [
        ("vcenter-01", "Connected"),
        ("esx-03", "Connected"),
    ]
    a = lab.scenario.azure
    esx = lab.asr.replicationv_centers.get(a.resource_group, a.vault, a.fabric, "esx-03")
    assert (esx.properties.friendly_name, esx.properties.ip_address) == ("esx-03", "esx-03")
    assert esx.properties.port == "443" and esx.properties.health_errors == []


def test_readiness_items_show_state_os_discovery_and_health(
    make_lab: Callable[..., AsrLab],
) -> None:
    lab = make_lab(load_scenario(SCENARIOS / "readiness.json"))
    ok = lab.item("vm-ok-item").properties
    assert ok.protection_state == "UnplannedFailoverCommitted"
    assert ok.active_location == "Recovery"
    assert ok.allowed_operations == [
        asr_models.ReplicationProtectedItemOperation.REVERSE_REPLICATE,
        "DisableProtection",
    ]
    assert (ok.replication_health, ok.health_errors) == ("Normal", [])
    psd = ok.provider_specific_details
    assert isinstance(psd, asr_models.InMageAzureV2ReplicationDetails)
    assert (psd.os_type, psd.os_version, psd.discovery_type) == ("Linux", "Ubuntu 22.04", "vCenter")
    assert psd.v_center_infrastructure_id == "vcenter-01"
    assert lab.points("vm-ok-item") == []

    w2k8 = lab.item("vm-w2k8-item").properties.provider_specific_details
    assert (w2k8.os_type, w2k8.os_version) == ("Windows", "Windows Server 2008 R2 SP1")
    physical = lab.item("phys-01-item").properties.provider_specific_details
    assert (physical.discovery_type, physical.v_center_infrastructure_id) == ("Physical", None)
    standalone = lab.item("vm-standalone-item").properties.provider_specific_details
    assert standalone.v_center_infrastructure_id == "esx-03"

    unknown = lab.item("vm-unknown-item").properties
    assert _codes(unknown.health_errors) == ["99010"]
    assert unknown.health_errors[0].entity_id == "vm-unknown"

    unhealthy = lab.item("vm-unhealthy-item").properties
    assert (unhealthy.protection_state, unhealthy.replication_health) == ("Protected", "Critical")
    assert _codes(unhealthy.health_errors) == ["99020"]
    assert unhealthy.provider_specific_details.master_target_id == "mt-lnx-02"
    assert lab.points("vm-unhealthy-item")

    assert lab.points("vm-norp-item") == []
    on_win = lab.item("vm-linux-on-win-mt-item").properties.provider_specific_details
    assert isinstance(on_win, asr_models.InMageReplicationDetails)
    assert (on_win.os_details.os_type, on_win.master_target_id) == ("Linux", "mt-win-01")
    snap = lab.item("vm-mt-snap-item").properties.provider_specific_details
    assert snap.master_target_id == "mt-lnx-01"

    group = [
        lab.item(f"grp-{os}-01-item").properties.provider_specific_details for os in ("win", "lnx")
    ]
    assert {d.multi_vm_group_name for d in group} == {"rg-mixed"}
    assert [d.os_type for d in group] == ["Windows", "Linux"]

    a = lab.scenario.azure
    plan = lab.asr.replication_recovery_plans.get(a.resource_group, a.vault, "plan-readiness")
    assert plan.properties.replication_providers == ["InMage", "InMageAzureV2"]


def test_cs_down_scenario_shows_a_stale_configuration_server_and_a_disconnected_vcenter(
    make_lab: Callable[..., AsrLab],
) -> None:
    lab = make_lab(load_scenario(SCENARIOS / "readiness-cs-down.json"))
    fabric = lab.fabric().properties
    now = dt.datetime.now(dt.UTC)
    assert fabric.health == "Critical"
    assert _codes(fabric.health_error_details) == ["95226"]
    details = fabric.custom_details
    assert details.cs_service_status == "Stopped"
    assert 2 * HOUR <= now - details.last_heartbeat < 2 * HOUR + dt.timedelta(minutes=1)
    # Process servers report through the configuration server: just as stale.
    assert all(now - ps.last_heartbeat >= 2 * HOUR for ps in details.process_servers)
    # No failback master target: only the configuration server's own, without datastores (R9).
    assert [(mt.id, mt.data_stores) for mt in details.master_target_servers] == [
        ("mt-cs-builtin", [])
    ]

    (vcenter,) = lab.vcenters()
    now = dt.datetime.now(dt.UTC)
    assert vcenter.properties.discovery_status == "Disconnected"
    assert _codes(vcenter.properties.health_errors) == ["99011"]
    assert now - vcenter.properties.last_heartbeat >= 2 * HOUR
    assert lab.item("web-01-item").properties.allowed_operations[0] == "ReverseReplicate"


def test_a_master_target_on_an_undiscovered_host_has_no_datastores(
    make_lab: Callable[..., AsrLab],
) -> None:
    data = scenario_data("reprotect.json")
    data["azure"]["vcenters"] = [{"name": "vcenter-01", "hosts": []}]
    lab = make_lab(fast(data))
    mt = lab.fabric().properties.custom_details.master_target_servers[1]  # after the CS's
    assert mt.data_stores == []
    assert _codes(mt.validation_errors) == ["99023"]
    assert mt.validation_errors[0].entity_id == "esx-01.corp.local"
    with pytest.raises(HttpResponseError) as refused:
        lab.reprotect_to_onprem("web-01-item", datastore_name=None)
    code, message = _error(refused.value)
    assert code == "InvalidRequestContent" and "masterTargetId" in message
    assert "esx-01.corp.local" in message and "not discovered" in message


# -- reprotect Azure -> on-premises: validation ---------------------------------------------------


@pytest.mark.parametrize(
    ("item", "fields", "field", "says"),
    [
        ("web-01-item", {"master_target_id": "mt-nope"}, "masterTargetId", "mt-linux-01"),
        ("web-01-item", {"master_target_id": "mt-cs-builtin"}, "masterTargetId", "own master"),
        ("web-01-item", {"process_server_id": "ps-nope"}, "processServerId", "ps-azure-01"),
        ("web-01-item", {"process_server_id": "ps-onprem-01"}, "processServerId", "in Azure"),
        ("web-01-item", {"retention_drive": "F"}, "retentionDrive", "/mnt/retention"),
        ("web-01-item", {"run_as_account_id": "9"}, "runAsAccountId", "'9'"),
        ("web-01-item", {"datastore_name": "ds-nope"}, "datastoreName", "ds-vmfs-01"),
        ("app-01-item", {"datastore_name": None}, "datastoreName", "is required"),
        ("app-01-item", {"datastore_name": "ds-nfs-01"}, "datastoreName", "VMFS"),
        ("web-01-item", {"profile_id": "policy-vmware-to-azure"}, "profileId", "-failback"),
    ],
)
def test_inmage_reprotect_refusals_name_the_field(
    make_lab: Callable[..., AsrLab], item: str, fields: dict[str, Any], field: str, says: str
) -> None:
    lab = make_lab(fast(scenario_data("reprotect.json")))
    with pytest.raises(HttpResponseError) as refused:
        lab.reprotect_to_onprem(item, **fields)
    assert refused.value.status_code == 400
    code, message = _error(refused.value)
    assert code == "InvalidRequestContent"
    assert f"providerSpecificDetails.{field}" in message and says in message
    assert lab.jobs() == []
    assert lab.item(item).properties.protection_state == "UnplannedFailoverCommitted"


def test_reprotect_body_refusals_name_direction_and_instance_type(
    make_lab: Callable[..., AsrLab],
) -> None:
    lab = make_lab(fast(scenario_data("reprotect.json")))
    with pytest.raises(HttpResponseError) as wrong_type:
        lab.reprotect_to_azure("web-01-item")
    assert "instanceType" in _error(wrong_type.value)[1]
    assert "'InMage'" in _error(wrong_type.value)[1]
    with pytest.raises(HttpResponseError) as wrong_direction:
        lab.reprotect_raw(
            "web-01-item",
            {
                "failoverDirection": "PrimaryToRecovery",
                "providerSpecificDetails": {"instanceType": "InMage"},
            },
        )
    assert "failoverDirection" in _error(wrong_direction.value)[1]
    # A machine failed over to Azure cannot fail over (back) before it is reprotected.
    with pytest.raises(HttpResponseError) as not_yet:
        lab.failover("web-01-item", "x")
    assert _error(not_yet.value)[0] == "BadRequest"
    assert "allowed operations" in _error(not_yet.value)[1]
    assert lab.jobs() == []


def test_master_target_of_another_os_or_group_is_refused(make_lab: Callable[..., AsrLab]) -> None:
    data = scenario_data("reprotect.json")
    vms = data["vcenter"]["vms"]
    vms.append({**vms[0], "name": "win-01", "os_type": "Windows", "guest_os_version": None})
    vms.append({**vms[0], "name": "win-02", "os_type": "Windows", "guest_os_version": None})
    vms.append({**vms[1], "name": "mt-win-01", "os_type": "Windows", "guest_os_version": None})
    vms.append({**vms[1], "name": "mt-win-02", "os_type": "Windows", "guest_os_version": None})
    data["azure"]["master_targets"] += [{"name": "mt-win-01"}, {"name": "mt-win-02"}]
    items = data["azure"]["items"]
    for name in ("win-01", "win-02"):
        items.append(
            {
                **items[0],
                "name": f"{name}-item",
                "vm_name": name,
                "azure_vm_name": name,
                "os_type": "Windows",
                "os_version": "Windows Server 2019",
                "replication_group": "rg-win",
            }
        )
    lab = make_lab(fast(data))

    with pytest.raises(HttpResponseError) as wrong_os:
        lab.reprotect_to_onprem("win-01-item")  # the Linux master target
    message = _error(wrong_os.value)[1]
    assert "masterTargetId" in message and "Windows" in message and "Linux" in message

    lab.reprotect_to_onprem(
        "win-01-item", master_target_id="mt-win-01", retention_drive="F"
    ).result()
    with pytest.raises(HttpResponseError) as other_mt:
        lab.reprotect_to_onprem("win-02-item", master_target_id="mt-win-02", retention_drive="F")
    message = _error(other_mt.value)[1]
    assert "masterTargetId" in message and "rg-win" in message and "mt-win-01" in message


# -- reprotect Azure -> on-premises: the job and what follows -------------------------------------


def test_reprotect_to_original_location_replicates_then_is_healthy_with_points(
    make_lab: Callable[..., AsrLab],
) -> None:
    # Longer than the SDK's 1 s polling, so that the result still shows the initial replication.
    lab = make_lab(fast(scenario_data("reprotect.json"), initial_replication_seconds=3))
    item = lab.reprotect_to_onprem("web-01-item").result()

    props = item.properties
    # As recorded: the state says so, and nothing but DisableProtection is offered meanwhile.
    assert (props.protection_state, props.active_location) == (
        "InitialReplicationInProgress",
        "Recovery",
    )
    assert props.allowed_operations == ["DisableProtection"]
    assert props.replication_health == "Warning"
    assert props.protection_state_description == "Initial replication in progress"
    assert props.policy_id == lab.failback_policy_id()
    psd = props.provider_specific_details
    assert isinstance(psd, asr_models.InMageReplicationDetails)
    assert (psd.active_site_type, psd.master_target_id, psd.process_server_id) == (
        "Azure",
        "mt-linux-01",
        "ps-azure-01",
    )
    assert psd.datastores == ["ds-vmfs-01"] and psd.protection_stage == "InitialReplication"
    assert psd.resync_details.initial_replication_type == "DifferentialCopy"
    assert int(psd.resync_details.initial_replication_progress_percentage) < 100
    assert lab.points("web-01-item") == []
    (job,) = lab.jobs()
    assert (job.properties.scenario_name, job.properties.state) == (
        "SwitchReplicationGroupProtection",
        "Succeeded",
    )
    assert job.properties.target_object_name == "web-01"

    healthy_at = lab.wait_until_healthy("web-01-item")
    props = lab.item("web-01-item").properties
    assert props.replication_health == "Normal" and props.health_errors == []
    assert props.protection_state_description == "Protected"
    assert (
        props.provider_specific_details.resync_details.initial_replication_progress_percentage
        == "100"
    )
    points = lab.points("web-01-item")
    assert points, "a healthy item has a recovery point"
    # The history begins when the initial replication completed.
    assert points[-1].properties.recovery_point_time == healthy_at.replace(microsecond=0)
    assert all(
        p.properties.recovery_point_time >= healthy_at.replace(microsecond=0) for p in points
    )
    # Original location: nothing is created in vCenter.
    assert lab.effects.calls == []


def test_alternate_location_reprotect_creates_the_vm_and_the_failover_boots_it(
    make_lab: Callable[..., AsrLab],
) -> None:
    effects = RecordingVCenterEffects(missing_vms={"app-01"})
    lab = make_lab(fast(scenario_data("reprotect.json")), effects)
    item = lab.reprotect_to_onprem("app-01-item", datastore_name="ds-vmfs-01").result()
    psd = item.properties.provider_specific_details
    assert psd.resync_details.initial_replication_type == "FullCopy"
    assert psd.datastores == ["ds-vmfs-01"]
    (created,) = effects.calls
    assert (created.action, created.vm_name, created.host, created.datastore) == (
        "create_vm",
        "app-01",
        "esx-01.corp.local",
        "ds-vmfs-01",
    )
    assert (created.os_type, created.disks_gb) == ("Linux", (40, 20))
    state_effects = lab.state()["vcenter_effects"]
    assert state_effects[0]["host"] == "esx-01.corp.local"

    lab.wait_until_healthy("app-01-item")
    point = lab.points("app-01-item")[0]
    failed_over = lab.failover("app-01-item", point.id).result().properties
    assert failed_over.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    assert [(c.action, c.vm_name) for c in effects.calls] == [
        ("create_vm", "app-01"),
        ("power_on", "app-01"),
    ]


def test_the_whole_cycle_after_a_reprotect_to_onprem(make_lab: Callable[..., AsrLab]) -> None:
    lab = make_lab(fast(scenario_data("reprotect.json")))
    lab.reprotect_to_onprem("web-01-item").result()
    lab.wait_until_healthy("web-01-item")
    time.sleep(0.3)
    points = lab.points("web-01-item")
    chosen = points[0]

    failed_over = lab.failover("web-01-item", chosen.id).result().properties
    assert failed_over.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    assert failed_over.failover_recovery_point_id == chosen.id
    # Replication stopped with the failover: the points stay as they were.
    frozen = [p.name for p in lab.points("web-01-item")]
    time.sleep(1.1)
    assert [p.name for p in lab.points("web-01-item")] == frozen

    committed = lab.commit("web-01-item").result().properties
    assert committed.protection_state == "UnplannedFailoverCommitted"
    assert committed.provider_specific_details.active_site_type == "OnPrem"
    registers_at = dt.datetime.fromisoformat(lab.lab_item("web-01-item")["agent_registers_at"])
    _sleep_until(registers_at)
    protected = lab.reprotect_to_azure("web-01-item").result().properties
    assert protected.protection_state == "Protected"
    assert protected.provider_specific_details.instance_type == "InMageAzureV2"
    scenarios = sorted(j.properties.scenario_name for j in lab.jobs())
    assert scenarios == [
        "CommitFailover",
        "SwitchReplicationGroupProtection",
        "SwitchReplicationGroupProtection",
        "UnplannedFailover",
    ]
    assert all(j.properties.state == "Succeeded" for j in lab.jobs())


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        (lambda d: d["azure"].update(configuration_server_reachable=False), "95226", "cs01"),
        (
            lambda d: d["azure"]["items"][0].update(known_to_configuration_server=False),
            "99010",
            "database",
        ),
        (
            lambda d: d["azure"]["items"][0].update(os_version="Windows Server 2008 R2 SP1"),
            "99012",
            "2008 R2",
        ),
        (
            lambda d: d["azure"].update(vcenters=[{"name": "vcenter-01", "connected": False}]),
            "99011",
            "vcenter-01",
        ),
        (
            # web-01 moves to a datastore that only another host mounts.
            lambda d: (
                d["vcenter"]["datastores"].append({"name": "ds-far"}),
                d["vcenter"]["hosts"].append(
                    {"name": "esx-02.corp.local", "datastores": ["ds-far"]}
                ),
                d["vcenter"]["vms"][0].update(host="esx-02.corp.local", datastore="ds-far"),
            ),
            "8061",
            "ds-far",
        ),
    ],
)
def test_reprotect_job_fails_when_asr_cannot_protect(
    make_lab: Callable[..., AsrLab], change: Callable[[dict[str, Any]], Any], code: str, says: str
) -> None:
    data = scenario_data("reprotect.json")
    change(data)
    lab = make_lab(fast(data))
    with pytest.raises(HttpResponseError) as failed:
        lab.reprotect_to_onprem("web-01-item").result()
    got_code, message = _error(failed.value)
    assert got_code == code and says in message and "web-01" in message
    (job,) = lab.jobs()
    assert [t.name for t in job.properties.tasks if t.state == "Failed"] == [
        "VmReprotectPrerequisitesCheck"
    ]
    # Still failed over, the reprotect can be retried once the cause is fixed.
    props = lab.item("web-01-item").properties
    assert props.protection_state == "UnplannedFailoverCommitted"
    assert "ReverseReplicate" in props.allowed_operations


def test_a_vm_that_cannot_be_created_fails_the_reprotect_with_78052(
    make_lab: Callable[..., AsrLab],
) -> None:
    effects = RecordingVCenterEffects(missing_vms={"app-01"}, uncreatable_vms={"app-01"})
    lab = make_lab(fast(scenario_data("reprotect.json")), effects)
    with pytest.raises(HttpResponseError) as failed:
        lab.reprotect_to_onprem("app-01-item").result()
    code, message = _error(failed.value)
    assert code == "78052" and "app-01" in message and "esx-01.corp.local" in message


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda d: d["azure"].update(configuration_server_reachable=False), "95226"),
        (
            lambda d: d["azure"].update(vcenters=[{"name": "vcenter-01", "connected": False}]),
            "99011",
        ),
    ],
)
def test_failover_fails_without_configuration_server_or_vcenter(
    make_lab: Callable[..., AsrLab], change: Callable[[dict[str, Any]], Any], code: str
) -> None:
    data = scenario_data("single-vm.json")
    change(data)
    lab = make_lab(fast(data))
    point = lab.points("web-01-item")[0]
    with pytest.raises(HttpResponseError) as failed:
        lab.failover("web-01-item", point.id).result()
    assert _error(failed.value)[0] == code
    assert lab.item("web-01-item").properties.protection_state == "Protected"


# -- scenario fields ------------------------------------------------------------------------------


def test_defaults_reproduce_the_earlier_inventory() -> None:
    scenario = load_scenario(SCENARIOS / "single-vm.json")
    assert [(p.id, p.location, p.health) for p in scenario.process_servers()] == [
        ("ps-azure-01", "Azure", "Normal"),
        ("ps-onprem-01", "OnPrem", "Normal"),
    ]
    (mt,) = scenario.master_targets()
    assert (mt.id, mt.name, mt.os_type, mt.host, mt.datastores) == (
        "mt-linux-01",
        "mt-linux-01",
        "Linux",
        "esx-01.corp.local",
        ("ds-vmfs-01",),
    )
    assert [v.volume_name for v in mt.retention_volumes] == ["/mnt/retention"]
    (vcenter,) = scenario.asr_vcenters()
    assert (vcenter.name, vcenter.kind, vcenter.connected, vcenter.hosts) == (
        "vcenter-01",
        "vcenter",
        True,
        ("esx-01.corp.local",),
    )
    item = scenario.azure.items[0]
    assert (item.state, item.discovery_type, item.replication_health) == (
        "replicating-back",
        "vCenter",
        "Normal",
    )
    assert item.known_to_configuration_server and item.master_target is None
    assert (item.initial_replication_seconds, item.full_copy_seconds) == (3.0, 6.0)
    assert scenario.configuration_server_heartbeat_age() == 0.0
    # The readiness scenario's standalone host gets its own ESXi entry by default.
    readiness = scenario_data("readiness.json")
    del readiness["azure"]["vcenters"]
    assert [(v.name, v.kind) for v in Scenario.model_validate(readiness).asr_vcenters()] == [
        ("vcenter-01", "vcenter"),
        ("esx-03", "esxi"),
    ]


def _item(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in data["azure"]["items"] if i["name"] == name)


@pytest.mark.parametrize(
    ("file", "mutate", "expected"),
    [
        (
            "single-vm.json",
            lambda d: d["azure"].update(master_targets=[{"name": "mt-linux-01"}]),
            "azure.master_target_vm and azure.master_targets are both given",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"].pop("master_targets"),
            "azure.master_target_vm or azure.master_targets is required",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["master_targets"][0].update(name="mt-nowhere"),
            "azure.master_targets[0].name 'mt-nowhere' is not in vcenter.vms",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["master_targets"][0].update(datastores=["ds-vsan-01"]),
            "azure.master_targets[0].datastores names 'ds-vsan-01'",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["master_targets"][0].update(id="mt-cs-builtin"),
            "azure.master_targets[0].id 'mt-cs-builtin' is azure.azure_master_target_id",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["master_targets"][0].update(
                retention_volumes=[{"volume_name": "F", "capacity_gb": 10, "free_gb": 20}]
            ),
            "azure.master_targets.0.retention_volumes.0",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["items"][0].update(master_target="mt-nope"),
            "azure.items[0].master_target names 'mt-nope'",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["items"][1].update(state="replicating-back"),
            "azure.items[1].vm_name names 'app-01', which is not in vcenter.vms",
        ),
        (
            "readiness-cs-down.json",
            lambda d: d["azure"]["items"][0].update(state="replicating-back"),
            "azure.items[0] replicates back through a master target, but the configuration "
            "server has none",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["items"][0].update(state="failed-back"),
            "azure.items.0.state",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["items"][0].update(discovery_type="Hyper-V"),
            "azure.items.0.discovery_type",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["items"][0].update(replication_health="Bad"),
            "azure.items.0.replication_health",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"]["items"][0].update(disk_sizes_gb=[0]),
            "azure.items.0.disk_sizes_gb",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"].update(process_servers=[{"id": "ps-1", "location": "Azure"}]),
            "azure.process_server_id 'ps-azure-01' must be a process server in Azure",
        ),
        (
            "reprotect.json",
            lambda d: d["azure"].update(
                process_servers=[
                    {"id": "ps-azure-01", "location": "Azure"},
                    {"id": "ps-onprem-01", "location": "Azure"},
                ]
            ),
            "azure.onprem_process_server_id 'ps-onprem-01' must be a process server in OnPrem",
        ),
        (
            "readiness.json",
            lambda d: d["azure"].update(vcenters=[{"name": "vc", "hosts": ["esx-03"]}]),
            "azure.vcenters[0].hosts names 'esx-03', a standalone ESXi host",
        ),
        (
            "readiness.json",
            lambda d: d["azure"].update(vcenters=[{"name": "esx-99", "kind": "esxi"}]),
            "azure.vcenters[0] is an ESXi host entry named 'esx-99'",
        ),
        (
            "readiness.json",
            lambda d: d["azure"].update(vcenters=[{"name": "vc", "hosts": ["esx-09"]}]),
            "azure.vcenters[0].hosts names 'esx-09'",
        ),
    ],
)
def test_invalid_azure_fields_are_named(
    tmp_path: Path, file: str, mutate: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    data = scenario_data(file)
    mutate(data)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert expected in str(caught.value)


def test_the_scenario_files_hold_what_their_descriptions_say() -> None:
    readiness = load_scenario(SCENARIOS / "readiness.json")
    vms = {vm.name for vm in readiness.vcenter.vms}
    by_name = {item.name: item for item in readiness.azure.items}
    replicating = {n for n, i in by_name.items() if i.state == "replicating-back"}
    assert replicating == {
        "vm-unhealthy-item",
        "vm-norp-item",
        "vm-linux-on-win-mt-item",
        "vm-mt-snap-item",
    }
    missing = {n for n, i in by_name.items() if not readiness.onprem_vm_exists(i)}
    assert missing == {"phys-01-item", "vm-gone-item"}
    assert "phys-01" not in vms and "vm-gone" not in vms
    snapshots = {vm.name: vm.snapshots for vm in readiness.vcenter.vms if vm.role != "vm"}
    assert snapshots == {"mt-win-01": 0, "mt-lnx-01": 2, "mt-lnx-02": 0}
    (plan,) = readiness.azure.recovery_plans
    assert sorted(plan.boot_groups[0]) == sorted(by_name)

    down = load_scenario(SCENARIOS / "readiness-cs-down.json")
    assert not down.azure.configuration_server_reachable and down.master_targets() == []
    assert [v.connected for v in down.asr_vcenters()] == [False]

    reprotect = load_scenario(SCENARIOS / "reprotect.json")
    assert [i.state for i in reprotect.azure.items] == ["failed-over-to-azure"] * 2
    assert [reprotect.onprem_vm_exists(i) for i in reprotect.azure.items] == [True, False]
    (mt,) = reprotect.master_targets()
    assert mt.os_type == "Linux" and reprotect.vm(mt.name).snapshots == 0
    assert reprotect.recovery_plan("plan-reprotect").boot_groups == [["web-01-item", "app-01-item"]]


# -- vCenter effects ------------------------------------------------------------------------------


async def test_create_vm_goes_through_the_vsphere_client(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, str, str, str, tuple[int, ...]]] = []

    def create_vm_on_host(
        si: object, name: str, host: str, datastore: str, os_type: str, disks: tuple[int, ...]
    ) -> None:
        if datastore == "ds-vsan-01":
            raise vcenter_client.DatastoreNotAccessibleError(datastore, host)
        created.append((name, host, datastore, os_type, disks))

    monkeypatch.setattr(vsphere_client, "connect", lambda *args, **kwargs: object())
    monkeypatch.setattr(vsphere_client, "disconnect", lambda si: None)
    monkeypatch.setattr(vcenter_client, "create_vm_on_host", create_vm_on_host)

    effects = PyVmomiVCenterEffects(parse_vcenter_url("https://127.0.0.1:8989/sdk", "u", "pw"))
    await effects.create_vm("app-01", "esx-01", "ds-vmfs-01", "Linux", [40, 20])
    assert created == [("app-01", "esx-01", "ds-vmfs-01", "Linux", (40, 20))]
    with pytest.raises(VCenterEffectError, match="ds-vsan-01"):
        await effects.create_vm("app-02", "esx-01", "ds-vsan-01", "Linux", [40])
    assert [(c.action, c.vm_name, c.datastore) for c in effects.calls] == [
        ("create_vm", "app-01", "ds-vmfs-01"),
        ("create_vm", "app-02", "ds-vsan-01"),
    ]


@pytest.fixture
def vcsim_for_reprotect(
    vcsim_harness: Path, tmp_path: Path
) -> Iterator[tuple[Scenario, VCenterTarget]]:
    scenario = fast(scenario_data("reprotect.json"))
    process, endpoint = start_vcsim(
        vcsim_harness,
        inventory_from_scenario(scenario),
        tmp_path,
        free_port(),
        "lab-admin",
        "s3cret-lab",
        tmp_path / "vcsim.log",
    )
    try:
        yield scenario, VCenterTarget(endpoint.host, endpoint.port, "lab-admin", "s3cret-lab")
    finally:
        stop_vcsim(process, timeout=10)


def test_alternate_location_in_vcsim(
    vcsim_for_reprotect: tuple[Scenario, VCenterTarget], tls: LabTls
) -> None:
    """The simulator re-creates app-01 in a real vcsim, and the failover boots it there."""
    scenario, target = vcsim_for_reprotect
    config = SimulatorConfig(
        scenario=scenario,
        cert=tls.server_cert,
        key=tls.server_key,
        token_secret=SECRET,
        vcenter=target,
    )
    with SimulatorThread(config) as sim:
        credential = LabTokenCredential(sim.url, SECRET, str(tls.ca_cert))
        from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

        lab = AsrLab(
            sim=sim,
            scenario=scenario,
            tls=tls,
            effects=RecordingVCenterEffects(),
            asr=SiteRecoveryManagementClient(
                credential,
                scenario.azure.subscription_id,
                base_url=sim.url,
                connection_verify=str(tls.ca_cert),
                polling_interval=1,
            ),
            compute=None,  # type: ignore[arg-type]
        )
        lab.reprotect_to_onprem("app-01-item", datastore_name="ds-vmfs-01").result()
        si = vsphere_client.connect(
            target.host, target.port, target.user, target.password, verify_tls=False
        )
        try:
            vm = vsphere_client.read_inventory(si).vm("app-01")
            assert (vm.host, vm.power_state) == ("esx-01.corp.local", "poweredOff")
            assert [(d.datastore, d.size_gb) for d in vm.disks] == [
                ("ds-vmfs-01", 40),
                ("ds-vmfs-01", 20),
            ]
            lab.wait_until_healthy("app-01-item")
            point = lab.points("app-01-item")[0]
            lab.failover("app-01-item", point.id).result()
            state = vsphere_client.read_vm_states(si, ["app-01"])["app-01"]
            assert state.power_state == "poweredOn"
        finally:
            vsphere_client.disconnect(si)
