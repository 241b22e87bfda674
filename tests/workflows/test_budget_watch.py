"""Issue 18, point 4, against Temporal's dev server: workers scaled out on one principal with
the budget share left at 1 (`docker compose up --scale worker=N`) are told so in their log, and
workers that split the budget are not."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from worker.budget_watch import watch_budget_shares, worker_identity
from worker.settings import Settings
from worker.task_queue import polling_identities


@activity.defn
def nothing() -> None:
    """An activity, so that the workers poll the task queue for activities."""


@pytest.fixture
def env(dev_server: WorkflowEnvironment) -> WorkflowEnvironment:
    return dev_server


@contextlib.asynccontextmanager
async def workers(
    env: WorkflowEnvironment, queue: str, shares: list[float], principal: str = "sp-ops"
) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for index, share in enumerate(shares):
            settings = Settings(azure_lab_client_id=principal, arm_budget_share=share)
            # The workers share this test's pid: an index in each one's pid@host tells them apart.
            identity = worker_identity(settings).replace("@", f"-{index}@", 1)
            # A connection each, as each worker process has its own.
            client = await Client.connect(
                env.client.service_client.config.target_host, namespace=env.client.namespace
            )
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    activities=[nothing],
                    activity_executor=stack.enter_context(ThreadPoolExecutor(2)),
                    identity=identity,
                )
            )
        yield


async def until_listed(env: WorkflowEnvironment, queue: str, count: int) -> list[str]:
    for _ in range(100):
        listed = await polling_identities(env.client, queue, datetime.now(UTC))
        if len(listed) >= count:
            return listed
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} workers never listed on {queue}: {listed}")


async def watched(env: WorkflowEnvironment, queue: str) -> None:
    watch = asyncio.create_task(
        watch_budget_shares(
            env.client, queue, every=timedelta(seconds=0.2), settle=timedelta(seconds=0.5)
        )
    )
    await asyncio.sleep(2.0)
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch


async def test_scaled_workers_at_a_whole_share_each_are_told_the_share_to_set(
    env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    queue = f"tq-{uuid.uuid4()}"
    async with workers(env, queue, [1.0, 1.0, 1.0]):
        listed = await until_listed(env, queue, 3)
        assert all("arm-budget=sp-ops:1.000000" in identity for identity in listed)
        with caplog.at_level(logging.WARNING, logger="worker.budget_watch"):
            await watched(env, queue)
    (told,) = [r.getMessage() for r in caplog.records if r.name == "worker.budget_watch"]
    assert "3 workers sign in to Azure as principal sp-ops" in told
    assert "FAILBACK_ARM_BUDGET_SHARE=0.333333" in told


async def test_workers_that_split_the_budget_are_told_nothing(
    env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    queue = f"tq-{uuid.uuid4()}"
    async with workers(env, queue, [1 / 3, 1 / 3, 1 / 3]):
        await until_listed(env, queue, 3)
        with caplog.at_level(logging.WARNING, logger="worker.budget_watch"):
            await watched(env, queue)
    assert [r for r in caplog.records if r.name == "worker.budget_watch"] == []
