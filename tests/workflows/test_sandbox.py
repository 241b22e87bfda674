"""The worker's sandbox refuses the clock and randomness inside a workflow."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.nondeterministic import TriesNonDeterminism
from worker.wiring import workflow_runner


async def test_the_production_runner_still_refuses_the_clock_and_random(
    env: WorkflowEnvironment,
) -> None:
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[TriesNonDeterminism],
        workflow_runner=workflow_runner(),
    ):
        refused = await env.client.execute_workflow(
            TriesNonDeterminism.run, id=f"sandbox-{uuid.uuid4()}", task_queue=queue
        )
    assert refused == ["clock", "random"]
