"""FO-PLAN, patch plan-approves-on-its-read: the plan counts its own read at the job's end as
each machine's verification and awaits approval without its machines' word; a decision of the
plan that reaches a machine before the machine's turn for it waits there and is judged then.
On the time-skipping server with the plan world's fakes (tests/workflows/test_plan_workflow.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.models import (
    ApprovalRequest,
    AzureVmState,
    MachineFailbackInput,
    MachineStatus,
    OnPremVmState,
    OperationResult,
    PlanJobEnded,
    RecoveryPoint,
    RecoveryPointChoice,
    Timings,
    UndoRequest,
    VaultRef,
    VerificationRead,
)
from tests.replay.test_replay import patches
from tests.workflows.cli_connection import signals_in
from tests.workflows.test_plan_workflow import (
    GROUPS,
    T0,
    FakePlanWorld,
    approved_to_the_end,
    machine,
    plan_input,
    started_plan,
    until_awaiting_approval,
)
from workflows.machine import MachineFailbackWorkflow, machine_workflow_id
from workflows.plan import PlanFailbackWorkflow
from workflows.versioning import PLAN_READS_UNTIL_VERIFIED, UNVERIFIED_TOLD_FIRST

PLAN = "plan-erp"
SIGNAL_SENT = "signal_external_workflow_execution_initiated_event_attributes"


def _sent_signals(history: WorkflowHistory) -> int:
    return sum(1 for e in history.events if e.WhichOneof("attributes") == SIGNAL_SENT)


async def _plan_run(
    env: WorkflowEnvironment, world: FakePlanWorld, into_job_seconds: float
) -> tuple[list[str], WorkflowHistory, list[WorkflowHistory], list[str]]:
    """A plan run to its approval and on to its end: the machines the plan listed verified when
    it began to await approval, its history, its machines' histories, and its outcome."""
    params = plan_input(machines_start_into_plan_job_seconds=into_job_seconds)
    async with started_plan(env, world, params) as handle:
        await until_awaiting_approval(env, handle)
        verified = (await handle.query(PlanFailbackWorkflow.status)).verified
        result, plan_history, machine_histories = await approved_to_the_end(env, handle)
    return verified, plan_history, machine_histories, [result.outcome]


async def test_the_plan_awaits_approval_on_its_own_read_without_its_machines_word(
    env: WorkflowEnvironment,
) -> None:
    """Machines the plan's read found verified are verified for the approval at once; none of
    them signals the plan, and each still records its own verification and commits."""
    for job_seconds, into_job in ((3.0, 1.0), (0.0, 30.0)):  # started during the job; after it
        world = FakePlanWorld(reads_to_boot=0, plan_job_seconds=job_seconds)
        verified, plan_history, machines, outcome = await _plan_run(env, world, into_job)
        everyone = sorted(f"{n}-item" for group in GROUPS for n in group)
        assert verified == everyone
        assert outcome == ["completed"]
        assert "machine_verified" not in signals_in(plan_history)
        assert [_sent_signals(h) for h in machines] == [0, 0, 0, 0]
        assert sorted(n for kind, n in world.events if kind == "commit") == sorted(
            n for group in GROUPS for n in group
        )


async def test_machines_the_plans_read_did_not_verify_give_their_own_word_first(
    env: WorkflowEnvironment,
) -> None:
    """Still booting at the job's end: each machine reads again itself, and the plan awaits
    approval only once every one of them told it so."""
    world = FakePlanWorld(reads_to_boot=1, plan_job_seconds=3)
    verified, plan_history, machines, outcome = await _plan_run(env, world, 1.0)
    assert outcome == ["completed"] and len(verified) == 4
    assert signals_in(plan_history).count("machine_verified") == 4
    assert [_sent_signals(h) for h in machines] == [1, 1, 1, 1]


def _told_the_job_ended(history: WorkflowHistory) -> list[str]:
    """The machines the plan signalled plan_job_ended, in the order it sent them."""
    return [
        a.workflow_execution.workflow_id
        for e in history.events
        if e.WhichOneof("attributes") == SIGNAL_SENT
        and (a := e.signal_external_workflow_execution_initiated_event_attributes).signal_name
        == "plan_job_ended"
    ]


