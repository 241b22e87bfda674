"""The bench's replay of ARM's token buckets: each principal draws on its own (bench/run.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.run import per_principal_bucket, token_bucket

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _requests(principal: str | None, count: int) -> list[dict[str, object]]:
    # All in the same second: a bucket of 10 refuses every request past its tenth.
    return [
        {"principal": principal, "time": (START + timedelta(milliseconds=i)).isoformat()}
        for i in range(count)
    ]


def test_two_principals_each_within_their_bucket_are_not_refused() -> None:
    both = _requests("worker-1", 8) + _requests("worker-2", 8)
    replay = per_principal_bucket(both, 10, 1.0)
    assert replay["would_be_throttled"] == 0
    assert replay["principals"] == 2
    # One bucket for all 16 would have refused 6: the per-principal replay is what ARM does.
    one_bucket = token_bucket([START.timestamp() + i / 1000 for i in range(16)], 10, 1.0)
    assert one_bucket["would_be_throttled"] == 6


def test_refusals_add_up_over_principals_and_the_lowest_is_the_tightest() -> None:
    replay = per_principal_bucket(_requests("a", 12) + _requests("b", 5), 10, 1.0)
    assert replay["would_be_throttled"] == 2
    assert replay["lowest_tokens"] < 1


def test_a_journal_without_principals_is_one_bucket() -> None:
    replay = per_principal_bucket(_requests(None, 12), 10, 1.0)
    assert replay["would_be_throttled"] == 2
    assert replay["principals"] == 1
