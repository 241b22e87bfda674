"""Every ARM read of the worker through its read budget (activities/budget.ReadBudget), as a
policy of the Azure SDK's pipeline: each attempt (a retry is one more request to ARM) takes a
token first, waiting for it on the SDK call's own thread.

Which lane a read takes comes from where it is made: `urgent_reads()` marks the reads that decide
what happens next (a job's end, a verification); everything else is background.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy

from activities.budget import ReadBudget

_URGENT = contextvars.ContextVar("arm_read_urgent", default=False)


@contextlib.contextmanager
def urgent_reads() -> Iterator[None]:
    """The reads made inside take the urgent lane (the context travels to the SDK's thread with
    activities/threads.in_activity_threads)."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class ArmReadBudgetPolicy(HTTPPolicy):
    """Waits for a read token before each GET the SDK sends; writes pass (their budget is kept
    where they are sent, with a heartbeat: activities/asr/operations.py)."""

    def __init__(self, budget: ReadBudget) -> None:
        super().__init__()
        self._budget = budget
        self._lock = threading.Lock()
        # What the budget cost, for the bench: reads sent, and seconds waited for tokens.
        self.reads = 0
        self.waited_seconds = 0.0

    def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        if request.http_request.method == "GET":
            with self._lock:
                delay = self._budget.reserve(time.monotonic(), _URGENT.get())
                self.reads += 1
                self.waited_seconds += delay
            if delay > 0:
                time.sleep(delay)
        return self.next.send(request)
