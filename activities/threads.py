"""Blocking SDK calls of async activities, run on the worker's activity threads."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")
_In = TypeVar("_In")


async def in_activity_threads(
    executor: Executor | None, function: Callable[..., _T], *args: Any
) -> _T:
    """`function(*args)` on `executor` (the loop's default when None), with the activity's
    context (info, heartbeat details, logger) travelling with the call."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, context.run, function, *args)


def map_in_threads(function: Callable[[_In], _T], inputs: Sequence[_In], at_once: int) -> list[_T]:
    """`function` of each input on up to `at_once` threads of its own, in the inputs' order, each
    call with a copy of the caller's context: the activity's info and the reads' lane in ARM's
    budget (activities/arm_reads.py) go with them."""
    if len(inputs) <= 1:
        return [function(i) for i in inputs]
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=min(at_once, len(inputs))) as pool:
        return list(pool.map(lambda i: context.copy().run(function, i), inputs))
