"""The bench keeps what it measured up to the approval, and reads a plan's result again when a
saturated machine times out the client's long poll (bench/run.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from bench import run as bench_run

START = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _job(scenario: str, start: float, end: float | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "scenarioName": scenario,
        "startTime": (START + timedelta(seconds=start)).isoformat(),
    }
    if end is not None:
        props["endTime"] = (START + timedelta(seconds=end)).isoformat()
    return {"name": f"{scenario}-{start}", "properties": props}


def test_the_checkpoint_measures_against_the_longest_finished_failover_job() -> None:
    state = {
        "jobs": [
            _job("PlannedFailover", 10, 210),
            _job("PlannedFailover", 30, 250),  # the longest: 220 s
            _job("CommitFailover", 0, 500),  # not a failover
            _job("PlannedFailover", 40, None),  # still running: no span yet
        ],
        "throttled": {"read": 0, "write": 0},
    }
    journal = [
        {
            "method": "GET",
            "path": "/x",
            "status": 200,
            "time": START.isoformat(),
            "principal": "p",
        }
    ]
    t_start = START.timestamp()
    figures = bench_run.at_the_approval(
        10, journal, state, t_start=t_start, t_all_awaiting_seen=t_start + 264.0
    )
    assert figures["failover_jobs"]["count"] == 2
    assert figures["failover_jobs"]["longest"] == 220.0
    assert figures["failover_jobs"]["last_end_after_start"] == 250.0
    assert figures["overhead_ratio_against_longest_job"] == 1.2
    assert figures["journal_until_approval"]["reads"] == 1
    assert figures["arm_refused"]["by_kind"] == {"read": 0, "write": 0}


class _Handle:
    def __init__(self, failures: list[RPCError], answer: str) -> None:
        self.failures = failures
        self.answer = answer
        self.asked = 0

    async def result(self) -> str:
        self.asked += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.answer


class _Client:
    def __init__(self, handle: _Handle) -> None:
        self.handle = handle

    def get_workflow_handle_for(self, _run: Any, _workflow_id: str) -> _Handle:
        return self.handle


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instantly(_seconds: float) -> None:
        return None

    monkeypatch.setattr(bench_run.asyncio, "sleep", instantly)


def test_a_timed_out_result_read_is_asked_again(no_sleep: None) -> None:
    timeout = RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")
    handle = _Handle([timeout, timeout], "done")
    answer = asyncio.run(bench_run.result_despite_timeouts(_Client(handle), "plan"))
    assert answer == "done"
    assert handle.asked == 3


def test_a_plan_that_does_not_exist_is_not_asked_again(no_sleep: None) -> None:
    missing = RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
    handle = _Handle([missing], "never")
    with pytest.raises(RPCError):
        asyncio.run(bench_run.result_despite_timeouts(_Client(handle), "plan"))
    assert handle.asked == 1


def test_the_result_read_gives_up_after_its_attempts(no_sleep: None) -> None:
    timeout = RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")
    handle = _Handle([timeout] * bench_run.RESULT_READ_ATTEMPTS, "never")
    with pytest.raises(RPCError):
        asyncio.run(bench_run.result_despite_timeouts(_Client(handle), "plan"))
    assert handle.asked == bench_run.RESULT_READ_ATTEMPTS


def test_the_figures_at_the_approval_outlive_a_failure_after_it(tmp_path: Any) -> None:
    out = str(tmp_path / "run.json")
    report: dict[str, Any] = {"orchestrated": [], "failed": []}
    bench_run.checkpoint(report, {"size": 10000, "start_to_awaiting_approval_seen": 600.2}, out)
    # What main_async does when the size fails after the approval.
    report["failed"].append({"size": 10000, "error": "RPCError: Timeout expired"})
    bench_run.save(report, out)
    saved = json.loads(Path(out).read_text())
    assert saved["at_the_approval"] == [{"size": 10000, "start_to_awaiting_approval_seen": 600.2}]
    assert saved["failed"][0]["size"] == 10000
