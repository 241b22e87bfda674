"""The arithmetic behind bench/RESULTS.md's 10,000 machines on paper (bench/paper.py)."""

from __future__ import annotations

import pytest

from bench.paper import budget_seconds


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


def test_background_reads_draw_on_their_share_of_the_bucket_only() -> None:
    # 70 % of 250 at once, then 70 % of 25 a second.
    assert budget_seconds(1_175, 250, 25.0, principals=1, share=0.7) == pytest.approx(57.14, 0.01)
