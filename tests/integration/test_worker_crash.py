"""kill -9 the worker while ASR fails the machine over; a new worker finishes the failback, and
ASR received exactly one unplannedFailover, one failoverCommit and one successful reProtect."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from lab.manager import LabState, read_state, restart_worker
from starter.commands import approve, failback_input, start_failback
from tests.integration.conftest import THIRD_VM, journal, lab_settings, posts, until_verified
from worker.wiring import connect_temporal

pytestmark = pytest.mark.integration


async def test_worker_killed_during_failover(lab: LabState) -> None:
    settings = lab_settings(lab)
    client = await connect_temporal(settings)
    item = f"{THIRD_VM}-item"
    handle = await start_failback(client, settings, failback_input(settings, None, THIRD_VM))

    for _ in range(200):
        if posts(journal(lab), "unplannedFailover", item):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the failover was never sent")
    state = read_state(Path(lab.lab_dir))
    assert state is not None
    worker = next(p for p in state.processes if p.name == "worker")
    os.killpg(worker.pid, signal.SIGKILL)

    replacement = restart_worker(Path(lab.lab_dir))
    assert replacement.pid != worker.pid

    await until_verified(client, handle.id, tries=400)
    await approve(client, handle.id, "carol", "after the crash")
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.outcome == "completed"

    failover = next(op for op in result.status.operations if op.operation == "unplannedFailover")
    assert failover.resumed, "the retried attempt should have found the job, not sent one"
    entries = journal(lab)
    assert len(posts(entries, "unplannedFailover", item)) == 1
    assert len(posts(entries, "failoverCommit", item)) == 1
    accepted = [e for e in posts(entries, "reProtect", item) if e["status"] == 202]
    assert len(accepted) == 1