async def test_the_machines_the_plans_read_did_not_verify_are_told_the_job_ended_first(
    env: WorkflowEnvironment,
) -> None:
    """Patch unverified-told-first: web-01 (the last boot group) still boots at the job's end;
    it is told first, verifies itself, and the plan awaits approval on its word and its own
    read of the others. A plan whose read verified every machine records no marker."""
    world = FakePlanWorld(reads_to_boot=0, plan_job_seconds=3, reads_to_boot_of={"web-01": 1})
    verified, plan_history, _, outcome = await _plan_run(env, world, 1.0)
    assert outcome == ["completed"] and len(verified) == 4
    told = _told_the_job_ended(plan_history)
    web = machine_workflow_id("vault", "web-01")
    assert told[0] == web and sorted(told) == sorted(
        machine_workflow_id("vault", n) for group in GROUPS for n in group
    )
    assert signals_in(plan_history).count("machine_verified") == 1
    assert UNVERIFIED_TOLD_FIRST in patches(plan_history)

    everyone = FakePlanWorld(reads_to_boot=0, plan_job_seconds=3)
    _, plan_history, _, _ = await _plan_run(env, everyone, 1.0)
    assert _told_the_job_ended(plan_history) == [
        machine_workflow_id("vault", n) for group in GROUPS for n in group
    ]
    assert UNVERIFIED_TOLD_FIRST not in patches(plan_history)


async def test_the_plan_reads_again_the_machines_still_booting_without_waiting_their_word(
    env: WorkflowEnvironment,
) -> None:
    """Patch plan-reads-until-verified: web-01 still boots at the job's end and its own reads
    are slow (5 s each); the plan reads it again itself and awaits approval on that read,
    before web-01's word. web-01 still verifies itself before it commits."""
    world = FakePlanWorld(
        reads_to_boot=0, plan_job_seconds=3, reads_to_boot_of={"web-01": 1}, own_read_seconds=5
    )
    params = plan_input(machines_start_into_plan_job_seconds=1.0)
    async with started_plan(env, world, params) as handle:
        await until_awaiting_approval(env, handle)
        assert len((await handle.query(PlanFailbackWorkflow.status)).verified) == 4
        result, plan_history, _ = await approved_to_the_end(env, handle)
    assert result.outcome == "completed"
    assert ("plan's read again", "web-01") in world.events
    awaiting = next(c.at for c in result.status.history if c.phase == "awaiting-approval")
    word = next(
        e.event_time.ToDatetime(tzinfo=awaiting.tzinfo)
        for e in plan_history.events
        if e.workflow_execution_signaled_event_attributes.signal_name == "machine_verified"
    )
    assert awaiting < word
    assert PLAN_READS_UNTIL_VERIFIED in patches(plan_history)
    assert world.events.index(("verification read", "web-01")) < world.events.index(
        ("commit", "web-01")
    )


async def test_a_failed_read_again_leaves_the_machines_still_booting_to_their_own_word(
    env: WorkflowEnvironment,
) -> None:
    world = FakePlanWorld(
        reads_to_boot=0, plan_job_seconds=3, reads_to_boot_of={"web-01": 1}, failing_read_again=True
    )
    verified, plan_history, _, outcome = await _plan_run(env, world, 1.0)
    assert ("plan's read again failed", "") in world.events
    assert outcome == ["completed"] and len(verified) == 4
    assert signals_in(plan_history).count("machine_verified") == 1


# --- a machine receiving its plan's decision before its turn -------------------------------


def _read(azure_running: bool = False) -> VerificationRead:
    return VerificationRead(
        onprem=OnPremVmState(
            vm_name="db-01",
            found=True,
            power_state="poweredOn",
            tools_running_status="guestToolsRunning",
        ),
        azure=AzureVmState(
            resource_group="rg-rec",
            name="db-01",
            exists=azure_running,
            power_state="VM running" if azure_running else None,
        ),
    )


def _plans_member(architecture: str = "modernized") -> MachineFailbackInput:
    """db-01 as its plan starts it while the plan's job runs."""
    point = RecoveryPoint(id="p", name="p", time=T0, type="CrashConsistent")
    return MachineFailbackInput(
        vault=VaultRef(resource_group="rg", vault="vault"),
        item_name="db-01-item",
        vm_name="db-01",
        recovery_resource_group="rg-rec",
        timings=Timings(verify_poll_interval_seconds=10, verify_timeout_seconds=60),
        recovery_plan=PLAN,
        discovered=machine("db-01").model_copy(update={"architecture": architecture}),
        chosen_point=RecoveryPointChoice(
            chosen=point, latest=point, data_loss_window_seconds=0, asked_as="LatestTime"
        ),
        awaits_plan_job=True,
    )


