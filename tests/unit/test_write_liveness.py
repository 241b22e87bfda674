"""A write stays alive while it looks for its job (activities/asr/operations.py, `_finding`):
its reads wait in ARM's read budget, and at 1,000 machines that wait outlasted the heartbeat
timeout until writes beat meanwhile (bench/RESULTS.md, 2026-12-04 evening)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.asr.operations import AsrWrites, Write
from domain.models import FailoverInput, ProtectedItemRef, VaultRef
from domain.operations import AsrOperation

PARAMS = FailoverInput(
    vault=VaultRef(resource_group="rg", vault="v"),
    item=ProtectedItemRef(fabric="f", container="c", name="web-01-item"),
    vm_name="web-01",
    not_before=datetime(2026, 12, 5, tzinfo=UTC),
    recovery_point_type="LatestTime",
    poll_interval_seconds=0.01,
)


class ReadQueued(Exception):
    """Where the test stops the write: after its slow read, before anything is sent."""


class SlowItemReads:
    """An item read that waits 0.6 s for its turn in the read budget, then fails."""

    def __init__(self) -> None:
        self.sent = 0

    def get_item(self, vault: VaultRef, item: ProtectedItemRef) -> Any:
        time.sleep(0.6)
        raise ReadQueued

    def send(self, *args: Any, **kwargs: Any) -> None:
        self.sent += 1


def environment(beats: list[tuple[Any, ...]], **info: Any) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.4), **info)
    env.on_heartbeat = lambda *details: beats.append(details)
    return env


async def test_a_write_beats_while_its_item_read_waits() -> None:
    beats: list[tuple[Any, ...]] = []
    gateway = SlowItemReads()
    writes = AsrWrites(gateway)  # type: ignore[arg-type]
    write = Write(AsrOperation.UNPLANNED_FAILOVER, gateway.send)
    with pytest.raises(ReadQueued):
        await environment(beats).run(writes.run, write, PARAMS)
    # A beat every quarter of the timeout (0.1 s) through the 0.6 s read; none names a job,
    # since no attempt had one; and nothing was sent.
    assert len(beats) >= 3, beats
    assert all(details == () for details in beats)
    assert gateway.sent == 0


async def test_the_beats_while_looking_keep_the_job_the_attempt_before_named() -> None:
    beats: list[tuple[Any, ...]] = []
    writes = AsrWrites(SlowItemReads())  # type: ignore[arg-type]

    def looking() -> str:
        time.sleep(0.5)
        return "found"

    env = environment(beats, heartbeat_details=["job-7"], attempt=2)
    assert await env.run(writes._finding, looking) == "found"
    assert beats and all(details == ("job-7",) for details in beats), beats
