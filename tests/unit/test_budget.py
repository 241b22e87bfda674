"""The worker's ARM write budget: never more requests in a window than ARM's bucket allows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.budget import TokenBucket


def test_a_burst_up_to_the_capacity_goes_at_once_then_the_refill_rate_paces() -> None:
    bucket = TokenBucket(capacity=200, refill_per_second=10)
    delays = [bucket.reserve(0.0) for _ in range(1000)]
    assert delays[:200] == [0.0] * 200
    # The 201st waits for the first refilled token, the 1,000th for the 800th: 80 s.
    assert delays[200] == pytest.approx(0.1)
    assert delays[999] == pytest.approx(80.0)


def test_time_refills_the_bucket_up_to_its_capacity_only() -> None:
    bucket = TokenBucket(capacity=5, refill_per_second=1)
    assert [bucket.reserve(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    # An hour later the bucket is full again, not 3,600 tokens deep.
    assert [bucket.reserve(3600.0) for _ in range(5)] == [0.0] * 5
    assert bucket.reserve(3600.0) == pytest.approx(1.0)


def test_an_unusable_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity of at least 1"):
        TokenBucket(capacity=0, refill_per_second=10)
    with pytest.raises(ValueError, match="positive refill"):
        TokenBucket(capacity=10, refill_per_second=0)


arrivals = st.lists(
    st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=300
)


@settings(max_examples=300)
@given(
    times=arrivals,
    capacity=st.integers(min_value=1, max_value=50),
    rate=st.floats(min_value=0.5, max_value=50),
)
def test_sends_in_any_window_stay_within_what_arm_allows(
    times: list[float], capacity: int, rate: float
) -> None:
    """Whatever the arrivals, the requests as sent (arrival + delay) never exceed, in any window
    of w seconds, the capacity plus w seconds of refill: what ARM's bucket would accept."""
    bucket = TokenBucket(capacity=capacity, refill_per_second=rate)
    sent = sorted(t + bucket.reserve(t) for t in sorted(times))
    for first in range(len(sent)):
        for last in range(first, len(sent)):
            window = sent[last] - sent[first]
            assert last - first + 1 <= capacity + window * rate + 1e-6


@settings(max_examples=300)
@given(times=arrivals, capacity=st.integers(min_value=1, max_value=50))
def test_no_request_waits_while_a_token_is_free(times: list[float], capacity: int) -> None:
    """First come, first served, and no needless wait: a request waits only when the requests
    before it have used every token the bucket had by then."""
    bucket = TokenBucket(capacity=capacity, refill_per_second=2.0)
    ordered = sorted(times)
    delays = [bucket.reserve(t) for t in ordered]
    assert all(d >= 0 for d in delays)
    sent = [t + d for t, d in zip(ordered, delays, strict=True)]
    assert sent == sorted(sent)
    for index in range(min(capacity, len(ordered))):
        assert delays[index] == 0.0