async def _member_told_after(
    env: WorkflowEnvironment,
    world: FakePlanWorld,
    first_signal: str,
    decision: ApprovalRequest | UndoRequest,
    first_read: VerificationRead,
    ends: bool = True,
) -> tuple[MachineStatus, list[str]]:
    """The plan's decision arrives with the machine's start (its first workflow task, in
    phase starting), the job's end after it; the machine's status once it ended (or, one that
    does not end, a minute later) and the signals in its history."""
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[MachineFailbackWorkflow],
        activities=world.activities(),
    ):
        handle = await env.client.start_workflow(
            MachineFailbackWorkflow.run,
            _plans_member(),
            id=f"failback-vault-db-01-{uuid.uuid4()}",
            task_queue=queue,
            start_signal=first_signal,
            start_signal_args=[decision],
        )
        await env.sleep(timedelta(seconds=5))
        assert (await handle.query(MachineFailbackWorkflow.status)).phase == "failing-over"
        ended = PlanJobEnded(
            operation=OperationResult(
                operation="unplannedFailover",
                job_id="j",
                state="Succeeded",
                started_at=T0,
                ended_at=T0,
                resumed=False,
            ),
            first_read=first_read,
        )
        await handle.signal(MachineFailbackWorkflow.plan_job_ended, ended)
        if ends:
            with contextlib.suppress(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 60)
        else:
            await env.sleep(timedelta(minutes=1))
        status = await handle.query(MachineFailbackWorkflow.status)
        return status, signals_in(await handle.fetch_history())


async def test_a_plans_approval_before_the_machines_verification_waits_for_it(
    env: WorkflowEnvironment,
) -> None:
    world = FakePlanWorld(reads_to_boot=0)
    approval = ApprovalRequest(approved_by="ops", on_behalf_of_plan=PLAN)
    status, signals = await _member_told_after(env, world, "approve_commit", approval, _read())
    assert signals == ["approve_commit", "plan_job_ended"]
    assert status.phase == "completed" and status.rejected_approvals == []
    assert status.approval is not None and status.approval.approved_by == "ops"
    assert status.verification is not None and status.verification.passed
    # Taken after its own verification, never before.
    assert status.approval.approved_at >= status.verification.checked_at
    assert ("commit", "db-01") in world.events


async def test_a_plans_approval_is_never_taken_by_a_machine_that_does_not_verify(
    env: WorkflowEnvironment,
) -> None:
    """The job's end finds the Azure VM still running and the on-premises VM never boots:
    the waiting approval is never judged, nothing is committed."""
    world = FakePlanWorld(reads_to_boot=1000)
    approval = ApprovalRequest(approved_by="ops", on_behalf_of_plan=PLAN)
    status, _ = await _member_told_after(
        env, world, "approve_commit", approval, _read(azure_running=True)
    )
    assert status.phase == "failed" and "verification failed" in (status.error or "")
    assert status.approval is None
    assert not [e for e in world.events if e[0] == "commit"]


async def test_a_plans_undo_before_the_machine_waits_for_the_job_is_taken_then(
    env: WorkflowEnvironment,
) -> None:
    """Refused in phase starting as "nothing has failed over yet", which is not so for a
    machine its plan's job fails over: the undo waits, is taken as the machine fails over, and
    cancels the failover once the job ended; nothing is committed."""
    world = FakePlanWorld(reads_to_boot=0)
    undo = UndoRequest(undone_by="ops", on_behalf_of_plan=PLAN)
    status, _ = await _member_told_after(env, world, "undo_failback", undo, _read())
    assert status.phase == "undone" and status.rejected_undos == []
    assert status.undo is not None and status.undo.undone_by == "ops"
    assert ("cancel", "db-01") in world.events
    assert not [e for e in world.events if e[0] == "commit"]


async def test_a_machines_own_approval_before_its_verification_is_still_refused(
    env: WorkflowEnvironment,
) -> None:
    """Only its plan's decision waits: an approval sent to the machine itself is refused, as
    before (one approval covers the whole plan)."""
    world = FakePlanWorld(reads_to_boot=0)
    direct = ApprovalRequest(approved_by="mallory")
    status, _ = await _member_told_after(env, world, "approve_commit", direct, _read(), ends=False)
    assert status.approval is None and status.phase == "awaiting-approval"
    assert [r.approved_by for r in status.rejected_approvals] == ["mallory"]
    assert not [e for e in world.events if e[0] == "commit"]
