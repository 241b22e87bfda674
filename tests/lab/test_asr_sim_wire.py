"""How the simulator speaks on the wire (lab/scenario.py WireSpec): paging and Retry-After."""

from __future__ import annotations

import pytest
import requests

from lab.asr_sim.arm import ASR_API_VERSION
from lab.credential import LabTokenCredential
from lab.scenario import Scenario, load_scenario
from tests.lab.conftest import SECRET, StartLab
from tests.lab.test_asr_sim_schema import SCENARIOS


def _with_wire(scenario: Scenario, **wire: object) -> Scenario:
    azure = scenario.azure.model_copy(update={"wire": scenario.azure.wire.model_copy(update=wire)})
    return scenario.model_copy(update={"azure": azure})


def _scenario() -> Scenario:
    (recovery_plan,) = [p for p in SCENARIOS if p.stem == "recovery-plan"]
    return load_scenario(recovery_plan)


@pytest.mark.parametrize("api_version_in_next_link", [True, False])
def test_every_list_is_paged_and_the_sdk_reads_every_page(
    start_lab: StartLab, monkeypatch: pytest.MonkeyPatch, api_version_in_next_link: bool
) -> None:
    monkeypatch.delenv("FAILBACK_SIM_WIRE", raising=False)
    scenario = _with_wire(_scenario(), page_size=1, next_link_api_version=api_version_in_next_link)
    lab = start_lab(scenario)
    azure = scenario.azure
    items = list(lab.asr.replication_protected_items.list(azure.resource_group, azure.vault))
    assert sorted(i.name for i in items) == sorted(i.name for i in azure.items)
    pages = [e for e in lab.journal() if e["path"].endswith("/replicationProtectedItems")]
    assert len(pages) == len(azure.items)
    assert all(e["status"] == 200 for e in pages)
    assert all("$skiptoken" in e["query"] for e in pages[1:])


def test_a_running_operation_says_retry_after_as_the_scenario_sets(
    start_lab: StartLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAILBACK_SIM_WIRE", raising=False)
    lab = start_lab(_with_wire(_scenario(), retry_after_seconds=30))
    azure = lab.scenario.azure
    # A machine outside any replication group: it fails over on its own.
    item = next(i.name for i in azure.items if i.replication_group is None)
    token = LabTokenCredential(lab.url, SECRET, str(lab.tls.ca_cert)).get_token("x").token
    answer = requests.post(
        f"{lab.url}/Subscriptions/{azure.subscription_id}/resourceGroups/{azure.resource_group}"
        f"/providers/Microsoft.RecoveryServices/vaults/{azure.vault}/replicationFabrics/"
        f"{azure.fabric}/replicationProtectionContainers/{azure.protection_container}/"
        f"replicationProtectedItems/{item}/unplannedFailover?api-version={ASR_API_VERSION}",
        json=_failover_body(),
        headers={"Authorization": f"Bearer {token}"},
        verify=str(lab.tls.ca_cert),
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["Retry-After"] == "30"


def _failover_body() -> dict[str, object]:
    return {
        "properties": {
            # After the reprotect toward on-premises, Azure is the item's primary site.
            "failoverDirection": "PrimaryToRecovery",
            "sourceSiteOperations": "NotRequired",
            "providerSpecificDetails": {
                "instanceType": "InMage",
                "recoveryPointType": "LatestTime",
            },
        }
    }
