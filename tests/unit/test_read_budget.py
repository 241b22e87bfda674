"""The worker's ARM read budget (activities/budget.ReadBudget): whatever the mix of reads, they
go out inside ARM's bucket; and the reads that decide what happens next (a job's end, a
verification) keep a lane of their own under a flood of background reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from activities.budget import ReadBudget

CAPACITY, RATE = 250.0, 25.0


def sent_times(requests: list[tuple[float, bool]]) -> list[float]:
    budget = ReadBudget(CAPACITY, RATE)
    return [at + budget.reserve(at, urgent) for at, urgent in requests]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=30), st.booleans()), min_size=1, max_size=900
    )
)
def test_reads_never_overdraw_arms_bucket(raw: list[tuple[float, bool]]) -> None:
    requests = sorted(raw)
    times = sorted(sent_times(requests))
    # ARM's bucket: in any window [a, b], at most CAPACITY + RATE * (b - a) requests.
    for i, start in enumerate(times):
        for j in range(i, len(times), max(1, (len(times) - i) // 50)):
            count = j - i + 1
            assert count <= CAPACITY + RATE * (times[j] - start) + 1e-6


def test_an_urgent_read_is_not_queued_behind_a_flood_of_background_reads() -> None:
    budget = ReadBudget(CAPACITY, RATE)
    # 2,000 background reads asked for at once: the last waits about 70 s.
    waits = [budget.reserve(0.0, urgent=False) for _ in range(2000)]
    assert waits[-1] > 60
    # A job's end read at that moment goes at once (its lane is untouched)...
    assert budget.reserve(0.0, urgent=True) == 0.0
    # ...and even when its own lane is drained, it waits for its lane's refill only.
    urgent = [budget.reserve(0.0, urgent=True) for _ in range(200)]
    assert max(urgent) < 200 / (RATE * 0.3) + 1


def test_urgent_reads_use_the_background_lane_when_it_is_idle() -> None:
    budget = ReadBudget(CAPACITY, RATE)
    waits = [budget.reserve(0.0, urgent=True) for _ in range(int(CAPACITY))]
    assert all(w == 0.0 for w in waits)


def test_background_reads_have_arms_whole_rate_while_nothing_is_urgent() -> None:
    """Before a plan's failover every read is background: the urgent lane's refill, which a full
    lane would waste, goes to them: at 24 reads a second for 100 s, the last waits some 7 s
    (the first burst's backlog, and a refill that a read must find whole); with 70 % of ARM's
    rate only it would wait about 40 s."""
    budget = ReadBudget(CAPACITY, RATE)
    for _ in range(int(CAPACITY)):
        budget.reserve(0.0, urgent=False)
    waits = [budget.reserve(k / 24.0, urgent=False) for k in range(1, 2400)]
    assert waits[-1] < 10.0
    # The urgent lane kept all but one of its reserve.
    assert budget.reserve(100.0, urgent=True) == 0.0
