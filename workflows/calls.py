"""How the workflows call activities: one preset per kind of call, and what went wrong in words.

- `read`: a read of ASR, vCenter or Azure, short, retried a few times, heartbeating while it runs
  (activities/liveness.py), so a worker killed in the middle of one is noticed in seconds.
- `write`: an ASR write, awaited for as long as ASR's job may take; retried until it succeeds or
  fails for good, each attempt resuming the job the last one sent (activities/asr/operations.py);
  its heartbeat a few job polls long.
- `long_wait`: an activity that waits for ASR by itself (the initial replication), heartbeating at
  each of its polls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from domain import errors
    from domain.models import Timings

READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=errors.NON_RETRYABLE,
)
WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=2),
    non_retryable_error_types=errors.NON_RETRYABLE,
)
READ_TIMEOUT = timedelta(minutes=2)
# A plan's recovery points: every member's list, each up to 500 points.
POINTS_TIMEOUT = timedelta(minutes=10)
# Reads heartbeat while they run (activities/liveness.py): a worker killed in the middle of one
# is noticed after this, not after READ_TIMEOUT.
READ_HEARTBEAT_TIMEOUT = timedelta(seconds=20)


def readiness_task_queue(task_queue: str) -> str:
    """The task queue of a plan's readiness read, beside the workflows' `task_queue`: every
    worker polls it, each only while its ARM read budget can pay for a plan's reads
    (activities/readiness_intake.py)."""
    return f"{task_queue}.readiness"


async def read(
    activity_method: Any,
    arg: object,
    timeout: timedelta = READ_TIMEOUT,
    summary: str | None = None,
    task_queue: str | None = None,
) -> Any:
    return await workflow.execute_activity_method(
        activity_method,
        arg,
        task_queue=task_queue,
        start_to_close_timeout=timeout,
        heartbeat_timeout=READ_HEARTBEAT_TIMEOUT,
        retry_policy=READ_RETRY,
        summary=summary,
    )


# How long a read offered to one worker's own task queue waits for that worker before it is
# read on the shared queue: the order of a read's heartbeat timeout, after which a worker that
# died in the middle of a read is noticed too.
KEPT_PICKUP_TIMEOUT = timedelta(seconds=20)


async def read_where_kept(
    activity_method: Any, arg: object, kept_on: str | None, timeout: timedelta = READ_TIMEOUT
) -> Any:
    """A read whose answer an earlier activity kept on one worker (activities/handover.py): on
    that worker's own task queue, so it takes what is kept instead of asking ARM again; on the
    shared queue, as `read`, when nothing was kept or that worker does not pick it up in time
    (gone, or busy: the read is the same either way, only its cost differs)."""
    if kept_on is not None:
        try:
            return await workflow.execute_activity_method(
                activity_method,
                arg,
                task_queue=kept_on,
                schedule_to_start_timeout=KEPT_PICKUP_TIMEOUT,
                start_to_close_timeout=timeout,
                heartbeat_timeout=READ_HEARTBEAT_TIMEOUT,
                retry_policy=READ_RETRY,
            )
        except ActivityError as err:
            if not _not_picked_up(err):
                raise
    return await read(activity_method, arg, timeout)


def _not_picked_up(err: ActivityError) -> bool:
    timeout = err.cause
    return isinstance(timeout, ActivityTimeout) and timeout.type == TimeoutType.SCHEDULE_TO_START


async def write(
    activity_method: Any, arg: object, timings: Timings, summary: str | None = None
) -> Any:
    # Long enough for one poll of the job plus slack; short enough that a dead worker's attempt
    # is retried (and resumes the same job) within seconds in the lab.
    heartbeat = max(10.0, 4 * timings.job_poll_interval_seconds)
    return await workflow.execute_activity_method(
        activity_method,
        arg,
        start_to_close_timeout=timedelta(seconds=timings.operation_timeout_seconds),
        heartbeat_timeout=timedelta(seconds=heartbeat),
        retry_policy=WRITE_RETRY,
        summary=summary,
    )


async def long_wait(
    activity_method: Any, arg: object, wait_seconds: float, poll_seconds: float
) -> Any:
    return await workflow.execute_activity_method(
        activity_method,
        arg,
        start_to_close_timeout=timedelta(seconds=wait_seconds + 600),
        heartbeat_timeout=timedelta(seconds=max(30.0, 4 * poll_seconds)),
        retry_policy=READ_RETRY,
    )


def cause(err: ActivityError | ChildWorkflowError) -> str:
    """The innermost message: what went wrong, not that an activity failed."""
    inner: BaseException | None = err.cause
    while isinstance(inner, FailureError) and inner.cause is not None:
        if isinstance(inner, ApplicationError):
            break
        inner = inner.cause
    return str(inner or err)


def failures(failed: Mapping[str, str]) -> str:
    """Which machines failed and why, in one line."""
    return ", ".join(f"{name}: {why}" for name, why in sorted(failed.items()))
