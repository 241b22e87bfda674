"""Reads that say they are alive while they run, so that a killed worker is noticed in seconds.

A read is one or a few blocking SDK calls with no natural point to heartbeat in between. Without
a heartbeat, Temporal only learns that the worker running it died when the start-to-close
timeout runs out (minutes, sized for a slow read at scale). `@kept_alive` marks such an activity;
the worker's `KeepAliveInterceptor` heartbeats for it from the event loop while it runs, so the
workflow can give it a short heartbeat timeout.

Only reads are marked: their heartbeats carry no details. The write activities heartbeat their
job's name themselves, and a detail-less heartbeat would overwrite it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")
_MARK = "__failback_kept_alive__"
# Heartbeats per heartbeat timeout: the SDK throttles them to 80% of the timeout anyway.
BEATS_PER_TIMEOUT = 4


def beat_interval() -> float | None:
    """How far apart the running activity beats: a quarter of its heartbeat timeout (None:
    it has none)."""
    timeout = activity.info().heartbeat_timeout
    return timeout.total_seconds() / BEATS_PER_TIMEOUT if timeout else None


async def beating(work: Awaitable[_T], details: Sequence[Any]) -> _T:
    """Await `work` in a write activity, beating `details` (the job's name, once there is one)
    meanwhile: a write's blocking steps (finding its job again, reading the item, each read
    waiting its turn in ARM's read budget) can outlast its heartbeat timeout, and a retry must
    still find the job its attempt's beats named."""
    task = asyncio.ensure_future(work)
    interval = beat_interval()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat(*details)
    finally:
        task.cancel()


def kept_alive(function: _F) -> _F:
    """Mark a read activity for the worker's keep-alive heartbeats (put it under @activity.defn)."""
    setattr(function, _MARK, True)
    return function


def is_kept_alive(function: Callable[..., Any]) -> bool:
    # A bound method reads its function's attributes.
    return bool(getattr(function, _MARK, False))


class KeepAliveInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _KeepAliveInbound(next)


class _KeepAliveInbound(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        # The outbound heartbeat is the event loop's own; activity.heartbeat() of a threaded
        # activity waits for the event loop, so called from the loop it would block it.
        self._outbound = outbound
        super().init(outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        interval = beat_interval()
        if interval is None or not is_kept_alive(input.fn):
            return await super().execute_activity(input)
        beats = asyncio.create_task(self._beat(interval))
        try:
            return await super().execute_activity(input)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats

    async def _beat(self, interval: float) -> None:
        # The first beat only after an interval: most reads end within milliseconds, and a beat
        # at their start would be one more server write per read (thousands at plan scale)
        # while the heartbeat timeout counts from the start anyway.
        while True:
            await asyncio.sleep(interval)
            self._outbound.heartbeat()
