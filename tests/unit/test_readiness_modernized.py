"""Readiness rules of the modernized architecture (R18-R22, with R5, R7, R12-R14): each one
blocks when its fact is wrong, all are reported at once, and nothing is chosen while one blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.architectures import MODERNIZED, assess_readiness
from domain.readiness import (
    ApplianceFacts,
    AsrFacts,
    ConfigServerFacts,
    DatastoreFacts,
    HostFacts,
    MachineFacts,
    OnPremFacts,
    OnPremVmFacts,
    VCenterFacts,
)
from domain.readiness_modernized import APPLIANCE_DISK_LIMIT

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
LOG = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/logs"
POLICY = "/subscriptions/s/.../replicationPolicies/failback"


def appliance(**fields: object) -> ApplianceFacts:
    values: dict[str, object] = {
        "id": "app-1",
        "name": "appliance-01",
        "healthy": True,
        "last_heartbeat": NOW - timedelta(minutes=1),
        "datastores": ["ds-vmfs-01", "ds-nfs-01"],
        "attached_disks": 0,
    }
    values.update(fields)
    return ApplianceFacts.model_validate(values)


def machine(name: str = "web-01", **fields: object) -> MachineFacts:
    values: dict[str, object] = {
        "item_name": f"{name}-item",
        "vm_name": name,
        "os_type": "Linux",
        "state": "needs-reprotect",
        "protection_state": "UnplannedFailoverCommitted",
        "disk_count": 1,
        "log_storage_account_id": LOG,
    }
    values.update(fields)
    return MachineFacts.model_validate(values)


def facts(*machines: MachineFacts, **fields: object) -> AsrFacts:
    values: dict[str, object] = {
        "architecture": "modernized",
        "configuration_server": ConfigServerFacts(name="fabric", reachable=True),
        "master_targets": [],
        "vcenters": [VCenterFacts(name="vcenter-01", connected=True)],
        "machines": list(machines) or [machine()],
        "failback_policy_id": POLICY,
        "appliances": [appliance()],
        "read_at": NOW,
    }
    values.update(fields)
    return AsrFacts.model_validate(values)


ONPREM = OnPremFacts(
    hosts=[HostFacts(name="esx-01")],
    datastores=[
        DatastoreFacts(name="ds-vmfs-01", type="VMFS", hosts=["esx-01"]),
        DatastoreFacts(name="ds-nfs-01", type="NFS", hosts=["esx-01"]),
        DatastoreFacts(name="ds-far", type="VMFS", hosts=["esx-09"]),
    ],
    vms=[OnPremVmFacts(name="web-01", host="esx-01", datastores=["ds-vmfs-01"])],
)


def rules(asr: AsrFacts, onprem: OnPremFacts = ONPREM, **choices: str | None) -> set[str]:
    report, choices_made = assess_readiness(asr, onprem, **choices)
    if report.blocking:
        assert choices_made == []
    return {f.rule for f in report.blocking}


def test_a_ready_machine_is_reprotected_through_the_appliance() -> None:
    report, choices = assess_readiness(facts(), ONPREM)
    assert report.ready, report.findings
    (choice,) = choices
    assert choice.master_target_id == "app-1" and choice.datastore_name == "ds-vmfs-01"
    assert choice.profile_id == POLICY and choice.log_storage_account_id == LOG
    assert MODERNIZED.assess is not None


def test_r18_an_unhealthy_or_silent_appliance_blocks() -> None:
    assert rules(facts(appliances=[appliance(healthy=False)])) == {"R18"}
    stale = appliance(last_heartbeat=NOW - timedelta(minutes=16))
    assert rules(facts(appliances=[stale])) == {"R18"}
    assert rules(facts(appliances=[])) == {"R18"}
    assert rules(facts(), master_target_id="app-nowhere") == {"R18"}


def test_r19_the_vms_datastore_must_be_reachable_by_the_appliance() -> None:
    far = OnPremFacts(
        hosts=ONPREM.hosts,
        datastores=ONPREM.datastores,
        vms=[OnPremVmFacts(name="web-01", host="esx-09", datastores=["ds-far"])],
    )
    assert rules(facts(), far) == {"R19"}
    # An alternate location needs a datastore the appliance reaches.
    gone = machine("app-01")
    assert rules(facts(gone), datastore_name="ds-far") == {"R19"}
    assert rules(facts(gone), datastore_name="ds-nfs-01") == set()


def test_r20_sixty_disks_per_appliance() -> None:
    full = appliance(attached_disks=APPLIANCE_DISK_LIMIT - 1)
    assert rules(facts(machine(disk_count=1), appliances=[full])) == set()
    assert rules(facts(machine(disk_count=2), appliances=[full])) == {"R20"}


def test_r21_and_r22_policy_and_log_storage_account() -> None:
    assert rules(facts(failback_policy_id=None)) == {"R21"}
    assert rules(facts(failback_policy_id=None), policy_id=POLICY) == set()
    assert rules(facts(machine(log_storage_account_id=None))) == {"R22"}
    assert rules(facts(machine(log_storage_account_id=None), log_storage_account_id=LOG)) == set()


def test_replicating_back_needs_health_and_a_point() -> None:
    back = machine(state="replicating-back", protection_state="Protected")
    assert rules(facts(back.model_copy(update={"replication_health": "Normal"}))) == {"R13"}
    healthy = back.model_copy(update={"replication_health": "Normal", "recovery_point_count": 3})
    assert rules(facts(healthy)) == set()
    assert rules(facts(healthy.model_copy(update={"replication_health": "Critical"}))) == {"R12"}
    # A group fails back with its plan's planned failover (useMultiVmSyncPoint): no finding.
    grouped = healthy.model_copy(update={"replication_group": "rg-web"})
    assert rules(facts(grouped)) == set()
    disconnected = [VCenterFacts(name="vcenter-01", connected=False)]
    assert rules(facts(healthy, vcenters=disconnected)) == {"R14"}


@given(
    healthy=st.booleans(),
    minutes=st.integers(0, 60),
    disks=st.integers(0, 70),
    policy=st.booleans(),
    log=st.booleans(),
)
def test_every_broken_fact_is_reported_at_once_and_nothing_is_chosen(
    healthy: bool, minutes: int, disks: int, policy: bool, log: bool
) -> None:
    asr = facts(
        machine(disk_count=1, log_storage_account_id=LOG if log else None),
        appliances=[
            appliance(
                healthy=healthy,
                last_heartbeat=NOW - timedelta(minutes=minutes),
                attached_disks=disks,
            )
        ],
        failback_policy_id=POLICY if policy else None,
    )
    expected = set()
    usable = healthy and minutes <= 15
    if not usable:
        expected.add("R18")
    elif disks + 1 > APPLIANCE_DISK_LIMIT:
        expected.add("R20")
    if not policy:
        expected.add("R21")
    if not log:
        expected.add("R22")
    assert rules(asr) == expected
