"""Who polls a task queue, as Temporal's server lists it: the workers' identities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue, TaskQueueVersionSelection
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

# A worker polls at least once a minute (the server answers an empty long poll after ~60 s, and
# a poller's last access is when its poll began): one not seen for longer has stopped, though
# Temporal keeps listing it for a while yet.
POLLER_SEEN_WITHIN = timedelta(seconds=150)


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
