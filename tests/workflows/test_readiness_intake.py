"""A plan's readiness read is taken by a worker whose ARM read budget can pay for it
(activities/readiness_intake.py): on the time-skipping server, two workers poll the readiness
queue as `failback worker` does (worker/wiring.readiness_worker), one with its read bucket spent,
one with it full; the plans run with the plan world's fakes (tests/workflows/test_plan_workflow.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.arm_reads import ReadPromises, ReadTurns
from activities.budget import ReadBudget
from domain import errors
from tests.workflows.test_plan_workflow import FakePlanWorld, plan_input, until_awaiting_approval
from worker.wiring import readiness_worker
from workflows.calls import readiness_task_queue
from workflows.machine import MachineFailbackWorkflow
from workflows.plan import PlanFailbackWorkflow


def plans_worker(env: WorkflowEnvironment, queue: str, activities: list[Any]) -> Worker:
    """The workflows' worker; it polls no readiness queue."""
    return Worker(
        env.client,
        task_queue=queue,
        workflows=[PlanFailbackWorkflow, MachineFailbackWorkflow],
        activities=activities,
        max_concurrent_workflow_tasks=50,
    )


async def own_client(env: WorkflowEnvironment) -> Client:
    return await Client.connect(
        env.client.service_client.config.target_host, namespace=env.client.namespace
    )


def promises_of(budget: ReadBudget) -> ReadPromises:
    return ReadPromises(ReadTurns(budget), budget)


def spent(budget: ReadBudget, at: float | None = None) -> ReadBudget:
    """`budget` with every token a background read could take taken (`at`: its clock's now)."""
    now = time.monotonic() if at is None else at
    while budget.take_or_wait(now, urgent=False) == 0:
        pass
    return budget


async def readiness_read_by(handle: WorkflowHandle, queue: str) -> str:
    """The identity of the worker that ran the plan's readiness read, which the history shows
    scheduled on the readiness queue."""
    scheduled: dict[int, str] = {}
    async for event in handle.fetch_history_events():
        attributes = event.activity_task_scheduled_event_attributes
        if (
            event.HasField("activity_task_scheduled_event_attributes")
            and attributes.activity_type.name == "read_asr_facts"
        ):
            assert attributes.task_queue.name == readiness_task_queue(queue)
            scheduled[event.event_id] = attributes.task_queue.name
        if event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                return started.identity
    raise AssertionError(f"{handle.id}: no readiness read started")


@pytest.mark.parametrize("spent_first", [True, False])
async def test_a_plans_readiness_is_read_by_the_worker_whose_budget_can_pay_for_it(
    env: WorkflowEnvironment, spent_first: bool
) -> None:
    """Either worker starting first: the server may prefer one poller over the other."""
    # A machine readiness blocks (R8): each plan stops after its readiness, nothing started.
    world = FakePlanWorld(windows_2008="app-01")
    queue = f"tq-{uuid.uuid4()}"
    # A refill too slow to matter within the test: the spent budget stays spent.
    spent_promises = promises_of(spent(ReadBudget(capacity=250, refill_per_second=0.001)))
    full_promises = promises_of(ReadBudget(capacity=250, refill_per_second=0.001))
    activities = world.activities()
    # A connection each, as each worker process has its own.
    pollers = [
        readiness_worker(await own_client(env), queue, activities, spent_promises, "spent"),
        readiness_worker(await own_client(env), queue, activities, full_promises, "full"),
    ]
    first, second = pollers if spent_first else reversed(pollers)
    async with (
        plans_worker(env, queue, activities),
        first,
        second,
    ):
        # Six plans at once (they stop after their readiness, so their machines never meet):
        # either worker could take each but for the budgets.
        handles = [
            await env.client.start_workflow(
                PlanFailbackWorkflow.run, plan_input(), id=f"plan-{uuid.uuid4()}", task_queue=queue
            )
            for _ in range(6)
        ]
        for handle in handles:
            with pytest.raises(WorkflowFailureError) as failure:
                await asyncio.wait_for(handle.result(), 60)
            cause = failure.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == errors.NOT_READY
        readers = [await readiness_read_by(handle, queue) for handle in handles]
    assert readers == ["full"] * 6
    assert world.events == []


async def test_with_no_worker_able_to_pay_the_readiness_waits_until_tokens_come_back(
    env: WorkflowEnvironment,
) -> None:
    """The only worker's bucket spent: nobody takes the plan's readiness and the plan stays
    checking; once its bucket has refilled (its clock moved on), it is taken and the plan goes
    on to await approval."""
    world = FakePlanWorld()
    queue = f"tq-{uuid.uuid4()}"
    clock = [1000.0]
    budget = spent(ReadBudget(capacity=250, refill_per_second=25), at=clock[0])
    promises = ReadPromises(ReadTurns(budget, clock=lambda: clock[0]), budget)
    activities = world.activities()
    async with (
        plans_worker(env, queue, activities),
        readiness_worker(env.client, queue, activities, promises, "refilling"),
    ):
        handle = await env.client.start_workflow(
            PlanFailbackWorkflow.run, plan_input(), id=f"plan-{uuid.uuid4()}", task_queue=queue
        )
        for _ in range(20):
            await asyncio.sleep(0.1)
            assert (await handle.query(PlanFailbackWorkflow.status)).phase == "checking-readiness"
        clock[0] += 250 / 25  # the whole bucket refilled
        await until_awaiting_approval(env, handle)
        reader = await readiness_read_by(handle, queue)
        await handle.terminate("test over")
    assert reader == "refilling"
