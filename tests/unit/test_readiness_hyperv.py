"""Readiness rules of Hyper-V (R23-R27, with R12 and R13): each one blocks when its fact is wrong
(R26 warns), all are reported at once, and the place each machine goes back to is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.architectures import HYPERV
from domain.architectures.base import ItemView
from domain.readiness import (
    AsrFacts,
    ConfigServerFacts,
    HyperVHostFacts,
    HyperVProviderFacts,
    HyperVVmFacts,
    MachineFacts,
    OnPremFacts,
)

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
HV1 = "prov-hv-01"
HV2 = "prov-hv-02"


def provider(
    pid: str = HV1, name: str = "hv-01.corp.local", **fields: object
) -> HyperVProviderFacts:
    values: dict[str, object] = {
        "id": pid,
        "name": name,
        "connected": True,
        "last_heartbeat": NOW - timedelta(minutes=2),
    }
    values.update(fields)
    return HyperVProviderFacts.model_validate(values)


def machine(name: str = "web-01", **fields: object) -> MachineFacts:
    values: dict[str, object] = {
        "item_name": f"{name}-item",
        "vm_name": name,
        "os_type": "Windows",
        "state": "ready-to-fail-back",
        "protection_state": "UnplannedFailoverCommitted",
        "replication_health": "Normal",
        "recovery_point_count": 3,
        "hyperv_provider_id": HV1,
        "switches": ["vSwitch-Prod"],
        "managed_disks": False,
    }
    values.update(fields)
    return MachineFacts.model_validate(values)


def facts(*machines: MachineFacts, **fields: object) -> AsrFacts:
    values: dict[str, object] = {
        "architecture": "hyperv",
        "configuration_server": ConfigServerFacts(name="site", reachable=True),
        "master_targets": [],
        "vcenters": [],
        "machines": list(machines) or [machine()],
        "hyperv_providers": [provider(), provider(HV2, "hv-02.corp.local")],
        "read_at": NOW,
    }
    values.update(fields)
    return AsrFacts.model_validate(values)


def host(name: str = "hv-01.corp.local", **fields: object) -> HyperVHostFacts:
    values: dict[str, object] = {
        "name": name,
        "reachable": True,
        "switches": ["vSwitch-Prod"],
        "vms": [HyperVVmFacts(name="web-01", state="Off", switches=["vSwitch-Prod"])],
    }
    values.update(fields)
    return HyperVHostFacts.model_validate(values)


ONPREM = OnPremFacts(
    hyperv_hosts=[host(), host("hv-02.corp.local", switches=["vSwitch-Lab"], vms=[])]
)


def rules(report: object) -> list[str]:
    return sorted(f.rule for f in report.findings)  # type: ignore[attr-defined]


def test_an_item_of_hyperv_is_hyperv_and_offers_failback_only_when_committed_in_azure() -> None:
    committed = ItemView(
        instance_type="HyperVReplicaAzure",
        protection_state="UnplannedFailoverCommitted",
        allowed_operations=frozenset({"CompleteMigration", "DisableProtection", "Failback"}),
    )
    assert HYPERV.machine_state(committed) == "ready-to-fail-back"
    pending = ItemView(
        instance_type="HyperVReplicaAzure",
        protection_state="FinalizeRestorePending",
        allowed_operations=frozenset({"DisableProtection", "FinalizeFailback"}),
    )
    assert HYPERV.operation(HYPERV.failover).already_done(pending)
    assert not HYPERV.can_undo and not HYPERV.waits_for_agent


def test_a_ready_vm_goes_back_to_its_own_host() -> None:
    report, choices = HYPERV.assess(facts(), ONPREM)
    assert report.ready and report.findings == [] and choices == []
    [plan] = report.machines
    assert (plan.location, plan.master_target_id, plan.master_target_host) == (
        "original",
        HV1,
        "hv-01.corp.local",
    )


def test_r23_a_host_not_heard_from_blocks() -> None:
    silent = provider(last_heartbeat=NOW - timedelta(minutes=40))
    report, _ = HYPERV.assess(facts(hyperv_providers=[silent]), ONPREM)
    assert rules(report) == ["R23"] and "last heartbeat" in report.findings[0].found
    report, _ = HYPERV.assess(facts(hyperv_providers=[provider(connected=False)]), ONPREM)
    assert rules(report) == ["R23"]


def test_r24_the_vm_must_be_off_and_without_checkpoints() -> None:
    running = OnPremFacts(
        hyperv_hosts=[host(vms=[HyperVVmFacts(name="web-01", state="Running", checkpoints=2)])]
    )
    report, _ = HYPERV.assess(facts(), running)
    assert rules(report) == ["R24", "R24"]
    assert any("Remove-VMSnapshot" in f.action for f in report.findings)


def test_r25_a_gone_vm_needs_a_host_with_its_switches() -> None:
    gone = OnPremFacts(hyperv_hosts=[host(vms=[]), host("hv-02.corp.local", switches=[], vms=[])])
    report, _ = HYPERV.assess(facts(), gone)
    assert report.ready and report.machines[0].location == "alternate"
    report, _ = HYPERV.assess(facts(), gone, master_target_id="hv-02.corp.local")
    assert rules(report) == ["R25"] and "'vSwitch-Prod'" in report.findings[0].found
    report, _ = HYPERV.assess(facts(), gone, master_target_id="hv-99")
    assert rules(report) == ["R25"] and "not registered" in report.findings[0].found


def test_r26_managed_disks_warn_and_r27_an_unreadable_host_blocks() -> None:
    report, _ = HYPERV.assess(facts(machine(managed_disks=True)), ONPREM)
    assert report.ready and rules(report) == ["R26"]
    unreadable = OnPremFacts(hyperv_hosts=[host(reachable=False, problem="401", vms=[])])
    report, _ = HYPERV.assess(facts(), unreadable)
    assert "R27" in rules(report)


def test_r12_r13_a_machine_not_committed_in_azure_or_without_points() -> None:
    report, _ = HYPERV.assess(
        facts(machine(state="other", protection_state="Protected", recovery_point_count=0)),
        ONPREM,
    )
    assert rules(report) == ["R12", "R13"]


@given(
    connected=st.booleans(),
    running=st.booleans(),
    checkpoints=st.integers(0, 3),
    ready=st.booleans(),
    points=st.integers(0, 2),
)
def test_every_broken_fact_is_reported_at_once(
    connected: bool, running: bool, checkpoints: int, ready: bool, points: int
) -> None:
    state = "Running" if running else "Off"
    onprem = OnPremFacts(
        hyperv_hosts=[
            host(vms=[HyperVVmFacts(name="web-01", state=state, checkpoints=checkpoints)])
        ]
    )
    report, _ = HYPERV.assess(
        facts(
            machine(state="ready-to-fail-back" if ready else "other", recovery_point_count=points),
            hyperv_providers=[provider(connected=connected)],
        ),
        onprem,
    )
    expected = (
        (["R23"] if not connected else [])
        + (["R24"] if running else [])
        + (["R24"] if checkpoints else [])
        + (["R12"] if not ready else [])
        + (["R13"] if points < 1 else [])
    )
    assert rules(report) == sorted(expected)
    assert report.ready == (not expected)
