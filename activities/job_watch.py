"""One look at a vault's running jobs per poll interval answers for every job the worker awaits.

A wave of failovers is hundreds of ASR jobs of minutes each. Polled one GET per job per interval,
1,000 machines cost ~150 GETs a second in the bench (about half of the worker's CPU, and far
beyond ARM's read budget at production scale). The watch lists the vault's jobs in progress
once per interval instead (`$filter` on start time and state, as Azure PowerShell's
Get-AzRecoveryServicesAsrJob sends it) and GETs a job only when it is no longer in that list,
that is, once, when it has ended.

Correctness never rests on the filter: a job absent from the list is read by its own GET, a
listed job in a final state is taken as it is, and a list that fails is replaced by one GET per
job for that round. If ASR refuses the filter (a 4xx) or answers with jobs that are not in
progress (it ignored the filter), the watch polls job by job for the rest of its life.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError

from domain.jobs import JobFact, has_ended

# Jobs read one by one at a time, per vault, when many end in the same round.
GET_PARALLELISM = 16

log = logging.getLogger(__name__)

JobDocument = dict[str, Any]
# (vault key, started since) -> {job name: document} of the jobs the list shows in progress.
ListRunning = Callable[[Any, datetime], Awaitable[dict[str, JobDocument]]]
GetJob = Callable[[Any, str], Awaitable[JobDocument]]


def job_state(document: JobDocument) -> str:
    return str((document.get("properties") or {}).get("state") or "")


def job_document_fact(document: JobDocument) -> JobFact:
    """The fields of a job's JSON that J-STATE and J-OWN read (domain/jobs.py)."""
    props = document.get("properties") or {}
    return JobFact(
        name=str(document.get("name") or ""),
        scenario_name=str(props.get("scenarioName") or ""),
        state=str(props.get("state") or ""),
        state_description=str(props.get("stateDescription") or ""),
        target_object_id=str(props.get("targetObjectId") or ""),
        target_object_name=str(props.get("targetObjectName") or ""),
    )


def _ended(document: JobDocument) -> bool:
    return has_ended(job_document_fact(document))


def running_jobs_filter(since: datetime) -> str:
    """ASR's job query: started at or after `since` and still in progress.

    The form is Azure PowerShell's (`Utilities.ToQueryString` over a JobQueryParameter: each set
    property as `Name eq 'value'`, joined by `and`; times as .NET's round-trip "o" format)."""
    moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return f"StartTime eq '{moment}' and JobStatus eq 'InProgress'"


@dataclass
class _Waiter:
    job_name: str
    since: datetime
    poll_interval: float
    done: asyncio.Future[JobDocument]
    # The job as last read while it had not ended (a Suspended job is read every round).
    latest: JobDocument | None = None


@dataclass
class _VaultWatch:
    vault: Any
    waiters: list[_Waiter] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    list_refused: bool = False


