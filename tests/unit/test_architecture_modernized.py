"""The modernized architecture's reading of an item, against the states of Microsoft's recorded
runs (asr-modernized-hyperv.md §2.2; lab/asr_wire/recordings/modernized-*.json)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.architectures import ItemView, UnknownArchitectureError, architecture_of
from domain.architectures.modernized import MODERNIZED
from domain.operations import AsrOperation
from lab.asr_sim.schema import WIRE

# (phase, instanceType, protectionState, allowedOperations), as recorded.
RECORDED = [
    (
        "forward",
        "InMageRcm",
        "Protected",
        {"UnplannedFailover", "DisableProtection", "TestFailover"},
    ),
    (
        "failed over to Azure",
        "InMageRcm",
        "UnplannedFailoverCommitPendingStatesBegin",
        {"CompleteMigration", "Commit", "DisableProtection", "ChangePit", "SwitchProtection"},
    ),
    (
        "committed in Azure",
        "InMageRcm",
        "UnplannedFailoverCommitted",
        {"CompleteMigration", "DisableProtection", "SwitchProtection"},
    ),
    (
        "replicating back",
        "InMageRcmFailback",
        "Protected",
        {"PlannedFailover", "DisableProtection"},
    ),
    (
        "failed back",
        "InMageRcmFailback",
        "CommitPendingStatesBegin",
        {"CompleteMigration", "Commit", "DisableProtection", "SwitchProtection", "CancelFailover"},
    ),
]


def view(instance_type: str, state: str, allowed: set[str]) -> ItemView:
    return ItemView(
        instance_type=instance_type, protection_state=state, allowed_operations=frozenset(allowed)
    )


def test_the_recorded_states_are_the_ones_in_the_recordings() -> None:
    seen = set()
    for path in (WIRE / "recordings").glob("modernized-*.json"):
        for entry in json.loads(path.read_text())["Entries"]:
            body = json.loads(entry["ResponseBody"] or "null")
            props = body.get("properties") if isinstance(body, dict) else None
            if isinstance(props, dict) and "protectionState" in props:
                kind = props["providerSpecificDetails"]["instanceType"]
                seen.add((kind, props["protectionState"], frozenset(props["allowedOperations"])))
    for phase, kind, state, allowed in RECORDED[1:]:
        assert (kind, state, frozenset(allowed)) in seen, phase


@pytest.mark.parametrize(("phase", "kind", "state", "allowed"), RECORDED)
def test_each_recorded_phase_reads_as_it_should(
    phase: str, kind: str, state: str, allowed: set[str]
) -> None:
    item = view(kind, state, allowed)
    expected_state = {
        "failed over to Azure": "needs-reprotect",
        "committed in Azure": "needs-reprotect",
        "replicating back": "replicating-back",
    }.get(phase, "other")
    assert MODERNIZED.machine_state(item) == expected_state
    rule = MODERNIZED.operation
    reprotected = rule(AsrOperation.REPROTECT_TO_ONPREM).already_done(item)
    assert reprotected == (kind == "InMageRcmFailback")
    failed_back = rule(AsrOperation.PLANNED_FAILOVER).already_done(item)
    assert failed_back == (phase == "failed back")
    # Before its commit, a failback can be undone and is not committed; "forward" is the item
    # protected to Azure, which a retry after the re-protect takes as committed long since.
    committed = rule(AsrOperation.FAILOVER_COMMIT).already_done(item)
    assert committed == (phase == "forward")
    for operation in MODERNIZED.operations:
        offered = bool(operation.allowed_operations & item.allowed_operations)
        if phase == "failed back" and operation.operation is AsrOperation.FAILOVER_CANCEL:
            assert offered
        if phase == "replicating back" and operation.operation is AsrOperation.PLANNED_FAILOVER:
            assert offered


@given(
    st.sampled_from(["InMageRcm", "InMageRcmFailback"]),
    st.sampled_from(["Protected", "CommitPendingStatesBegin", "InitialReplicationInProgress", ""]),
    st.frozensets(
        st.sampled_from(["Commit", "CancelFailover", "PlannedFailover", "SwitchProtection"])
    ),
)
def test_a_failback_that_can_still_be_undone_is_never_taken_as_committed(
    kind: str, state: str, allowed: frozenset[str]
) -> None:
    item = ItemView(instance_type=kind, protection_state=state, allowed_operations=allowed)
    committed = MODERNIZED.operation(AsrOperation.FAILOVER_COMMIT).already_done(item)
    if "CancelFailover" in allowed or "Commit" in allowed:
        assert not committed or MODERNIZED.protected_to_azure(item)


def test_items_are_told_apart_by_their_provider_and_an_unknown_one_is_refused() -> None:
    """Issue 15, point 1: the architecture of an item is its provider's; one the product does
    not drive (Azure-to-Azure's A2A) is refused by name."""
    assert architecture_of("InMageRcm") is MODERNIZED
    assert architecture_of("InMageRcmFailback") is MODERNIZED
    assert architecture_of("InMage").name == "classic"
    assert architecture_of("HyperVReplicaAzure").name == "hyperv"
    with pytest.raises(UnknownArchitectureError, match="'A2A'"):
        architecture_of("A2A")
