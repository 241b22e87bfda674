"""What the CLI does, as functions the demo and the tests call too."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.architectures import architecture_named_can_undo
from domain.authority import Attestation
from domain.decisions import (
    approval_refusal,
    cutover_refusal,
    refusal_by_phase_alone,
    undo_refusal,
)
from domain.models import (
    Approval,
    ApprovalRequest,
    CancelRequest,
    CutoverRequest,
    MachineFailbackInput,
    MachineFailbackResult,
    MachineStatus,
    OperatorDecision,
    Phase,
    PlanFailbackInput,
    PlanFailbackResult,
    PlanMachine,
    PlanStatus,
    RejectedApproval,
    ReprotectToAzureOptions,
    ReprotectToOnPremOptions,
    Timings,
    Undo,
    UndoRequest,
    VaultRef,
)
from starter.report import (
    NOT_STARTED,
    FailbackView,
    MachineView,
)
from worker.settings import Settings
from worker.task_queue import polling_identities
from workflows import search_attributes
from workflows.machine import MachineFailbackWorkflow, machine_workflow_id
from workflows.plan import PlanFailbackWorkflow, plan_workflow_id


class CommandError(RuntimeError):
    """A refusal the CLI prints as it is, with what to do next, and exits non-zero."""


class StatusUnanswered(CommandError):
    """The workflow's worker did not answer its status query: busy or replaying, not gone."""


def timings_from(settings: Settings) -> Timings:
    overrides = {
        "job_poll_interval_seconds": settings.job_poll_seconds,
        "verify_poll_interval_seconds": settings.verify_poll_seconds,
        "verify_timeout_seconds": settings.verify_timeout_seconds,
        "agent_poll_interval_seconds": settings.agent_poll_seconds,
        "agent_wait_timeout_seconds": settings.agent_wait_timeout_seconds,
        "replication_poll_interval_seconds": settings.replication_poll_seconds,
        "replication_timeout_seconds": settings.replication_timeout_seconds,
        "machines_start_into_plan_job_seconds": settings.machines_start_into_plan_job_seconds,
    }
    return Timings(**{k: v for k, v in overrides.items() if v is not None})


def _shared_input(
    settings: Settings, process_server_id: str | None = None, policy_id: str | None = None
) -> dict[str, Any]:
    """What a machine's and a plan's failback input both take from the settings."""
    settings.require("azure_resource_group", "azure_vault", "azure_recovery_resource_group")
    assert settings.azure_resource_group and settings.azure_vault
    assert settings.azure_recovery_resource_group
    return {
        "vault": VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault),
        "recovery_resource_group": settings.azure_recovery_resource_group,
        "reprotect_to_azure": ReprotectToAzureOptions(
            process_server_id=process_server_id,
            policy_id=policy_id or settings.azure_reprotect_policy_id,
            log_storage_account_id=settings.azure_log_storage_account_id,
        ),
        "timings": timings_from(settings),
    }


def failback_input(
    settings: Settings,
    item_name: str | None,
    vm_name: str | None,
    azure_vm_name: str | None = None,
    process_server_id: str | None = None,
    policy_id: str | None = None,
) -> MachineFailbackInput:
    return MachineFailbackInput(
        item_name=item_name,
        vm_name=vm_name,
        azure_vm_name=azure_vm_name,
        reprotect_to_onprem=ReprotectToOnPremOptions(
            process_server_id=settings.azure_process_server_id
        ),
        **_shared_input(settings, process_server_id, policy_id),
    )


async def start_failback(
    client: Client, settings: Settings, params: MachineFailbackInput
) -> WorkflowHandle[MachineFailbackWorkflow, MachineFailbackResult]:
    workflow_id = machine_workflow_id(params.vault.vault, params.given_name)
    return await _start_once(
        client, settings, MachineFailbackWorkflow.run, params, workflow_id, params.given_name
    )


