"""The ASR simulator, driven by the real, unmodified Azure SDK clients over verified TLS."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from lab.asr_sim import (
    PyVmomiVCenterEffects,
    RecordingVCenterEffects,
    VCenterEffectError,
    generate_recovery_points,
    parse_vcenter_url,
)
from lab.certs import LabTls, make_lab_tls
from lab.credential import LabTokenCredential
from lab.scenario import RecoveryPointHistory, Scenario
from tests.lab.conftest import SECRET, SimLab, StartLab

ITEM = "web-01-item"
REPO_ROOT = Path(__file__).resolve().parents[2]


def scenario(
    *,
    failover_seconds: float = 0.4,
    commit_seconds: float = 0.2,
    reprotect_seconds: float = 0.2,
    agent_delay: float = 2.0,
) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "asr-sim-test",
            "vcenter": {
                "datastores": [{"name": "ds-vmfs-01"}, {"name": "ds-vsan-01", "type": "vsan"}],
                "hosts": [{"name": "esx-01", "datastores": ["ds-vmfs-01", "ds-vsan-01"]}],
                "vms": [
                    {"name": "web-01", "host": "esx-01", "datastore": "ds-vmfs-01"},
                    {
                        "name": "mt-linux-01",
                        "host": "esx-01",
                        "datastore": "ds-vmfs-01",
                        "power_state": "poweredOn",
                    },
                ],
            },
            "azure": {
                "master_target_vm": "mt-linux-01",
                "items": [
                    {
                        "name": ITEM,
                        "vm_name": "web-01",
                        "azure_vm_name": "web-01-azure",
                        "recovery_points": {
                            "crash_consistent_every_seconds": 300,
                            "app_consistent_every_seconds": 3600,
                            "retention_seconds": 14400,
                            "lag_seconds": 60,
                        },
                        "agent_registration_delay_seconds": agent_delay,
                    }
                ],
                "jobs": {
                    "failover_seconds": failover_seconds,
                    "commit_seconds": commit_seconds,
                    "reprotect_seconds": reprotect_seconds,
                },
            },
        }
    )


class Lab(SimLab):
    """The one-item scenario's lab, with helpers for that item."""

    def item(self) -> Any:
        a = self.scenario.azure
        return self.asr.replication_protected_items.get(
            a.resource_group, a.vault, a.fabric, a.protection_container, ITEM
        )

    def failover(self, point_id: str | None = None) -> Any:
        details: dict[str, Any] = {"instanceType": "InMage", "recoveryPointType": "LatestTime"}
        if point_id is not None:
            details = {"instanceType": "InMage", "recoveryPointType": "Custom"}
            details["recoveryPointId"] = point_id
        a = self.scenario.azure
        return self.asr.replication_protected_items.begin_unplanned_failover(
            a.resource_group,
            a.vault,
            a.fabric,
            a.protection_container,
            ITEM,
            {
                "properties": {
                    "failoverDirection": "PrimaryToRecovery",
                    "sourceSiteOperations": "NotRequired",
                    "providerSpecificDetails": details,
                }
            },
        )

    def commit(self) -> Any:
        a = self.scenario.azure
        return self.asr.replication_protected_items.begin_failover_commit(
            a.resource_group, a.vault, a.fabric, a.protection_container, ITEM
        )

    def reprotect(self, **overrides: str) -> Any:
        a = self.scenario.azure
        details = {
            "instanceType": "InMageAzureV2",
            "masterTargetId": a.azure_master_target_id,
            "processServerId": a.onprem_process_server_id,
            "runAsAccountId": "2",
            "policyId": f"/subscriptions/{a.subscription_id}/resourceGroups/{a.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{a.vault}"
            f"/replicationPolicies/{a.azure_policy_id}",
            **overrides,
        }
        return self.asr.replication_protected_items.begin_reprotect(
            a.resource_group,
            a.vault,
            a.fabric,
            a.protection_container,
            ITEM,
            {
                "properties": {
                    "failoverDirection": "RecoveryToPrimary",
                    "providerSpecificDetails": details,
                }
            },
        )

    def recovery_points(self) -> list[Any]:
        a = self.scenario.azure
        return list(
            self.asr.recovery_points.list_by_replication_protected_items(
                a.resource_group, a.vault, a.fabric, a.protection_container, ITEM
            )
        )

    def azure_vm(self) -> Any:
        a = self.scenario.azure
        return self.compute.virtual_machines.get(
            a.recovery_resource_group, a.items[0].azure_vm_name, expand="instanceView"
        )

    def jobs(self) -> list[Any]:
        a = self.scenario.azure
        return list(self.asr.replication_jobs.list(a.resource_group, a.vault))


