"""Patch points-read-where-listed: a plan's point selection runs on the task queue of the worker
whose readiness read listed the points (that worker keeps them, activities/handover.py), and
on the shared task queue when nothing was kept there or that worker does not pick it up in
time. On the time-skipping server with the plan world's fakes (tests/workflows/
test_plan_workflow.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.asr import AsrActivities
from domain import errors
from domain.models import MachinePoints, ReadAsrFactsInput, ReadRecoveryPointsInput
from domain.readiness import AsrFacts
from tests.fakes.names import fake_of
from tests.workflows.test_plan_workflow import (
    FakePlanWorld,
    approved_to_the_end,
    started_plan,
    until_awaiting_approval,
)
from workflows.calls import KEPT_PICKUP_TIMEOUT


class KeepingWorld(FakePlanWorld):
    """Readiness names `kept_on` as the worker keeping the points it listed; each point read
    records the task queue it ran on."""

    def __init__(self, kept_on: str | None, failing_points_read: bool = False) -> None:
        super().__init__()
        self.kept_on = kept_on
        self.failing_points_read = failing_points_read
        self.points_read_on: list[str] = []

    @fake_of(AsrActivities.read_asr_facts)
    async def read_asr_facts(self, params: ReadAsrFactsInput) -> AsrFacts:
        facts = await super().read_asr_facts(params)
        return facts.model_copy(update={"listed_points_kept_on": self.kept_on})

    @fake_of(AsrActivities.read_recovery_points)
    async def read_recovery_points(self, params: ReadRecoveryPointsInput) -> list[MachinePoints]:
        self.points_read_on.append(activity.info().task_queue)
        if self.failing_points_read:
            raise ApplicationError(
                "ASR refused the read", type=errors.NOT_READY, non_retryable=True
            )
        return await super().read_recovery_points(params)


@asynccontextmanager
async def plan_on(
    env: WorkflowEnvironment, world: KeepingWorld, shared: str, own: str | None
) -> AsyncIterator[WorkflowHandle]:
    """The shared queue's worker with every activity and, if `own` is named, a second worker
    polling that queue with the point read only, as `failback worker` runs them."""
    async with AsyncExitStack() as workers:
        if own is not None:
            await workers.enter_async_context(
                Worker(env.client, task_queue=own, activities=[world.read_recovery_points])
            )
        yield await workers.enter_async_context(started_plan(env, world, task_queue=shared))


def queues() -> tuple[str, str]:
    shared = f"tq-{uuid.uuid4()}"
    return shared, f"{shared}@host-1-{uuid.uuid4().hex[:8]}"


async def test_the_points_are_read_on_the_worker_that_listed_them(
    env: WorkflowEnvironment,
) -> None:
    shared, own = queues()
    world = KeepingWorld(kept_on=own)
    async with plan_on(env, world, shared, own) as handle:
        await until_awaiting_approval(env, handle)
        result, _, _ = await approved_to_the_end(env, handle)
    assert result.outcome == "completed", result.summary
    assert world.points_read_on == [own]


async def test_a_worker_gone_since_its_readiness_read_leaves_the_read_to_the_shared_queue(
    env: WorkflowEnvironment,
) -> None:
    """Nobody polls the queue readiness named (that worker stopped): after KEPT_PICKUP_TIMEOUT
    the point read is made on the shared queue and the plan goes on; the history shows the
    unclaimed attempt timed out before it started."""
    shared, own = queues()
    world = KeepingWorld(kept_on=own)
    async with plan_on(env, world, shared, None) as handle:
        await until_awaiting_approval(env, handle)
        history = await handle.fetch_history()
        result, _, _ = await approved_to_the_end(env, handle)
    assert result.outcome == "completed", result.summary
    assert world.points_read_on == [shared]
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "read_recovery_points"
    ]
    assert [s.task_queue.name for s in scheduled] == [own, shared]
    assert scheduled[0].schedule_to_start_timeout.ToSeconds() == KEPT_PICKUP_TIMEOUT.seconds
    timed_out = [
        e for e in history.events if e.HasField("activity_task_timed_out_event_attributes")
    ]
    assert len(timed_out) == 1


async def test_without_a_worker_keeping_points_the_read_goes_to_the_shared_queue(
    env: WorkflowEnvironment,
) -> None:
    """Readiness kept nothing (a worker of before the change, or no points listed): the read is
    scheduled on the shared queue at once, with no wait for anyone."""
    shared, _ = queues()
    world = KeepingWorld(kept_on=None)
    async with plan_on(env, world, shared, None) as handle:
        await until_awaiting_approval(env, handle)
        history = await handle.fetch_history()
        await approved_to_the_end(env, handle)
    assert world.points_read_on == [shared]
    assert not any(e.HasField("activity_task_timed_out_event_attributes") for e in history.events)


async def test_a_read_that_fails_on_the_keeping_worker_is_not_read_again_elsewhere(
    env: WorkflowEnvironment,
) -> None:
    """Only a read nobody picked up moves to the shared queue: ASR's refusal on the keeping
    worker stops the plan with that refusal, nothing failed over."""
    shared, own = queues()
    world = KeepingWorld(kept_on=own, failing_points_read=True)
    async with plan_on(env, world, shared, own) as handle:
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 60)
    assert "ASR refused the read" in str(failed.value.cause)
    assert world.points_read_on == [own]
    assert not [e for e in world.events if e[0].startswith("fail")]
