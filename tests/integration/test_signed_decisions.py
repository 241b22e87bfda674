"""Issue 17 points 1, 2 and 6: who may decide, proved through the CLI, the worker's decision desk,
the lab's identity provider (RS256 tokens, Entra ID's shape) and Temporal.

A lab with signed decisions, four-eyes on and two approvers for the plan: a typed name is not
taken, a bare signal is refused (R28), someone outside the approvers' group is refused (R29), the
person who started the failback cannot approve it (R30), one approver cannot count twice (R31);
two distinct signed-in approvers commit it. Every refusal is in the history, and no token is."""

from __future__ import annotations

import re
from pathlib import Path

from domain.models import ApprovalRequest
from lab.manager import LabState, lab_down
from starter.commands import plan_status
from tests.integration.conftest import (
    cli_with,
    history_text,
    lab_settings,
    start_lab,
    until_phase,
)
from worker.wiring import connect_temporal
from workflows.plan import PlanFailbackWorkflow

SCENARIO = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "modernized.json"


JWT = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}")


def as_user(state: LabState, user: str | None, *args: str) -> object:
    settings = dict(state.settings)
    if user is not None:
        settings["FAILBACK_LAB_IDENTITY"] = user
    return cli_with(settings, *args)


async def test_only_signed_in_allowed_distinct_approvers_other_than_the_starter_commit(
    tmp_path: Path,
) -> None:
    state = start_lab(
        tmp_path,
        SCENARIO,
        signed_decisions=True,
        extra_settings={"FAILBACK_FOUR_EYES": "true", "FAILBACK_APPROVERS_REQUIRED": "2"},
    )
    try:
        started = as_user(state, "alice", "start", "--recovery-plan", "plan-modern")
        assert started.returncode == 0, started.stderr  # type: ignore[attr-defined]
        workflow_id = started.stdout.strip()  # type: ignore[attr-defined]
        client = await connect_temporal(lab_settings(state))
        await until_phase(lambda: plan_status(client, workflow_id), "awaiting-approval")

        def approve(user: str | None, *more: str) -> object:
            return as_user(state, user, "approve", workflow_id, *more)

        typed = approve("bob", "--by", "bob")
        assert typed.returncode != 0 and "--by is not taken" in typed.stderr  # type: ignore[attr-defined]
        unknown = approve("mallory")
        assert unknown.returncode != 0 and "no lab user" in unknown.stderr  # type: ignore[attr-defined]
        assert "Traceback" not in unknown.stderr  # type: ignore[attr-defined]
        # A signal typed by hand, under any name, is not taken (R28).
        await client.get_workflow_handle(workflow_id).signal(
            PlanFailbackWorkflow.approve_commit, ApprovalRequest(approved_by="bob")
        )
        not_approver = approve("dan")
        assert not_approver.returncode != 0 and "R29" in not_approver.stderr  # type: ignore[attr-defined]
        starter = approve("alice", "--comment", "mine")
        assert starter.returncode != 0 and "R30" in starter.stderr  # type: ignore[attr-defined]
        first = approve("bob", "--comment", "ERP checked")
        assert first.returncode == 0, first.stderr  # type: ignore[attr-defined]
        assert "1 more distinct approver" in first.stdout  # type: ignore[attr-defined]
        twice = approve("bob")
        assert twice.returncode != 0 and "R31" in twice.stderr  # type: ignore[attr-defined]
        second = approve("carol", "--comment", "DB checked")
        assert second.returncode == 0, second.stderr  # type: ignore[attr-defined]
        assert "approved by carol@lab.failback.test" in second.stdout  # type: ignore[attr-defined]
        late = approve("bob")
        assert late.returncode != 0 and "already approved" in late.stderr  # type: ignore[attr-defined]

        done = await until_phase(lambda: plan_status(client, workflow_id), "completed")
        assert done.approval is not None and done.approval.identity is not None
        assert done.approval.identity.name == "carol@lab.failback.test"
        assert [a.approved_by for a in done.approvals] == [
            "bob@lab.failback.test",
            "carol@lab.failback.test",
        ]
        reasons = [r.reason for r in done.rejected_approvals]
        assert any(r.startswith("R28") for r in reasons), reasons
        assert any(r.startswith("R29") for r in reasons), reasons
        assert any(r.startswith("R30") for r in reasons), reasons
        assert any(r.startswith("R31") for r in reasons), reasons
        # The CLI's own refusal (after the approval) is recorded too.
        assert any(r.startswith("refused by the CLI") for r in reasons), reasons

        # The history holds who decided, never a token (a JWT: three base64url parts, the
        # first two JSON) nor a secret, in any payload decoded or anywhere else in it (the
        # same reading as test_lab_failback's test_no_secret_in_workflow_history).
        secrets_in_lab = [
            state.settings["FAILBACK_DECISION_SIGNING_KEYS"].partition("=")[2],
            state.settings["FAILBACK_AZURE_LAB_TOKEN_SECRET"],
        ]
        for workflow in [workflow_id, *(m.workflow_id for m in done.machines)]:
            text = history_text(await client.get_workflow_handle(workflow).fetch_history())
            assert JWT.search(text) is None, f"a token is in the history of {workflow}"
            assert "access_token" not in text
            assert not [s for s in secrets_in_lab if s in text], workflow
            assert "carol@lab.failback.test" in text, workflow
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)
