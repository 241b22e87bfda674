"""R28 in the machine workflow itself (time-skipping server, fake systems by name): with
identities required, a failback started without a signed starter sends nothing; a decision sent
as a bare signal, or signed for another failback or decision, is refused and recorded; one signed
by the worker's desk for this failback is taken, under the verified name."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.decisions import DecisionRules
from domain.authority import Attestation, Decision, VerifiedIdentity, signed_message
from domain.models import ApprovalRequest, Decisions, Phase, UndoRequest
from tests.workflows.test_machine_workflow import (
    FakeWorld,
    failback_input,
    wait_for_phase,
    worker,
)
from workflows.machine import MachineFailbackWorkflow

KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
RULES = DecisionRules(require_identity=True, desk_keys={"desk1": PUBLIC}, four_eyes=True)
DAN = VerifiedIdentity(object_id="oid-dan", name="dan@contoso.com")
ERIN = VerifiedIdentity(object_id="oid-erin", name="erin@contoso.com")


def attestation(
    workflow_id: str, decision: Decision, who: VerifiedIdentity, now: datetime
) -> Attestation:
    # `now` is the time-skipping server's (ahead of the wall clock by every test's skipped
    # time); valid for 30 days, as the workflow may skip hours while it waits.
    unsigned = Attestation(
        workflow_id=workflow_id,
        decision=decision,
        identity=who,
        issued_at=now,
        expires_at=now + timedelta(days=30),
        key_id="desk1",
        signature="",
    )
    signature = base64.b64encode(KEY.sign(signed_message(unsigned))).decode()
    return unsigned.model_copy(update={"signature": signature})


async def test_a_failback_without_a_signed_starter_sends_nothing(env: WorkflowEnvironment) -> None:
    world = FakeWorld(decision_rules=RULES)
    queue = f"tq-{uuid.uuid4()}"
    async with worker(env, world, queue):
        handle = await env.client.start_workflow(
            MachineFailbackWorkflow.run, failback_input(), id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "R28" in str(failed.value.cause)
    assert sum(world.calls.values()) == 0


async def test_only_decisions_signed_for_this_failback_are_taken(env: WorkflowEnvironment) -> None:
    world = FakeWorld(decision_rules=RULES)
    queue = f"tq-{uuid.uuid4()}"
    workflow_id = f"wf-{uuid.uuid4()}"
    now = await env.get_current_time()
    params = failback_input().model_copy(
        update={"decisions": Decisions(started_by=attestation(workflow_id, "start", DAN, now))}
    )
    async with worker(env, world, queue):
        handle = await env.client.start_workflow(
            MachineFailbackWorkflow.run, params, id=workflow_id, task_queue=queue
        )
        try:
            await wait_for_phase(handle, Phase.AWAITING_APPROVAL)
        except AssertionError:
            status = await handle.query(MachineFailbackWorkflow.status)
            raise AssertionError(f"{status.phase}: {status.error}") from None
        signal = MachineFailbackWorkflow.approve_commit
        await handle.signal(signal, ApprovalRequest(approved_by="erin"))
        await handle.signal(
            signal,
            ApprovalRequest(
                approved_by="x", attestation=attestation("wf-other", "approve", ERIN, now)
            ),
        )
        await handle.signal(
            MachineFailbackWorkflow.undo_failback,
            UndoRequest(undone_by="x", attestation=attestation(workflow_id, "approve", ERIN, now)),
        )
        await handle.signal(
            signal,
            ApprovalRequest(
                approved_by="x", attestation=attestation(workflow_id, "approve", DAN, now)
            ),
        )
        status = await handle.query(MachineFailbackWorkflow.status)
        assert status.approval is None
        assert world.calls["commit_failover"] == 0
        await handle.signal(
            signal,
            ApprovalRequest(
                approved_by="typed",
                comment="checked",
                attestation=attestation(workflow_id, "approve", ERIN, now),
            ),
        )
        result = await handle.result()
    assert result.outcome == "completed"
    approval = result.status.approval
    assert approval is not None and approval.approved_by == "erin@contoso.com"
    assert approval.identity == ERIN
    refused = [r.reason[:3] for r in result.status.rejected_approvals]
    assert refused == ["R28", "R28", "R30"], result.status.rejected_approvals
    (undo,) = result.status.rejected_undos
    assert undo.reason.startswith("R28"), undo
