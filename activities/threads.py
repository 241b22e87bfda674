"""Blocking SDK calls of async activities, run on the worker's activity threads."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

_T = TypeVar("_T")


async def in_activity_threads(
    executor: Executor | None, function: Callable[..., _T], *args: Any
) -> _T:
    """`function(*args)` on `executor` (the loop's default when None), with the activity's
    context (info, heartbeat details, logger) travelling with the call."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, context.run, function, *args)
