"""When a worker takes another plan's readiness read (activities/readiness_intake.py): only while
its read budget holds a plan's reads beside those its readiness reads in progress have yet to make
(activities/arm_reads.ReadPromises). The budget as `failback worker` builds it for a principal's
whole bucket (worker/wiring.read_budget: 200 of ARM's 250, refilled at 25 a second)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from temporalio.worker import SlotPermit, SlotReleaseContext

from activities.arm_reads import (
    ArmReadBudgetPolicy,
    PromisedReads,
    ReadPromises,
    ReadTurns,
    promised_reads,
)
from activities.budget import ReadBudget
from activities.readiness_intake import READS_OF_A_PLAN, RECHECK_SECONDS, ReadinessIntake
from activities.threads import map_in_threads


class NoArm(HttpTransport):  # type: ignore[misc]
    def send(self, request: Any, **kwargs: Any) -> Any:
        return None

    def open(self) -> None: ...
    def close(self) -> None: ...
    def __exit__(self, *args: object) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker_budget(
    clock: Clock, capacity: float = 200, refill: float = 25
) -> tuple[ReadBudget, ReadPromises]:
    budget = ReadBudget(capacity=capacity, refill_per_second=refill)
    return budget, ReadPromises(ReadTurns(budget, clock=clock), budget)


def read(budget: ReadBudget, promises: ReadPromises, promise: PromisedReads, at: float) -> None:
    """One read of `promise`, as ArmReadBudgetPolicy makes it: a token, then the promise."""
    assert budget.take_or_wait(at, urgent=False) == 0
    promises.spend(promise)


def released(intake: ReadinessIntake) -> None:
    intake.release_slot(SlotReleaseContext(slot_info=None, permit=SlotPermit()))


def test_a_full_bucket_takes_one_plan_and_the_next_when_it_can_pay_for_it_beside() -> None:
    clock = Clock()
    budget, promises = worker_budget(clock)
    intake = ReadinessIntake(promises, most_at_once=4)
    most = budget.background_most
    assert most == pytest.approx(192.5)  # 140 + the urgent lane's 60 less 7.5 it keeps
    assert intake.try_take() == 0
    # The slot taken owes a plan's reads before its activity reads: 87.5 tokens are free.
    wait = intake.try_take()
    # At the background lane's refill, 70 % of 25 a second (the urgent lane is full).
    assert wait == pytest.approx((READS_OF_A_PLAN - (most - READS_OF_A_PLAN)) / 17.5)
    # Its activity reads 105 (the plan's own count): the tokens go, so does what it owes.
    with promised_reads(READS_OF_A_PLAN) as promise:
        for _ in range(READS_OF_A_PLAN):
            read(budget, promises, promise, clock.now)
        assert promises.reading() == (1, 0)
        assert intake.try_take() == pytest.approx(wait)
        clock.now += wait
        assert intake.try_take() == 0
    assert intake.taken == 2


def test_reads_a_promise_has_yet_to_make_are_kept_for_it() -> None:
    clock = Clock()
    budget, promises = worker_budget(clock)
    intake = ReadinessIntake(promises, most_at_once=4)
    assert intake.try_take() == 0
    with promised_reads(150) as promise:
        read(budget, promises, promise, clock.now)
        # 191.5 tokens, 149 of them owed: a plan of 105 waits for 62.5 more.
        assert intake.try_take() == pytest.approx((105 - (191.5 - 149)) / 17.5)
    # The read ended (done or failed) with 149 unread: they are free again, but the slot still
    # counts as a plan's until it is released.
    assert promises.reading() == (0, 0)
    assert intake.try_take() == pytest.approx((105 - (191.5 - 105)) / 17.5)
    released(intake)
    assert intake.try_take() == 0


def test_no_more_than_most_at_once_however_full_the_bucket() -> None:
    clock = Clock()
    _, promises = worker_budget(clock, capacity=10_000)
    intake = ReadinessIntake(promises, most_at_once=2)
    assert [intake.try_take(), intake.try_take()] == [0, 0]
    assert intake.try_take() == RECHECK_SECONDS
    released(intake)
    assert intake.try_take() == 0


def test_a_budget_smaller_than_a_plan_takes_one_when_nearly_full() -> None:
    """A quarter of a principal (FAILBACK_ARM_BUDGET_SHARE=0.25): 50 tokens, never 105."""
    clock = Clock()
    budget, promises = worker_budget(clock, capacity=62.5 - 12, refill=6.25)
    intake = ReadinessIntake(promises, most_at_once=4)
    assert budget.background_most < READS_OF_A_PLAN
    assert intake.try_take() == 0
    assert intake.try_take() > 0
    released(intake)
    with promised_reads(10) as promise:
        read(budget, promises, promise, clock.now)
        # 9 owed: the bucket, full, would hold 39.6 beside them, less than the 47.6 it waits for.
        clock.now += 3600
        assert intake.try_take() > 0
        for _ in range(9):
            read(budget, promises, promise, clock.now)
        # It waits for the bucket one token short of full: 8 tokens at the background refill.
        assert intake.try_take() == pytest.approx(8 / 4.375)
        clock.now += 8 / 4.375
        assert intake.try_take() == 0


def test_an_intake_takes_at_least_one() -> None:
    clock = Clock()
    _, promises = worker_budget(clock)
    with pytest.raises(ValueError):
        ReadinessIntake(promises, most_at_once=0)


def test_the_reads_of_a_promise_sent_through_the_pipeline_count_against_it() -> None:
    """As read_asr_facts makes them: inside `promised_reads`, on threads of its own
    (activities/threads.map_in_threads); writes and reads outside the promise do not count."""
    policy = ArmReadBudgetPolicy(ReadBudget(capacity=1000, refill_per_second=1000), 8)
    pipeline = Pipeline(transport=NoArm(), policies=[policy])

    def get(_: int) -> None:
        pipeline.run(HttpRequest("GET", "https://arm/x"))

    with promised_reads(40) as promise:
        map_in_threads(get, range(30), at_once=8)
        pipeline.run(HttpRequest("PUT", "https://arm/x"))
        assert promise.remaining == 10
        assert policy.promises.reading() == (1, 10)
    get(0)
    assert promise.done and policy.promises.reading() == (0, 0)