class JobWatch:
    """Awaits ASR jobs by name, many at once, with one list of a vault's running jobs per round.

    `list_running` and `get_job` are the two reads (coroutines; the caller runs the SDK's
    blocking calls off the event loop). `vault_key` names a vault for grouping."""

    def __init__(
        self,
        list_running: ListRunning,
        get_job: GetJob,
        vault_key: Callable[[Any], Any] = lambda vault: vault,
    ) -> None:
        self._list_running = list_running
        self._get_job = get_job
        self._vault_key = vault_key
        self._vaults: dict[Any, _VaultWatch] = {}

    async def wait(
        self,
        vault: Any,
        job_name: str,
        *,
        since: datetime,
        poll_interval: float,
        heartbeat: Callable[[JobDocument | None], None],
        heartbeat_every: float | None = None,
        stop_when: Callable[[JobDocument], bool] | None = None,
    ) -> JobDocument:
        """The job's document once it has ended (J-STATE: Suspended and Other have not).
        `since`: no later than the job's start on ASR's clock. `heartbeat` is called at once and
        then every `heartbeat_every` seconds (default: the poll interval) with the job as last
        read, if it was read before its end; the end is noticed at the next poll whatever it
        is. `stop_when`: return the job as read before its end once it says so (a job ASR
        suspends for the operator, when the workflow is the operator)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(job_name, since, max(poll_interval, 0.05), loop.create_future())
        key = self._vault_key(vault)
        watch = self._vaults.setdefault(key, _VaultWatch(vault))
        watch.waiters.append(waiter)
        if watch.task is None:
            watch.task = asyncio.create_task(self._watch(key, watch))
        beat_interval = max(heartbeat_every or waiter.poll_interval, 0.05)
        try:
            while True:
                heartbeat(waiter.latest)
                if stop_when and waiter.latest is not None and stop_when(waiter.latest):
                    return waiter.latest
                done, _ = await asyncio.wait({waiter.done}, timeout=beat_interval)
                if done:
                    return waiter.done.result()
        finally:
            if waiter in watch.waiters:
                watch.waiters.remove(waiter)
            waiter.done.cancel()

    async def _watch(self, key: Any, watch: _VaultWatch) -> None:
        try:
            while watch.waiters:
                await asyncio.sleep(min(w.poll_interval for w in watch.waiters))
                if watch.waiters:
                    await self._round(watch)
        finally:
            # Ended with no waiter left (or cancelled with the worker): the next wait starts anew.
            watch.task = None
            if not watch.waiters:
                self._vaults.pop(key, None)

    async def _round(self, watch: _VaultWatch) -> None:
        waiters = [w for w in watch.waiters if not w.done.done()]
        if not waiters:  # all settled last round, their activities not yet resumed
            return
        listed: dict[str, JobDocument] | None = None
        if not watch.list_refused:
            try:
                listed = await self._list_running(watch.vault, min(w.since for w in waiters))
            except HttpResponseError as err:
                status = err.status_code or 0
                if 400 <= status < 500 and status != 429:
                    watch.list_refused = True
                    log.warning(
                        "ASR refused the running-jobs query (%s): jobs are polled one by one",
                        status,
                    )
                else:
                    log.info("running-jobs query failed (%s): polling jobs one by one", status)
            except Exception as err:  # a lost answer: this round reads job by job
                log.info("running-jobs query failed (%s): polling jobs one by one", err)
        if listed is not None and _ignores_query(listed.values()):
            # An unfiltered answer is the vault's whole job history, pages of it every round.
            watch.list_refused = True
            log.warning("ASR ignored the running-jobs query: jobs are polled one by one")
        by_name: dict[str, list[_Waiter]] = {}
        for waiter in waiters:
            by_name.setdefault(waiter.job_name, []).append(waiter)
        to_read: list[str] = []
        for name, named in by_name.items():
            document = None if listed is None else listed.get(name)
            if document is None:
                to_read.append(name)
            elif _ended(document):
                _settle(named, document)
            else:
                _note(named, document)
        gate = asyncio.Semaphore(GET_PARALLELISM)

        async def read(name: str) -> None:
            async with gate:
                try:
                    document = await self._get_job(watch.vault, name)
                except Exception as err:
                    _fail(by_name[name], err)
                    return
            if _ended(document):
                _settle(by_name[name], document)
            else:
                _note(by_name[name], document)

        await asyncio.gather(*(read(name) for name in to_read))


def _ignores_query(documents: Iterable[JobDocument]) -> bool:
    return any(_ended(d) for d in documents)


def _note(waiters: list[_Waiter], document: JobDocument) -> None:
    for waiter in waiters:
        waiter.latest = document


def _settle(waiters: list[_Waiter], document: JobDocument) -> None:
    for waiter in waiters:
        if not waiter.done.done():
            waiter.done.set_result(document)


def _fail(waiters: list[_Waiter], err: Exception) -> None:
    for waiter in waiters:
        if not waiter.done.done():
            waiter.done.set_exception(err)
