"""Tells, in the worker's log, when the workers on its task queue claim more of a principal's
ARM budgets than there is (domain/budget_shares.py): `--scale worker=N` with the share left at 1."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue, TaskQueueVersionSelection
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from domain.budget_shares import OverdrawWatch, budget_identity, overdrawn_budgets
from worker.settings import Settings

logger = logging.getLogger(__name__)

# A worker polls for activities at least once a minute (the server answers an empty long poll
# after ~60 s, and a poller's last access is when its poll began); one not seen for longer has
# stopped. Temporal keeps listing it for a while yet,
# so a finding is told only after it has held for longer than that (OverdrawWatch).
POLLER_SEEN_WITHIN = timedelta(seconds=150)
CHECK_EVERY = timedelta(seconds=60)


def arm_principal(settings: Settings) -> str:
    """The principal ARM counts this worker's requests against, as far as the worker can name
    it: the lab's stand-in, else AZURE_CLIENT_ID (a service principal, workload identity or
    user-assigned managed identity); workers with neither are taken to share one."""
    return settings.azure_lab_client_id or os.environ.get("AZURE_CLIENT_ID") or "default"


def worker_identity(settings: Settings) -> str:
    """The SDK's own identity (pid@host) with this worker's principal and budget share."""
    return budget_identity(
        f"{os.getpid()}@{socket.gethostname()}", arm_principal(settings), settings.arm_budget_share
    )


async def polling_identities(
    client: Client,
    task_queue: str,
    now: datetime,
    kind: TaskQueueType.ValueType = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
) -> list[str]:
    """The identities of the workers polling the task queue for `kind` of task (activities, where
    ARM is called, unless told otherwise), seen within POLLER_SEEN_WITHIN. Asked of every
    partition of the task queue (the enhanced mode): the root partition alone lists only the
    pollers that reached it."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
            versions=TaskQueueVersionSelection(unversioned=True),
            task_queue_types=[kind],
            report_pollers=True,
        )
    )
    return [
        poller.identity
        for version in response.versions_info.values()
        for pollers in version.types_info.values()
        for poller in pollers.pollers
        if now - poller.last_access_time.ToDatetime(tzinfo=UTC) <= POLLER_SEEN_WITHIN
    ]


async def watch_budget_shares(
    client: Client,
    task_queue: str,
    every: timedelta = CHECK_EVERY,
    settle: timedelta = POLLER_SEEN_WITHIN,
) -> None:
    """Checks `every` so often until cancelled, and tells a finding that has held for `settle`;
    an unanswered check is skipped, never fatal."""
    watch = OverdrawWatch(settle_seconds=settle.total_seconds())
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            identities = await polling_identities(client, task_queue, datetime.now(UTC))
        except RPCError as err:
            logger.info("could not list the workers on %s for ARM's budgets: %s", task_queue, err)
            continue
        for overdrawn in watch.to_tell(overdrawn_budgets(identities), loop.time()):
            logger.warning("ARM budgets overdrawn on %s: %s", task_queue, overdrawn.advice())
