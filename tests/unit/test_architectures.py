"""The architecture seam: each item's provider picks one architecture, which answers alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.architectures import (
    ARCHITECTURES,
    CLASSIC,
    ArchitectureName,
    ItemView,
    UnknownArchitectureError,
    architecture_named,
    architecture_of,
)
from domain.operations import AsrOperation

STATES = [
    "Protected",
    "UnplannedFailoverCommitPending",
    "UnplannedFailoverCommitted",
    "FailoverCompleted",
    "Unprotected",
    "",
]
OPS = ["ReverseReplicate", "UnplannedFailover", "Commit", "FailoverCommit", "SwitchProtection"]
items = st.builds(
    ItemView,
    instance_type=st.sampled_from(["InMage", "InMageAzureV2", "InMageRcm", "HyperVReplicaAzure"]),
    protection_state=st.sampled_from(STATES),
    allowed_operations=st.frozensets(st.sampled_from(OPS)),
)


def test_an_item_is_classic_by_its_provider_in_either_direction() -> None:
    assert architecture_of("InMageAzureV2") is CLASSIC
    assert architecture_of("InMage") is CLASSIC
    assert architecture_named(ArchitectureName.CLASSIC) is CLASSIC


def test_an_unknown_provider_is_refused_by_name() -> None:
    with pytest.raises(UnknownArchitectureError, match="'A2A' is not one this product"):
        architecture_of("A2A")


def test_no_provider_belongs_to_two_architectures() -> None:
    providers = [p for a in ARCHITECTURES for p in a.providers]
    assert len(providers) == len(set(providers))


def test_every_architecture_defines_its_failover_and_the_commit() -> None:
    for architecture in ARCHITECTURES:
        architecture.operation(architecture.failover)
        architecture.operation(AsrOperation.FAILOVER_COMMIT)
        architecture.operation(AsrOperation.REPROTECT_TO_AZURE)
        if architecture.reprotects_before_failback:
            architecture.operation(AsrOperation.REPROTECT_TO_ONPREM)


@given(items)
def test_classic_failback_is_done_only_on_an_item_replicating_back(item: ItemView) -> None:
    # An item still failed over to Azure shows UnplannedFailoverCommitted too (InMageAzureV2):
    # taking that for a done failback would skip the failover.
    done = CLASSIC.operation(AsrOperation.UNPLANNED_FAILOVER).already_done(item)
    assert done == (
        item.instance_type == "InMage" and item.protection_state.startswith("UnplannedFailover")
    )


@given(items)
def test_classic_states_follow_the_provider_and_allowed_operations(item: ItemView) -> None:
    state = CLASSIC.machine_state(item)
    assert (state == "replicating-back") == CLASSIC.replicating_back(item)
    if state == "needs-reprotect":
        assert item.instance_type == "InMageAzureV2"
        assert "ReverseReplicate" in item.allowed_operations


@given(items)
def test_classic_commit_is_done_once_committed_or_protected_to_azure_again(item: ItemView) -> None:
    done = CLASSIC.operation(AsrOperation.FAILOVER_COMMIT).already_done(item)
    if CLASSIC.protected_to_azure(item):
        assert done
    if item.instance_type == "InMage" and item.protection_state != "UnplannedFailoverCommitted":
        assert not done
