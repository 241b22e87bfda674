"""The worker's ARM read budget (activities/budget.ReadBudget): whatever the mix of reads, they
go out inside ARM's bucket; and the reads that decide what happens next (a job's end, a
verification) keep a lane of their own under a flood of background reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from activities.budget import URGENT_FLOOR_SECONDS, ReadBudget

CAPACITY, RATE = 250.0, 25.0


def sent_at(budget: ReadBudget, at: float, urgent: bool) -> float:
    """When a read asked for at `at` goes, asking again after each wait it is told."""
    while (wait := budget.take_or_wait(at, urgent)) > 0:
        at += wait
    return at


def sent_times(requests: list[tuple[float, bool]]) -> list[float]:
    """Reads served one after the other in the order asked, as ReadTurns serves one rank."""
    budget = ReadBudget(CAPACITY, RATE)
    sent: list[float] = []
    for at, urgent in requests:
        sent.append(sent_at(budget, max(at, sent[-1] if sent else at), urgent))
    return sent


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
    # Background reads drain their lane: the next one must wait.
    while budget.take_or_wait(0.0, urgent=False) == 0:
        pass
    assert budget.take_or_wait(0.0, urgent=False) > 0
    # A job's end read at that moment goes at once (its lane is untouched)...
    assert budget.take_or_wait(0.0, urgent=True) == 0.0
    # ...and even when its own lane is drained, it waits for its lane's refill only.
    last = 0.0
    for _ in range(200):
        last = sent_at(budget, last, urgent=True)
    assert last < 200 / (RATE * 0.3) + 1


def test_urgent_reads_use_the_background_lane_when_it_is_idle() -> None:
    budget = ReadBudget(CAPACITY, RATE)
    waits = [budget.take_or_wait(0.0, urgent=True) for _ in range(int(CAPACITY))]
    assert all(w == 0.0 for w in waits)
    assert budget.take_or_wait(0.0, urgent=True) > 0


def test_background_reads_have_arms_whole_rate_while_nothing_is_urgent() -> None:
    """Before a plan's failover every read is background: the urgent lane's refill, which a full
    lane would waste, goes to them: at 24 reads a second for 100 s, the last waits some 7 s
    (the first burst's backlog, and a refill that a read must find whole); with 70 % of ARM's
    rate only it would wait about 40 s."""
    budget = ReadBudget(CAPACITY, RATE)
    last = 0.0
    for _ in range(int(CAPACITY)):
        last = sent_at(budget, 0.0, urgent=False)
    for k in range(1, 2400):
        last = sent_at(budget, max(last, k / 24.0), urgent=False)
    assert last - 2399 / 24.0 < 10.0
    # The urgent lane kept a second of its refill.
    assert budget.take_or_wait(100.0, urgent=True) == 0.0


def test_background_reads_borrow_the_urgent_lane_down_to_a_second_of_its_refill() -> None:
    """Before the failovers no read is urgent: a plan's readiness may spend the bucket but for
    what a job's end and a verification round need at once (URGENT_FLOOR_SECONDS); the reserve
    kept whole made a worker's fourth plan wait some 2 s more (bench/RESULTS.md)."""
    budget = ReadBudget(CAPACITY, RATE)
    at_once = 0
    while budget.take_or_wait(0.0, urgent=False) == 0:
        at_once += 1
    kept = RATE * 0.3 * URGENT_FLOOR_SECONDS  # 7.5 reads
    assert CAPACITY - kept - 1 <= at_once <= CAPACITY - kept  # every token but those kept
    # What the lane kept goes to urgent reads at once; the next waits for its lane's refill
    # only, not behind the background reads waiting.
    urgent_at_once = 0
    while (wait := budget.take_or_wait(0.0, urgent=True, other_lane_idle=False)) == 0:
        urgent_at_once += 1
    assert kept <= urgent_at_once <= kept + 1
    assert 0 < wait <= 1 / (RATE * 0.3)


def test_a_background_read_does_not_take_the_token_an_urgent_read_waits_for() -> None:
    # A bucket of one token: the urgent lane holds it, the background lane has none at first.
    budget = ReadBudget(capacity=1, refill_per_second=20)
    while budget.take_or_wait(0.0, urgent=True) == 0:
        pass
    while budget.take_or_wait(0.0, urgent=False) == 0:
        pass
    later = 10.0  # both lanes full again
    assert budget.take_or_wait(later, urgent=False, other_lane_idle=False) == 0.0  # its own
    # The background lane is empty, the urgent lane full: with an urgent read waiting, the
    # background waits for its own lane; with none, it may take the urgent lane's token.
    assert budget.take_or_wait(later, urgent=False, other_lane_idle=False) > 0
    assert budget.take_or_wait(later, urgent=True, other_lane_idle=False) == 0.0