async def _start_once(
    client: Client, settings: Settings, run: Any, params: Any, workflow_id: str, what: str
) -> Any:
    """One failback per id: a running or completed one is never started a second time (only a
    failed one may be started again). With decisions signed in, the starter's identity goes
    into the input, signed by the worker's desk (R28, and R30's four-eyes)."""
    from starter.identity import attest

    started_by = await attest(settings, workflow_id, "start")
    if started_by is not None:
        params = params.model_copy(
            update={"decisions": params.decisions.model_copy(update={"started_by": started_by})}
        )
    try:
        return await client.start_workflow(
            run,
            params,
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError as err:
        raise CommandError(
            f"a failback of {what} already exists ({workflow_id}); watch it with "
            f"`failback status {workflow_id}`. A completed failback is not started again."
        ) from err


# A status query only reads. One the worker failed to answer is asked again: at 10,000 machines
# on 2 cores a worker replaying a plan's long history outran the SDK's 2 s deadlock limit
# (bench/RESULTS.md), and the same query a moment later was answered.
QUERY_ATTEMPTS = 3
QUERY_RETRY_SECONDS = 2.0


async def ask_status(
    handle: WorkflowHandle[Any, Any], query: Any, rpc_timeout: timedelta | None = None
) -> Any:
    for attempt in range(1, QUERY_ATTEMPTS + 1):
        try:
            return await handle.query(query, rpc_timeout=rpc_timeout)
        except WorkflowQueryFailedError as err:
            if attempt == QUERY_ATTEMPTS:
                raise StatusUnanswered(
                    f"the status query of {handle.id} failed {QUERY_ATTEMPTS} times: {err}. "
                    "Either the worker is short of CPU (it replays a long history past the SDK's "
                    "deadlock limit: give it a core, more workers or a larger "
                    "FAILBACK_MAX_CACHED_WORKFLOWS) or it runs another version than this CLI; "
                    "the worker's log says which. Try again when it is fixed"
                ) from err
            await asyncio.sleep(QUERY_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")


async def machine_status(
    client: Client, workflow_id: str, rpc_timeout: timedelta | None = None
) -> MachineStatus:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await ask_status(handle, MachineFailbackWorkflow.status, rpc_timeout)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no failback with id {workflow_id}; `failback start` prints the id"
            ) from err
        raise


def approval_precheck(workflow_id: str, execution: str, approval: Approval | None) -> str | None:
    """Why the CLI will not send an approval, or None. The workflow checks again itself; this is
    what lets the operator know now, instead of finding a refusal in the history later."""
    if execution != "running":
        return (
            f"not approved: the failback {workflow_id} has already ended ({execution}); there is "
            f"nothing left to approve. `failback report {workflow_id}` shows what happened"
        )
    if approval is not None:
        comment = f" ({approval.comment})" if approval.comment else ""
        return (
            f"not approved: the commit was already approved by {approval.approved_by} at "
            f"{approval.approved_at.isoformat(timespec='seconds')}{comment}; one approval is "
            "enough"
        )
    return None


_InputT = TypeVar("_InputT", MachineFailbackInput, PlanFailbackInput)


def with_choices(
    params: _InputT,
    master_target: str | None = None,
    datastore: str | None = None,
    data_sync: str = "for-synchronization",
    cutover_at: datetime | None = None,
) -> _InputT:
    """The operator's choices of `failback start`: where the machines go back (overriding
    readiness's choice), and Hyper-V's data-sync mode and cut-over time."""
    target = params.reprotect_to_onprem.model_copy(
        update={
            k: v
            for k, v in (("master_target_id", master_target), ("datastore_name", datastore))
            if v
        }
    )
    if cutover_at is not None and cutover_at.tzinfo is None:
        raise CommandError("--cutover-at needs a UTC offset, e.g. 2026-12-05T02:00+00:00")
    return params.model_copy(
        update={"reprotect_to_onprem": target, "data_sync": data_sync, "cutover_at": cutover_at}
    )


async def cut_over(
    client: Client,
    workflow_id: str,
    cut_over_by: str,
    comment: str,
    attestation: Attestation | None = None,
) -> str:
    """Hyper-V for-downtime: tell a failback (a machine's or a plan's) to cut over. Refused
    unless it is one that waits for a cut-over and has not begun it."""
    cut_over_by = attestation.identity.name if attestation is not None else cut_over_by
    if not cut_over_by.strip():
        raise CommandError("--by must name who gives the cut-over")
    description = await _describe(client, workflow_id)
    if description.parent_id:
        raise CommandError(
            f"not cut over: {workflow_id} is one machine of the recovery plan's failback "
            f"{description.parent_id}; cut the plan over as a whole: `failback cutover "
            f"{description.parent_id} --by NAME`"
        )
    execution = execution_name(description.status)
    if execution != "running":
        raise CommandError(f"not cut over: the failback {workflow_id} has ended ({execution})")
    handle = client.get_workflow_handle(workflow_id)
    request = CutoverRequest(cut_over_by=cut_over_by, comment=comment, attestation=attestation)
    if description.workflow_type == "PlanFailbackWorkflow":
        plan = await _status_unless_busy(plan_status(client, workflow_id, QUERY_TIMEOUT))
        if plan is None:
            return await _cut_over_while_busy(
                handle, description, request, PlanFailbackWorkflow.cut_over
            )
        if plan.cutover is not None:
            raise CommandError(f"not cut over: {plan.cutover.cut_over_by} already gave it")
        await handle.signal(PlanFailbackWorkflow.cut_over, request)
        return f"cut-over of recovery plan {plan.recovery_plan} given by {cut_over_by}"
    status = await _status_unless_busy(machine_status(client, workflow_id, QUERY_TIMEOUT))
    if status is None:
        return await _cut_over_while_busy(
            handle, description, request, MachineFailbackWorkflow.cut_over
        )
    refusal = cutover_refusal(status)
    if refusal is not None:
        raise CommandError(f"not cut over: {refusal}")
    await handle.signal(MachineFailbackWorkflow.cut_over, request)
    return f"cut-over of {status.vm_name or workflow_id} given by {cut_over_by}"


async def _cut_over_while_busy(
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    request: CutoverRequest,
    signal: Any,
) -> str:
    refusal = _refusal_while_busy(handle, description, "cutover")
    if refusal is not None:
        raise CommandError(f"not cut over: {refusal}")
    await handle.signal(signal, request)
    return _sent_while_busy(f"cut-over of {handle.id} by {request.cut_over_by}", handle.id)


@dataclass(frozen=True)
class ListedFailback:
    """One failback as Temporal's visibility lists it (answered by the server, not a worker)."""

    workflow_id: str
    kind: str
    execution: str
    phase: str
    recovery_plan: str
    vault: str
    started_at: datetime | None
    closed_at: datetime | None


def list_query(phase: str | None, plan: str | None, vault: str | None, running: bool) -> str:
    """The visibility query of `failback list`: failbacks (plans and machines), filtered by the
    search attributes every failback keeps (workflows/search_attributes.py)."""
    clauses = ["WorkflowType IN ('PlanFailbackWorkflow', 'MachineFailbackWorkflow')"]
    for name, value in (("FailbackPhase", phase), ("RecoveryPlan", plan), ("Vault", vault)):
        if value is not None:
            if not value.strip() or "'" in value:
                raise CommandError(f"{value!r} is not a {name} to filter on")
            clauses.append(f"{name} = '{value}'")
    if running:
        clauses.append("ExecutionStatus = 'Running'")
    # No ORDER BY: SQL visibility (the dev server's, a self-hosted PostgreSQL's) refuses it; its
    # own order is the running first, then the most recently closed. list_failbacks sorts.
    return " AND ".join(clauses)


def _attribute(attributes: Any, key: Any) -> str:
    return str(attributes.get(key) or "")


async def list_failbacks(client: Client, query: str, limit: int) -> list[ListedFailback]:
    found: list[ListedFailback] = []
    async for execution in client.list_workflows(query, limit=limit):
        attributes = execution.typed_search_attributes
        value = functools.partial(_attribute, attributes)
        found.append(
            ListedFailback(
                workflow_id=execution.id,
                kind="plan" if execution.workflow_type == "PlanFailbackWorkflow" else "machine",
                execution=execution_name(execution.status),
                phase=value(search_attributes.PHASE),
                recovery_plan=value(search_attributes.RECOVERY_PLAN),
                vault=value(search_attributes.VAULT),
                started_at=execution.start_time,
                closed_at=execution.close_time,
            )
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda f: f.started_at or oldest, reverse=True)


async def cancel(
    client: Client,
    workflow_id: str,
    cancelled_by: str,
    comment: str,
    attestation: Attestation | None = None,
) -> str:
    """Cancel a failback before its commit: its machines stand down, nothing is committed, the
    Azure VMs stay. Refused once the commit is approved (the Azure VMs are then being deleted)."""
    cancelled_by = attestation.identity.name if attestation is not None else cancelled_by
    if not cancelled_by.strip():
        raise CommandError("--by must name who cancels the failback")
    description = await _describe(client, workflow_id)
    if description.parent_id:
        raise CommandError(
            f"not cancelled: {workflow_id} is one machine of the recovery plan's failback "
            f"{description.parent_id}; cancel the plan as a whole: `failback cancel "
            f"{description.parent_id} --by NAME`"
        )
    execution = execution_name(description.status)
    if execution != "running":
        raise CommandError(f"not cancelled: the failback {workflow_id} has ended ({execution})")
    is_plan = description.workflow_type == "PlanFailbackWorkflow"
    status: PlanStatus | MachineStatus = (
        await plan_status(client, workflow_id)
        if is_plan
        else await machine_status(client, workflow_id)
    )
    handle = client.get_workflow_handle(workflow_id)
    if status.approval is not None:
        await _refused(
            handle,
            cancelled_by,
            f"not cancelled: the commit was approved by {status.approval.approved_by} at "
            f"{status.approval.approved_at.isoformat(timespec='seconds')}; the commit deletes "
            "the Azure VMs, and a committed failback cannot be cancelled or undone",
        )
    request = CancelRequest(cancelled_by=cancelled_by, comment=comment, attestation=attestation)
    signal = (
        PlanFailbackWorkflow.record_cancel if is_plan else MachineFailbackWorkflow.record_cancel
    )
    await handle.signal(signal, request)
    if attestation is not None or status.cancellation is None:
        # The workflow records who cancels, or refuses them (R28): only a recorded cancel is
        # followed by the cancel itself.
        read_status = functools.partial(plan_status if is_plan else machine_status, client)
        refused_before = len(status.rejected_approvals)
        deadline = asyncio.get_running_loop().time() + DECISION_ANSWER_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            now = await read_status(workflow_id)
            if len(now.rejected_approvals) > refused_before:
                raise CommandError(f"not cancelled: {now.rejected_approvals[-1].reason}")
            if now.cancellation is not None:
                break
            await asyncio.sleep(0.25)
    await handle.cancel()
    said = (
        f"cancel of {workflow_id} sent by {cancelled_by}: its machines stand down, nothing is "
        "committed and the Azure VMs stay"
    )
    machines = [status] if isinstance(status, MachineStatus) else await _members(client, status)
    if any(m.architecture == "hyperv" for m in machines):
        said += (
            ". ASR's Hyper-V jobs are not cancelled (cancelling one during data synchronization "
            "leaves the on-premises VM corrupt): a running one finishes, a suspended one waits; "
            "resume or finish them from the vault"
        )
    return said


async def _members(client: Client, plan: PlanStatus) -> list[MachineStatus]:
    found = []
    for machine in plan.machines:
        with contextlib.suppress(CommandError, RPCError, RuntimeError):
            found.append(await machine_status(client, machine.workflow_id))
    return found


async def approve(
    client: Client,
    workflow_id: str,
    approved_by: str,
    comment: str,
    attestation: Attestation | None = None,
) -> str:
    """Send the approval and return what it covers, in words, once the workflow has taken it;
    the workflow is the judge (R28-R31 and its phase), and a refusal, the CLI's or the
    workflow's, is recorded in the failback's history."""
    approved_by = attestation.identity.name if attestation is not None else approved_by
    if not approved_by.strip():
        raise CommandError("--by must name who approves the commit")
    handle = client.get_workflow_handle(workflow_id)
    request = ApprovalRequest(approved_by=approved_by, comment=comment, attestation=attestation)
    description = await _describe(client, workflow_id)
    execution = execution_name(description.status)
    ended = approval_precheck(workflow_id, execution, None)
    if ended is not None:
        raise CommandError(ended)
    if description.parent_id:
        # The plan passes its one approval to every machine; a machine approved on its own
        # would commit outside the plan's order and without the rest of the plan.
        await _refused(
            handle,
            approved_by,
            f"not approved: {workflow_id} is one machine of the recovery plan's failback "
            f"{description.parent_id}; approve the plan as a whole: `failback approve "
            f"{description.parent_id}`",
        )
    if description.workflow_type == "PlanFailbackWorkflow":
        plan = await _status_unless_busy(plan_status(client, workflow_id, QUERY_TIMEOUT))
        if plan is None:
            return await _approve_while_busy(
                handle, description, request, PlanFailbackWorkflow.approve_commit
            )
        already = approval_precheck(workflow_id, execution, plan.approval)
        if already is not None:
            await _refused(handle, approved_by, already)
        if plan.phase != "awaiting-approval":
            await _refused(
                handle,
                approved_by,
                f"not approved: the plan is {plan.phase} ({plan.waiting_for}); approve when "
                "every machine is verified and it is awaiting approval",
            )
        await handle.signal(PlanFailbackWorkflow.approve_commit, request)
        names = ", ".join(m.vm_name for m in plan.machines)
        covers = f"recovery plan {plan.recovery_plan} ({len(plan.machines)} machines: {names})"
        return await _approval_answer(
            lambda: plan_status(client, workflow_id, QUERY_TIMEOUT), plan, covers, approved_by
        )
    status = await _status_unless_busy(machine_status(client, workflow_id, QUERY_TIMEOUT))
    if status is None:
        return await _approve_while_busy(
            handle, description, request, MachineFailbackWorkflow.approve_commit
        )
    already = approval_precheck(workflow_id, execution, status.approval)
    if already is not None:
        await _refused(handle, approved_by, already)
    refusal = approval_refusal(status.phase)
    if refusal is not None:
        await _refused(handle, approved_by, f"not approved: {refusal}")
    await handle.signal(MachineFailbackWorkflow.approve_commit, request)
    covers = status.vm_name or status.item_name or workflow_id
    return await _approval_answer(
        lambda: machine_status(client, workflow_id, QUERY_TIMEOUT), status, covers, approved_by
    )


# A status query that timed out: the worker is there but cannot answer in time (at 10,000
# machines on two cores every approval's query did, and the approvals could not be sent).
BUSY_WORKER = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
StatusT = TypeVar("StatusT")


async def _status_unless_busy(read: Awaitable[StatusT]) -> StatusT | None:
    """The workflow's status, or None when its worker is too busy to answer the query."""
    try:
        return await read
    except StatusUnanswered:
        return None
    except RPCError as err:
        if err.status in BUSY_WORKER:
            return None
        raise


async def _approve_while_busy(
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    request: ApprovalRequest,
    signal: Any,
) -> str:
    refusal = _refusal_while_busy(handle, description, "approve")
    if refusal is not None:
        await _refused(handle, request.approved_by, f"not approved: {refusal}")
    await handle.signal(signal, request)
    return _sent_while_busy(handle.id, handle.id)


def _refusal_while_busy(
    handle: WorkflowHandle[Any, Any], description: WorkflowExecutionDescription, decision: str
) -> str | None:
    """Why a decision is not sent to a failback whose worker is too busy to answer its status:
    the CLI then goes by the phase Temporal's server holds (the failback's search attribute)
    and the workflow judges what is sent when it takes the signal (its phase then, who sends
    it, a second one), so sending on the phase is as safe as sending on the status."""
    is_plan = description.workflow_type == "PlanFailbackWorkflow"
    refusal = refusal_by_phase_alone(decision, is_plan, _phase_on_server(description))
    if refusal is None:
        return None
    return (
        f"{handle.id}'s worker is too busy to answer its status, and the phase Temporal's "
        f"server holds rules it out: {refusal}"
    )


def _phase_on_server(description: WorkflowExecutionDescription) -> str | None:
    """The failback's phase as Temporal's server holds it (its search attribute): known without
    a worker."""
    return description.typed_search_attributes.get(search_attributes.PHASE)


def _sent_while_busy(what: str, workflow_id: str) -> str:
    return (
        f"{what} (sent while its worker was too busy to answer its status; the workflow checks "
        f"it when it takes it: `failback status {workflow_id}` shows whether it was taken)"
    )


async def _refused(handle: WorkflowHandle[Any, Any], by: str, reason: str) -> NoReturn:
    """A decision the CLI will not send: recorded in the failback's history all the same (the
    workflow's record_refused_decision), then said to the person."""
    with contextlib.suppress(RPCError):
        await handle.signal(
            "record_refused_decision",
            RejectedApproval(
                approved_by=by,
                received_at=datetime.now(UTC),
                phase=Phase.AWAITING_APPROVAL,
                reason=f"refused by the CLI: {reason}",
            ),
        )
    raise CommandError(reason)


async def _approval_answer(
    read_status: Any, before: MachineStatus | PlanStatus, covers: str, by: str
) -> str:
    """Wait (briefly) for the workflow to take or refuse the approval just sent."""
    refused_before = len(before.rejected_approvals)
    deadline = asyncio.get_running_loop().time() + DECISION_ANSWER_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        now = await _status_unless_busy(read_status())
        if now is None:
            # The approval is sent: a status the worker cannot answer now does not unsend it.
            break
        if len(now.rejected_approvals) > refused_before:
            raise CommandError(f"not approved: {now.rejected_approvals[-1].reason}")
        if now.approval is not None:
            return covers
        if now.approvals_missing and len(now.approvals) > len(before.approvals):
            return (
                f"{covers}: {by}'s approval taken; the commit waits for "
                f"{now.approvals_missing} more distinct approver(s) (R31)"
            )
        await asyncio.sleep(0.25)
    return f"{covers} (sent; `failback status` shows whether it was taken)"


# How long the CLI waits to see the workflow take (or refuse) a decision it sent.
DECISION_ANSWER_SECONDS = 10.0


async def undo(
    client: Client,
    workflow_id: str,
    undone_by: str,
    comment: str,
    attestation: Attestation | None = None,
) -> str:
    """Ask a failback (a machine's or a plan's) to undo itself before its commit, and say
    whether it took it: the workflow is the judge (it refuses a classic one, a committed one,
    or one that has not failed over yet, and records the refusal)."""
    undone_by = attestation.identity.name if attestation is not None else undone_by
    if not undone_by.strip():
        raise CommandError("--by must name who undoes the failback")
    request = UndoRequest(undone_by=undone_by, comment=comment, attestation=attestation)
    description = await _describe(client, workflow_id)
    execution = execution_name(description.status)
    if description.parent_id:
        raise CommandError(
            f"not undone: {workflow_id} is one machine of the recovery plan's failback "
            f"{description.parent_id}; undo the plan as a whole: `failback undo "
            f"{description.parent_id} --by NAME`"
        )
    if execution != "running":
        raise CommandError(
            f"not undone: the failback {workflow_id} has already ended ({execution})"
        )
    handle = client.get_workflow_handle(workflow_id)
    is_plan = description.workflow_type == "PlanFailbackWorkflow"
    signal = (
        PlanFailbackWorkflow.undo_failback if is_plan else MachineFailbackWorkflow.undo_failback
    )
    before = await _undo_precheck(client, workflow_id, is_plan)
    if before is None:
        refusal = _refusal_while_busy(handle, description, "undo")
        if refusal is not None:
            raise CommandError(f"not undone: {refusal}")
        await handle.signal(signal, request)
        return _sent_while_busy(f"undo of {workflow_id}", workflow_id)
    await handle.signal(signal, request)
    deadline = asyncio.get_running_loop().time() + DECISION_ANSWER_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        taken_or_refused = await _status_unless_busy(
            _undo_answer(client, workflow_id, is_plan, before)
        )
        if taken_or_refused is None:
            # The undo is sent: a status the worker cannot answer now does not unsend it.
            break
        taken, refused = taken_or_refused
        if refused:
            raise CommandError(f"not undone: {refused[-1].reason.removeprefix('undo refused: ')}")
        if taken is not None:
            return (
                f"undo of {workflow_id} taken (by {taken.undone_by}): ASR cancels the failover, "
                "the Azure VM runs again; `failback status` follows it"
            )
        await asyncio.sleep(0.5)
    return f"undo of {workflow_id} sent; `failback status {workflow_id}` shows whether it was taken"


async def _undo_precheck(client: Client, workflow_id: str, is_plan: bool) -> int | None:
    """How many undos the failback had refused before this one, once the CLI's own check
    passes; None when the worker is too busy to answer its status."""
    if is_plan:
        plan = await _status_unless_busy(plan_status(client, workflow_id, QUERY_TIMEOUT))
        return None if plan is None else len(plan.rejected_approvals)
    status = await _status_unless_busy(machine_status(client, workflow_id, QUERY_TIMEOUT))
    if status is None:
        return None
    architecture = status.architecture or "classic"
    refusal = undo_refusal(
        status.phase,
        status.approval is not None,
        architecture_named_can_undo(architecture) if status.architecture else True,
        architecture,
    )
    if refusal is not None:
        raise CommandError(f"not undone: {refusal}")
    return len(status.rejected_undos)


async def _undo_answer(
    client: Client, workflow_id: str, is_plan: bool, before: int
) -> tuple[Undo | None, list[RejectedApproval]]:
    """The undo taken, and the refusals recorded since it was sent."""
    if is_plan:
        plan = await plan_status(client, workflow_id, QUERY_TIMEOUT)
        return plan.undo, plan.rejected_approvals[before:]
    machine = await machine_status(client, workflow_id, QUERY_TIMEOUT)
    return machine.undo, machine.rejected_undos[before:]


async def decide_agent(client: Client, workflow_id: str, decision: OperatorDecision) -> str:
    handle = client.get_workflow_handle(workflow_id)
    sent = f"sent: {decision.action}"
    status = await _status_unless_busy(machine_status(client, workflow_id, QUERY_TIMEOUT))
    if status is None:
        refusal = _refusal_while_busy(handle, await _describe(client, workflow_id), "agent")
        if refusal is not None:
            raise CommandError(f"nothing sent: {refusal}")
        sent = _sent_while_busy(sent, workflow_id)
    elif status.phase != Phase.AGENT_STUCK:
        raise CommandError(
            f"the failback is {status.phase}, not stuck waiting for the agent; nothing to decide"
        )
    await handle.signal(MachineFailbackWorkflow.operator_decision, decision)
    return sent


@dataclass
class Closed:
    status: WorkflowExecutionStatus | None


async def execution_state(client: Client, workflow_id: str) -> Closed:
    description = await client.get_workflow_handle(workflow_id).describe()
    return Closed(status=description.status)


def plan_input(
    settings: Settings, plan: str, recovery_point: str, policy_id: str | None = None
) -> PlanFailbackInput:
    return PlanFailbackInput(
        recovery_plan=plan,
        recovery_point=recovery_point,  # type: ignore[arg-type]
        reprotect_to_onprem=ReprotectToOnPremOptions(
            process_server_id=settings.azure_process_server_id
        ),
        **_shared_input(settings, policy_id=policy_id),
    )


async def start_plan_failback(
    client: Client, settings: Settings, params: PlanFailbackInput
) -> WorkflowHandle[PlanFailbackWorkflow, PlanFailbackResult]:
    workflow_id = plan_workflow_id(params.vault.vault, params.recovery_plan)
    return await _start_once(
        client,
        settings,
        PlanFailbackWorkflow.run,
        params,
        workflow_id,
        f"recovery plan {params.recovery_plan}",
    )


async def workflow_kind(client: Client, workflow_id: str) -> str:
    return (await _describe(client, workflow_id)).workflow_type


async def plan_status(
    client: Client, workflow_id: str, rpc_timeout: timedelta | None = None
) -> PlanStatus:
    return await ask_status(
        client.get_workflow_handle(workflow_id), PlanFailbackWorkflow.status, rpc_timeout
    )


def web_ui_link(settings: Settings, workflow_id: str) -> str | None:
    if not settings.temporal_ui_url:
        return None
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{workflow_id}"
    )


