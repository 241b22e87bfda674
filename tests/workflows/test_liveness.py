"""Reads marked @kept_alive heartbeat while they run, so the workflows can give them a short
heartbeat timeout: a read that outlasts it still completes, while an activity that stops
heartbeating (what a killed worker looks like to the server) times out on the heartbeat, not
after its start-to-close timeout. Against the real Temporal dev server, in real time."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.liveness import KeepAliveInterceptor, is_kept_alive, kept_alive

SLOW_READ_SECONDS = 3.0
HEARTBEAT_TIMEOUT = timedelta(seconds=1)


@activity.defn(name="slow_read_kept_alive")
@kept_alive
def slow_read_kept_alive(name: str) -> str:
    time.sleep(SLOW_READ_SECONDS)
    return f"read {name}"


@activity.defn(name="slow_read_silent")
def slow_read_silent(name: str) -> str:
    time.sleep(SLOW_READ_SECONDS)
    return f"read {name}"


@workflow.defn
class OneReadWorkflow:
    @workflow.run
    async def run(self, activity_name: str) -> str:
        return str(
            await workflow.execute_activity(
                activity_name,
                "web-01",
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        )


def test_the_mark_is_seen_through_a_bound_method() -> None:
    from activities.asr import AsrActivities
    from activities.compute import ComputeActivities
    from activities.vsphere import VCenterReads, VSphereActivities

    asr = AsrActivities(reads=None, writes=None)  # type: ignore[arg-type]
    compute = ComputeActivities(compute=None)  # type: ignore[arg-type]
    assert is_kept_alive(compute.read_azure_vm) and is_kept_alive(asr.discover_recovery_plan)
    assert is_kept_alive(VSphereActivities(VCenterReads(lambda: None)).read_onprem_vm)
    # The writes heartbeat their job's name themselves; a detail-less beat would erase it.
    assert not is_kept_alive(asr.fail_over) and not is_kept_alive(asr.commit_failover)


@pytest.fixture
def env(dev_server: WorkflowEnvironment) -> WorkflowEnvironment:
    return dev_server


async def test_a_kept_alive_read_outlasts_its_heartbeat_timeout(env: WorkflowEnvironment) -> None:
    queue = f"tq-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[OneReadWorkflow],
            activities=[slow_read_kept_alive, slow_read_silent],
            activity_executor=executor,
            interceptors=[KeepAliveInterceptor()],
        ):
            result = await env.client.execute_workflow(
                OneReadWorkflow.run,
                "slow_read_kept_alive",
                id=f"kept-alive-{uuid.uuid4()}",
                task_queue=queue,
            )
            assert result == "read web-01"

            with pytest.raises(WorkflowFailureError) as failure:
                await env.client.execute_workflow(
                    OneReadWorkflow.run,
                    "slow_read_silent",
                    id=f"silent-{uuid.uuid4()}",
                    task_queue=queue,
                )
    cause = failure.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, TimeoutError)
    assert cause.cause.type == TimeoutType.HEARTBEAT
