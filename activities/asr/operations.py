"""The writes: find or send an operation's job, then await it, never sending it twice.

Before sending, a write looks for its own job: in the heartbeat of an earlier attempt, then (on a
retry) in the vault's job list (J-OWN, domain/jobs.py), then in the item's state (the item's
architecture says when the operation is already done, and which allowedOperations let it be
sent). A retry after a crash or a lost answer therefore never sends a second unplannedFailover,
failoverCommit or reProtect. This runs inside an activity (heartbeats, ApplicationError).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.polling import LROPoller
from azure.mgmt.recoveryservicessiterecovery import models as asr_models
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.arm_reads import urgent_reads
from activities.asr import translate as t
from activities.asr.gateway import AsrGateway
from activities.budget import TokenBucket
from activities.job_watch import JobDocument, JobWatch, job_document_fact, running_jobs_filter
from activities.liveness import beat_interval, beating
from activities.threads import in_activity_threads
from domain import errors
from domain.architectures import OperationRule, architecture_named
from domain.jobs import JobFact, JobOutcome, find_own_job, job_outcome
from domain.models import (
    FailoverInput,
    ItemOperationInput,
    OperationResult,
    PlanFailoverInput,
    ResumeJobInput,
    VaultRef,
)
from domain.operations import AsrOperation

# How many polls a failed planned failover waits for ASR's own CancelFailover job to appear.
AUTO_CANCEL_LOOKS = 6
AUTO_CANCEL_SCENARIOS = frozenset({"CancelFailover"})
# Jobs that started this long before the attempt are still ours: ASR's clock and ours may differ.
CLOCK_SKEW = timedelta(minutes=5)
# ARM's write bucket per subscription and principal (Azure Resource Manager throttling docs).
ARM_WRITE_BURST = 200
ARM_WRITES_PER_SECOND = 10.0
WRITE_BUDGET_HEARTBEAT_SECONDS = 2.0

_T = TypeVar("_T")


@dataclass(frozen=True)
class Write:
    """One write on one item: which operation, and how to send it (an SDK begin_* method and
    its body, if it takes one)."""

    operation: AsrOperation
    send: Callable[..., LROPoller[Any]]
    body: tuple[Any, ...] = ()
    # A re-protect to Azure is refused while the mobility agent has not registered.
    agent_may_be_missing: bool = False


@dataclass(frozen=True)
class _Sending:
    """What sending one write needs of its target, a protected item or a recovery plan: how to
    send it, how to find its job after a lost answer or a refusal, how to word a refusal."""

    label: str
    send: Callable[..., Any]
    find_own_job: Callable[[], JobFact | None]
    started_meanwhile: Callable[[], str | None]
    refused: Callable[[HttpResponseError], Exception]
    poll_interval_seconds: float


def plan_failover_words(params: PlanFailoverInput, scenario: str) -> set[str]:
    """The words a plan's allowedOperations may offer its failover in: the plan's own (recorded:
    a Hyper-V plan says PlannedFailover and Commit where its items say Failback and
    FinalizeFailback), or its items' (a plan reading before its failback was not recorded)."""
    architecture = architecture_named(params.architecture)
    return {scenario, *architecture.operation(architecture.failover).allowed_operations}


