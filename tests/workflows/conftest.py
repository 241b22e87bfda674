"""The one Temporal environment of the workflow tests: the time-skipping test server, the
product's data converter and search attributes. Each test runs its worker on a task queue of its
own (`task_queue`), so tests sharing the server never take each other's tasks.

(tests/workflows/test_codec.py starts its own server, with the encrypting converter under test;
test_liveness.py and test_budget_watch.py the dev server (`dev_server`): a real clock for the
heartbeat timeouts, and the task queue's pollers.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from worker.search_attributes import register_search_attributes


async def _time_skipping(test_server_path: str) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_path
    )
    await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="module")
async def env(test_server_path: str) -> AsyncIterator[WorkflowEnvironment]:
    async for environment in _time_skipping(test_server_path):
        yield environment


@pytest.fixture
async def env_of_its_own(test_server_path: str) -> AsyncIterator[WorkflowEnvironment]:
    """A server of its own for a test that leaves the server waiting on something no worker
    will finish: a query of a workflow no worker runs, or an activity cancelled while it still
    ran. After either, the time-skipping server stopped skipping time for the rest of the module
    (a 10 s `env.sleep` of a later test took 10 s of real time; after a cancelled plan, the
    hundred-machine test took 151 s instead of 3 s)."""
    async for environment in _time_skipping(test_server_path):
        yield environment


@pytest.fixture
async def dev_server(temporal_cli_path: str) -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's dev server, for a test that needs a real clock or the server's full API."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path, ui=False
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
