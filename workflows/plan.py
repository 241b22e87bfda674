"""The failback of a recovery plan: boot groups in order, the machines of a group in parallel.

One child workflow per machine. Group N+1 starts only when every machine of group N is verified
on-premises; one approval covers the whole plan and is passed to every machine; if a machine
fails, later groups do not start, the others stand down before commit, and nothing is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities.asr import AsrActivities
    from activities.verification import VerificationActivities
    from domain import errors
    from domain.architectures import architecture_named_can_undo
    from domain.authority import Attestation
    from domain.decisions import (
        evaluate_verification,
        fails_over_as_plan,
        hyperv_fails_over_as_plan,
    )
    from domain.models import (
        Approval,
        ApprovalPolicy,
        ApprovalRequest,
        Cancellation,
        CancelRequest,
        Cutover,
        CutoverRequest,
        Decisions,
        DiscoveredMachine,
        DiscoveredPlan,
        MachineFailbackInput,
        MachineFailbackResult,
        MachinePoints,
        MachineVerified,
        OperationResult,
        Phase,
        PlanFailbackInput,
        PlanFailbackResult,
        PlanFailoverInput,
        PlanFailoverThenRead,
        PlanFailoverThenReadInput,
        PlanJobEnded,
        PlanMachine,
        PlanPhase,
        PlanPhaseChange,
        PlanPointChoice,
        PlanStatus,
        ReadRecoveryPointsInput,
        RecoveryPointChoice,
        RejectedApproval,
        ReplicationWaitResult,
        StandDown,
        Timings,
        Undo,
        UndoRequest,
        VerificationRead,
        VerificationReadInput,
        VerificationReads,
        VerificationReadsInput,
    )
    from domain.readiness import MachinePlan, ReadinessReport, ReprotectChoice
    from domain.recovery_points import (
        RecoveryPointSelectionError,
        choose_recovery_points,
        how_to_ask,
    )
    from workflows import search_attributes, versioning
    from workflows.approval import wait_for_approval
    from workflows.authority import DecisionGate, who
    from workflows.calls import (
        POINTS_TIMEOUT,
        cause,
        failures,
        read,
        read_where_kept,
        readiness_task_queue,
        write,
    )
    from workflows.machine import (
        MachineFailbackWorkflow,
        machine_workflow_id,
        verification_query,
    )
    from workflows.steps import blocking_text, check_readiness, reprotect_to_onprem


def plan_workflow_id(vault: str, plan: str) -> str:
    return f"failback-plan-{vault}-{plan}"


@workflow.defn
class PlanFailbackWorkflow:
    def __init__(self) -> None:
        self._plan = ""
        self._phase = PlanPhase.STARTING
        self._history: list[PlanPhaseChange] = []
        self._machines: list[PlanMachine] = []
        self._discovered_machines: list[DiscoveredMachine] = []
        self._boot_groups = 0
        self._current_group: int | None = None
        self._verified: dict[str, MachineVerified] = {}
        self._failed: dict[str, str] = {}
        self._completed: dict[str, MachineFailbackResult] = {}
        self._approval: Approval | None = None
        self._rejected: list[RejectedApproval] = []
        self._choice: PlanPointChoice | None = None
        self._error: str | None = None
        self._children: dict[str, _Child] = {}
        self._readiness: ReadinessReport | None = None
        self._cutover: Cutover | None = None
        self._cancellation: Cancellation | None = None
        self._reprotects: list[OperationResult] = []
        self._points_kept_on: str | None = None
        self._failover: OperationResult | None = None
        # FO-PLAN: each machine's first verification read, made as the plan's job ended, until
        # the machine is started with it.
        self._first_reads: dict[str, VerificationRead] = {}
        self._verified_by_plan_read: set[str] = set()
        # FO-PLAN, patch plan-approves-on-its-read: its own read is each machine's verification.
        self._approves_on_its_read = False
        # FO-PLAN, machines started during the job: the signals telling them it ended.
        self._job_end_told: list[asyncio.Future[None]] = []
        # Machines already told the plan's job ended (`_tell_unverified_first`).
        self._told: set[str] = set()
        # FO-PLAN: the plan's reads of its machines still booting at the job's end (a task the
        # plan keeps a reference to, so that it is not collected while it waits).
        self._rereads: asyncio.Future[None] | None = None
        self._replication: ReplicationWaitResult | None = None
        self._undo: Undo | None = None
        self._reminders = 0
        self._gate = DecisionGate(workflow.info().workflow_id)
        # R31: the approvals taken so far, and the last one's attestation, which the plan
        # passes on to its machines (they check it was signed for the plan).
        self._approvals: list[Approval] = []
        self._approval_attestation: Attestation | None = None
        self._undo_attestation: Attestation | None = None

    @workflow.signal
    def machine_verified(self, report: MachineVerified) -> None:
        self._verified[report.item_name] = report

    @workflow.signal
    def approve_commit(self, request: ApprovalRequest) -> None:
        now = workflow.now()
        identity, refusal = self._gate.check(
            request.attestation, "approve", typed=request.approved_by
        )
        by = who(identity, request.approved_by)
        if refusal is None and self._approval is not None:
            refusal = "the commit was already approved"
        elif refusal is None and self._phase != PlanPhase.AWAITING_APPROVAL:
            refusal = (
                f"the plan is {self._phase}: every machine of every boot group must be verified "
                "before the commit can be approved"
            )
        if refusal is not None:
            self._refuse(by, refusal)
            return
        approval = Approval(
            approved_by=by, comment=request.comment, approved_at=now, identity=identity
        )
        self._approvals.append(approval)
        if self._gate.take_approval(identity, by):
            self._approval = approval
            self._approval_attestation = request.attestation

    def _refuse(self, by: str, reason: str) -> None:
        """A decision refused: nothing changes but the record of it."""
        self._rejected.append(
            RejectedApproval(
                approved_by=by,
                received_at=workflow.now(),
                phase=Phase.AWAITING_APPROVAL
                if self._phase == PlanPhase.AWAITING_APPROVAL
                else Phase.VERIFYING,
                reason=reason,
            )
        )

    @workflow.signal
    def record_refused_decision(self, refused: RejectedApproval) -> None:
        """A decision the CLI refused before sending it: recorded here too."""
        self._rejected.append(refused.model_copy(update={"received_at": workflow.now()}))

    @workflow.signal
    async def cut_over(self, request: CutoverRequest) -> None:
        """Hyper-V for-downtime: cut every machine over, those synchronized now and those that
        will be (a later boot group's machine starts with the plan's cut-over given)."""
        identity, refusal = self._gate.check(request.attestation, "cutover")
        by = who(identity, request.cut_over_by)
        if refusal is not None:
            self._refuse(by, f"cut-over refused: {refusal}")
            return
        if self._cutover is not None:
            return
        self._cutover = Cutover(
            cut_over_by=by, comment=request.comment, at=workflow.now(), identity=identity
        )
        await asyncio.gather(
            *(
                child.handle.signal(MachineFailbackWorkflow.cut_over, request)
                for child in self._children.values()
                if not child.task.done()
            )
        )

    @workflow.signal
    def record_cancel(self, request: CancelRequest) -> None:
        """Who cancels (`failback cancel`), recorded before the cancel itself arrives: the
        history and the status say who stopped the failback, and why."""
        identity, refusal = self._gate.check(request.attestation, "cancel")
        by = who(identity, request.cancelled_by)
        if refusal is not None:
            self._refuse(by, f"cancel refused: {refusal}")
        elif self._cancellation is None:
            self._cancellation = Cancellation(
                cancelled_by=by, comment=request.comment, at=workflow.now(), identity=identity
            )

    @workflow.signal
    def undo_failback(self, request: UndoRequest) -> None:
        """Modernized: undo every machine's failback before the commit (failoverCancel), the
        plan as a whole; taken once every machine is verified and before the approval."""
        identity, denied = self._gate.check(request.attestation, "undo")
        by = who(identity, request.undone_by)
        if denied is not None:
            self._refuse(by, f"undo refused: {denied}")
            return
        now = workflow.now()
        can_undo = all(
            architecture_named_can_undo(m.architecture) for m in self._discovered_machines
        )
        if (
            self._phase == PlanPhase.AWAITING_APPROVAL
            and self._approval is None
            and self._undo is None
            and can_undo
        ):
            self._undo = Undo(
                undone_by=by, comment=request.comment, requested_at=now, identity=identity
            )
            self._undo_attestation = request.attestation
            return
        reason = (
            "a classic plan cannot be undone: ASR has no cancel for its failback"
            if not can_undo
            else "the plan is being undone already"
            if self._undo is not None
            else "the commit was approved, which deletes the Azure VMs: it cannot be undone"
            if self._approval is not None
            else f"the plan is {self._phase}: a plan is undone once every machine is verified "
            "and before the commit is approved"
        )
        self._refuse(by, f"undo refused: {reason}")

    @workflow.query
    def status(self) -> PlanStatus:
        return PlanStatus(
            recovery_plan=self._plan,
            phase=self._phase,
            waiting_for=self._waiting_for(),
            machines=list(self._machines),
            current_boot_group=self._current_group,
            boot_groups=self._boot_groups,
            verified=sorted(self._verified),
            failed=dict(self._failed),
            completed=sorted(self._completed),
            approval=self._approval,
            approvals=list(self._approvals),
            approvals_missing=self._gate.approvals_missing() if self._approval is None else 0,
            rejected_approvals=list(self._rejected),
            approval_reminders=self._reminders,
            recovery_points=self._choice,
            readiness=self._readiness,
            cutover=self._cutover,
            cancellation=self._cancellation,
            reprotects=list(self._reprotects),
            failover=self._failover,
            replication=self._replication,
            undo=self._undo,
            history=list(self._history),
            error=self._error,
        )

    @workflow.run
    async def run(self, params: PlanFailbackInput) -> PlanFailbackResult:
        self._plan = params.recovery_plan
        started_at = workflow.now()
        workflow.upsert_search_attributes(
            [
                search_attributes.VAULT.value_set(params.vault.vault),
                search_attributes.RECOVERY_PLAN.value_set(params.recovery_plan),
            ]
        )
        self._enter(PlanPhase.STARTING)
        try:
            await self._gate.load(params.vault, params.recovery_plan, params.decisions, False)
        except ApplicationError as refused:
            self._error = str(refused)
            self._enter(PlanPhase.FAILED, str(refused))
            raise
        try:
            await self._fail_back(params)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (_PlanStopped, ActivityError) as stop:
            if is_cancelled_exception(stop):
                await self._end_cancelled()
                raise
            reason = stop.reason if isinstance(stop, _PlanStopped) else cause(stop)
            error_type = (
                stop.error_type if isinstance(stop, _PlanStopped) else errors.FAILBACK_FAILED
            )
            self._error = reason
            self._enter(PlanPhase.FAILED, reason)
            await self._stand_down_all(reason)
            raise ApplicationError(
                f"failback of recovery plan {params.recovery_plan} failed: {reason}",
                self.status(),
                type=error_type,
                non_retryable=True,
            ) from None
        outcomes = {r.outcome for r in self._completed.values()}
        outcome: Literal["completed", "completed-with-warnings", "undone"] = (
            "undone"
            if self._undo is not None
            else "completed"
            if outcomes == {"completed"}
            else "completed-with-warnings"
        )
        self._enter(PlanPhase.UNDONE if self._undo is not None else PlanPhase.COMPLETED)
        return PlanFailbackResult(
            recovery_plan=params.recovery_plan,
            outcome=outcome,
            summary=(
                f"recovery plan {params.recovery_plan}: {len(self._completed)} machines failed "
                f"back in {self._boot_groups} boot groups, approved by "
                f"{self._approval.approved_by if self._approval else '?'}"
            ),
            started_at=started_at,
            finished_at=workflow.now(),
            machines=dict(self._completed),
            status=self.status(),
        )

    async def _end_cancelled(self) -> None:
        """Cancelled by an operator: nothing more is sent but the stand-down orders, and the
        failback ends cancelled, with the Azure copies intact if before commit."""
        self._error = "cancelled"
        self._enter(PlanPhase.FAILED, "cancelled")
        await self._stand_down_all("the plan's failback was cancelled")

    async def _fail_back(self, params: PlanFailbackInput) -> None:
        """The lifecycle of DESIGN.md, for the plan: each step a method below."""
        plan = await self._discover(params)
        await self._check_and_reprotect(params, plan)
        await self._choose_points(params, plan)
        self._enter(PlanPhase.FAILING_OVER)
        await self._fail_over_whole(params, plan)
        for index, group in enumerate(plan.boot_groups):
            await self._fail_over_group(params, index, group, len(plan.boot_groups))
        self._current_group = None
        if not self._approves_on_its_read:
            await asyncio.gather(*self._job_end_told)
        # Every machine's own verification, before anyone may approve (R-rules on approval).
        await workflow.wait_condition(self._all_verified)
        if self._failed:
            raise _PlanStopped(
                f"a machine did not verify ({failures(self._failed)}); nothing was committed"
            )
        approval = await self._await_approval(params)
        # Each machine is told its job ended before it is sent a decision.
        await asyncio.gather(*self._job_end_told)
        if approval is None:
            await self._undo_all()
            return
        await self._finish(approval)

    async def _discover(self, params: PlanFailbackInput) -> DiscoveredPlan:
        self._enter(PlanPhase.DISCOVERING)
        plan: DiscoveredPlan = await read(
            AsrActivities.discover_recovery_plan,
            params.discovery(),
        )
        if not plan.machines:
            raise _PlanStopped(f"recovery plan {params.recovery_plan} has no machines")
        self._discovered_machines = plan.machines
        return plan

    async def _choose_points(self, params: PlanFailbackInput, plan: DiscoveredPlan) -> None:
        """One recovery point per machine, by replication group (DESIGN.md, recovery point
        selection), chosen here in the workflow from the points each machine has."""
        self._boot_groups = len(plan.boot_groups)
        self._machines = [
            PlanMachine(
                item_name=m.item.name,
                vm_name=m.vm_name,
                boot_group=index + 1,
                workflow_id=machine_workflow_id(params.vault.vault, m.vm_name),
                replication_group=m.replication_group,
            )
            for index, group in enumerate(plan.boot_groups)
            for m in group
        ]
        points_read = ReadRecoveryPointsInput(vault=params.vault, machines=plan.machines)
        points: list[MachinePoints]
        if workflow.patched(versioning.POINTS_READ_WHERE_LISTED):
            # Where readiness kept the points it listed moments ago: 100 reads of ARM's budget
            # fewer for a plan of 100 unless another worker happens to run the selection
            # (bench/RESULTS.md). A reprotect in between made those points stale.
            points = await read_where_kept(
                AsrActivities.read_recovery_points,
                points_read,
                None if self._reprotects else self._points_kept_on,
                timeout=POINTS_TIMEOUT,
            )
        else:
            points = await read(
                AsrActivities.read_recovery_points, points_read, timeout=POINTS_TIMEOUT
            )
        try:
            self._choice = choose_recovery_points(
                points, params.recovery_point, plan.machines[0].architecture
            )
        except RecoveryPointSelectionError as refused:
            raise _PlanStopped(
                f"no failover was started: {'; '.join(refused.problems)}",
            ) from None

    async def _fail_over_whole(self, params: PlanFailbackInput, plan: DiscoveredPlan) -> None:
        """FO-PLAN: a plan holding a replication group fails over in one ASR job, which boots its
        groups in ASR's order at the point named as RP-ASK says (for a group: its common multi-VM
        point); its machines then verify boot group by boot group (a machine the plan's own read
        at the job's end found verified is verified for the approval, and its group lets the next
        start at once; a machine not so verified reports its own verification before the
        approval). Without a group, nothing is sent here: each machine fails over itself, at the
        point shown, when its group's turn comes. A modernized plan, and a Hyper-V plan that
        fails back for synchronization to its own VMs, fail over whole too."""
        hyperv_whole = hyperv_fails_over_as_plan(
            plan.machines, params.data_sync, (self._placement(m) for m in plan.machines)
        )
        if not (
            fails_over_as_plan(plan.machines)
            # Only where it decides: no marker in the histories of the other plans.
            or (hyperv_whole and workflow.patched(versioning.HYPERV_PLAN_FAILS_OVER_WHOLE))
        ):
            return
        assert self._choice is not None
        groups = sorted({m.replication_group for m in plan.machines if m.replication_group})
        architecture = plan.machines[0].architecture
        why = (
            f"replication group {', '.join(groups)} fails over only with its plan"
            if groups
            else "a Hyper-V plan failing back for synchronization to its own VMs fails over "
            "through its planned failover"
            if architecture == "hyperv"
            else "a modernized plan fails back through its planned failover"
        )
        self._enter(
            PlanPhase.FAILING_OVER,
            f"the recovery plan's failover ({why}): ASR fails every machine over, boot group "
            "by boot group",
        )
        failover = PlanFailoverInput(
            vault=params.vault,
            recovery_plan=params.recovery_plan,
            architecture=architecture,
            vm_names=[m.vm_name for m in plan.machines],
            use_multi_vm_sync_point=bool(groups),
            data_sync=params.data_sync,
            recovery_point_type=how_to_ask(self._choice.policy, architecture),
            not_before=workflow.now(),
            poll_interval_seconds=params.timings.job_poll_interval_seconds,
        )
        summary = f"ASR fail over recovery plan {params.recovery_plan}"
        try:
            if workflow.patched(versioning.PLAN_READS_FIRST_VERIFICATION):
                # Every machine's first verification read with the job's end: one activity,
                # not one per machine in the burst that follows (bench/RESULTS.md).
                job = asyncio.ensure_future(
                    write(
                        VerificationActivities.fail_over_plan_then_read,
                        PlanFailoverThenReadInput(
                            failover=failover,
                            verifications=self._verification_queries(plan.machines),
                        ),
                        params.timings,
                        summary=summary,
                    )
                )
                if workflow.patched(versioning.MACHINES_START_DURING_PLAN_JOB):
                    await self._start_machines_during(job, params, plan)
                done: PlanFailoverThenRead = await job
                self._failover, self._first_reads = done.operation, done.states
                verified = _passed(done.states)
                if workflow.patched(versioning.PLAN_APPROVES_ON_ITS_READ):
                    # The machine's own verification, by the same rule on the same read (the
                    # machine records it too, and sends no word of it): the approval no longer
                    # waits on a round trip per machine through the busiest seconds of the
                    # failback (bench/RESULTS.md). A decision reaching a machine before its
                    # turn waits for it there (`plan_decision_waits`).
                    self._approves_on_its_read = True
                    self._verified.update(verified)
                else:
                    # A machine the plan's read found verified lets its boot group's successor
                    # start without waiting for the machine's own word (it still gives it
                    # before the approval).
                    self._verified_by_plan_read = set(verified)
                self._tell_unverified_first(plan, verified)
                if self._approves_on_its_read:
                    self._read_until_verified(params, plan)
            else:
                self._failover = await write(
                    AsrActivities.fail_over_plan, failover, params.timings, summary=summary
                )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # an operator's cancel, not a failed job: `run` ends the plan cancelled
            refused = (
                isinstance(err.cause, ApplicationError)
                and err.cause.type == errors.OPERATION_NOT_ALLOWED
            )
            after = (
                ""
                # Refused before anything was sent; or ASR cancels it, or the error says to.
                if refused or architecture == "modernized"
                else "; a machine ASR did fail over waits uncommitted on-premises (the plan's "
                "job in the vault says which)"
            )
            raise _PlanStopped(
                f"the recovery plan's failover failed: {cause(err)}. Nothing was committed: the "
                f"Azure VMs are intact{after}"
            ) from None

    async def _start_machines_during(
        self,
        job: asyncio.Future[PlanFailoverThenRead],
        params: PlanFailbackInput,
        plan: DiscoveredPlan,
    ) -> None:
        """FO-PLAN: start every machine's workflow while the plan's job runs, a set time into
        it, in boot group order; each waits for the job's end (`_fail_over_group` tells it).

        Why: starting a workflow (the execution Temporal creates, the worker's sandbox and first
        task) is most of what a machine cost in the burst after the job's end, when every plan's
        machines verify at once and the approval waits on the slowest (bench/RESULTS.md); the
        job's minutes leave the CPU idle. Why not at once: a plan's own start competes with the
        other plans' readiness and failover requests, which are on the critical path."""
        into_job = params.timings.machines_start_into_plan_job_seconds
        try:
            if into_job > 0:
                await workflow.wait_condition(job.done, timeout=timedelta(seconds=into_job))
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            # Cancelled by an operator: the job's activity is cancelled, as it is when the plan
            # awaits it, and its cancellation ends the plan (`run`).
            job.cancel()
            await job
            raise
        if job.done():
            return
        try:
            await asyncio.gather(
                *(
                    self._start_machine(params, m, awaits_plan_job=True)
                    for group in plan.boot_groups
                    for m in group
                )
            )
        except WorkflowAlreadyStartedError as taken:
            # The job runs on in ASR whatever the plan does: its end is awaited, then the plan
            # stops and stands its started machines down, before any commit.
            await workflow.wait([job])
            raise _PlanStopped(
                f"a machine's failback could not start: workflow {taken.workflow_id} is open "
                "(another failback of the same machine). The plan's failover job ran to its end; "
                "nothing was committed: the Azure VMs are intact. Finish or cancel the other "
                "failback, then start the plan's again"
            ) from None

    async def _fail_over_group(
        self,
        params: PlanFailbackInput,
        index: int,
        group: list[DiscoveredMachine],
        groups: int,
    ) -> None:
        """Start a boot group's machines at once (one workflow task round trip each, one after
        the other, was 44 s for 100 machines under load), or tell those started during the
        plan's job that it ended, and wait until each is verified."""
        self._current_group = index + 1
        self._enter(PlanPhase.FAILING_OVER, f"boot group {index + 1} of {groups}")
        started = [
            m for m in group if m.item.name in self._children and m.item.name not in self._told
        ]
        if started:
            # Not awaited here: a group the plan's read found verified lets the next be told in
            # the same workflow task; `_job_end_told` is awaited before the approval.
            self._job_end_told.extend(
                asyncio.ensure_future(self._tell_job_ended(m)) for m in started
            )
        await asyncio.gather(
            *(self._start_machine(params, m) for m in group if m.item.name not in self._children)
        )
        names = [m.item.name for m in group]
        await workflow.wait_condition(partial(self._group_settled, names))
        if self._failed:
            raise _PlanStopped(
                f"boot group {index + 1} did not fail back ({failures(self._failed)}); later "
                "boot groups were not started and nothing was committed"
            )

    async def _await_approval(self, params: PlanFailbackInput) -> Approval | None:
        """The one approval for the whole plan; None when the plan is to be undone."""
        self._enter(PlanPhase.AWAITING_APPROVAL)
        self._approval = await wait_for_approval(
            lambda: self._approval,
            lambda: bool(self._failed) or self._undo is not None,
            params.approval,
            self._remind,
            auto_undo=self._auto_undo,
        )
        if self._approval is None and self._undo is not None and not self._failed:
            return None
        if self._approval is None:
            raise _PlanStopped(
                f"a machine failed while awaiting approval ({failures(self._failed)})"
            )
        return self._approval

    def _auto_undo(self, waited_seconds: float) -> None:
        if self._undo is None:
            self._undo = Undo(
                undone_by=f"auto-undo policy ({waited_seconds / 60:g} min)",
                comment="no human approval within the configured time",
                requested_at=workflow.now(),
            )

    async def _undo_all(self) -> None:
        """Every machine undoes its failback (failoverCancel) at once; the plan ends undone."""
        assert self._undo is not None
        self._enter(PlanPhase.UNDOING, f"by {self._undo.undone_by}")
        request = UndoRequest(
            undone_by=self._undo.undone_by,
            comment=f"recovery plan {self._plan} undone: {self._undo.comment}".strip(),
            on_behalf_of_plan=self._plan,
            attestation=self._undo_attestation,
        )
        await asyncio.gather(
            *(
                child.handle.signal(MachineFailbackWorkflow.undo_failback, request)
                for child in self._children.values()
            )
        )
        await asyncio.gather(*(child.task for child in self._children.values()))
        if self._failed:
            raise _PlanStopped(f"undoing the failback: {failures(self._failed)}")

    async def _finish(self, approval: Approval) -> None:
        """The one approval goes to every machine at once; each commits and re-protects."""
        self._enter(PlanPhase.FINISHING, f"approved by {approval.approved_by}")
        comment = f"recovery plan {self._plan} approved: {approval.comment}".strip()
        request = ApprovalRequest(
            approved_by=approval.approved_by,
            comment=comment,
            on_behalf_of_plan=self._plan,
            attestation=self._approval_attestation,
        )
        await asyncio.gather(
            *(
                child.handle.signal(MachineFailbackWorkflow.approve_commit, request)
                for child in self._children.values()
            )
        )
        await asyncio.gather(*(child.task for child in self._children.values()))
        if self._failed:
            raise _PlanStopped(f"after the commit approval: {failures(self._failed)}")

    async def _check_and_reprotect(self, params: PlanFailbackInput, plan: DiscoveredPlan) -> None:
        """Steps 1 and 2: every readiness rule first, then the reprotect to on-premises of the
        machines still failed over to Azure, and the wait until they replicate healthily."""
        choices = await self._check_readiness(params, plan)
        if choices:
            await self._reprotect_to_onprem(params, plan, choices)

    async def _check_readiness(
        self, params: PlanFailbackInput, plan: DiscoveredPlan
    ) -> list[ReprotectChoice]:
        self._enter(PlanPhase.CHECKING)
        self._readiness, choices, self._points_kept_on = await check_readiness(
            params.vault,
            plan.machines,
            params.recovery_plan,
            params.reprotect_to_onprem,
            params.reprotect_to_azure.log_storage_account_id,
            # On the worker whose ARM read budget can pay for its ~100 reads now.
            readiness_task_queue(workflow.info().task_queue),
        )
        if self._readiness.blocking:
            raise _PlanStopped(blocking_text(self._readiness), errors.NOT_READY)
        return choices

    async def _reprotect_to_onprem(
        self, params: PlanFailbackInput, plan: DiscoveredPlan, choices: list[ReprotectChoice]
    ) -> None:
        self._enter(PlanPhase.REPROTECTING, ", ".join(c.item_name for c in choices))
        self._reprotects, self._replication = await reprotect_to_onprem(
            params.vault,
            plan.machines,
            choices,
            params.timings,
            lambda: self._enter(PlanPhase.WAITING_FOR_REPLICATION),
        )

    def _tell_unverified_first(
        self, plan: DiscoveredPlan, verified: Mapping[str, MachineVerified]
    ) -> None:
        """Tell the machines the plan's read did not verify (still booting at the job's end)
        that the job ended, ahead of the others: their own verification comes before their
        commit, while the others' is the plan's read. In boot group order the last group, the
        one most often still booting, was sent last. The server does not promise to deliver a
        burst's signals in the order sent (at 1,000 some were still 15 s late,
        bench/RESULTS.md "2026-12-06, late night"): the approval does not wait on them
        (`_read_until_verified`)."""
        first = [
            m
            for m in plan.machines
            if m.item.name in self._children and m.item.name not in verified
        ]
        # Only where it reorders: no marker in the histories of plans all verified at once.
        if not first or not workflow.patched(versioning.UNVERIFIED_TOLD_FIRST):
            return
        self._told.update(m.item.name for m in first)
        self._job_end_told.extend(asyncio.ensure_future(self._tell_job_ended(m)) for m in first)

    def _read_until_verified(self, params: PlanFailbackInput, plan: DiscoveredPlan) -> None:
        """The machines the plan's read at the job's end did not verify (still booting), read
        again by the plan, together, until each is verified: the approval no longer waits on
        each one's signals through the burst of a thousand machines told the job ended (15 s
        and more at 1,000, bench/RESULTS.md). Each machine still verifies itself, and its own
        word counts as well; past the verification's time only its word decides."""
        booting = [m for m in plan.machines if m.item.name not in self._verified]
        # Only where there is something to read: no marker in the histories of the others.
        if not booting or not workflow.patched(versioning.PLAN_READS_UNTIL_VERIFIED):
            return
        self._rereads = asyncio.ensure_future(self._read_again(params.timings, booting))

    async def _read_again(self, timings: Timings, booting: list[DiscoveredMachine]) -> None:
        queries = self._verification_queries(booting)

        def settled() -> bool:
            return bool(self._failed) or all(name in self._verified for name in queries)

        ends = workflow.now() + timedelta(seconds=timings.verify_timeout_seconds)
        while workflow.now() < ends:
            try:
                await workflow.wait_condition(
                    settled, timeout=timedelta(seconds=timings.verify_poll_interval_seconds)
                )
                return
            except TimeoutError:
                pass
            waiting = {n: q for n, q in queries.items() if n not in self._verified}
            try:
                reads: VerificationReads = await read(
                    VerificationActivities.read_verification_states,
                    VerificationReadsInput(verifications=waiting),
                    summary=f"read again {len(waiting)} machine(s) still booting at the job's end",
                )
            except ActivityError as err:
                # Each machine's own verification still decides; the plan stops reading.
                workflow.logger.warning("the plan's read again failed: %s", cause(err))
                return
            for item, report in _passed(reads.states).items():
                self._verified.setdefault(item, report)

    def _verification_queries(
        self, machines: list[DiscoveredMachine]
    ) -> dict[str, VerificationReadInput]:
        """Each machine's verification read, by protected item name."""
        return {m.item.name: verification_query(m, self._placement(m)) for m in machines}

    async def _tell_job_ended(self, machine: DiscoveredMachine) -> None:
        assert self._failover is not None
        ended = PlanJobEnded(
            operation=self._failover,
            first_read=self._first_reads.pop(machine.item.name, None),
            plan_counts_its_read=self._approves_on_its_read,
        )
        await self._tell(
            machine.item.name, MachineFailbackWorkflow.plan_job_ended, ended, "the job ended"
        )

    async def _tell(self, name: str, signal: Any, arg: object, what: str) -> None:
        """Signal one machine; a machine that already ended cannot be told (`follow` recorded
        how it ended)."""
        try:
            await self._children[name].handle.signal(signal, arg)
        except Exception as err:
            workflow.logger.warning("could not tell %s %s: %s", name, what, err)

    async def _start_machine(
        self, params: PlanFailbackInput, machine: DiscoveredMachine, awaits_plan_job: bool = False
    ) -> None:
        assert self._choice is not None
        choice = self._choice.for_item(machine.item.name)
        handle = await workflow.start_child_workflow(
            MachineFailbackWorkflow.run,
            MachineFailbackInput(
                vault=params.vault,
                item_name=machine.item.name,
                vm_name=machine.vm_name,
                recovery_resource_group=params.recovery_resource_group,
                reprotect_to_azure=params.reprotect_to_azure,
                timings=params.timings,
                # The plan approves its machines; they only remind, never auto-commit alone.
                approval=ApprovalPolicy(
                    reminder_every_seconds=params.approval.reminder_every_seconds
                ),
                recovery_plan=params.recovery_plan,
                discovered=machine,
                failed_over_by_plan=self._failover,
                first_read=self._first_reads.pop(machine.item.name, None),
                awaits_plan_job=awaits_plan_job,
                plan_counts_its_read=self._approves_on_its_read,
                data_sync=params.data_sync,
                cutover_at=params.cutover_at,
                cutover=self._cutover,
                placement=self._placement(machine),
                decisions=Decisions(policy=self._gate.policy),
                chosen_point=RecoveryPointChoice(
                    chosen=choice.chosen,
                    latest=choice.latest,
                    data_loss_window_seconds=choice.data_loss_window_seconds,
                    asked_as=choice.asked_as,
                ),
            ),
            id=machine_workflow_id(params.vault.vault, machine.vm_name),
        )

        async def follow() -> None:
            try:
                self._completed[machine.item.name] = await handle
            except ChildWorkflowError as err:
                self._failed[machine.item.name] = cause(err)

        self._children[machine.item.name] = _Child(handle, asyncio.ensure_future(follow()))

    def _placement(self, machine: DiscoveredMachine) -> MachinePlan | None:
        report = self._readiness
        if report is None:
            return None
        return next((m for m in report.machines if m.item_name == machine.item.name), None)

    def _group_settled(self, names: list[str]) -> bool:
        return bool(self._failed) or all(
            n in self._verified or n in self._verified_by_plan_read for n in names
        )

    def _all_verified(self) -> bool:
        return bool(self._failed) or all(m.item_name in self._verified for m in self._machines)

    async def _stand_down_all(self, reason: str) -> None:
        order = StandDown(reason=reason)
        orders = [
            self._tell(name, MachineFailbackWorkflow.stand_down, order, "to stand down")
            for name in self._children
            if name not in self._completed and name not in self._failed
        ]
        await asyncio.gather(*orders)
        # Their ends (stood down, or failed) are part of what the plan reports.
        await asyncio.gather(*(child.task for child in self._children.values()))

    def _enter(self, phase: PlanPhase, note: str = "") -> None:
        self._phase = phase
        self._history.append(PlanPhaseChange(phase=phase, at=workflow.now(), note=note))
        workflow.logger.info("plan %s: %s %s", self._plan, phase, note)
        workflow.upsert_search_attributes([search_attributes.PHASE.value_set(phase)])
        workflow.set_current_details(self._waiting_for())

    def _remind(self, waited_seconds: float) -> None:
        self._reminders += 1
        text = (
            f"all {len(self._machines)} machines of {self._plan} are verified and have waited "
            f"{int(waited_seconds // 60)} min for one commit approval: run "
            "`failback approve ID --by NAME`"
        )
        workflow.logger.warning(text)
        workflow.set_current_details(text)

    def _waiting_for(self) -> str:
        if self._phase == PlanPhase.FAILING_OVER and self._current_group is not None:
            pending = [
                m.vm_name
                for m in self._machines
                if m.boot_group == self._current_group and m.item_name not in self._verified
            ]
            return (
                f"boot group {self._current_group} of {self._boot_groups}: waiting for "
                f"{', '.join(pending) or 'nothing'} to be verified on-premises"
            )
        if self._phase == PlanPhase.AWAITING_APPROVAL:
            return (
                f"waiting for one commit approval covering all {len(self._machines)} machines "
                f"of {self._plan}: run `failback approve ID --by NAME`"
            )
        if self._phase == PlanPhase.WAITING_FOR_REPLICATION:
            return (
                "waiting for the reprotect's initial replication to on-premises; its progress "
                "(percent, bytes) is the pending activity's last heartbeat"
            )
        if self._phase == PlanPhase.FINISHING:
            left = len(self._machines) - len(self._completed)
            return f"committing and re-protecting: {left} machines still running"
        return self._phase


@dataclass
class _Child:
    handle: ChildWorkflowHandle[Any, MachineFailbackResult]
    task: asyncio.Future[None]


def _passed(states: Mapping[str, VerificationRead]) -> dict[str, MachineVerified]:
    """The machines a read verified (R-rules of `evaluate_verification`), as their reports."""
    return {
        item: MachineVerified(item_name=item, verification=verification)
        for item, both in states.items()
        if (verification := evaluate_verification(both.onprem, both.azure, workflow.now())).passed
    }


class _PlanStopped(Exception):
    def __init__(self, reason: str, error_type: str = errors.FAILBACK_FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type
