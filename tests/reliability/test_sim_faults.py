"""The simulator's connection faults the reliability cases use: `drop` (the connection closes
without an answer, before or after the request is processed) and `delay`; and the journal's
`?since=N`. In process, with the real Azure SDK where it matters (what it raises, what it
retries by itself)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ServiceResponseError
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from lab.asr_sim import SimulatorConfig, SimulatorThread
from lab.certs import LabTls, make_lab_tls
from lab.credential import LabTokenCredential
from lab.scenario import Scenario, load_scenario

# The classic single-VM scenario these tests were written against (its InMage bodies); the
# lab's default is modernized now.
CLASSIC_SINGLE_VM = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "single-vm.json"

SECRET = "reliability-sim-secret"


class Sim:
    def __init__(self, thread: SimulatorThread, tls: LabTls, scenario: Scenario) -> None:
        self.thread = thread
        self.tls = tls
        self.scenario = scenario
        azure = scenario.azure
        self.item_path = (
            f"/subscriptions/{azure.subscription_id}/resourceGroups/{azure.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{azure.vault}/replicationFabrics/"
            f"{azure.fabric}/replicationProtectionContainers/{azure.protection_container}/"
            f"replicationProtectedItems/{azure.items[0].name}"
        )
        credential = LabTokenCredential(thread.url, SECRET, str(tls.ca_cert))
        self.asr = SiteRecoveryManagementClient(
            credential,
            azure.subscription_id,
            base_url=thread.url,
            connection_verify=str(tls.ca_cert),
            polling_interval=1,
        )
        self.token = credential.get_token("lab").token

    def lab(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, self.thread.url + path, json=body, verify=str(self.tls.ca_cert), timeout=30
        )

    def arm(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            self.thread.url + path,
            params={"api-version": "2025-08-01"},
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=str(self.tls.ca_cert),
            timeout=30,
        )

    def get_item(self) -> Any:
        azure = self.scenario.azure
        return self.asr.replication_protected_items.get(
            azure.resource_group,
            azure.vault,
            azure.fabric,
            azure.protection_container,
            azure.items[0].name,
        )


@pytest.fixture
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tls = make_lab_tls(tmp_path_factory.mktemp("tls"))
    scenario = load_scenario(CLASSIC_SINGLE_VM)
    thread = SimulatorThread(
        SimulatorConfig(
            scenario=scenario, cert=tls.server_cert, key=tls.server_key, token_secret=SECRET
        )
    ).start()
    try:
        yield Sim(thread, tls, scenario)
    finally:
        thread.stop()


FAILOVER = {
    "properties": {
        "failoverDirection": "PrimaryToRecovery",
        "providerSpecificDetails": {"instanceType": "InMage", "recoveryPointType": "LatestTime"},
    }
}


def _failover_jobs(sim: Sim) -> list[dict[str, Any]]:
    operations = sim.lab("GET", "/_lab/state").json()["operations"]
    return [o for o in operations if o["operation"] == "unplannedFailover"]


@pytest.mark.parametrize("after", [False, True], ids=["before-processing", "after-processing"])
def test_drop_closes_the_connection_without_an_answer(sim: Sim, after: bool) -> None:
    armed = sim.lab(
        "POST",
        "/_lab/faults",
        {
            "kind": "drop",
            "method": "POST",
            "path_suffix": "/unplannedFailover",
            "after_processing": after,
        },
    )
    assert armed.status_code == 201, armed.text
    with pytest.raises(requests.ConnectionError, match="without response"):
        sim.arm("POST", f"{sim.item_path}/unplannedFailover", FAILOVER)
    entry = sim.lab("GET", "/_lab/journal").json()[-1]
    assert entry["dropped"] is True
    assert entry["status"] == (202 if after else None)
    # Processed or not: after processing, ASR started the job although nobody heard of it.
    assert len(_failover_jobs(sim)) == (1 if after else 0)
    assert sim.lab("GET", "/_lab/faults").json() == []


def test_sdk_retries_a_dropped_get_but_not_a_dropped_post(sim: Sim) -> None:
    sim.lab("POST", "/_lab/faults", {"kind": "drop", "method": "GET", "count": 2})
    assert sim.get_item().name == sim.scenario.azure.items[0].name  # retried by azure-core
    sim.lab("POST", "/_lab/faults", {"kind": "drop", "method": "POST", "after_processing": True})
    azure = sim.scenario.azure
    with pytest.raises(ServiceResponseError):
        sim.asr.replication_protected_items.begin_unplanned_failover(
            azure.resource_group,
            azure.vault,
            azure.fabric,
            azure.protection_container,
            azure.items[0].name,
            FAILOVER,
        )
    dropped = [e for e in sim.lab("GET", "/_lab/journal").json() if e.get("dropped")]
    assert [(e["method"], e["status"]) for e in dropped] == [
        ("GET", None),
        ("GET", None),
        ("POST", 202),
    ]


def test_delay_answers_late(sim: Sim) -> None:
    sim.lab(
        "POST",
        "/_lab/faults",
        {"kind": "delay", "method": "GET", "path_suffix": sim.item_path[-20:], "seconds": 1.5},
    )
    started = time.monotonic()
    assert sim.arm("GET", sim.item_path).status_code == 200
    assert time.monotonic() - started >= 1.5
    started = time.monotonic()
    assert sim.arm("GET", sim.item_path).status_code == 200  # used up
    assert time.monotonic() - started < 1.5
    delayed = [e for e in sim.lab("GET", "/_lab/journal").json() if "delayed_seconds" in e]
    assert [(e["status"], e["delayed_seconds"]) for e in delayed] == [(200, 1.5)]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "delay", "seconds": 0},
        {"kind": "delay"},
        {"kind": "drop", "after_processing": "sometimes"},
        {"kind": "drop", "colour": "red"},
    ],
)
def test_malformed_connection_faults_are_refused(sim: Sim, fault: dict[str, Any]) -> None:
    refused = sim.lab("POST", "/_lab/faults", fault)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "InvalidFault"


def test_journal_since(sim: Sim) -> None:
    for _ in range(3):
        sim.arm("GET", sim.item_path)
    everything = sim.lab("GET", "/_lab/journal").json()
    assert sim.lab("GET", "/_lab/journal?since=1").json() == everything[1:]
    assert sim.lab("GET", f"/_lab/journal?since={len(everything)}").json() == []
    assert sim.lab("GET", "/_lab/journal?since=-1").status_code == 400
