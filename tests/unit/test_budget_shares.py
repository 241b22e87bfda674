"""Issue 18, point 4: workers that share a principal and claim more than its ARM budgets are
found from their Temporal identities (domain/budget_shares.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.budget_shares import (
    OverdrawWatch,
    budget_identity,
    overdrawn_budgets,
    principal_and_share,
)

principals = st.text(
    alphabet=st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=40
)


@given(principals, st.floats(min_value=1e-3, max_value=1.0))
def test_the_identity_names_the_principal_and_the_share(principal: str, share: float) -> None:
    found = principal_and_share(budget_identity("4242@host-a", principal, share))
    assert found is not None
    assert found[0] == principal and abs(found[1] - share) <= 5e-7


@given(st.integers(min_value=1, max_value=200))
def test_n_workers_at_one_nth_each_claim_no_more_than_the_budget(workers: int) -> None:
    identities = [budget_identity(f"{i}@host", "sp-1", 1 / workers) for i in range(workers)]
    assert overdrawn_budgets(identities) == []


@given(st.integers(min_value=2, max_value=50))
def test_scaled_workers_left_at_a_whole_share_each_are_found_and_told_the_share_to_set(
    workers: int,
) -> None:
    identities = [budget_identity(f"{i}@host", "sp-1", 1.0) for i in range(workers)]
    (overdrawn,) = overdrawn_budgets(identities)
    assert overdrawn.principal == "sp-1" and overdrawn.workers == workers
    assert overdrawn.total_share == workers
    assert f"FAILBACK_ARM_BUDGET_SHARE={1 / workers:.6f}" in overdrawn.advice()


def test_principals_are_counted_apart_and_unmarked_workers_not_at_all() -> None:
    identities = [
        budget_identity("1@a", "sp-1", 1.0),
        budget_identity("2@b", "sp-2", 1.0),
        budget_identity("3@c", "sp-2", 0.5),
        "4@d",  # a worker of a version before the mark
        "5@e arm-budget=sp-1:nonsense",
        budget_identity("1@a", "sp-1", 1.0),  # the same worker's two pollers
    ]
    (overdrawn,) = overdrawn_budgets(identities)
    assert (overdrawn.principal, overdrawn.workers, overdrawn.total_share) == ("sp-2", 2, 1.5)


def test_a_finding_is_told_once_it_has_held_longer_than_a_stopped_worker_stays_listed() -> None:
    watch = OverdrawWatch(settle_seconds=180)
    restarted = overdrawn_budgets(
        [budget_identity(f"{i}@host", "sp-1", 0.5) for i in (1, 2, 3)]  # 3 = 1 restarted
    )
    scaled = overdrawn_budgets([budget_identity(f"{i}@host", "sp-1", 1.0) for i in (1, 2)])
    assert watch.to_tell(restarted, now=0) == []
    assert watch.to_tell([], now=60) == []  # the old worker left the list: nothing to tell
    assert watch.to_tell(scaled, now=120) == []
    assert watch.to_tell(scaled, now=240) == []
    assert watch.to_tell(scaled, now=300) == scaled  # held for 180 s
    assert watch.to_tell(scaled, now=360) == []  # told once
    worse = overdrawn_budgets([budget_identity(f"{i}@host", "sp-1", 1.0) for i in (1, 2, 3)])
    assert watch.to_tell(worse, now=420) == []
    assert watch.to_tell(worse, now=600) == worse  # a new finding, told when it has held
