"""The arithmetic behind bench/RESULTS.md's 10,000 machines on paper (bench/paper.py)."""

from __future__ import annotations

import math

import pytest

from bench.paper import budget_seconds, grown


def test_a_bucket_takes_its_burst_at_once_and_the_rest_at_its_rate() -> None:
    assert budget_seconds(250, 250, 25.0, principals=1) == 0.0
    assert budget_seconds(500, 250, 25.0, principals=1) == pytest.approx(10.0)


def test_principals_add_buckets_up_to_the_subscriptions_cap_of_fifteen() -> None:
    one = budget_seconds(40_000, 250, 25.0, principals=1)
    four = budget_seconds(40_000, 250, 25.0, principals=4)
    assert four == pytest.approx((40_000 - 1_000) / 100.0)
    assert one > four
    assert budget_seconds(40_000, 250, 25.0, principals=40) == budget_seconds(
        40_000, 250, 25.0, principals=15
    )


def test_a_cost_is_carried_on_along_its_growth_in_log_size() -> None:
    # 10 at 100, 8 at 1,000: 6 at 10,000; never below zero.
    assert grown(10.0, 8.0, 100, 1_000, 10_000) == pytest.approx(6.0)
    assert grown(10.0, 2.0, 100, 1_000, 100_000) == 0.0
    assert grown(10.0, 8.0, 1_000, 1_000, 10_000) == 8.0
    assert grown(math.nan, 8.0, 100, 1_000, 10_000) == 8.0
