"""The failback of one machine: failover -> verify -> approval -> commit -> agent -> re-protect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.asr import AsrActivities
    from activities.verification import VerificationActivities
    from domain import errors
    from domain.architectures import architecture_named, architecture_named_can_undo
    from domain.decisions import (
        AgentWaitVerdict,
        agent_wait_verdict,
        approval_refusal,
        describe_wait,
        evaluate_verification,
        plan_decision_waits,
        undo_refusal,
    )
    from domain.models import (
        AgentCheckInput,
        AgentRegistration,
        AgentWait,
        Approval,
        ApprovalRequest,
        AzureVmState,
        Cancellation,
        CancelRequest,
        Cutover,
        CutoverRequest,
        DiscoveredMachine,
        FailoverInput,
        FailoverThenRead,
        FailoverThenReadInput,
        HyperVFailback,
        ItemOperationInput,
        MachineFailbackInput,
        MachineFailbackResult,
        MachineStatus,
        MachineVerified,
        OnPremVmQuery,
        OnPremVmState,
        OperationResult,
        OperatorDecision,
        Phase,
        PhaseChange,
        PlanJobEnded,
        RecoveryPointChoice,
        RejectedApproval,
        ReplicationWaitResult,
        ReprotectToAzureInput,
        ResumeJobInput,
        SelectRecoveryPointInput,
        StandDown,
        Undo,
        UndoRequest,
        Verification,
        VerificationRead,
        VerificationReadInput,
    )
    from domain.phases import BEFORE_COMMIT, BEFORE_CUTOVER, TERMINAL, next_phase
    from domain.readiness import MachinePlan, ReadinessReport, group_member_alone
    from workflows import search_attributes
    from workflows.approval import wait_for_approval
    from workflows.authority import DecisionGate, who
    from workflows.calls import cause, read, write
    from workflows.steps import blocking_text, check_readiness, reprotect_to_onprem
    from workflows.visibility import SearchAttributeBatcher

Outcome = Literal["completed", "completed-without-reprotect", "undone"]


def where_it_runs(architecture: str) -> str:
    return "on its Hyper-V host" if architecture == "hyperv" else "in vCenter"


# The plan's signal, named here so that the machine workflow need not import the plan's.
PLAN_MACHINE_VERIFIED_SIGNAL = "machine_verified"


def verification_query(
    machine: DiscoveredMachine, placement: MachinePlan | None
) -> VerificationReadInput:
    """Where the VM is looked for: vCenter, or the Hyper-V host the failback put it on (its
    own, or for a VM ASR created again, the host readiness placed it on)."""
    platform = architecture_named(machine.architecture).onprem_platform
    host = machine.onprem_host
    # With VMM, the VMM server is asked wherever it placed the VM.
    alternate = placement is not None and placement.location == "alternate"
    if alternate and not machine.onprem_via_vmm:
        assert placement is not None
        host = placement.master_target_host or host
    return VerificationReadInput(
        onprem=OnPremVmQuery(
            vm_name=machine.vm_name,
            platform=platform,
            host=host if platform == "hyperv" else None,
            via_vmm=machine.onprem_via_vmm,
        ),
        azure=machine.azure_vm,
    )


def machine_workflow_id(vault: str, machine: str) -> str:
    """One failback per machine and vault at a time: the id is what stops a second one."""
    return f"failback-{vault}-{machine}"


@workflow.defn
class MachineFailbackWorkflow:
    @workflow.init
    def __init__(self, params: MachineFailbackInput) -> None:
        # From the input, before any signal is handled: a plan's decision may arrive with the
        # workflow's start, before `run` has begun (`plan_decision_waits`).
        self._asked: tuple[str | None, str | None] = (params.item_name, params.vm_name)
        self._plan: str | None = params.recovery_plan
        self._failed_over_by_plan = params.failed_over_by_plan is not None or params.awaits_plan_job
        self._phase = Phase.STARTING
        self._history: list[PhaseChange] = []
        self._discovered: DiscoveredMachine | None = None
        self._recovery_point: RecoveryPointChoice | None = None
        self._operations: list[OperationResult] = []
        self._verification: Verification | None = None
        self._approval: Approval | None = None
        self._rejected: list[RejectedApproval] = []
        self._agent_wait: AgentWait | None = None
        self._decision: OperatorDecision | None = None
        self._error: str | None = None
        self._agent_limit_seconds = 0.0
        self._failed_in = Phase.STARTING
        self._stand_down: StandDown | None = None
        self._reminders = 0
        # Re-protects to Azure that failed in this agent wait, ASR's words for each (R16).
        self._reprotect_failures: list[str] = []
        self._undo: Undo | None = None
        self._rejected_undos: list[RejectedApproval] = []
        self._readiness: ReadinessReport | None = None
        self._replication: ReplicationWaitResult | None = None
        self._committed_on_asr_clock: datetime | None = None
        self._attributes = SearchAttributeBatcher()
        # Hyper-V: the data-sync mode, the cut-over, when the Azure VM went down, the downtime.
        self._data_sync: str | None = None
        self._synchronized_at: datetime | None = None
        self._cutover: Cutover | None = None
        self._azure_down_at: datetime | None = None
        self._downtime_seconds: float | None = None
        self._placement: MachinePlan | None = None
        self._cancellation: Cancellation | None = None
        self._gate = DecisionGate(workflow.info().workflow_id)
        self._approvals: list[Approval] = []
        # FO-PLAN, started while the plan's job runs: the job's end, as the plan tells it.
        self._plan_job: PlanJobEnded | None = None
        # FO-PLAN: the plan's decisions that arrived before this machine's turn for them, with
        # when they arrived (`plan_decision_waits`); judged when the turn comes.
        self._waiting_approval: tuple[ApprovalRequest, datetime] | None = None
        self._waiting_undo: tuple[UndoRequest, datetime] | None = None
        # FO-PLAN: the first verification read is the plan's, and the plan said it counts it as
        # the machine's verification (same rule, same read) when it passes: no word needed.
        # Cleared when the machine reads again itself, so once verified it says whether the
        # plan already counts this machine verified.
        self._plan_counts_first_read = False

    @staticmethod
    def _plan_workflow_id() -> str | None:
        """The plan's workflow id (its attestations are signed for it, not for its name)."""
        parent = workflow.info().parent
        return parent.workflow_id if parent is not None else None

    @property
    def _vm_name(self) -> str:
        """The VM's name once found; until then the name the failback was started with."""
        if self._discovered is not None:
            return self._discovered.vm_name
        return self._asked[1] or self._asked[0] or ""

    # --- messages --------------------------------------------------------------------------

    def _from_plan(self, on_behalf_of_plan: str | None) -> bool:
        return self._plan is not None and on_behalf_of_plan == self._plan

    @workflow.signal
    def approve_commit(self, request: ApprovalRequest) -> None:
        if self._from_plan(request.on_behalf_of_plan) and plan_decision_waits(
            "approve", self._phase, self._failed_over_by_plan
        ):
            if self._waiting_approval is None:
                self._waiting_approval = (request, workflow.now())
                workflow.logger.info(
                    "the plan's approval waits for %s's own verification", self._vm_name
                )
            return
        self._judge_approval(request, workflow.now())

    def _judge_approval(self, request: ApprovalRequest, received_at: datetime) -> None:
        from_plan = self._from_plan(request.on_behalf_of_plan)
        identity, refusal = self._gate.check(
            request.attestation,
            "approve",
            self._plan_workflow_id() if from_plan else None,
            request.approved_by,
            received_at,
        )
        by = who(identity, request.approved_by)
        refusal = refusal or approval_refusal(self._phase)
        if self._plan and not from_plan:
            # One approval covers the whole plan: a machine of it is never committed alone.
            refusal = (
                f"{self._vm_name} is part of recovery plan {self._plan}: approve the plan's "
                "failback, which approves all its machines together"
            )
        now = workflow.now()
        if refusal is None and self._approval is None:
            approval = Approval(
                approved_by=by, comment=request.comment, approved_at=now, identity=identity
            )
            self._approvals.append(approval)
            if from_plan or self._gate.take_approval(identity, by):
                self._approval = approval
                workflow.logger.info("commit approved by %s", by)
            else:
                workflow.logger.info(
                    "approval from %s taken; %d more approver(s) needed",
                    by,
                    self._gate.approvals_missing(),
                )
            return
        self._refuse(by, refusal or "already approved", self._rejected)

    def _refuse(self, by: str, reason: str, into: list[RejectedApproval]) -> None:
        """A decision refused: nothing changes but the record of it (R28-R31 and the phase
        rules alike)."""
        into.append(
            RejectedApproval(
                approved_by=by, received_at=workflow.now(), phase=self._phase, reason=reason
            )
        )
        workflow.logger.warning("decision from %s refused: %s", by, reason)

    @workflow.signal
    def record_refused_decision(self, refused: RejectedApproval) -> None:
        """A decision the CLI refused before sending it (the failback was not in the phase for
        it): recorded here too, so that the history shows every refusal, wherever it was made."""
        self._rejected.append(refused.model_copy(update={"received_at": workflow.now()}))

    @workflow.signal
    def record_cancel(self, request: CancelRequest) -> None:
        """Who cancels (`failback cancel`), recorded before the cancel itself arrives: the
        history and the status say who stopped the failback, and why."""
        identity, refusal = self._gate.check(request.attestation, "cancel")
        by = who(identity, request.cancelled_by)
        if refusal is not None:
            self._refuse(by, f"cancel refused: {refusal}", self._rejected)
        elif self._cancellation is None:
            self._cancellation = Cancellation(
                cancelled_by=by, comment=request.comment, at=workflow.now(), identity=identity
            )

    @workflow.signal
    def undo_failback(self, request: UndoRequest) -> None:
        """Modernized: bring the Azure VM back instead of committing (failoverCancel). Taken
        only before the commit is approved; refused (and recorded) otherwise."""
        if self._from_plan(request.on_behalf_of_plan) and plan_decision_waits(
            "undo", self._phase, self._failed_over_by_plan
        ):
            if self._waiting_undo is None:
                self._waiting_undo = (request, workflow.now())
            return
        self._judge_undo(request, workflow.now())

    def _judge_undo(self, request: UndoRequest, received_at: datetime) -> None:
        architecture = self._discovered.architecture if self._discovered else "classic"
        refusal = undo_refusal(
            self._phase,
            self._approval is not None,
            architecture_named_can_undo(architecture),
            architecture,
        )
        from_plan = self._from_plan(request.on_behalf_of_plan)
        identity, denied = self._gate.check(
            request.attestation,
            "undo",
            self._plan_workflow_id() if from_plan else None,
            received_at=received_at,
        )
        by = who(identity, request.undone_by)
        refusal = denied or refusal
        if self._plan and not from_plan:
            refusal = (
                f"{self._vm_name} is part of recovery plan {self._plan}: undo the plan's "
                "failback, which undoes all its machines together"
            )
        if refusal is None and self._undo is None:
            self._undo = Undo(
                undone_by=by,
                comment=request.comment,
                requested_at=workflow.now(),
                identity=identity,
            )
            workflow.logger.info("undo requested by %s", by)
            return
        self._refuse(by, refusal or "already being undone", self._rejected_undos)

    @workflow.signal
    def cut_over(self, request: CutoverRequest) -> None:
        """Hyper-V for-downtime: resume the synchronized failover (shut the Azure VM down, send
        the last changes, start the VM on-premises). Taken once, before the cut-over began."""
        from_plan = self._plan is not None
        identity, refusal = self._gate.check(
            request.attestation, "cutover", self._plan_workflow_id() if from_plan else None
        )
        by = who(identity, request.cut_over_by)
        if refusal is not None:
            self._refuse(by, f"cut-over refused: {refusal}", self._rejected)
        elif self._cutover is None and self._phase in BEFORE_CUTOVER:
            self._cutover = Cutover(
                cut_over_by=by, comment=request.comment, at=workflow.now(), identity=identity
            )
            workflow.logger.info("cut-over given by %s", by)

    @workflow.signal
    def plan_job_ended(self, ended: PlanJobEnded) -> None:
        """FO-PLAN: the plan's failover job, which failed this machine over, ended."""
        if self._plan_job is None:
            self._plan_job = ended

    @workflow.signal
    def stand_down(self, order: StandDown) -> None:
        # An approval waiting for the machine's verification is its plan's approval all the
        # same: the machine commits with the others, as one that had taken it would.
        approved = self._approval is not None or self._waiting_approval is not None
        if self._phase in BEFORE_COMMIT and not approved:
            self._stand_down = order

    @workflow.signal
    def operator_decision(self, decision: OperatorDecision) -> None:
        identity, refusal = self._gate.check(decision.attestation, "agent")
        by = who(identity, decision.decided_by)
        if refusal is not None:
            self._refuse(by, f"agent decision refused: {refusal}", self._rejected)
        elif self._phase == Phase.AGENT_STUCK:
            self._decision = decision.model_copy(update={"decided_by": by})

    @workflow.query
    def status(self) -> MachineStatus:
        vm = self._vm_name
        waited = None
        if self._phase == Phase.WAITING_FOR_AGENT and self._agent_wait is not None:
            waited = (workflow.now() - self._agent_wait.started_at).total_seconds()
        return MachineStatus(
            item_name=self._discovered.item.name if self._discovered else self._asked[0],
            vm_name=self._discovered.vm_name if self._discovered else self._asked[1],
            phase=self._phase,
            waiting_for=describe_wait(self._phase, vm, waited, self._agent_limit_seconds),
            item=self._discovered.item if self._discovered else None,
            recovery_point=self._recovery_point,
            operations=list(self._operations),
            verification=self._verification,
            approval=self._approval,
            approvals=list(self._approvals),
            approvals_missing=self._gate.approvals_missing() if self._approval is None else 0,
            rejected_approvals=list(self._rejected),
            approval_reminders=self._reminders,
            agent_wait=self._agent_wait,
            readiness=self._readiness,
            replication=self._replication,
            undo=self._undo,
            rejected_undos=list(self._rejected_undos),
            architecture=self._discovered.architecture if self._discovered else None,
            cancellation=self._cancellation,
            data_sync=self._data_sync,  # type: ignore[arg-type]
            synchronized_at=self._synchronized_at,
            cutover=self._cutover,
            downtime_seconds=self._downtime_seconds,
            history=list(self._history),
            error=self._error,
        )

    # --- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: MachineFailbackInput) -> MachineFailbackResult:
        self._agent_limit_seconds = params.timings.agent_wait_timeout_seconds
        started_at = workflow.now()
        labels = [search_attributes.VAULT.value_set(params.vault.vault)]
        if params.recovery_plan:
            labels.append(search_attributes.RECOVERY_PLAN.value_set(params.recovery_plan))
        self._history.append(PhaseChange(phase=Phase.STARTING, at=started_at))
        try:
            await self._gate.load(
                params.vault, params.recovery_plan, params.decisions, self._plan is not None
            )
        except ApplicationError as refused:
            self._error = str(refused)
            self._attributes.set(labels)
            self._enter(Phase.FAILED, str(refused))
            raise
        # After the policy's read: sent with the first phase, in one upsert.
        self._attributes.set(labels)
        try:
            outcome = await self._fail_back(params)
        except (_FailbackStopped, ActivityError) as stop:
            if is_cancelled_exception(stop):
                self._error = "cancelled"
                self._enter(Phase.FAILED, "cancelled")
                raise
            reason = stop.reason if isinstance(stop, _FailbackStopped) else cause(stop)
            self._error = reason
            self._enter(Phase.FAILED, reason)
            raise ApplicationError(
                f"failback of {self._vm_name} failed in {self._failed_in}: {reason}",
                self.status(),
                type=errors.FAILBACK_FAILED,
                non_retryable=True,
            ) from None
        status = self.status()
        return MachineFailbackResult(
            item_name=status.item_name,
            vm_name=status.vm_name,
            outcome=outcome,
            summary=self._summary(outcome),
            started_at=started_at,
            finished_at=workflow.now(),
            status=status,
        )

    async def _fail_back(self, params: MachineFailbackInput) -> Outcome:
        timings = params.timings
        self._enter(Phase.DISCOVERING)
        machine = params.discovered or await self._discover(params)
        self._discovered = machine
        if machine.architecture == "hyperv":
            self._data_sync = params.data_sync

        if params.recovery_plan is None:
            alone = group_member_alone(
                machine.item.name, machine.vm_name, machine.replication_group
            )
            if alone is not None:
                raise _FailbackStopped(
                    f"{alone.rule}: {alone.found}; {alone.action}. Nothing was started"
                )
            await self._check_and_reprotect(params, machine)

        self._enter(Phase.FAILING_OVER)
        if self._waiting_undo is not None:
            self._judge_undo(*self._waiting_undo)
        first_read = await self._fail_over(params, machine)

        if self._undo is None:
            self._enter(Phase.VERIFYING)
            await self._verify(params, machine, first_read)
        if self._undo is None:
            self._enter(Phase.AWAITING_APPROVAL)
            if not self._plan_counts_first_read:
                await self._tell_plan_verified()
            if self._waiting_approval is not None:
                self._judge_approval(*self._waiting_approval)
            await self._await_approval(params)
        if self._undo is not None:
            return await self._undo_failback(params, machine)

        self._enter(
            Phase.COMMITTING, f"approved by {self._approval and self._approval.approved_by}"
        )
        commit = await self._operation(
            AsrActivities.commit_failover,
            ItemOperationInput(
                vault=params.vault,
                item=machine.item,
                architecture=machine.architecture,
                vm_name=machine.vm_name,
                not_before=workflow.now(),
                poll_interval_seconds=timings.job_poll_interval_seconds,
            ),
            params,
        )
        committed_at = commit.ended_at or workflow.now()
        self._committed_on_asr_clock = commit.ended_at
        if not architecture_named(machine.architecture).waits_for_agent:
            return await self._reprotect_at_once(params, machine)
        return await self._reprotect_when_agent_registers(params, machine, committed_at)

    async def _reprotect_at_once(
        self, params: MachineFailbackInput, machine: DiscoveredMachine
    ) -> Outcome:
        """Hyper-V: no agent registers after its failback; reverse replication follows the
        commit (sent once, awaited)."""
        self._enter(Phase.REPROTECTING)
        await self._operation(
            AsrActivities.reprotect_to_azure,
            self._reprotect_input(params, machine, []),
            params,
        )
        self._enter(Phase.COMPLETED)
        return "completed"

    async def _check_and_reprotect(
        self, params: MachineFailbackInput, machine: DiscoveredMachine
    ) -> None:
        """On its own (a plan does this for its machines): every readiness rule of the
        machine's architecture, then, if it is still failed over to Azure, the reprotect toward
        on-premises and the wait for its initial replication."""
        self._enter(Phase.CHECKING)
        self._readiness, choices, _ = await check_readiness(
            params.vault,
            [machine],
            None,
            params.reprotect_to_onprem,
            params.reprotect_to_azure.log_storage_account_id,
        )
        if self._readiness.blocking:
            raise _FailbackStopped(blocking_text(self._readiness))
        if not choices:
            return
        self._enter(Phase.REPROTECTING_TO_ONPREM)
        reprotects, self._replication = await reprotect_to_onprem(
            params.vault,
            [machine],
            choices,
            params.timings,
            lambda: self._enter(Phase.WAITING_FOR_REPLICATION),
        )
        self._operations.extend(reprotects)

    async def _fail_over(
        self, params: MachineFailbackInput, machine: DiscoveredMachine
    ) -> VerificationRead | None:
        """The machine's failover, or the plan's that already did it (FO-PLAN); what the
        failover's activity read of both sides as its job ended, if it read."""
        choice = params.chosen_point or await read(
            AsrActivities.select_recovery_point,
            SelectRecoveryPointInput(
                vault=params.vault, item=machine.item, architecture=machine.architecture
            ),
        )
        self._recovery_point = choice
        by_plan, first_read = params.failed_over_by_plan, params.first_read
        if params.awaits_plan_job:
            await workflow.wait_condition(
                lambda: self._plan_job is not None or self._stand_down is not None
            )
            self._check_stand_down()
            assert self._plan_job is not None
            by_plan, first_read = self._plan_job.operation, self._plan_job.first_read
        if by_plan is not None:
            self._operations.append(by_plan)
            # Where readiness placed it is where the plan's job put it (Hyper-V).
            self._placement = params.placement
            # Said by the plan (its input, or its signal): a plan that began before the patch
            # plan-approves-on-its-read waits for the machine's word even so.
            self._plan_counts_first_read = first_read is not None and (
                params.plan_counts_its_read
                or (self._plan_job is not None and self._plan_job.plan_counts_its_read)
            )
            return first_read
        hyperv = self._hyperv_failback(params, machine)
        failover = FailoverInput(
            vault=params.vault,
            item=machine.item,
            architecture=machine.architecture,
            vm_name=machine.vm_name,
            not_before=workflow.now(),
            recovery_point_type=choice.asked_as,
            recovery_point_id=choice.chosen.id if choice.asked_as == "Custom" else None,
            poll_interval_seconds=params.timings.job_poll_interval_seconds,
            hyperv=hyperv,
            until_suspended=hyperv is not None and hyperv.data_sync == "for-downtime",
        )
        if hyperv is not None and hyperv.data_sync == "for-synchronization":
            # ASR shuts the Azure VM down at once: the downtime starts with the failover.
            self._azure_down_at = workflow.now()
        # The failover and the first verification read as one step (one activity task and
        # workflow task fewer per machine in a boot group's burst: bench/RESULTS.md).
        done: FailoverThenRead = await self._operation(
            VerificationActivities.fail_over_then_read,
            FailoverThenReadInput(
                failover=failover, verification=self._verification_query(machine)
            ),
            params,
            operation_of=lambda result: result.operation,
        )
        if done.operation.state == "Suspended":
            await self._cut_over(params, machine, done.operation)
            return None
        return done.state

    def _hyperv_failback(
        self, params: MachineFailbackInput, machine: DiscoveredMachine
    ) -> HyperVFailback | None:
        """Hyper-V's choices for its failover: the data-sync mode, and where the VM comes up
        (readiness's placement: a VM that is gone is created on the host it named)."""
        if machine.architecture != "hyperv":
            return None
        placement = params.placement or next(
            (m for m in (self._readiness.machines if self._readiness else [])), None
        )
        self._placement = placement
        alternate = placement is not None and placement.location == "alternate"
        # A site without VMM names the host to create the VM on; VMM places it itself.
        named_host = alternate and placement is not None and not machine.onprem_via_vmm
        return HyperVFailback(
            data_sync=params.data_sync,
            create_vm_if_not_found=alternate,
            provider_id_for_alternate=placement.master_target_id
            if named_host and placement
            else None,
        )

    async def _cut_over(
        self, params: MachineFailbackInput, machine: DiscoveredMachine, job: OperationResult
    ) -> None:
        """Hyper-V for-downtime: ASR synchronized while the Azure VM ran and suspended its job.
        Hold there, durably, until the cut-over: the operator's signal, the plan's, or the time
        given at start; then resume the job (sent once) and await its end."""
        self._synchronized_at = workflow.now()
        self._enter(Phase.AWAITING_CUTOVER, f"ASR job {job.job_id} suspended after its sync")
        if self._cutover is None and params.cutover is not None:
            self._cutover = params.cutover
        if self._cutover is None:
            timeout = None
            if params.cutover_at is not None:
                timeout = max(timedelta(0), params.cutover_at - workflow.now())
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._cutover is not None or self._stand_down is not None,
                    timeout=timeout,
                )
            self._check_stand_down()
            if self._cutover is None:
                self._cutover = Cutover(
                    cut_over_by="the cut-over time given at start",
                    at=workflow.now(),
                )
        self._enter(Phase.CUTTING_OVER, f"by {self._cutover.cut_over_by}")
        self._azure_down_at = workflow.now()
        await self._operation(
            AsrActivities.resume_failover,
            ResumeJobInput(
                vault=params.vault,
                item=machine.item,
                architecture=machine.architecture,
                vm_name=machine.vm_name,
                not_before=job.started_at or workflow.now(),
                poll_interval_seconds=params.timings.job_poll_interval_seconds,
                job_id=job.job_id or "",
                comment=f"cut-over by {self._cutover.cut_over_by}",
            ),
            params,
        )

    async def _undo_failback(
        self, params: MachineFailbackInput, machine: DiscoveredMachine
    ) -> Outcome:
        """failoverCancel, awaited: the Azure VM runs again and replication toward on-premises
        resumes. Nothing was committed."""
        assert self._undo is not None
        self._enter(Phase.UNDOING, f"by {self._undo.undone_by}: {self._undo.comment}".strip())
        await self._operation(
            AsrActivities.cancel_failover,
            ItemOperationInput(
                vault=params.vault,
                item=machine.item,
                architecture=machine.architecture,
                vm_name=machine.vm_name,
                not_before=workflow.now(),
                poll_interval_seconds=params.timings.job_poll_interval_seconds,
            ),
            params,
        )
        self._enter(Phase.UNDONE, f"undone by {self._undo.undone_by}")
        return "undone"

    def _check_stand_down(self) -> None:
        if self._stand_down is not None:
            raise _FailbackStopped(
                f"stopped before commit: {self._stand_down.reason}. Nothing was committed: the "
                "Azure VM is intact"
            )

    async def _await_approval(self, params: MachineFailbackInput) -> None:
        """Wait for a human for as long as it takes, reminding visibly; a plan's stand-down ends
        the wait without commit; an opt-in policy may approve after a set time."""
        self._approval = await wait_for_approval(
            lambda: self._approval,
            lambda: self._stand_down is not None or self._undo is not None,
            params.approval,
            self._remind,
            auto_undo=self._auto_undo,
        )
        if self._approval is None and self._undo is None:
            self._check_stand_down()

    def _auto_undo(self, waited_seconds: float) -> None:
        """The opt-in auto-undo policy: nobody approved within the set time."""
        if self._undo is None:
            self._undo = Undo(
                undone_by=f"auto-undo policy ({waited_seconds / 60:g} min)",
                comment="no human approval within the configured time; the operator opted in "
                "to auto-undo when starting the failback",
                requested_at=workflow.now(),
            )

    def _remind(self, waited_seconds: float) -> None:
        self._reminders += 1
        vm = self._vm_name
        text = (
            f"{vm} is verified and has waited {int(waited_seconds // 60)} min for a commit "
            "approval: run `failback approve ID --by NAME`"
        )
        workflow.logger.warning(text)
        workflow.set_current_details(text)

    async def _tell_plan_verified(self) -> None:
        parent = workflow.info().parent
        if parent is None or self._verification is None or self._discovered is None:
            return
        # The plan knows its machines by protected item name.
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(
            PLAN_MACHINE_VERIFIED_SIGNAL,
            MachineVerified(item_name=self._discovered.item.name, verification=self._verification),
        )

    async def _discover(self, params: MachineFailbackInput) -> DiscoveredMachine:
        return await read(
            AsrActivities.discover_machine,
            params.discovery(),
        )

    async def _verify(
        self,
        params: MachineFailbackInput,
        machine: DiscoveredMachine,
        first_read: VerificationRead | None = None,
    ) -> None:
        """`first_read`: what the failover's activity read as its job ended."""
        timings = params.timings
        deadline = workflow.now() + timedelta(seconds=timings.verify_timeout_seconds)
        while True:
            self._check_stand_down()
            if first_read is not None:
                onprem, azure = first_read.onprem, first_read.azure
                first_read = None
            else:
                self._plan_counts_first_read = False
                onprem, azure = await self._read_both_sides(machine)
            self._verification = evaluate_verification(onprem, azure, workflow.now())
            if self._verification.passed:
                if self._azure_down_at is not None:
                    self._downtime_seconds = (
                        self._verification.checked_at - self._azure_down_at
                    ).total_seconds()
                return
            if workflow.now() >= deadline:
                raise _FailbackStopped(
                    "verification failed after "
                    f"{int(timings.verify_timeout_seconds)} s: "
                    + "; ".join(self._verification.problems)
                    + ". Nothing was committed: the Azure VM is intact; check the on-premises VM "
                    f"{where_it_runs(machine.architecture)} before starting again"
                )
            # A durable sleep that a plan's stand-down order or an undo cuts short.
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._stand_down is not None or self._undo is not None,
                    timeout=timedelta(seconds=timings.verify_poll_interval_seconds),
                )
            if self._undo is not None:
                return

    def _verification_query(self, machine: DiscoveredMachine) -> VerificationReadInput:
        return verification_query(machine, self._placement)

    async def _read_both_sides(
        self, machine: DiscoveredMachine
    ) -> tuple[OnPremVmState, AzureVmState]:
        query = self._verification_query(machine)
        try:
            both: VerificationRead = await read(
                VerificationActivities.read_verification_state,
                query,
                summary=(
                    f"is {machine.vm_name} powered on in vCenter, with its guest up, and Azure VM "
                    f"{machine.azure_vm.name} off?"
                ),
            )
        except ActivityError as err:
            # Each side's own read errors come back as unreadable states; this is the activity
            # failing as a whole (its worker lost, its retries spent): look again later.
            reason = cause(err)
            return (
                OnPremVmState.unreadable(machine.vm_name, reason),
                AzureVmState.unreadable(machine.azure_vm, reason),
            )
        return both.onprem, both.azure

    async def _reprotect_when_agent_registers(
        self, params: MachineFailbackInput, machine: DiscoveredMachine, committed_at: datetime
    ) -> Outcome:
        timings = params.timings
        self._enter(Phase.WAITING_FOR_AGENT)
        self._agent_wait = AgentWait(started_at=workflow.now(), checks=0)
        failed_reprotect_jobs: list[str] = []
        while True:
            waited = (workflow.now() - self._agent_wait.started_at).total_seconds()
            registration = await read(
                AsrActivities.check_agent_registered,
                AgentCheckInput(vault=params.vault, item=machine.item, committed_at=committed_at),
                summary=f"has the mobility agent on {machine.vm_name} registered? "
                f"({int(waited // 60)} of {int(timings.agent_wait_timeout_seconds // 60)} min)",
            )
            wait = self._agent_wait
            self._agent_wait = wait.model_copy(update={"checks": wait.checks + 1})
            workflow.set_current_details(
                describe_wait(
                    Phase.WAITING_FOR_AGENT,
                    machine.vm_name,
                    (workflow.now() - wait.started_at).total_seconds(),
                    timings.agent_wait_timeout_seconds,
                )
            )
            verdict = agent_wait_verdict(
                self._agent_wait,
                workflow.now(),
                registration.registered,
                timings.agent_wait_timeout_seconds,
                len(self._reprotect_failures),
            )
            if verdict == AgentWaitVerdict.REGISTERED:
                done = await self._try_reprotect(
                    params, machine, registration, failed_reprotect_jobs
                )
                if done:
                    return "completed"
                self._enter(Phase.WAITING_FOR_AGENT, self._reprotect_failures[-1])
            elif verdict == AgentWaitVerdict.STUCK:
                decision = await self._stuck(timings.agent_wait_timeout_seconds)
                if decision.action == "finish-without-reprotect":
                    self._enter(
                        Phase.COMPLETED_WITHOUT_REPROTECT,
                        f"{decision.decided_by}: {decision.comment}",
                    )
                    return "completed-without-reprotect"
                self._enter(Phase.WAITING_FOR_AGENT, f"{decision.decided_by}: keep waiting")
                self._agent_wait = AgentWait(started_at=workflow.now(), checks=0)
                self._reprotect_failures = []
                continue
            await workflow.sleep(timedelta(seconds=timings.agent_poll_interval_seconds))

    async def _try_reprotect(
        self,
        params: MachineFailbackInput,
        machine: DiscoveredMachine,
        registration: AgentRegistration,
        failed_jobs: list[str],
    ) -> bool:
        assert self._agent_wait is not None
        self._agent_wait = self._agent_wait.model_copy(
            update={"registered_at": registration.last_heartbeat or workflow.now()}
        )
        self._enter(Phase.REPROTECTING)
        try:
            await self._operation(
                AsrActivities.reprotect_to_azure,
                self._reprotect_input(params, machine, failed_jobs),
                params,
                agent_may_be_missing=True,
            )
        except _ReprotectNotYet as failed:
            self._reprotect_failures.append(failed.reason)
            if failed.job_id:
                failed_jobs.append(failed.job_id)
            self._agent_wait = self._agent_wait.model_copy(update={"registered_at": None})
            return False
        self._enter(Phase.COMPLETED)
        return True

    def _reprotect_input(
        self, params: MachineFailbackInput, machine: DiscoveredMachine, failed_jobs: list[str]
    ) -> ReprotectToAzureInput:
        return ReprotectToAzureInput(
            vault=params.vault,
            item=machine.item,
            architecture=machine.architecture,
            vm_name=machine.vm_name,
            not_before=workflow.now(),
            exclude_job_ids=list(failed_jobs),
            after_asr_time=self._committed_on_asr_clock,
            poll_interval_seconds=params.timings.job_poll_interval_seconds,
            options=machine.reprotect_to_azure,
        )

    async def _stuck(self, limit_seconds: float) -> OperatorDecision:
        assert self._agent_wait is not None
        self._agent_wait = self._agent_wait.model_copy(update={"stuck_since": workflow.now()})
        minutes = int(limit_seconds // 60)
        self._enter(
            Phase.AGENT_STUCK,
            f"re-protect to Azure failed {len(self._reprotect_failures)} time(s) in {minutes} "
            f"min; the last: {self._reprotect_failures[-1]}"
            if self._reprotect_failures
            else f"the agent did not register within {minutes} min",
        )
        self._decision = None
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        return self._decision

    # --- helpers ---------------------------------------------------------------------------

    async def _operation(
        self,
        activity_method: Any,
        request: ItemOperationInput | FailoverThenReadInput,
        params: MachineFailbackInput,
        agent_may_be_missing: bool = False,
        operation_of: Callable[[Any], OperationResult] = lambda result: result,
    ) -> Any:
        try:
            result = await write(
                activity_method,
                request,
                params.timings,
                # What the Web UI lists for this step.
                summary=f"ASR {activity_method.__name__.replace('_', ' ')}: {request.item.name}",
            )
        except ActivityError as err:
            inner = err.cause
            if (
                agent_may_be_missing
                and isinstance(inner, ApplicationError)
                and inner.type in (errors.AGENT_NOT_REGISTERED, errors.REPROTECT_TO_AZURE_FAILED)
            ):
                job_id = str(inner.details[0]) if inner.details else ""
                raise _ReprotectNotYet(job_id, inner.message) from None
            raise _FailbackStopped(cause(err)) from None
        self._operations.append(operation_of(result))
        return result

    def _enter(self, phase: Phase, note: str = "") -> None:
        if phase == Phase.FAILED:
            self._failed_in = self._phase
        if phase != self._phase:
            self._phase = next_phase(self._phase, phase)
        self._history.append(PhaseChange(phase=phase, at=workflow.now(), note=note))
        workflow.logger.info("phase %s %s", phase, note)
        # What the Web UI shows: the phase to filter on, and in words what it waits for.
        self._attributes.set(
            [search_attributes.PHASE.value_set(phase.value)], at_once=phase in TERMINAL
        )
        vm = self._vm_name
        workflow.set_current_details(describe_wait(phase, vm))

    def _summary(self, outcome: Outcome) -> str:
        vm = self._vm_name
        choice = self._recovery_point
        if choice is not None and choice.asked_as == "CrashConsistent":
            point = "a crash-consistent point made at the failover"
        elif choice is not None and choice.asked_as == "AzureVmDisks":
            point = "the Azure VM's disks as they were when it shut down"
        else:
            point = f"its recovery point of {choice.chosen.time.isoformat() if choice else '?'}"
        approver = self._approval.approved_by if self._approval else "?"
        if outcome == "undone":
            undone_by = self._undo.undone_by if self._undo else "?"
            return (
                f"{vm}'s failback was undone by {undone_by} before its commit: the Azure VM runs "
                "again and replicates back to on-premises; nothing was committed"
            )
        if outcome == "completed":
            return (
                f"{vm} failed back to {point}, commit approved by {approver}, and is "
                "re-protected to Azure"
            )
        return (
            f"{vm} failed back to {point}, commit approved by {approver}; re-protect to Azure "
            "was NOT done (the mobility agent never registered)"
        )


class _FailbackStopped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ReprotectNotYet(Exception):
    """A re-protect to Azure failed while the agent may still be registering (R16)."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(reason)
        self.job_id = job_id
        self.reason = reason


__all__ = ["MachineFailbackWorkflow", "machine_workflow_id"]
