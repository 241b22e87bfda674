"""Who gets ARM's read tokens first when reads wait for them (activities/arm_reads.ReadTurns):
urgent reads, then the oldest work's, then first come; and the rank of a read made on a plan's
own threads is its plan's."""

from __future__ import annotations

import threading
import time

import pytest
from temporalio.testing import ActivityEnvironment

from activities import arm_reads
from activities.arm_reads import ReadTurns, WorkRanks, reading_workflow
from activities.budget import ReadBudget
from activities.threads import map_in_threads


def drained_turns(refill_per_second: float = 20) -> ReadTurns:
    """A bucket of a token or two, refilled at 20 a second, emptied before the test asks."""
    budget = ReadBudget(capacity=1, refill_per_second=refill_per_second)
    while budget.take_or_wait(time.monotonic(), urgent=True) == 0:
        pass
    return ReadTurns(budget)


def served_order(
    turns: ReadTurns,
    waves: list[list[tuple[str, bool, float]]],
    marks: list[int] | None = None,
) -> list[str]:
    """Starts each wave of readers (name, urgent, rank) once the previous wave all wait; the
    names in the order they got their tokens. `marks` gets, for each wave, how many had been
    served when all its readers had asked."""
    served: list[str] = []
    lock = threading.Lock()

    def read(name: str, urgent: bool, rank: float) -> None:
        turns.take(urgent, rank)
        with lock:
            served.append(name)

    threads: list[threading.Thread] = []
    for wave in waves:
        for name, urgent, rank in wave:
            thread = threading.Thread(target=read, args=(name, urgent, rank))
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + 5
        while turns.waiting() + len(served) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)
        if marks is not None:
            with lock:
                marks.append(len(served))
    for thread in threads:
        thread.join(timeout=10)
    return served


def test_a_later_plans_background_reads_wait_for_the_earlier_plans() -> None:
    late = [(f"late-{n}", False, 2.0) for n in range(4)]
    early = [(f"early-{n}", False, 1.0) for n in range(4)]
    # A token every 0.2 s: a loaded machine starting the early plan's threads takes less.
    marks: list[int] = []
    served = served_order(drained_turns(refill_per_second=5), [late, early], marks)
    assert len(served) == 8
    # Once the early plan's reads wait, at most the one late read already handed its turn goes
    # before them; then all four of them.
    first_early = min(served.index(f"early-{n}") for n in range(4))
    assert first_early <= marks[1] + 1
    assert sorted(served[first_early : first_early + 4]) == [f"early-{n}" for n in range(4)]


def test_an_urgent_read_is_not_queued_behind_the_oldest_background_reads() -> None:
    # 30 background reads need some 2 s of the background lane's refill (14 a second); the job's
    # end read waits for its own lane's only (6 a second).
    background = [(f"background-{n}", False, 0.0) for n in range(30)]
    urgent = [("job-end", True, 99.0)]
    served = served_order(drained_turns(), [background, urgent])
    assert served.index("job-end") <= 6


def test_a_stream_of_urgent_reads_does_not_starve_the_background() -> None:
    urgent = [(f"poll-{n}", True, 0.0) for n in range(20)]
    background = [(f"readiness-{n}", False, 0.0) for n in range(5)]
    served = served_order(drained_turns(), [urgent, background])
    assert served.index("readiness-4") < served.index("poll-19")


def test_reads_of_one_rank_go_first_come_first_served() -> None:
    turns = drained_turns()
    waves = [[(f"read-{n}", False, 1.0)] for n in range(5)]
    assert served_order(turns, waves) == [f"read-{n}" for n in range(5)]


def test_a_workflows_rank_is_its_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(t) for t in range(100))
    ranks = WorkRanks(clock=lambda: next(clock))
    assert ranks.of("plan-a") == 0.0
    assert ranks.of("plan-b") == 1.0
    assert ranks.of("plan-a") == 0.0
    # A read outside any workflow ranks as new work.
    assert ranks.of(None) == 3.0
    # Beyond what it remembers, the oldest workflow is forgotten first.
    monkeypatch.setattr(arm_reads, "REMEMBERED_WORKFLOWS", 2)
    ranks.of("plan-c")
    assert ranks.of("plan-b") == 1.0
    assert ranks.of("plan-a") == 6.0


def test_reads_on_a_plans_own_threads_are_the_plans() -> None:
    def read_for_machines() -> list[str | None]:
        return map_in_threads(lambda _: reading_workflow(), list(range(20)), 8)

    env = ActivityEnvironment()
    env.info = env.info.__class__(**{**env.info.__dict__, "workflow_id": "failback-plan-erp"})
    assert env.run(read_for_machines) == ["failback-plan-erp"] * 20
    assert reading_workflow() is None
