"""Which worker reads a plan's readiness: the one whose ARM read budget can pay for it now.

A plan's readiness read (AsrActivities.read_asr_facts) is scheduled on a task queue of its own
(workflows/calls.readiness_task_queue), which every worker polls through ReadinessIntake: it asks
for a task only when its read budget holds a plan's reads beside what its readiness reads already
in progress have yet to read (activities/arm_reads.ReadPromises). A worker short of tokens then
leaves the next plan to one that has them, instead of making it wait for its own refill.
"""

from __future__ import annotations

import asyncio
import threading

from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)

from activities.arm_reads import ReadPromises

# The reads a plan's readiness is taken for before it says how many it makes: ASR's 100 items a
# recovery plan, each a recovery-point list, and the plan's own few (fabric, vCenters, items,
# policy). A smaller plan costs less; it waits no longer than for its own reads' tokens, since a
# worker asks for it as soon as its bucket holds this many.
READS_OF_A_PLAN = 105

# How often a worker short of tokens looks again, at most: its refill is the common case, but a
# readiness read that ends early returns its unspent promise at once.
RECHECK_SECONDS = 0.25


class ReadinessIntake(CustomSlotSupplier):
    """A slot for a plan's readiness read while the worker's read budget can pay for it; at most
    `most_at_once` at a time however full the bucket (one a task waits for, the rest reading)."""

    def __init__(self, promises: ReadPromises, most_at_once: int) -> None:
        if most_at_once < 1:
            raise ValueError(f"a worker takes at least one readiness read, not {most_at_once}")
        self._promises = promises
        self._most_at_once = most_at_once
        self._lock = threading.Lock()
        self._taken = 0

    @property
    def taken(self) -> int:
        """Slots reserved and not yet released: polling for a task or running one."""
        with self._lock:
            return self._taken

    def try_take(self) -> float:
        """Take a slot and return 0 when another plan's readiness may be read now; else take
        none and return how long until it may."""
        with self._lock:
            if self._taken >= self._most_at_once:
                return RECHECK_SECONDS
            # A slot whose activity has made no read yet (or awaits its task) owes a plan's reads.
            wait = self._promises.seconds_until_room(READS_OF_A_PLAN, self._taken)
            if wait == 0:
                self._taken += 1
            return wait

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        while (wait := self.try_take()) > 0:
            await asyncio.sleep(min(wait, RECHECK_SECONDS))
        return SlotPermit()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        # Only eager tasks ask here, and this queue gets none: its activities are scheduled by
        # workflows of another task queue.
        return None

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        pass

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        with self._lock:
            self._taken -= 1
