"""`failback status` when no worker answers the status query, against the dev server (the
time-skipping server does not list a task queue's pollers): it says whether no worker polls or
the workers are too busy, and for the latter the phase Temporal's server holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from starter import commands
from tests.workflows.test_plan_workflow import plan_input
from worker.search_attributes import register_search_attributes
from workflows import search_attributes
from workflows.plan import PlanFailbackWorkflow


async def connected(dev_server: WorkflowEnvironment) -> Client:
    client = await Client.connect(
        dev_server.client.service_client.config.target_host,
        namespace=dev_server.client.namespace,
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(client)
    return client


async def test_a_busy_worker_is_told_apart_from_none_and_the_servers_phase_shown(
    dev_server: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await connected(dev_server)
    queue = f"tq-{uuid.uuid4()}"
    # A worker with the workflow but no activities: the failback waits in its first phase.
    async with Worker(client, task_queue=queue, workflows=[PlanFailbackWorkflow]):
        handle = await client.start_workflow(
            PlanFailbackWorkflow.run, plan_input(), id=f"fb-{uuid.uuid4()}", task_queue=queue
        )
        for _ in range(100):
            described = await handle.describe()
            if described.typed_search_attributes.get(search_attributes.PHASE):
                break
            await asyncio.sleep(0.1)
        monkeypatch.setattr(commands, "QUERY_TIMEOUT", timedelta(milliseconds=1))
        with pytest.raises(commands.CommandError) as busy:
            await commands.read_failback(client, handle.id)
    said = str(busy.value)
    assert "1 worker(s) poll task queue" in said and "short of CPU" in said
    assert "as Temporal's server holds it: starting" in said

    orphan = await client.start_workflow(
        PlanFailbackWorkflow.run,
        plan_input(),
        id=f"fb-{uuid.uuid4()}",
        task_queue=f"tq-{uuid.uuid4()}",
    )
    monkeypatch.setattr(commands, "QUERY_TIMEOUT", timedelta(seconds=1))
    with pytest.raises(commands.CommandError) as none:
        await commands.read_failback(client, orphan.id)
    assert "no worker polls task queue" in str(none.value)
    assert "start one with `failback worker`" in str(none.value)
    await orphan.terminate("test over")
    await handle.terminate("test over")
