"""Every ARM read of the worker through its read budget (activities/budget.ReadBudget), as a
policy of the Azure SDK's pipeline: each attempt (a retry is one more request to ARM) takes a
token first, waiting for it on the SDK call's own thread.

Which lane a read takes comes from where it is made: `urgent_reads()` marks the reads that decide
what happens next (a job's end, a verification); everything else is background. Who goes first
when reads wait for tokens: ReadTurns.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy
from temporalio import activity

from activities.budget import ReadBudget

_URGENT = contextvars.ContextVar("arm_read_urgent", default=False)
_PROMISE: contextvars.ContextVar[PromisedReads | None] = contextvars.ContextVar(
    "arm_reads_promised", default=None
)

# Workflows whose first read this worker remembers, oldest forgotten first: 10,000 machines and
# their plans fit many times over, at some 200 bytes each.
REMEMBERED_WORKFLOWS = 100_000


@contextlib.contextmanager
def urgent_reads() -> Iterator[None]:
    """The reads made inside take the urgent lane (the context travels to the SDK's thread with
    activities/threads.in_activity_threads)."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


@dataclasses.dataclass(eq=False)
class PromisedReads:
    """The ARM reads one activity said it will make, less those it made."""

    remaining: int
    done: bool = False


@contextlib.contextmanager
def promised_reads(count: int) -> Iterator[PromisedReads]:
    """The reads made inside count against `count` reads announced to the worker's read budget
    (ReadPromises, with the first of them): a worker deciding whether it can take another plan's
    readiness then counts what this one has yet to read."""
    promise = PromisedReads(max(0, count))
    token = _PROMISE.set(promise)
    try:
        yield promise
    finally:
        promise.done = True
        _PROMISE.reset(token)


class ReadTurns:
    """The order in which reads waiting for ARM's tokens get them: each lane of the budget
    (urgent, background) has its own line, the oldest work's reads first in it (by when this
    worker first read for their workflow), then first come.

    Why the oldest work first: when 10 plans start at once their readiness needs 1,100 reads and
    ARM refills 25 a second. Served in arrival order the plans share the bucket, all finish their
    readiness after some 40 s and fail over in the same second, and the verifications after their
    jobs all land in one CPU-bound burst (bench/RESULTS.md, 2026-12-04 night: the tail after the
    jobs end). Served plan by plan, the first plans fail over seconds after the start, the last
    no later than before, and their jobs end apart. A waiting read holds no token: one that
    arrives later and ranks higher goes before it. An urgent read takes a background token only
    while no background read waits, so a stream of job polls cannot starve the background."""

    def __init__(self, budget: ReadBudget, clock: Callable[[], float] = time.monotonic) -> None:
        self._budget = budget
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: dict[bool, list[tuple[float, int, threading.Condition]]] = {
            True: [],
            False: [],
        }
        self._arrivals = itertools.count()

    def waiting(self) -> int:
        """Reads waiting for their turn or their token."""
        with self._lock:
            return sum(len(line) for line in self._lines.values())

    def background_available(self) -> float:
        """The tokens a background read could take now (0 while one waits for them)."""
        with self._lock:
            if self._lines[False]:
                return 0.0
            return self._budget.background_available(self._clock())

    def take(self, urgent: bool, rank: float) -> float:
        """Wait for this read's turn and its token; return the seconds waited."""
        line = self._lines[urgent]
        with self._lock:
            turn = threading.Condition(self._lock)
            entry = (rank, next(self._arrivals), turn)
            heapq.heappush(line, entry)
            if not urgent and len(line) == 1:
                self._wake_head(True)  # its head may no longer take background tokens
            started = self._clock()
            try:
                while True:
                    now = self._clock()
                    if line[0] is not entry:
                        turn.wait()
                        continue
                    wait = self._budget.take_or_wait(now, urgent, not self._lines[not urgent])
                    if wait == 0:
                        return now - started
                    turn.wait(wait)
            finally:
                line.remove(entry)
                heapq.heapify(line)
                # The next in line may read now, or learn how long to wait; an urgent head may
                # take background tokens again once no background read waits.
                self._wake_head(urgent)
                if not line:
                    self._wake_head(not urgent)

    def _wake_head(self, urgent: bool) -> None:
        line = self._lines[urgent]
        if line:
            line[0][2].notify()


