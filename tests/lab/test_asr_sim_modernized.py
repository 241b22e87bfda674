"""The simulator's modernized VMware/physical architecture, through the real SDK client: the
replication appliance in the fabric, the InMageRcm -> InMageRcmFailback walk with the states,
allowed operations, request fields, job scenarios and tasks of Microsoft's recorded runs, the
undo (failoverCancel) and the reprotect back to Azure. Every answer is walked against the SDK's
models and the recordings' values (the start_lab fixture fails on any violation)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import models as asr_models

from lab.asr_sim import RecordingVCenterEffects
from lab.scenario import Scenario, load_scenario
from tests.lab.conftest import SimLab, StartLab

SCENARIO = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "modernized.json"
LOG_ACCOUNT = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/logs"


def _scenario() -> Scenario:
    data = load_scenario(SCENARIO).model_dump()
    data["azure"]["jobs"] = {
        "failover_seconds": 0.4,
        "commit_seconds": 0.2,
        "reprotect_seconds": 0.3,
    }
    for item in data["azure"]["items"]:
        item.update(
            initial_replication_seconds=0.8,
            full_copy_seconds=1.0,
            agent_registration_delay_seconds=1.0,
        )
    return Scenario.model_validate(data)


class ModernLab(SimLab):
    def ids(self, item: str) -> tuple[str, str, str, str, str]:
        a = self.scenario.azure
        return (a.resource_group, a.vault, a.fabric, a.protection_container, item)

    def item(self, name: str) -> Any:
        return self.asr.replication_protected_items.get(*self.ids(name))

    def policy_id(self, name: str) -> str:
        a = self.scenario.azure
        return str(self.asr.replication_policies.get(a.resource_group, a.vault, name).id)

    def agent(self) -> Any:
        a = self.scenario.azure
        fabric = self.asr.replication_fabrics.get(a.resource_group, a.vault, a.fabric)
        return fabric.properties.custom_details.reprotect_agents[0]

    def run(self, poller: Any) -> Any:
        """The job the poller followed, once it ended (succeeded or not)."""
        with contextlib.suppress(HttpResponseError):
            poller.result()
        jobs = self.state()["jobs"]
        return max(jobs, key=lambda j: j["properties"]["startTime"])

    def reprotect_to_onprem(self, name: str, datastore: str = "ds-vmfs-01") -> Any:
        a = self.scenario.azure
        body = asr_models.ReverseReplicationInput(
            properties=asr_models.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=asr_models.InMageRcmReprotectInput(
                    reprotect_agent_id=self.agent().id,
                    datastore_name=datastore,
                    log_storage_account_id=LOG_ACCOUNT,
                    policy_id=self.policy_id(f"{a.azure_policy_id}-failback"),
                ),
            )
        )
        return self.asr.replication_protected_items.begin_reprotect(*self.ids(name), body)

    def planned_failover(self, name: str, kind: str = "CrashConsistent") -> Any:
        # As recorded: no failoverDirection for this provider.
        body = {
            "properties": {
                "providerSpecificDetails": {
                    "instanceType": "InMageRcmFailback",
                    "recoveryPointType": kind,
                }
            }
        }
        return self.asr.replication_protected_items.begin_planned_failover(*self.ids(name), body)

    def cancel(self, name: str) -> Any:
        return self.asr.replication_protected_items.begin_failover_cancel(*self.ids(name))

    def commit(self, name: str) -> Any:
        return self.asr.replication_protected_items.begin_failover_commit(*self.ids(name))

    def reprotect_to_azure(self, name: str) -> Any:
        a = self.scenario.azure
        fabric = self.asr.replication_fabrics.get(a.resource_group, a.vault, a.fabric)
        body = asr_models.ReverseReplicationInput(
            properties=asr_models.ReverseReplicationInputProperties(
                failover_direction="PrimaryToRecovery",
                provider_specific_details=asr_models.InMageRcmFailbackReprotectInput(
                    process_server_id=fabric.properties.custom_details.process_servers[0].id,
                    policy_id=self.policy_id(a.azure_policy_id),
                ),
            )
        )
        return self.asr.replication_protected_items.begin_reprotect(*self.ids(name), body)


@pytest.fixture
def lab(start_lab: StartLab) -> ModernLab:
    started = start_lab(
        _scenario(), effects=RecordingVCenterEffects(missing_vms={"app-01"}), kind=ModernLab
    )
    assert isinstance(started, ModernLab)
    return started


def _tasks(job: dict[str, Any]) -> list[str]:
    return [t["name"] for t in job["properties"]["tasks"]]


def _wait(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_appliance_is_in_the_fabric_as_recorded(lab: ModernLab) -> None:
    a = lab.scenario.azure
    fabric = lab.asr.replication_fabrics.get(a.resource_group, a.vault, a.fabric)
    details = fabric.properties.custom_details
    assert details.instance_type == "InMageRcm"
    (agent,) = details.reprotect_agents
    (server,) = details.process_servers
    assert agent.id == server.id and agent.name == "appliance-01"
    assert agent.accessible_datastores == ["ds-vmfs-01", "ds-nfs-01"]
    assert agent.health == "Normal" and agent.last_heartbeat_utc is not None
    policies = {
        p.name: p.properties.provider_specific_details.instance_type
        for p in lab.asr.replication_policies.list(a.resource_group, a.vault)
    }
    assert policies == {
        a.azure_policy_id: "InMageRcm",
        f"{a.azure_policy_id}-failback": "InMageRcmFailback",
    }


def test_a_modernized_failback_walks_the_recorded_states(lab: ModernLab) -> None:
    item = lab.item("web-01-item").properties
    assert item.provider_specific_details.instance_type == "InMageRcm"
    assert item.protection_state == "UnplannedFailoverCommitted"
    assert item.allowed_operations == ["CompleteMigration", "DisableProtection", "SwitchProtection"]
    # Not yet reprotected: a planned failover back is not offered, and refused.
    with pytest.raises(HttpResponseError) as refused:
        lab.planned_failover("web-01-item")
    assert refused.value.status_code == 400

    job = lab.run(lab.reprotect_to_onprem("web-01-item"))
    assert job["properties"]["scenarioName"] == "SwitchReplicationGroupProtection"
    assert _tasks(job)[:2] == ["SwitchReplicationGroupProtectionPreflightTask", "VmCommitFailover"]
    back = lab.item("web-01-item").properties
    assert back.provider_specific_details.instance_type == "InMageRcmFailback"
    assert back.protection_state == "InitialReplicationInProgress"
    assert back.allowed_operations == ["DisableProtection"]
    assert back.provider_specific_details.reprotect_agent_id == lab.agent().id
    assert back.provider_specific_details.log_storage_account_id == LOG_ACCOUNT
    assert [c.action for c in lab.effects.calls] == ["power_off"]  # the on-premises VM
    _wait(lambda: lab.item("web-01-item").properties.protection_state == "Protected")
    ready = lab.item("web-01-item").properties
    assert ready.allowed_operations == ["PlannedFailover", "DisableProtection"]
    assert ready.provider_specific_details.initial_replication_progress_percentage == 100

    job = lab.run(lab.planned_failover("web-01-item"))
    assert job["properties"]["scenarioName"] == "PlannedFailover"
    assert _tasks(job) == [
        "VmPfoPrerequisitesCheck",
        "VmPrepareForFailover",
        "VmFailover",
        "VmPrepareProtectedEntitiesTask",
        "VmFoStartVmOnSecondary",
    ]
    pending = lab.item("web-01-item").properties
    assert pending.protection_state == "CommitPendingStatesBegin"
    assert "CancelFailover" in pending.allowed_operations and "Commit" in pending.allowed_operations
    assert pending.provider_specific_details.last_planned_failover_status == "Succeeded"
    azure = lab.state()["items"][0]["azure_vm"]
    assert azure["power_state"] == "deallocated" and not azure["deleted"]

    # The undo: the Azure VM back on, replication toward on-premises again.
    job = lab.run(lab.cancel("web-01-item"))
    assert job["properties"]["scenarioName"] == "CancelFailover"
    undone = lab.item("web-01-item").properties
    assert undone.protection_state == "Protected"
    assert undone.allowed_operations == ["PlannedFailover", "DisableProtection"]
    assert lab.state()["items"][0]["azure_vm"]["power_state"] == "running"

    # Replicating back for a second only: no application-consistent point yet, so that kind of
    # failback is refused, and a crash-consistent one goes.
    with pytest.raises(HttpResponseError) as no_tag:
        lab.planned_failover("web-01-item", "ApplicationConsistent")
    assert no_tag.value.status_code == 400
    lab.run(lab.planned_failover("web-01-item"))
    job = lab.run(lab.commit("web-01-item"))
    assert _tasks(job) == ["VmCommitPrerequisitesCheck", "VmCommit"]
    committed = lab.item("web-01-item").properties
    assert "Commit" not in committed.allowed_operations
    assert "CancelFailover" not in committed.allowed_operations
    assert "SwitchProtection" in committed.allowed_operations
    assert lab.state()["items"][0]["azure_vm"]["deleted"]
    with pytest.raises(HttpResponseError):
        lab.cancel("web-01-item")  # no undo after the commit

    # Back to Azure once the on-premises VM's agent has registered again.
    _wait(
        lambda: (
            lab.item(
                "web-01-item"
            ).properties.provider_specific_details.is_agent_registration_successful_after_failover
        )
    )
    lab.run(lab.reprotect_to_azure("web-01-item"))
    again = lab.item("web-01-item").properties
    assert again.provider_specific_details.instance_type == "InMageRcm"
    assert again.protection_state == "Protected"


def test_a_reprotect_to_a_datastore_the_appliance_cannot_reach_fails(lab: ModernLab) -> None:
    job = lab.run(lab.reprotect_to_onprem("app-01-item", datastore="ds-elsewhere"))
    assert job["properties"]["state"] == "Failed"
    assert "ds-elsewhere" in job["properties"]["errors"][0]["serviceErrorDetails"]["message"]
    assert lab.item("app-01-item").properties.provider_specific_details.instance_type == "InMageRcm"
    # An absent VM is re-created (alternate location) on a datastore the appliance reaches.
    lab.run(lab.reprotect_to_onprem("app-01-item", datastore="ds-nfs-01"))
    created = [c for c in lab.effects.calls if c.action == "create_vm"]
    assert [(c.vm_name, c.datastore) for c in created] == [("app-01", "ds-nfs-01")]


def test_a_failed_planned_failover_is_cancelled_by_asr_itself(lab: ModernLab) -> None:
    """ASR's documentation: if the planned failover fails, ASR starts a job that cancels it;
    the Azure VM runs again and replication toward on-premises resumes."""
    lab.run(lab.reprotect_to_onprem("web-01-item"))
    _wait(lambda: lab.item("web-01-item").properties.protection_state == "Protected")
    fault = {
        "kind": "job_failure",
        "operation": "plannedFailover",
        "item": "web-01-item",
        "code": "8038",
        "message": "the VM could not be started",
    }
    assert lab.lab("POST", "/_lab/faults", fault).status_code in (200, 201)
    lab.run(lab.planned_failover("web-01-item"))
    (failed,) = [
        j for j in lab.state()["jobs"] if j["properties"]["scenarioName"] == "PlannedFailover"
    ]
    assert failed["properties"]["state"] == "Failed"

    def cancelled() -> bool:
        jobs = lab.state()["jobs"]
        return any(
            j["properties"]["scenarioName"] == "CancelFailover"
            and j["properties"]["state"] == "Succeeded"
            for j in jobs
        )

    _wait(cancelled)
    back = lab.item("web-01-item").properties
    assert back.protection_state == "Protected"
    assert back.allowed_operations == ["PlannedFailover", "DisableProtection"]
    assert lab.state()["items"][0]["azure_vm"]["power_state"] == "running"
