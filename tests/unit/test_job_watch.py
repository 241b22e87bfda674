"""The job watch: one list of a vault's running jobs per round, one GET per job when it ends."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from activities.job_watch import JobWatch, running_jobs_filter
from lab.asr_sim.job_filter import parse_job_filter

SINCE = dt.datetime(2026, 11, 29, 21, 0, tzinfo=dt.UTC)
POLL = 0.05  # the watch's shortest round


def _job(name: str, state: str) -> dict[str, Any]:
    return {"name": name, "properties": {"state": state, "startTime": "2026-11-29T21:00:01Z"}}


class FakeVault:
    """Jobs that run for a number of poll intervals; counts the reads the watch makes."""

    def __init__(self, rounds: dict[str, int], end: str = "Succeeded") -> None:
        self.rounds_left = dict(rounds)
        now = time.monotonic()
        self.ends = {name: now + (n + 0.5) * POLL for name, n in rounds.items()}
        self.end = end
        self.lists: list[tuple[Any, dt.datetime]] = []
        self.gets: list[str] = []
        self.list_error: Exception | None = None
        self.list_errors_left = 0
        self.get_error: Exception | None = None
        self.listed_states: dict[str, str] = {}

    def _state(self, name: str) -> str:
        return "InProgress" if time.monotonic() < self.ends[name] else self.end

    async def list_running(self, vault: Any, since: dt.datetime) -> dict[str, dict[str, Any]]:
        self.lists.append((vault, since))
        if self.list_error is not None and self.list_errors_left != 0:
            self.list_errors_left -= 1
            raise self.list_error
        running = {}
        for name in self.rounds_left:
            if name in self.listed_states:
                running[name] = _job(name, self.listed_states[name])
            elif self._state(name) == "InProgress":
                running[name] = _job(name, "InProgress")
        return running

    async def get(self, vault: Any, name: str) -> dict[str, Any]:
        self.gets.append(name)
        if self.get_error is not None:
            raise self.get_error
        return _job(name, self._state(name))


def _refused(status: int) -> HttpResponseError:
    err = HttpResponseError(message=f"status {status}")
    err.status_code = status
    return err


async def _wait_all(watch: JobWatch, names: list[str], beats: list[str] | None = None) -> list[Any]:
    def beat(name: str) -> Any:
        return lambda _latest: beats.append(name) if beats is not None else None

    return await asyncio.gather(
        *(
            watch.wait("vault-1", name, since=SINCE, poll_interval=POLL, heartbeat=beat(name))
            for name in names
        )
    )


async def test_many_jobs_cost_one_list_per_round_and_one_get_each_at_their_end() -> None:
    vault = FakeVault({f"job-{i}": 5 + i % 3 for i in range(50)})
    watch = JobWatch(vault.list_running, vault.get)
    documents = await _wait_all(watch, list(vault.rounds_left))
    assert [d["properties"]["state"] for d in documents] == ["Succeeded"] * 50
    # 50 jobs of 5-7 rounds: polled one by one that is ~300 GETs; here ~8 lists and 50 GETs.
    assert sorted(vault.gets) == sorted(vault.rounds_left)
    assert len(vault.lists) <= 12
    assert {since for _, since in vault.lists} == {SINCE}


async def test_an_ignored_filter_is_noticed_and_the_watch_polls_job_by_job() -> None:
    # A list showing a finished job is not the running-jobs query's answer: that job is taken
    # as listed (no GET), and the vault is no longer listed (it may be its whole job history).
    vault = FakeVault({"job-1": 3, "job-2": 10})
    vault.listed_states["job-1"] = "Failed"
    watch = JobWatch(vault.list_running, vault.get)
    first, second = await _wait_all(watch, ["job-1", "job-2"])
    assert first["properties"]["state"] == "Failed" and "job-1" not in vault.gets
    assert second["properties"]["state"] == "Succeeded" and "job-2" in vault.gets
    assert len(vault.lists) == 1


async def test_a_refused_query_falls_back_to_one_get_per_job_for_good() -> None:
    vault = FakeVault({"job-1": 20, "job-2": 10})
    vault.list_error, vault.list_errors_left = _refused(400), -1
    watch = JobWatch(vault.list_running, vault.get)
    await _wait_all(watch, ["job-1", "job-2"])
    assert len(vault.lists) == 1
    # Without the list, each job is read every round until it ends.
    assert vault.gets.count("job-1") >= 2 and vault.gets[-1] in ("job-1", "job-2")


async def test_a_failed_list_is_replaced_by_gets_for_that_round_only() -> None:
    vault = FakeVault({"job-1": 20})
    vault.list_error, vault.list_errors_left = ServiceResponseError("connection reset"), 1
    watch = JobWatch(vault.list_running, vault.get)
    await _wait_all(watch, ["job-1"])
    assert len(vault.lists) >= 3
    # The failed round read the job itself; the end needed one more GET.
    assert vault.gets == ["job-1", "job-1"]


async def test_throttled_list_is_tried_again_next_round() -> None:
    vault = FakeVault({"job-1": 4})
    vault.list_error, vault.list_errors_left = _refused(429), 2
    watch = JobWatch(vault.list_running, vault.get)
    await _wait_all(watch, ["job-1"])
    assert len(vault.lists) >= 3


async def test_a_get_error_reaches_the_waiting_activity() -> None:
    vault = FakeVault({"job-1": 1})
    vault.get_error = _refused(404)
    watch = JobWatch(vault.list_running, vault.get)
    with pytest.raises(HttpResponseError):
        await _wait_all(watch, ["job-1"])


async def test_a_waiter_heartbeats_every_round_and_leaves_when_cancelled() -> None:
    vault = FakeVault({"job-1": 100_000})
    watch = JobWatch(vault.list_running, vault.get)
    beats: list[str] = []
    task = asyncio.ensure_future(_wait_all(watch, ["job-1"], beats))
    await asyncio.sleep(POLL * 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(beats) >= 5
    await asyncio.sleep(POLL * 5)
    rounds = len(vault.lists)
    await asyncio.sleep(POLL * 10)
    # Nobody waits any more: the vault is no longer listed.
    assert len(vault.lists) == rounds


async def test_vaults_are_watched_apart() -> None:
    vault = FakeVault({"job-1": 2, "job-2": 2})
    watch = JobWatch(vault.list_running, vault.get)
    await asyncio.gather(
        watch.wait(
            "vault-a", "job-1", since=SINCE, poll_interval=POLL, heartbeat=lambda _latest: None
        ),
        watch.wait(
            "vault-b", "job-2", since=SINCE, poll_interval=POLL, heartbeat=lambda _latest: None
        ),
    )
    assert {v for v, _ in vault.lists} == {"vault-a", "vault-b"}


def test_the_query_is_powershells_form_and_the_lab_reads_it_back() -> None:
    since = dt.datetime(2026, 11, 29, 22, 30, 5, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    text = running_jobs_filter(since)
    assert text == "StartTime eq '2026-11-29T21:30:05.2500000Z' and JobStatus eq 'InProgress'"
    query = parse_job_filter(text)
    assert query.started_from == since
    assert query.matches(since, "InProgress") and not query.matches(since, "Succeeded")
    assert not query.matches(since - dt.timedelta(seconds=1), "InProgress")


def test_the_lab_reads_the_list_form_and_refuses_what_it_does_not_know() -> None:
    query = parse_job_filter(
        "StartTime eq '2026-11-29T21:00:00.0000000Z' and EndTime eq '2026-11-29T22:00:00Z' "
        "and ( JobStatus eq 'Succeeded' or JobStatus eq 'Failed' )"
    )
    at = dt.datetime(2026, 11, 29, 21, 30, tzinfo=dt.UTC)
    assert query.matches(at, "Failed") and not query.matches(at, "InProgress")
    assert not query.matches(at + dt.timedelta(hours=1), "Failed")
    with pytest.raises(ValueError, match="'FabricId' is not supported by the lab"):
        parse_job_filter("FabricId eq 'x'")
    with pytest.raises(ValueError, match="not a job query"):
        parse_job_filter("StartTime gt '2026-11-29'")
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_job_filter("StartTime eq 'yesterday'")


async def test_beats_can_be_sparser_than_polls_without_noticing_the_end_later() -> None:
    vault = FakeVault({"job-1": 12})
    watch = JobWatch(vault.list_running, vault.get)
    beats: list[float] = []
    started = time.monotonic()
    document = await watch.wait(
        "vault-1",
        "job-1",
        since=SINCE,
        poll_interval=POLL,
        heartbeat=lambda _latest: beats.append(time.monotonic()),
        heartbeat_every=POLL * 5,
    )
    waited = time.monotonic() - started
    assert document["properties"]["state"] == "Succeeded"
    # One beat at once, then one per five polls: 3 over ~12.5 polls, not 13.
    assert 2 <= len(beats) <= 4, beats
    # The end (12.5 polls in) is still seen at the next poll, not at the next beat (15).
    assert waited < POLL * 14.5, waited


class JobsThatPause(FakeVault):
    """J-STATE: each job goes through the given states, one per round, and stays in the last."""

    def __init__(self, states: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__({name: 0 for name in states})
        self.states = {name: list(steps) for name, steps in states.items()}

    def _step(self, name: str) -> tuple[str, str]:
        steps = self.states[name]
        return steps.pop(0) if len(steps) > 1 else steps[0]

    async def list_running(self, vault: Any, since: dt.datetime) -> dict[str, dict[str, Any]]:
        self.lists.append((vault, since))
        return {}  # none InProgress: every job is read by its own GET

    async def get(self, vault: Any, name: str) -> dict[str, Any]:
        self.gets.append(name)
        state, description = self._step(name)
        document = _job(name, state)
        document["properties"]["stateDescription"] = description
        return document


async def test_suspended_and_other_are_not_ends_and_the_beat_says_suspended() -> None:
    vault = JobsThatPause(
        {
            "job-1": [("Suspended", "Suspended")] * 4 + [("Succeeded", "Completed")],
            "job-2": [("Other", "")] * 3 + [("Failed", "Failed")],
        }
    )
    watch = JobWatch(vault.list_running, vault.get)
    seen: list[str] = []

    def beat(latest: dict[str, Any] | None) -> None:
        if latest is not None:
            seen.append(latest["properties"]["state"])

    ended = await asyncio.gather(
        *(
            watch.wait("v", name, since=SINCE, poll_interval=POLL, heartbeat=beat)
            for name in ("job-1", "job-2")
        )
    )
    assert [d["properties"]["state"] for d in ended] == ["Succeeded", "Failed"]
    assert "Suspended" in seen and "Other" in seen
    # Read every round while paused: a Suspended job is not in the running list.
    assert vault.gets.count("job-1") == 5


async def test_partially_succeeded_is_an_end() -> None:
    vault = JobsThatPause({"job-1": [("Succeeded", "PartiallySucceeded")]})
    watch = JobWatch(vault.list_running, vault.get)
    document = await watch.wait("v", "job-1", since=SINCE, poll_interval=POLL, heartbeat=print)
    assert document["properties"]["stateDescription"] == "PartiallySucceeded"