class AsrWrites:
    def __init__(
        self,
        gateway: AsrGateway,
        executor: Executor | None = None,
        write_budget: TokenBucket | None = None,
    ) -> None:
        """`executor` runs the blocking SDK calls (the worker's activity pool); None: the event
        loop's default executor. `write_budget`: the writes' share of ARM's limits."""
        self.gateway = gateway
        self._executor = executor
        self._write_budget = write_budget or TokenBucket(
            capacity=ARM_WRITE_BURST, refill_per_second=ARM_WRITES_PER_SECOND
        )
        # One look at a vault's running jobs per poll answers for every job awaited
        # (activities/job_watch.py says why and what it falls back to).
        self._jobs = JobWatch(
            self._read_running_jobs,
            self._read_job,
            vault_key=lambda vault: (vault.resource_group, vault.vault),
        )
        # Suspended jobs already logged once (their heartbeats keep saying it).
        self._suspended_told: set[str] = set()

    async def run(self, write: Write, params: ItemOperationInput) -> OperationResult:
        """Find or send the operation's job on a thread (short blocking calls), then await the
        job here on the event loop: a job of minutes holds no thread, so a wave of hundreds of
        failovers is not queued behind a thread pool."""
        found = await self._finding(self._find_job, write, params)
        if isinstance(found, OperationResult):
            return found
        started, rule = found
        if started is None:
            assert rule is not None  # the item was read to decide that nothing is to resume
            await self._within_write_budget(f"{write.operation} of {params.item.name}")
            started = await self._blocking(
                self._send, write, rule, params, self._heartbeat_from_threads()
            )
        job_name, resumed = started
        return await self._await_job(write, params, job_name, resumed)

    async def fail_over_plan(
        self,
        params: PlanFailoverInput,
        send: Callable[..., LROPoller[Any]],
        body: Any,
        scenario: str,
    ) -> OperationResult:
        """FO-PLAN: the failover of a whole recovery plan, found or sent once, then awaited,
        with an item's guarantees: the plan is the target (its jobs name it, its
        allowedOperations say whether it may fail over, its currentScenario names its job)."""
        label = f"failover of recovery plan {params.recovery_plan}"
        found = await self._finding(self._find_plan_job, params, scenario)
        if found is None:
            await self._within_write_budget(label)
            sending = _Sending(
                label=label,
                send=lambda **options: self.gateway.send_plan(
                    send,
                    params.vault,
                    params.recovery_plan,
                    body,
                    **options,
                ),
                find_own_job=lambda: self._find_plan_own_job(params, scenario),
                started_meanwhile=lambda: self._plan_job_since(params, scenario),
                refused=lambda err: self._refused_as(label, err),
                poll_interval_seconds=params.poll_interval_seconds,
            )
            found = await self._blocking(self._send_once, sending, self._heartbeat_from_threads())
        job_name, resumed = found
        document = await self._await_document(
            params.vault,
            job_name,
            params.not_before,
            params.poll_interval_seconds,
            lambda latest: self._beat(label, job_name, latest),
        )
        # The plan's failover is its architecture's (classic: unplanned; the others: planned).
        operation = architecture_named(params.architecture).failover
        if (
            operation == AsrOperation.PLANNED_FAILOVER
            and job_outcome(job_document_fact(document)) != JobOutcome.SUCCEEDED
        ):
            label += await self._after_failed_planned_failover(params, params.vm_names)
        return _ended_job(operation, label, job_name, document, resumed)

    def _find_plan_job(self, params: PlanFailoverInput, scenario: str) -> tuple[str, bool] | None:
        """The plan's failover job an earlier attempt started, or None when it is to be sent;
        refused (not retried) when the plan does not allow a failover now."""
        previous = activity.info().heartbeat_details
        if previous:
            return str(previous[0]), True
        job_name = self._plan_job_since(params, scenario)
        if job_name is not None:
            activity.logger.info(
                "failover of plan %s: job %s was already sent; not sending again",
                params.recovery_plan,
                job_name,
            )
            return job_name, True
        plan = self.gateway.get_plan(params.vault, params.recovery_plan)
        allowed = {t.text(op) for op in plan.properties.allowed_operations or []}
        if not plan_failover_words(params, scenario) & allowed:
            raise ApplicationError(
                f"{scenario} is not allowed on recovery plan {params.recovery_plan} now: "
                f"it allows only {', '.join(sorted(allowed)) or 'nothing'}",
                type=errors.OPERATION_NOT_ALLOWED,
                non_retryable=True,
            )
        return None

    def _plan_job_since(self, params: PlanFailoverInput, scenario: str) -> str | None:
        """The plan's failover job started since this failback asked for it: the plan's
        currentScenario (which names its last job, ended or not: recorded), else J-OWN over the
        vault's jobs, whose target is the plan's name."""
        plan = self.gateway.get_plan(params.vault, params.recovery_plan)
        current = plan.properties.current_scenario
        since = params.not_before - CLOCK_SKEW
        if (
            current is not None
            and current.scenario_name == scenario
            and current.start_time is not None
            and current.start_time >= since
        ):
            name = t.job_name(current.job_id)
            if name:
                return name
        job = self._find_plan_own_job(params, scenario)
        return job.name if job is not None else None

    def _find_plan_own_job(self, params: PlanFailoverInput, scenario: str) -> JobFact | None:
        return find_own_job(
            (t.job_fact(job) for job in self.gateway.list_jobs(params.vault)),
            scenarios=frozenset({scenario}),
            vm_name=params.recovery_plan,
            item_name=params.recovery_plan,
            since=params.not_before - CLOCK_SKEW,
        )

    async def _within_write_budget(self, label: str) -> None:
        """Wait for a token of the worker's ARM write budget; heartbeat (with no job name) while
        waiting, so a long queue after a plan's approval does not look like a dead activity."""
        delay = self._write_budget.reserve(time.monotonic())
        if delay <= 0:
            return
        activity.logger.info("%s: waiting %.1f s for ARM's write budget", label, delay)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            activity.heartbeat()
            await asyncio.sleep(min(left, WRITE_BUDGET_HEARTBEAT_SECONDS))

    async def _blocking(self, function: Callable[..., _T], *args: Any) -> _T:
        return await in_activity_threads(self._executor, function, *args)

    async def _finding(self, function: Callable[..., _T], *args: Any) -> _T:
        """Look for the operation's job (on a thread, its reads queued in ARM's read budget)
        while beating what the attempt before beat: a retry after this one, should it die
        here too, still finds the job that attempt named. After a plan's approval, 1,000
        commits each read their item first; those reads could wait longer than the heartbeat
        timeout, and the attempts timed out again and again (bench/RESULTS.md)."""
        return await beating(
            self._blocking(function, *args), list(activity.info().heartbeat_details)
        )

    @staticmethod
    def _heartbeat_from_threads() -> Callable[[str], None]:
        """activity.heartbeat of an async activity must run on the event loop."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()

        def heartbeat(detail: str) -> None:
            loop.call_soon_threadsafe(activity.heartbeat, detail, context=context)

        return heartbeat

    def _find_job(
        self, write: Write, params: ItemOperationInput
    ) -> tuple[tuple[str, bool] | None, OperationRule | None] | OperationResult:
        """The job to await and whether an earlier attempt had sent it (None when it is to be
        sent, with the item's rule for this operation); or the result when the item shows the
        operation already done."""
        info = activity.info()
        previous = info.heartbeat_details
        if previous:
            job_name = str(previous[0])
            activity.logger.info(
                "%s: resuming job %s from the last attempt", write.operation, job_name
            )
            return (job_name, True), None
        item = self.gateway.get_item(params.vault, params.item)
        rule = t.architecture_of_item(item, params.item.name).operation(write.operation)

        # Only a retry can have sent the job unseen (a crash or a lost answer before the first
        # heartbeat); the first attempt skips the vault's job list, which grows with every
        # operation of the run.
        if info.attempt > 1:
            job = self._find_own_job(rule, params)
            if job is not None:
                activity.logger.info(
                    "%s: job %s was already sent; not sending again", write.operation, job.name
                )
                return (job.name, True), rule

        if rule.already_done(t.item_view(item)):
            return OperationResult(
                operation=write.operation,
                job_id=None,
                state="AlreadyDone",
                started_at=None,
                ended_at=None,
                resumed=True,
            )
        in_flight = item.properties.current_scenario
        if in_flight is not None and in_flight.scenario_name in rule.job_scenarios:
            name = t.job_name(in_flight.job_id)
            if name:
                return (name, True), rule
        allowed = {t.text(op) for op in item.properties.allowed_operations or []}
        if not allowed & rule.allowed_operations:
            raise ApplicationError(
                f"{write.operation} is not allowed on {params.item.name} now: it is "
                f"{t.state(item) or 'in an unknown state'} and allows only "
                f"{', '.join(sorted(allowed)) or 'nothing'}",
                type=errors.OPERATION_NOT_ALLOWED,
                non_retryable=True,
            )
        return None, rule

    def _send(
        self,
        write: Write,
        rule: OperationRule,
        params: ItemOperationInput,
        heartbeat: Callable[[str], None],
    ) -> tuple[str, bool]:
        return self._send_once(
            _Sending(
                label=f"{write.operation} of {params.item.name}",
                send=lambda **options: self.gateway.send(
                    write.send, params.vault, params.item, *write.body, **options
                ),
                find_own_job=lambda: self._find_own_job(rule, params),
                started_meanwhile=lambda: self._started_meanwhile(rule, params),
                refused=lambda err: self._refused(write, params, err),
                poll_interval_seconds=params.poll_interval_seconds,
            ),
            heartbeat,
        )

    @staticmethod
    def _send_once(sending: _Sending, heartbeat: Callable[[str], None]) -> tuple[str, bool]:
        """Send one write, once: the job's name and whether an earlier attempt had started it."""
        captured: dict[str, str] = {}

        def remember_job(response: Any) -> None:
            # The 202's Azure-AsyncOperation URL ends in the job name: record it before polling
            # so that a crash from here on resumes this job instead of sending again.
            headers = response.http_response.headers
            url = headers.get("Azure-AsyncOperation") or headers.get("Location") or ""
            if "job" not in captured and url:
                name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
                captured["job"] = name
                heartbeat(name)

        activity.logger.info("%s: sending", sending.label)
        try:
            # Sent once, never re-sent by the SDK: if the answer is lost, ASR may have started
            # the job, and only a look at the vault can tell. No LRO poller either: the job is
            # awaited by its name, the same way a later attempt resumes it.
            sending.send(polling=False, retry_total=0, raw_response_hook=remember_job)
        except HttpResponseError as err:
            # A refusal may be ASR saying that this very operation is already running: an
            # earlier attempt's request, answered too late for that attempt, started it.
            # Whatever the refusal's code, the vault is looked at before giving up.
            if _refusal(err):
                job_name = sending.started_meanwhile()
                if job_name is not None:
                    activity.logger.warning(
                        "%s: refused (%s), but job %s of an earlier attempt runs; resuming it",
                        sending.label,
                        err.status_code,
                        job_name,
                    )
                    return job_name, True
            raise sending.refused(err) from err
        except (ServiceRequestError, ServiceResponseError):
            time.sleep(sending.poll_interval_seconds)
            job = sending.find_own_job()
            if job is not None:
                activity.logger.warning(
                    "%s: the answer was lost but ASR started job %s", sending.label, job.name
                )
                return job.name, True
            raise  # nothing started: the next attempt looks again before it sends
        job_name = captured.get("job")
        if not job_name:
            job = sending.find_own_job()
            if job is None:
                raise RuntimeError(f"{sending.label} was accepted but its job cannot be found")
            job_name = job.name
        return job_name, False

    def _started_meanwhile(self, rule: OperationRule, params: ItemOperationInput) -> str | None:
        """This operation's job, if one started since the attempt looked: in the vault's list
        (J-OWN) or as the item's current scenario."""
        job = self._find_own_job(rule, params)
        if job is not None:
            return job.name
        item = self.gateway.get_item(params.vault, params.item)
        in_flight = item.properties.current_scenario
        if in_flight is not None and in_flight.scenario_name in rule.job_scenarios:
            return t.job_name(in_flight.job_id)
        return None

    def _find_own_job(self, rule: OperationRule, params: ItemOperationInput) -> JobFact | None:
        # Reprotects in both directions share a scenario name: the previous job's end on ASR's
        # clock tells this operation's job from the earlier one on the same item.
        since = params.after_asr_time or params.not_before - CLOCK_SKEW
        return find_own_job(
            (t.job_fact(job) for job in self.gateway.list_jobs(params.vault)),
            scenarios=rule.job_scenarios,
            vm_name=params.vm_name,
            item_name=params.item.name,
            since=since,
            exclude=params.exclude_job_ids,
        )

    async def _await_job(
        self, write: Write, params: ItemOperationInput, job_name: str, resumed: bool
    ) -> OperationResult:
        until_suspended = isinstance(params, FailoverInput) and params.until_suspended
        document = await self._await_document(
            params.vault,
            job_name,
            params.not_before,
            params.poll_interval_seconds,
            lambda latest: self._beat(f"{write.operation} of {params.vm_name}", job_name, latest),
            stop_when=_suspended if until_suspended else None,
        )
        if until_suspended and _suspended(document):
            return _suspended_job(write.operation, job_name, document, resumed)
        failed = job_outcome(job_document_fact(document)) != JobOutcome.SUCCEEDED
        if write.agent_may_be_missing and failed:
            job: Any = asr_models.Job(document)
            code, message = t.job_error(job)
            raise _reprotect_failed(params, job_name, code, message)
        what = f"{write.operation} of {params.item.name}"
        if failed and write.operation == AsrOperation.PLANNED_FAILOVER:
            what += await self._after_failed_planned_failover(params, [params.vm_name])
        return _ended_job(write.operation, what, job_name, document, resumed)

    async def _after_failed_planned_failover(
        self, params: ItemOperationInput | PlanFailoverInput, vm_names: list[str]
    ) -> str:
        """What follows a failed planned failover, by architecture: Hyper-V's is not cancelled
        (ASR's documentation: a new planned failover completes the synchronization); a
        modernized one ASR cancels itself (`_follow_auto_cancel`)."""
        if params.architecture == "hyperv":
            vms = "VM" if len(vm_names) == 1 else "VMs"
            return (
                f"; do not start the on-premises {vms}: run the failback again, and ASR "
                "completes the data synchronization with the new planned failover"
            )
        return await self._follow_auto_cancel(params.vault, vm_names, params)

    async def _follow_auto_cancel(
        self, vault: VaultRef, vm_names: list[str], params: ItemOperationInput | PlanFailoverInput
    ) -> str:
        """A failed planned failover is cancelled by ASR itself (its documentation): find those
        CancelFailover jobs, await them, and say what they did; if none comes, say what to do."""
        since = params.not_before - CLOCK_SKEW
        for _ in range(AUTO_CANCEL_LOOKS):
            listed = await self._blocking(self.gateway.list_jobs, vault)
            facts = [t.job_fact(j) for j in listed]
            jobs = [
                job
                for name in vm_names
                if (
                    job := find_own_job(
                        facts,
                        scenarios=AUTO_CANCEL_SCENARIOS,
                        vm_name=name,
                        item_name=name,
                        since=since,
                    )
                )
                is not None
            ]
            if jobs:
                ended = []
                for job in jobs:
                    document = await self._await_document(
                        vault,
                        job.name,
                        params.not_before,
                        params.poll_interval_seconds,
                        self._beat_for("ASR's cancel of a failed failover", job.name),
                    )
                    ended.append(f"{job.name} {job_document_fact(document).state}")
                return (
                    "; ASR cancelled the failed failover by itself (CancelFailover job "
                    + ", ".join(ended)
                    + "): the Azure VM runs again and replication toward on-premises resumes"
                )
            await asyncio.sleep(params.poll_interval_seconds)
        return (
            "; ASR did not cancel the failed failover by itself: cancel it in the vault "
            "(Cancel failover), do not disable replication"
        )

    async def _await_document(
        self,
        vault: VaultRef,
        job_name: str,
        not_before: datetime,
        poll_interval: float,
        beat: Callable[[JobDocument | None], None],
        stop_when: Callable[[JobDocument], bool] | None = None,
    ) -> JobDocument:
        # A beat a quarter of the heartbeat timeout apart is enough to stay alive, and each one
        # is converted by the worker (with 150 jobs running, beats at every 1 s poll of the lab
        # took 8% of its time: bench/RESULTS.md).
        return await self._jobs.wait(
            vault,
            job_name,
            since=not_before - CLOCK_SKEW,
            poll_interval=poll_interval,
            heartbeat=beat,
            heartbeat_every=max(poll_interval, beat_interval() or 0.0),
            stop_when=stop_when,
        )

    def _beat_for(self, what: str, job_name: str) -> Callable[[JobDocument | None], None]:
        return lambda latest: self._beat(what, job_name, latest)

    async def resume_job(self, params: ResumeJobInput) -> OperationResult:
        """Hyper-V for-downtime's cut-over: `replicationJobs/{job}/resume`, sent once. Its
        only effect is the job going on, so the job itself says whether it was sent: a job no
        longer Suspended was resumed (by an earlier attempt, or in the portal) and is only
        awaited. Then the job is awaited to its end."""
        vault, job_name = params.vault, params.job_id
        document = await self._read_job(vault, job_name)
        sent = False
        if _suspended(document):
            await self._within_write_budget(f"resume of job {job_name}")
            body = asr_models.ResumeJobParams(
                properties=asr_models.ResumeJobParamsProperties(comments=params.comment)
            )
            try:
                await self._blocking(self.gateway.resume_job, vault, job_name, body)
            except HttpResponseError as err:
                if not _refusal(err):
                    raise
                # Refused: it is no longer suspended (resumed meanwhile) or ASR says why.
                latest = await self._read_job(vault, job_name)
                if _suspended(latest):
                    raise self._refused_as(f"resume of job {job_name}", err) from err
            sent = True
        ended = await self._await_document(
            vault,
            job_name,
            params.not_before,
            params.poll_interval_seconds,
            self._beat_for(f"the cut-over of {params.vm_name}", job_name),
        )
        what = f"{AsrOperation.PLANNED_FAILOVER} of {params.item.name} (resumed)"
        return _ended_job(AsrOperation.PLANNED_FAILOVER, what, job_name, ended, not sent)

    def _beat(self, what: str, job_name: str, latest: JobDocument | None) -> None:
        """The heartbeat carries the job's name (a retry resumes it) and, while ASR holds the
        job Suspended (J-STATE), what the operator must do: the Web UI shows it on the pending
        activity, and the wait goes on until the job is resumed or cancelled."""
        fact = job_document_fact(latest) if latest is not None else None
        if fact is None or job_outcome(fact) != JobOutcome.NEEDS_OPERATOR:
            activity.heartbeat(job_name)
            return
        note = (
            f"ASR job {job_name} ({what}) is Suspended: it waits "
            "for an operator to resume or cancel it (Azure portal: Site Recovery jobs); the "
            "failback waits with it"
        )
        if job_name not in self._suspended_told:
            self._suspended_told.add(job_name)
            activity.logger.warning(note)
        activity.heartbeat(job_name, note)

    async def _read_job(self, vault: VaultRef, job_name: str) -> dict[str, Any]:
        # A job's end decides what happens next: its reads take the budget's urgent lane.
        with urgent_reads():
            return await self._blocking(self.gateway.job_document, vault, job_name)

    async def _read_running_jobs(
        self, vault: VaultRef, since: datetime
    ) -> dict[str, dict[str, Any]]:
        with urgent_reads():
            return await self._blocking(self._running_jobs, vault, since)

    def _running_jobs(self, vault: VaultRef, since: datetime) -> dict[str, dict[str, Any]]:
        """The vault's jobs in progress that started since `since`, as ASR's JSON by name.
        Raw JSON for the same reason as `job_document`: 150 `Job` models a second would cost
        more than the GETs this list replaces."""
        return {
            str(document["name"]): document
            for document in self.gateway.list_json(
                f"{self.gateway.vault_path(vault)}/replicationJobs",
                {"$filter": running_jobs_filter(since)},
            )
            if document.get("name")
        }

    def _refused(
        self, write: Write, params: ItemOperationInput, err: HttpResponseError
    ) -> Exception:
        if write.agent_may_be_missing and _refusal(err):
            code, message = t.arm_error(err)
            return _reprotect_failed(params, "", f"{err.status_code or 0} {code}", message)
        return self._refused_as(f"{write.operation} of {params.item.name}", err)

    @staticmethod
    def _refused_as(what: str, err: HttpResponseError) -> Exception:
        code, message = t.arm_error(err)
        status = err.status_code or 0
        if 400 <= status < 500 and status != 429:
            return ApplicationError(
                f"ASR refused {what} ({status} {code}): {message}",
                type=errors.ASR_REQUEST_REFUSED,
                non_retryable=True,
            )
        # Throttled or a server error, with an answer: Temporal retries (a write is sent with no
        # SDK retry), when ARM's Retry-After says rather than after the retry policy's growing
        # backoff; the next attempt looks for a job before it sends anything.
        return ApplicationError(
            f"ASR answered {what} with {status} {code}: {message}",
            type=errors.ASR_BUSY,
            next_retry_delay=retry_after(err),
        )


def _suspended(document: JobDocument) -> bool:
    return job_document_fact(document).state == "Suspended"


def _suspended_job(
    operation: AsrOperation, job_name: str, document: JobDocument, resumed: bool
) -> OperationResult:
    """A job ASR holds Suspended for the operator (Hyper-V for-downtime, synchronized)."""
    job: Any = asr_models.Job(document)
    return OperationResult(
        operation=operation,
        job_id=job_name,
        state="Suspended",
        started_at=job.properties.start_time,
        ended_at=None,
        resumed=resumed,
    )


def _ended_job(
    operation: AsrOperation, what: str, job_name: str, document: JobDocument, resumed: bool
) -> OperationResult:
    """The result of a job that ended; ASR_JOB_FAILED, with ASR's code and message, unless it
    succeeded in full (J-STATE: a PartiallySucceeded job did not)."""
    fact = job_document_fact(document)
    outcome = job_outcome(fact)
    state = fact.state if outcome != JobOutcome.PARTIAL else fact.state_description
    job: Any = asr_models.Job(document)
    if outcome != JobOutcome.SUCCEEDED:
        code, message = t.job_error(job)
        raise ApplicationError(
            f"ASR job {job_name} ({what}) ended {state}: {code} {message}",
            job_name,
            type=errors.ASR_JOB_FAILED,
            non_retryable=True,
        )
    return OperationResult(
        operation=operation,
        job_id=job_name,
        state=state,
        started_at=job.properties.start_time,
        ended_at=job.properties.end_time,
        resumed=resumed,
    )


def _reprotect_failed(
    params: ItemOperationInput, job_name: str, code: str, message: str
) -> ApplicationError:
    """A re-protect to Azure that ASR refused or whose job failed, with ASR's own code and
    message: the workflow waits and tries again while the agent may still be registering (R16),
    whatever the code says."""
    agent_missing = t.is_agent_missing(code, message)
    return ApplicationError(
        f"re-protect of {params.vm_name} to Azure "
        + (f"(job {job_name}) failed" if job_name else "was refused")
        + f": {code} {message}".rstrip()
        + ("; ASR says the mobility agent is not installed yet" if agent_missing else ""),
        job_name,
        code,
        message,
        type=errors.AGENT_NOT_REGISTERED if agent_missing else errors.REPROTECT_TO_AZURE_FAILED,
        non_retryable=True,
    )


def _refusal(err: HttpResponseError) -> bool:
    status = err.status_code or 0
    return 400 <= status < 500 and status != 429


def retry_after(err: HttpResponseError) -> timedelta | None:
    """ARM's Retry-After in seconds, kept within 1 s .. 5 min; None when it sent none."""
    response = getattr(err, "response", None)
    text = response.headers.get("Retry-After") if response is not None else None
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None  # an HTTP date: the retry policy's own backoff will do
    return timedelta(seconds=min(max(seconds, 1.0), 300.0))
