"""The worker's sandbox refuses the clock and randomness inside a workflow."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.nondeterministic import TriesNonDeterminism
from worker.wiring import workflow_runner


@pytest.fixture(scope="module")
async def env(test_server_path: str) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_path
    )
    yield environment
    await environment.shutdown()


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