@pytest.fixture
def make_lab(start_lab: StartLab) -> Any:
    def make(built: Scenario | None = None, effects: RecordingVCenterEffects | None = None) -> Lab:
        lab = start_lab(built or scenario(), effects, kind=Lab)
        assert isinstance(lab, Lab)
        return lab

    return make


def _code_and_message(err: HttpResponseError) -> tuple[str, str]:
    assert err.error is not None, f"no ARM error body in {err!r}"
    return str(err.error.code), str(err.error.message)


def _power_state(vm: Any) -> str:
    return next(s.code for s in vm.properties.instance_view.statuses if s.code.startswith("Power"))


# -- pure parts --------------------------------------------------------------------------------


def test_recovery_points_are_generated_back_from_start() -> None:
    start = dt.datetime(2025, 3, 1, 12, 0, 30, tzinfo=dt.UTC)
    history = RecoveryPointHistory(
        crash_consistent_every_seconds=300,
        app_consistent_every_seconds=3600,
        retention_seconds=7200,
        lag_seconds=60,
    )
    points = generate_recovery_points(history, start)

    # Times sit on the epoch-aligned grid: the newest is the last 5-minute mark at or before
    # start - lag (11:59:30), the oldest the first one at or after 2 h before that (09:59:30).
    newest = dt.datetime(2025, 3, 1, 11, 55, tzinfo=dt.UTC)
    assert points[0].time == newest and points[0].type == "CrashConsistent"
    assert points[0].name == str(int(newest.timestamp()))
    assert [p.time for p in points] == sorted((p.time for p in points), reverse=True)
    assert points[-1].time == dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert len(points) == 24
    crash = [p for p in points if p.type == "CrashConsistent"]
    app = [p for p in points if p.type == "ApplicationConsistent"]
    assert len(crash) == 22
    # Application-consistent points follow their hourly schedule, older than the newest point.
    assert [p.time.hour for p in app] == [11, 10] and all(p.time.minute == 0 for p in app)
    assert not any(p.is_multi_vm_sync_point for p in points)


def test_a_time_holding_both_kinds_gives_one_app_consistent_point() -> None:
    start = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    history = RecoveryPointHistory(
        crash_consistent_every_seconds=600,
        app_consistent_every_seconds=1800,
        retention_seconds=3600,
    )
    points = generate_recovery_points(history, start)
    assert [(p.time.strftime("%H:%M"), p.type[0]) for p in points] == [
        ("12:00", "A"),
        ("11:50", "C"),
        ("11:40", "C"),
        ("11:30", "A"),
        ("11:20", "C"),
        ("11:10", "C"),
        ("11:00", "A"),
    ]


