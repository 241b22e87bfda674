"""ASR's activities: each a few lines over the reads and the writes (this package's other
modules), errors of type FailbackError turned into Temporal's ApplicationError here."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.arm_reads import promised_reads
from activities.asr.bodies import DIALECTS
from activities.asr.operations import AsrWrites, Write
from activities.asr.reads import AsrReads
from activities.liveness import kept_alive
from domain import errors
from domain.decisions import NoRecoveryPointError, select_latest_point
from domain.errors import FailbackError
from domain.models import (
    AgentCheckInput,
    AgentRegistration,
    DiscoveredMachine,
    DiscoveredPlan,
    DiscoverMachineInput,
    DiscoverPlanInput,
    FailoverInput,
    ItemOperationInput,
    OperationResult,
    PlanFailoverInput,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    RecoveryPointChoice,
    ReplicationWaitInput,
    ReplicationWaitResult,
    ReprotectToAzureInput,
    ReprotectToOnPremInput,
    ResumeJobInput,
    SelectRecoveryPointInput,
)
from domain.operations import AsrOperation
from domain.readiness import AsrFacts
from domain.recovery_points import MachinePoints

_F = TypeVar("_F", bound=Callable[..., Any])

# A readiness read's reads beside a recovery-point list per machine: the fabric, its vCenters or
# providers, the plan's items, the failback policy.
READINESS_READS_BESIDE_THE_MACHINES = 4


def as_application_errors(function: _F) -> _F:
    """A FailbackError leaves the activity as an ApplicationError of the same type."""

    def converted(err: FailbackError) -> ApplicationError:
        return ApplicationError(
            err.message, *err.details, type=err.type, non_retryable=not err.retryable
        )

    if _is_async(function):

        @functools.wraps(function)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await function(*args, **kwargs)
            except FailbackError as err:
                raise converted(err) from err

        return run_async  # type: ignore[return-value]

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except FailbackError as err:
            raise converted(err) from err

    return run  # type: ignore[return-value]


def _is_async(function: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


class AsrActivities:
    """The reads and writes of ASR, as activities. The clients behind them come from the
    worker's wiring; they hold credentials, which is why they never travel in an input."""

    def __init__(self, reads: AsrReads, writes: AsrWrites) -> None:
        self._reads = reads
        self._writes = writes

    # --- reads -------------------------------------------------------------------------------

    @activity.defn
    @kept_alive
    @as_application_errors
    def discover_machine(self, params: DiscoverMachineInput) -> DiscoveredMachine:
        return self._reads.discover_machine(params)

    @activity.defn
    @kept_alive
    @as_application_errors
    def discover_recovery_plan(self, params: DiscoverPlanInput) -> DiscoveredPlan:
        return self._reads.discover_recovery_plan(params)

    @activity.defn
    @kept_alive
    @as_application_errors
    def read_asr_facts(self, params: ReadAsrFactsInput) -> AsrFacts:
        # Announced to the read budget, which lets a worker take another plan's readiness only
        # when it can pay for it beside this one's (activities/readiness_intake.py).
        with promised_reads(len(params.machines) + READINESS_READS_BESIDE_THE_MACHINES):
            return self._reads.read_asr_facts(params)

    @activity.defn
    @kept_alive
    @as_application_errors
    def read_recovery_points(self, params: ReadRecoveryPointsInput) -> list[MachinePoints]:
        return self._reads.read_recovery_points(params)

    @activity.defn
    @kept_alive
    @as_application_errors
    def select_recovery_point(self, params: SelectRecoveryPointInput) -> RecoveryPointChoice:
        points = self._reads.recovery_points(params.vault, params.item)
        try:
            return select_latest_point(points, params.architecture)
        except NoRecoveryPointError as err:
            raise FailbackError(f"{params.item.name}: {err}", errors.NO_RECOVERY_POINT) from err

    @activity.defn
    @kept_alive
    @as_application_errors
    def check_agent_registered(self, params: AgentCheckInput) -> AgentRegistration:
        return self._reads.check_agent_registered(params)

    @activity.defn
    @as_application_errors
    def wait_until_replicating(self, params: ReplicationWaitInput) -> ReplicationWaitResult:
        """R12 and R13 after a reprotect: every item replicating back, health Normal, and at
        least one recovery point. Heartbeats while it looks; gives up after the timeout."""
        started = time.monotonic()
        while True:
            states = [self._reads.replication_state(params.vault, i) for i in params.items]
            waited = time.monotonic() - started
            if all(s.healthy for s in states):
                return ReplicationWaitResult(items=states, waited_seconds=waited)
            if waited >= params.timeout_seconds:
                pending = ", ".join(
                    f"{s.item_name} ({s.replication_health}, {s.recovery_points} points)"
                    for s in states
                    if not s.healthy
                )
                raise FailbackError(
                    f"replication back to on-premises did not become healthy within "
                    f"{params.timeout_seconds / 60:.0f} min: {pending}",
                    errors.REPLICATION_NOT_HEALTHY,
                )
            # The Web UI shows the pending activity's last heartbeat: the progress, in words.
            activity.heartbeat(
                "initial replication: " + "; ".join(s.progress() for s in states if not s.healthy)
            )
            time.sleep(params.poll_interval_seconds)

    # --- writes ------------------------------------------------------------------------------

    @activity.defn
    @as_application_errors
    async def fail_over(self, params: FailoverInput) -> OperationResult:
        """The failback's failover, as the item's architecture sends it (classic: unplanned,
        modernized: planned)."""
        dialect = DIALECTS[params.architecture]
        send = getattr(self._writes.gateway.items, dialect.failover_method)
        write = Write(dialect.failover, send, (dialect.failover_body(params),))
        return await self._writes.run(write, params)

    @activity.defn
    @as_application_errors
    async def fail_over_plan(self, params: PlanFailoverInput) -> OperationResult:
        """FO-PLAN: a recovery plan fails over whole, as its architecture sends it (classic:
        unplannedFailover, LatestTime/LatestTag; modernized: plannedFailover with
        useMultiVmSyncPoint), ASR booting the plan's groups in order."""
        dialect = DIALECTS[params.architecture]
        return await self._writes.fail_over_plan(
            params,
            getattr(self._writes.gateway.plans, dialect.plan_failover_method),
            dialect.plan_failover_body(params),
            dialect.plan_failover_scenario,
        )

    @activity.defn
    @as_application_errors
    async def commit_failover(self, params: ItemOperationInput) -> OperationResult:
        items = self._writes.gateway.items
        write = Write(AsrOperation.FAILOVER_COMMIT, items.begin_failover_commit)
        return await self._writes.run(write, params)

    @activity.defn
    @as_application_errors
    async def cancel_failover(self, params: ItemOperationInput) -> OperationResult:
        """Modernized: undo a failback before its commit (failoverCancel, no body)."""
        items = self._writes.gateway.items
        write = Write(AsrOperation.FAILOVER_CANCEL, items.begin_failover_cancel)
        return await self._writes.run(write, params)

    @activity.defn
    @as_application_errors
    async def resume_failover(self, params: ResumeJobInput) -> OperationResult:
        """Hyper-V for-downtime: the cut-over (the suspended job resumed once), awaited."""
        return await self._writes.resume_job(params)

    @activity.defn
    @as_application_errors
    async def reprotect_to_azure(self, params: ReprotectToAzureInput) -> OperationResult:
        body = DIALECTS[params.architecture].reprotect_to_azure_body(params.options)
        items = self._writes.gateway.items
        write = Write(
            AsrOperation.REPROTECT_TO_AZURE,
            items.begin_reprotect,
            (body,),
            agent_may_be_missing=True,
        )
        return await self._writes.run(write, params)

    @activity.defn
    @as_application_errors
    async def reprotect_to_onprem(self, params: ReprotectToOnPremInput) -> OperationResult:
        build = DIALECTS[params.architecture].reprotect_to_onprem_body
        if build is None:
            raise FailbackError(
                f"{params.vm_name} is a {params.architecture} machine, which fails back without "
                "a reprotect toward on-premises",
                errors.UNSUPPORTED_ARCHITECTURE,
            )
        body = build(params.options)
        items = self._writes.gateway.items
        write = Write(AsrOperation.REPROTECT_TO_ONPREM, items.begin_reprotect, (body,))
        return await self._writes.run(write, params)