class WorkRanks:
    """When this worker first read for each workflow: a read's rank in ReadTurns."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first_read: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, workflow_id: str | None) -> float:
        now = self._clock()
        if workflow_id is None:
            return now
        with self._lock:
            first = self._first_read.setdefault(workflow_id, now)
            if len(self._first_read) > REMEMBERED_WORKFLOWS:
                self._first_read.popitem(last=False)
            return first


class ReadPromises:
    """The reads this worker's activities promised (`promised_reads`) and have yet to make, and
    how long until its read budget holds the tokens of one more promise beside them.

    Why: a plan's readiness lists every machine's recovery points, some 100 reads, before its
    failover. Where a plan's readiness ran was where its workflow task ran, and ten plans on
    four workers now and then put four plans' readiness (some 440 reads) on one principal while
    another's bucket stayed full: that plan's failover waited seconds for one worker's refill
    (bench/RESULTS.md, 2026-12-06, afternoon, later). A worker takes a plan's readiness
    (activities/readiness_intake.py) only when its budget can pay for it beside what it owes."""

    def __init__(self, turns: ReadTurns, budget: ReadBudget) -> None:
        self._turns = turns
        self._most = budget.background_most
        self._refill_per_second = budget.background_refill_per_second
        self._lock = threading.Lock()
        self._live: list[PromisedReads] = []

    def spend(self, promise: PromisedReads) -> None:
        """One read of `promise` taken its token."""
        with self._lock:
            if not promise.done and not any(p is promise for p in self._live):
                self._live.append(promise)
            promise.remaining = max(0, promise.remaining - 1)

    def reading(self) -> tuple[int, int]:
        """How many promises are being read, and how many reads they have yet to make."""
        with self._lock:
            self._live = [p for p in self._live if not p.done]
            return len(self._live), sum(p.remaining for p in self._live)

    def seconds_until_room(self, reads: int, taken: int = 0) -> float:
        """0 when the budget holds tokens for `reads` more reads beyond the reads promised and
        not made, and beyond `reads` for each of the `taken` promises (slots taken for them) not
        yet reading; else how long until it may at least, at the background lane's refill. A
        budget smaller than `reads` pays for them when it is (nearly) full."""
        needed = max(1.0, min(float(reads), self._most - 1))
        reading, owed = self.reading()
        not_yet_reading = max(0, taken - reading)
        free = self._turns.background_available() - owed - reads * not_yet_reading
        # Within a rounding error: a wait computed to the instant must not be waited again.
        if free >= needed - 1e-9:
            return 0.0
        return (needed - free) / self._refill_per_second


def reading_workflow() -> str | None:
    """The workflow the read is made for, when it is made inside one of its activities."""
    return activity.info().workflow_id if activity.in_activity() else None


class ArmReadBudgetPolicy(HTTPPolicy):
    """Waits for a read token before each GET the SDK sends; writes pass (their budget is kept
    where they are sent, with a heartbeat: activities/asr/operations.py).

    ARM counts a read when it arrives, the worker when it sends it: every read on its way is one
    ARM has yet to count, and when they arrive together ARM's bucket sees them as one burst. The
    worker's bucket is kept `in_flight` tokens below ARM's (worker/wiring.read_budget), and no
    more than `in_flight` reads are on their way at once, so that ARM's bucket never holds fewer
    tokens than the worker's. Without the cap, at 10,000 machines on two saturated cores the
    lab's ARM counted reads in bunches and refused 123 of 20,087."""

    def __init__(self, budget: ReadBudget, in_flight: int) -> None:
        super().__init__()
        if in_flight < 1:
            raise ValueError(f"at least one read must be allowed on its way, not {in_flight}")
        self._on_the_way = threading.BoundedSemaphore(in_flight)
        self._turns = ReadTurns(budget)
        self._ranks = WorkRanks()
        self.promises = ReadPromises(self._turns, budget)
        self._lock = threading.Lock()
        # What the budget cost, for the bench: reads sent, and seconds waited for tokens.
        self.reads = 0
        self.waited_seconds = 0.0

    def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        if request.http_request.method != "GET":
            return self.next.send(request)
        # A place on the way first: a token taken while waiting for one would be spent late.
        started = time.monotonic()
        with self._on_the_way:
            queued = time.monotonic() - started
            waited = self._turns.take(_URGENT.get(), self._ranks.of(reading_workflow()))
            promise = _PROMISE.get()
            if promise is not None:
                self.promises.spend(promise)
            with self._lock:
                self.reads += 1
                self.waited_seconds += queued + waited
            return self.next.send(request)