# --- reading a failback: `failback status` and `failback report` ------------------------------

# A status query is answered by a worker; without one it would wait for as long as the server
# lets it, and the CLI would look hung.
QUERY_TIMEOUT = timedelta(seconds=15)
# Plans have up to 100 machines; reading them one after the other would make `--watch` lag.
READ_CONCURRENCY = 16


def execution_name(status: WorkflowExecutionStatus | None) -> str:
    if status is None:
        return "unknown"
    return status.name.lower().replace("_", "-")


async def _describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            if "namespace" in err.message.lower():
                raise CommandError(
                    f"Temporal has no namespace {client.namespace!r}: check "
                    "FAILBACK_TEMPORAL_NAMESPACE"
                ) from err
            raise CommandError(
                f"no failback with id {workflow_id}; `failback start` prints the id"
            ) from err
        raise


async def _describe_if_any(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _query(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    query: Any,
    description: WorkflowExecutionDescription,
) -> Any:
    try:
        return await ask_status(handle, query, QUERY_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise
        raise CommandError(await _why_unanswered(client, description, err.message)) from err


async def _why_unanswered(
    client: Client, description: WorkflowExecutionDescription, error: str
) -> str:
    """Why no worker answered a status query: none polls the task queue, or those that do are
    too busy (at 10,000 machines on two cores none answered within the deadline); for the
    latter, the phase Temporal's server holds, which needs no worker."""
    queue = description.task_queue
    workers: int | None
    try:
        workers = len(
            set(
                await polling_identities(
                    client, queue, datetime.now(UTC), TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
                )
            )
        )
    except RPCError:
        workers = None  # the server would not list them
    if workers == 0:
        return (
            f"no worker polls task queue {queue!r}, so none answered the status query of "
            f"{description.id} ({error}): start one with `failback worker` (or `failback lab up`)"
        )
    phase = _phase_on_server(description) or "unknown"
    polling = "workers may poll" if workers is None else f"{workers} worker(s) poll"
    return (
        f"{polling} task queue {queue!r}, but none answered the status query of "
        f"{description.id} within {QUERY_TIMEOUT.seconds} s ({error}): they are short of CPU "
        "(give them cores, or more workers). The failback goes on; its phase, as Temporal's "
        f"server holds it: {phase}. Ask again in a minute"
    )


def _failure_status(err: WorkflowFailureError) -> tuple[Any, str]:
    """The status a failed workflow put into its failure, and the failure's message."""
    cause = err.cause
    details: Sequence[Any] = ()
    if isinstance(cause, ApplicationError):
        details = cause.details
    message = str(cause.message if isinstance(cause, FailureError) else err)
    return (details[0] if details else None), message


async def _machine_view(
    client: Client,
    description: WorkflowExecutionDescription,
    member: PlanMachine | None = None,
) -> MachineView:
    handle = client.get_workflow_handle_for(
        MachineFailbackWorkflow.run, description.id, run_id=description.run_id
    )
    execution = description.status
    status: MachineStatus | None = None
    outcome: str | None = None
    summary: str | None = None
    attention: str | None = None
    if execution == WorkflowExecutionStatus.RUNNING:
        status = await _query(client, handle, MachineFailbackWorkflow.status, description)
        attention = await _attention(client, description)
    elif execution == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        status, outcome, summary = result.status, result.outcome, result.summary
    else:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            details, summary = _failure_status(err)
            if details is not None:
                status = MachineStatus.model_validate(details)
        if execution == WorkflowExecutionStatus.FAILED:
            outcome = "failed"
        if status is None:
            # Terminated or timed out: nothing in the failure; replaying the history answers.
            with contextlib.suppress(CommandError):
                status = await _query(client, handle, MachineFailbackWorkflow.status, description)
    if member is not None:
        item_name, vm_name, group = member.item_name, member.vm_name, member.boot_group
    else:
        item_name = (status.item_name or "") if status else ""
        vm_name = (status.vm_name or item_name) if status else description.id
        group = None
    return MachineView(
        workflow_id=description.id,
        item_name=item_name or vm_name,
        vm_name=vm_name,
        boot_group=group,
        execution=execution_name(execution),
        status=status,
        outcome=outcome,
        summary=summary,
        started_at=description.start_time,
        finished_at=description.close_time,
        attention=attention,
    )


async def _attention(client: Client, description: WorkflowExecutionDescription) -> str | None:
    """The note a running activity's heartbeat carries after its job name, if any: how an
    activity says that it waits on a person (activities/asr/operations.py, `_beat`)."""
    for pending in description.raw_description.pending_activities:
        payloads = list(pending.heartbeat_details.payloads)
        if len(payloads) < 2:
            continue
        with contextlib.suppress(Exception):  # a note that cannot be read is no note
            note = (await client.data_converter.decode(payloads))[1]
            if isinstance(note, str) and note:
                return note
    return None


async def _progress(client: Client, description: WorkflowExecutionDescription) -> str | None:
    """A long wait's progress, as its activity's last heartbeat says it (the initial
    replication's percent and bytes: AsrActivities.wait_until_replicating)."""
    for pending in description.raw_description.pending_activities:
        payloads = list(pending.heartbeat_details.payloads)
        if not payloads:
            continue
        with contextlib.suppress(Exception):  # progress that cannot be read is no progress
            first = (await client.data_converter.decode(payloads))[0]
            if isinstance(first, str) and first.startswith("initial replication:"):
                return first
    return None


async def _member_view(client: Client, plan_id: str, member: PlanMachine) -> MachineView:
    description = await _describe_if_any(client, member.workflow_id)
    # The id is per machine, so it may name an earlier failback of the same machine (a failed
    # one, started on its own): only this plan's child is this plan's machine.
    if description is None or description.parent_id != plan_id:
        return MachineView(
            workflow_id=member.workflow_id,
            item_name=member.item_name,
            vm_name=member.vm_name,
            boot_group=member.boot_group,
            execution=NOT_STARTED,
        )
    return await _machine_view(client, description, member)


async def _plan_view(client: Client, description: WorkflowExecutionDescription) -> FailbackView:
    handle = client.get_workflow_handle_for(
        PlanFailbackWorkflow.run, description.id, run_id=description.run_id
    )
    execution = description.status
    plan: PlanStatus | None = None
    outcome: str | None = None
    summary: str | None = None
    error: str | None = None
    progress: str | None = None
    if execution == WorkflowExecutionStatus.RUNNING:
        plan = await _query(client, handle, PlanFailbackWorkflow.status, description)
        progress = await _progress(client, description)
    elif execution == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        plan, outcome, summary = result.status, result.outcome, result.summary
    else:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            details, error = _failure_status(err)
            if details is not None:
                plan = PlanStatus.model_validate(details)
        if execution == WorkflowExecutionStatus.FAILED:
            outcome = "failed"
        if plan is None:
            with contextlib.suppress(CommandError):
                plan = await _query(client, handle, PlanFailbackWorkflow.status, description)
    members = plan.machines if plan is not None else []
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(member: PlanMachine) -> MachineView:
        async with limit:
            return await _member_view(client, description.id, member)

    machines = await asyncio.gather(*(read(m) for m in members))
    return FailbackView(
        workflow_id=description.id,
        kind="plan",
        execution=execution_name(execution),
        outcome=outcome,
        summary=summary,
        error=error or (plan.error if plan is not None else None),
        started_at=description.start_time,
        finished_at=description.close_time,
        plan=plan,
        machines=list(machines),
        progress=progress,
    )


async def read_failback(client: Client, workflow_id: str) -> FailbackView:
    """A machine's or a plan's failback as its workflows record it: the result when it has
    ended (no worker needed), the status queries while it runs."""
    description = await _describe(client, workflow_id)
    if description.workflow_type == "PlanFailbackWorkflow":
        return await _plan_view(client, description)
    if description.workflow_type != "MachineFailbackWorkflow":
        raise CommandError(
            f"{workflow_id} is a {description.workflow_type} workflow, not a failback; "
            "`failback start` prints the id of a failback"
        )
    machine = await _machine_view(client, description)
    return FailbackView(
        workflow_id=workflow_id,
        kind="machine",
        execution=machine.execution,
        outcome=machine.outcome,
        summary=machine.summary,
        error=machine.status.error if machine.status else None,
        started_at=machine.started_at,
        finished_at=machine.finished_at,
        machines=[machine],
    )


# --- what ASR, vCenter and Azure say now --------------------------------------------------------