def test_lab_tls_is_reused_while_valid_and_reissued_when_broken(tmp_path: Path) -> None:
    first = make_lab_tls(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    server_before = first.server_cert.read_bytes()
    again = make_lab_tls(tmp_path)
    assert again == first
    assert first.ca_cert.read_bytes() == ca_before
    assert first.server_cert.read_bytes() == server_before
    assert first.server_key.stat().st_mode & 0o077 == 0

    first.server_cert.write_text("not a certificate")
    make_lab_tls(tmp_path)
    assert first.ca_cert.read_bytes() == ca_before
    assert first.server_cert.read_bytes() not in (server_before, b"not a certificate")


async def test_vcenter_effects_go_through_the_vsphere_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The vSphere client's own functions, replaced so that this runs without vcsim (the lab's
    # integration tests power VMs on in a real vcsim).
    import activities.vsphere_client as client
    import lab.vcenter_client as writes

    powered_on: list[tuple[object, str]] = []

    def connect(host: str, port: int, user: str, password: str, verify_tls: bool = True) -> object:
        assert (host, port, user, password, verify_tls) == ("127.0.0.1", 8989, "u", "pw", False)
        return object()

    def power_on_vm(si: object, name: str) -> str:
        if name == "ghost":
            raise client.VmNotFoundError(name)
        powered_on.append((si, name))
        return "poweredOn"

    monkeypatch.setattr(client, "connect", connect)
    monkeypatch.setattr(client, "disconnect", lambda si: None)
    monkeypatch.setattr(writes, "power_on_vm", power_on_vm)

    target = parse_vcenter_url("https://127.0.0.1:8989/sdk", "u", "pw")
    effects = PyVmomiVCenterEffects(target)
    await effects.power_on("web-01")
    assert [name for _, name in powered_on] == ["web-01"]
    with pytest.raises(VCenterEffectError, match="ghost"):
        await effects.power_on("ghost")
    assert [c.vm_name for c in effects.calls] == ["web-01", "ghost"]


# -- authentication and the ARM front door ------------------------------------------------------


def test_tokens_go_to_the_right_secret_only_and_every_arm_request_needs_one(make_lab: Any) -> None:
    lab = make_lab()
    a = lab.scenario.azure
    item_path = (
        f"/subscriptions/{a.subscription_id}/resourceGroups/{a.resource_group}/providers/"
        f"Microsoft.RecoveryServices/vaults/{a.vault}/replicationFabrics/{a.fabric}/"
        f"replicationProtectionContainers/{a.protection_container}/replicationProtectedItems/{ITEM}"
    )
    ca = str(lab.tls.ca_cert)

    with pytest.raises(ClientAuthenticationError):
        LabTokenCredential(lab.url, "wrong secret", ca).get_token("scope")

    no_token = requests.get(f"{lab.url}{item_path}?api-version=2025-08-01", verify=ca, timeout=10)
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"].startswith("AuthenticationFailed")
    bogus = requests.get(
        f"{lab.url}{item_path}?api-version=2025-08-01",
        headers={"Authorization": "Bearer made-up"},
        verify=ca,
        timeout=10,
    )
    assert bogus.status_code == 401

    credential = LabTokenCredential(lab.url, SECRET, ca)
    token = credential.get_token("https://management.azure.com/.default")
    assert credential.get_token("https://management.azure.com/.default").token == token.token
    assert token.expires_on - time.time() > 3000
    auth = {"Authorization": f"Bearer {token.token}"}
    ok = requests.get(
        f"{lab.url}{item_path}?api-version=2025-08-01", headers=auth, verify=ca, timeout=10
    )
    assert ok.status_code == 200
    missing_version = requests.get(f"{lab.url}{item_path}", headers=auth, verify=ca, timeout=10)
    assert missing_version.status_code == 400
    assert missing_version.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = requests.get(
        f"{lab.url}{item_path}/nothingHere?api-version=2025-08-01",
        headers=auth,
        verify=ca,
        timeout=10,
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "ResourceNotFound"

    assert [e["status"] for e in lab.journal()] == [401, 401, 200, 400, 404]


def test_sdk_reads_fabric_item_points_and_azure_vm(make_lab: Any) -> None:
    lab = make_lab()
    a = lab.scenario.azure
    fabric = lab.asr.replication_fabrics.get(a.resource_group, a.vault, a.fabric)
    details = fabric.properties.custom_details
    assert details.instance_type == "VMware"
    # As recorded: the configuration server is itself a process server, with its master
    # target's id, listed first; and its master target comes first too.
    assert [p.id for p in details.process_servers] == [
        a.azure_master_target_id,
        a.process_server_id,
        a.onprem_process_server_id,
    ]
    builtin_mt, failback_mt = details.master_target_servers
    assert (failback_mt.name, failback_mt.os_type) == ("mt-linux-01", "Linux")
    assert [d.symbolic_name for d in failback_mt.data_stores] == ["ds-vmfs-01", "ds-vsan-01"]
    assert builtin_mt.id == a.azure_master_target_id
    assert [r.account_id for r in details.run_as_accounts] == ["1", "2"]

    item = lab.item()
    props = item.properties
    assert props.protection_state == "Protected"
    assert props.active_location == "Recovery"
    assert props.allowed_operations == ["UnplannedFailover", "DisableProtection"]
    assert props.current_scenario.scenario_name == "None"
    psd = props.provider_specific_details
    assert psd.instance_type == "InMage" and psd.active_site_type == "Azure"
    assert psd.os_details.os_type == "Linux"
    # A VM alone is in the group ASR made for it: name and id one GUID (wire.standalone_group).
    assert psd.multi_vm_group_name == psd.multi_vm_group_id and len(psd.multi_vm_group_name) == 36
    assert psd.master_target_id == "mt-linux-01" and psd.process_server_id == a.process_server_id
    assert dt.datetime.now(dt.UTC) - psd.last_heartbeat < dt.timedelta(seconds=30)

    points = lab.recovery_points()
    started_at = dt.datetime.fromisoformat(lab.lab("GET", "/_lab/state").json()["started_at"])
    expected = generate_recovery_points(a.items[0].recovery_points, started_at)
    assert [p.name for p in points] == [e.name for e in expected]
    # The grid is aligned to the epoch, so the newest point's kind depends on the wall clock:
    # compare every point with what the generator made rather than assume the newest's kind.
    assert [p.properties.recovery_point_type for p in points] == [e.type for e in expected]
    assert {p.properties.recovery_point_type for p in points} == {
        "CrashConsistent",
        "ApplicationConsistent",
    }
    assert [p.properties.provider_specific_details["isMultiVmSyncPoint"] for p in points] == [
        "false"
    ] * len(points)
    single = lab.asr.recovery_points.get(
        a.resource_group, a.vault, a.fabric, a.protection_container, ITEM, points[3].name
    )
    assert single.id == points[3].id

    assert _power_state(lab.azure_vm()) == "PowerState/running"


# -- the failback walk -------------------------------------------------------------------------


def test_failback_walk_failover_commit_then_reprotect_once_the_agent_registered(
    make_lab: Any,
) -> None:
    lab = make_lab()
    a = lab.scenario.azure
    app_point = next(
        p
        for p in lab.recovery_points()
        if p.properties.recovery_point_type == "ApplicationConsistent"
    )

    failed_over = lab.failover(app_point.id).result()
    props = failed_over.properties
    assert props.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    assert props.allowed_operations == [
        "CompleteMigration",
        "Commit",
        "DisableProtection",
        "ChangePit",
    ]
    assert props.failover_recovery_point_id == app_point.id
    assert props.last_successful_failover_time is not None
    assert props.current_scenario.scenario_name == "None"
    assert _power_state(lab.azure_vm()) == "PowerState/deallocated"
    assert [(c.action, c.vm_name) for c in lab.effects.calls] == [("power_on", "web-01")]

    committed = lab.commit().result().properties
    assert committed.protection_state == "UnplannedFailoverCommitted"
    assert committed.allowed_operations == [
        "CompleteMigration",
        "DisableProtection",
        "SwitchProtection",
    ]
    assert committed.provider_specific_details.active_site_type == "OnPrem"
    assert committed.provider_specific_details.last_heartbeat is None
    assert committed.provider_specific_details.agent_details is None
    with pytest.raises(ResourceNotFoundError):
        lab.azure_vm()
    with pytest.raises(ResourceNotFoundError):
        lab.compute.virtual_machines.instance_view(a.recovery_resource_group, "web-01-azure")

    # Ids are checked against the fabric synchronously.
    with pytest.raises(HttpResponseError) as bad_ps:
        lab.reprotect(processServerId="ps-nowhere")
    assert bad_ps.value.status_code == 400 and "processServerId" in str(bad_ps.value.message)

    with pytest.raises(HttpResponseError) as not_yet:
        lab.reprotect().result()
    code, message = _code_and_message(not_yet.value)
    assert code == "99016"
    assert "the agent is not installed" in message
    assert "web-01" in message
    assert lab.item().properties.protection_state == "UnplannedFailoverCommitted"

    state = lab.lab("GET", "/_lab/state").json()
    registers_at = dt.datetime.fromisoformat(state["items"][0]["agent_registers_at"])
    time.sleep(max(0.0, (registers_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    heartbeat = lab.item().properties.provider_specific_details.last_heartbeat
    assert heartbeat is not None and heartbeat >= registers_at

    protected = lab.reprotect().result().properties
    assert protected.protection_state == "Protected"
    assert protected.active_location == "Primary"
    assert protected.allowed_operations == [
        "PlannedFailover",
        "UnplannedFailover",
        "TestFailover",
        "DisableProtection",
    ]
    psd = protected.provider_specific_details
    assert psd.instance_type == "InMageAzureV2"
    assert (psd.os_type, psd.recovery_azure_vm_name) == ("Linux", "web-01-azure")
    assert psd.process_server_id == a.onprem_process_server_id
    assert psd.master_target_id == a.azure_master_target_id
    assert psd.agent_version and psd.last_heartbeat is not None

    jobs = {j.properties.scenario_name + ":" + j.properties.state for j in lab.jobs()}
    assert jobs == {
        "UnplannedFailover:Succeeded",
        "CommitFailover:Succeeded",
        "SwitchReplicationGroupProtection:Failed",
        "SwitchReplicationGroupProtection:Succeeded",
    }

    journal = lab.journal()
    failover_posts = [e for e in journal if e["path"].endswith("/unplannedFailover")]
    assert len(failover_posts) == 1
    post = failover_posts[0]
    assert post["method"] == "POST" and post["status"] == 202
    assert post["query"] == {"api-version": "2025-08-01"}
    assert post["body"]["properties"]["providerSpecificDetails"]["recoveryPointId"] == app_point.id
    assert post["time"].endswith("Z")
    assert any("/replicationOperationStatus/" in e["path"] for e in journal)
    assert any("/operationresults/" in e["path"] and e["status"] == 200 for e in journal)
    assert all(not e["path"].startswith("/_lab") for e in journal)
    commit_post = next(e for e in journal if e["path"].endswith("/failoverCommit"))
    assert commit_post["body"] is None


def test_custom_point_must_belong_to_the_item(make_lab: Any) -> None:
    lab = make_lab()
    with pytest.raises(HttpResponseError) as refused:
        lab.failover("/subscriptions/x/recoveryPoints/123")
    assert refused.value.status_code == 400
    assert "recoveryPointId" in _code_and_message(refused.value)[1]
    assert lab.jobs() == []


def test_injected_job_failure_surfaces_code_and_message(make_lab: Any) -> None:
    lab = make_lab()
    fault = lab.lab(
        "POST",
        "/_lab/faults",
        {
            "kind": "job_failure",
            "operation": "unplannedFailover",
            "code": "8038",
            "message": "Failed to bring up the on-premises virtual machine web-01.",
            "count": 1,
        },
    )
    assert fault.status_code == 201

    with pytest.raises(HttpResponseError) as failed:
        lab.failover().result()
    assert failed.value.error is not None
    assert failed.value.error.code == "8038"
    assert (
        failed.value.error.message == "Failed to bring up the on-premises virtual machine web-01."
    )

    (job,) = lab.jobs()
    assert job.properties.state == "Failed"
    assert job.properties.errors[0].service_error_details.code == "8038"
    failed_tasks = [t.name for t in job.properties.tasks if t.state == "Failed"]
    assert failed_tasks == ["VmFoStartVmOnSecondary"]
    item = lab.item().properties
    assert item.protection_state == "Protected"
    assert "UnplannedFailover" in item.allowed_operations
    assert lab.lab("GET", "/_lab/faults").json() == []

    # The fault is used up: the retry goes through.
    assert (
        lab.failover().result().properties.protection_state
        == "UnplannedFailoverCommitPendingStatesBegin"
    )


def test_onprem_vm_missing_in_vcenter_fails_the_failover_with_8038(make_lab: Any) -> None:
    lab = make_lab(effects=RecordingVCenterEffects(missing_vms={"web-01"}))
    with pytest.raises(HttpResponseError) as failed:
        lab.failover().result()
    code, message = _code_and_message(failed.value)
    assert code == "8038" and "web-01" in message


def test_throttled_post_is_ridden_out_by_the_sdk_retry_policy(make_lab: Any) -> None:
    lab = make_lab()
    lab.lab(
        "POST",
        "/_lab/faults",
        {
            "kind": "http",
            "method": "POST",
            "path_suffix": "/unplannedFailover",
            "status": 429,
            "retry_after": 1,
            "count": 2,
            "code": "SubscriptionRequestsThrottled",
        },
    ).raise_for_status()

    result = lab.failover().result()
    assert result.properties.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    posts = [e["status"] for e in lab.journal() if e["path"].endswith("/unplannedFailover")]
    assert posts == [429, 429, 202]
    assert len(lab.jobs()) == 1


def test_throttle_answer_carries_retry_after_and_arm_error(make_lab: Any) -> None:
    lab = make_lab()
    lab.lab(
        "POST",
        "/_lab/faults",
        {"kind": "http", "method": "GET", "path_suffix": "/replicationFabrics", "status": 503},
    ).raise_for_status()
    a = lab.scenario.azure
    token = LabTokenCredential(lab.url, SECRET, str(lab.tls.ca_cert)).get_token("x").token
    answer = requests.get(
        f"{lab.url}/subscriptions/{a.subscription_id}/resourceGroups/{a.resource_group}/providers/"
        f"Microsoft.RecoveryServices/vaults/{a.vault}/replicationFabrics?api-version=2025-08-01",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(lab.tls.ca_cert),
        timeout=10,
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "ServiceUnavailable"
    assert lab.lab("DELETE", "/_lab/faults").status_code == 204
    bad = lab.lab("POST", "/_lab/faults", {"kind": "job_failure", "operation": "nope"})
    assert bad.status_code == 400


def test_second_failover_while_one_is_in_flight_is_refused(make_lab: Any) -> None:
    lab = make_lab(scenario(failover_seconds=2.0))
    poller = lab.failover()

    in_flight = lab.item().properties.current_scenario
    assert in_flight.scenario_name == "UnplannedFailover"
    job_name = in_flight.job_id.rsplit("/", 1)[-1]
    assert (
        lab.asr.replication_jobs.get(
            lab.scenario.azure.resource_group, lab.scenario.azure.vault, job_name
        ).properties.state
        == "InProgress"
    )

    with pytest.raises(ResourceExistsError) as refused:
        lab.failover()
    assert refused.value.status_code == 409
    code, message = _code_and_message(refused.value)
    # ASR's shape (Azure PowerShell issue 4893): a generic code, ASR's own numeric one in details.
    assert code == "BadRequest" and job_name in message
    (detail,) = refused.value.response.json()["error"]["details"]
    assert detail["code"].isdigit() and detail["recommendedAction"]

    assert (
        poller.result().properties.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    )
    assert [j.name for j in lab.jobs()] == [job_name]
    posts = [e["status"] for e in lab.journal() if e["path"].endswith("/unplannedFailover")]
    assert posts == [202, 409]

    with pytest.raises(HttpResponseError) as not_allowed:
        lab.failover()
    assert not_allowed.value.status_code == 400
    assert "UnplannedFailoverCommitPendingStatesBegin" in _code_and_message(not_allowed.value)[1]


# -- the command line ------------------------------------------------------------------------


def test_cli_serves_and_writes_the_ready_file(tls: LabTls, tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(scenario().model_dump_json())
    ready = tmp_path / "ready.json"
    env = {**os.environ, "ASR_SIM_TOKEN_SECRET": SECRET}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.asr_sim",
            "--scenario",
            str(scenario_file),
            "--port",
            "0",
            "--cert",
            str(tls.server_cert),
            "--key",
            str(tls.server_key),
            "--ready-file",
            str(ready),
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert process.poll() is None, "the simulator exited early"
            assert time.monotonic() < deadline, "no ready file"
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        token = LabTokenCredential(url, SECRET, str(tls.ca_cert)).get_token("x")
        assert token.token
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert not ready.exists()


def test_arm_buckets_refuse_an_overdrawn_principal_with_429_and_retry_after(
    start_lab: StartLab,
) -> None:
    """Issue 18: the simulator enforces ARM's read and write buckets per principal: a read that
    finds the read bucket empty gets 429 with the Retry-After of its next token (and takes none);
    writes have a bucket of their own; another principal has its own buckets, up to the
    subscription's cap that all principals share."""
    data = scenario().model_dump(mode="json")
    data["azure"]["throttling"] = {
        "read_burst": 3,
        "reads_per_second": 1.0,
        "write_burst": 1,
        "subscription_multiplier": 1.5,
        "lab_clock_factor": 1,
    }
    lab = start_lab(Scenario.model_validate(data))
    a = lab.scenario.azure
    vault = (
        f"/subscriptions/{a.subscription_id}/resourceGroups/{a.resource_group}/providers/"
        f"Microsoft.RecoveryServices/vaults/{a.vault}"
    )
    ca = str(lab.tls.ca_cert)
    token = LabTokenCredential(lab.url, SECRET, ca).get_token("scope").token
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{lab.url}{vault}/replicationFabrics?api-version=2025-08-01"
    answers = [requests.get(url, headers=auth, verify=ca, timeout=10) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "TooManyRequests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    # A write draws on its own bucket, not the reads'.
    write = requests.post(
        f"{lab.url}{vault}/replicationJobs/none/resume?api-version=2025-08-01",
        headers=auth,
        json={},
        verify=ca,
        timeout=10,
    )
    assert write.status_code != 429
    # A second principal reads on its own bucket, until the subscription's (4.5) runs dry.
    other = LabTokenCredential(lab.url, SECRET, ca, client_id="worker-2").get_token("s").token
    theirs = {"Authorization": f"Bearer {other}"}
    assert [requests.get(url, headers=theirs, verify=ca, timeout=10).status_code for _ in "ab"] == [
        200,
        429,
    ]
    assert lab.state()["throttled_by_principal"] == {"lab": 1, "worker-2": 1}
    time.sleep(2.1)
    assert requests.get(url, headers=auth, verify=ca, timeout=10).status_code == 200
    assert lab.state()["throttled"] == {"read": 2, "write": 0}


async def test_vcenter_effects_keep_a_signed_in_session_and_drop_a_failed_or_forgotten_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import activities.vsphere_client as client
    import lab.vcenter_client as writes

    class Session:
        """A fake pyVmomi service instance (by name): whether vCenter still knows it."""

        def __init__(self) -> None:
            self.content = SimpleNamespace(sessionManager=SimpleNamespace(currentSession="s"))

        def forget(self) -> None:
            self.content.sessionManager.currentSession = None

    opened: list[Session] = []
    closed: list[Session] = []
    used: list[Session] = []

    def connect(host: str, port: int, user: str, password: str, verify_tls: bool = True) -> Session:
        opened.append(Session())
        return opened[-1]

    def power_on_vm(si: Session, name: str) -> str:
        used.append(si)
        if name == "ghost":
            raise client.VmNotFoundError(name)
        return "poweredOn"

    monkeypatch.setattr(client, "connect", connect)
    monkeypatch.setattr(client, "disconnect", closed.append)
    monkeypatch.setattr(writes, "power_on_vm", power_on_vm)
    effects = PyVmomiVCenterEffects(parse_vcenter_url("https://127.0.0.1:8989/sdk", "u", "pw"))

    await effects.power_on("web-01")
    await effects.power_on("web-02")
    assert len(opened) == 1 and used == [opened[0], opened[0]]  # one login for both

    with pytest.raises(VCenterEffectError, match="ghost"):
        await effects.power_on("ghost")
    assert closed == [opened[0]]  # not trusted again after a failure
    await effects.power_on("web-03")
    assert len(opened) == 2 and used[-1] is opened[1]

    opened[1].forget()  # vCenter restarted, say
    await effects.power_on("web-04")
    assert len(opened) == 3 and used[-1] is opened[2]
