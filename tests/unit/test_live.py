"""`failback status`: the rich views, the JSON shape, the watch loop, the approval pre-check."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from rich.console import Console

from domain.models import Approval, MachineStatus, Phase
from starter.commands import approval_precheck
from starter.live import failback_renderable, view_json, watch
from starter.report import FailbackView
from tests.unit.test_report import at, plan_report, single_report


def shown(view: FailbackView, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(failback_renderable(view))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_machine_view_shows_phase_wait_point_jobs_verification_and_approval() -> None:
    text = shown(single_report().view)
    assert "web-01" in text and "completed" in text
    assert "nothing: the failback is complete" in text
    assert "rp-web-01-0900" in text and "data-loss window 9 min" in text
    for job in ("job-fo-web-01", "job-commit-web-01", "job-rp-web-01"):
        assert job in text
    assert "poweredOn" in text and "guestToolsRunning" in text and "deallocated" in text
    assert "approved by alice" in text and "app checked" in text
    assert "refused: mallory" in text


def test_rich_markup_in_user_text_is_shown_as_written() -> None:
    report = single_report()
    machine = report.view.machines[0]
    assert machine.status is not None
    status = machine.status.model_copy(
        update={"approval": Approval(approved_by="[red]eve", comment="[/]", approved_at=at(1))}
    )
    view = report.view.model_copy(
        update={"machines": [machine.model_copy(update={"status": status})]}
    )
    assert "approved by [red]eve at" in shown(view)


@pytest.mark.parametrize("width", [80, 140])
def test_plan_view_lists_every_boot_group_and_machine(width: int) -> None:
    text = shown(plan_report().view, width)
    assert "recovery plan" in text and "plan-erp" in text
    assert "boot group 1" in text and "boot group 2" in text
    assert "db-01" in text and "web-01" in text
    assert "app-01" in text and "not started" in text
    assert "failover Succeeded" in text.replace("job-fo-db-01 ", "")
    assert "approved by dana" in text
    # Job ids are in each machine's own view, which the plan's points to.
    assert "failback status failback-vault-db-01" in text


def test_status_json_keeps_the_workflow_status_shape_and_adds_fields() -> None:
    machine = json.loads(json.dumps(view_json(single_report().view), default=str))
    status = single_report().view.machines[0].status
    assert status is not None
    for key in json.loads(status.model_dump_json()):
        assert key in machine
    assert machine["phase"] == "completed"
    assert machine["workflow_id"] == "failback-vault-web-01"
    assert machine["execution"] == "completed"

    plan = view_json(plan_report().view)
    assert plan["recovery_plan"] == "plan-erp" and plan["execution"] == "completed"
    assert set(plan["machine_status"]) == {"db-01-item", "web-01-item"}
    assert plan["machine_status"]["web-01-item"]["phase"] == "completed"


async def test_watch_refreshes_until_the_failback_ends_and_survives_a_failed_refresh() -> None:
    final = single_report().view
    machine = final.machines[0]
    assert machine.status is not None
    running_status: MachineStatus = machine.status.model_copy(
        update={"phase": Phase.AWAITING_APPROVAL}
    )
    running = final.model_copy(
        update={
            "execution": "running",
            "machines": [
                machine.model_copy(update={"execution": "running", "status": running_status})
            ],
        }
    )
    answers: Iterator[FailbackView | Exception] = iter(
        [running, running, RuntimeError("worker restarting"), running, final]
    )
    calls = 0

    async def fetch() -> FailbackView:
        nonlocal calls
        calls += 1
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    console = Console(file=io.StringIO(), width=140, color_system=None)
    ended = await watch(fetch, console, interval=0.01)
    assert ended.execution == "completed" and calls == 5
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "the failback has ended (completed)" in output


def test_approval_precheck_refuses_ended_and_already_approved_failbacks() -> None:
    assert approval_precheck("w", "running", None) is None
    ended = approval_precheck("w", "completed", None)
    assert ended is not None
    assert "already ended (completed)" in ended and "failback report w" in ended
    approval = Approval(approved_by="alice", comment="ok", approved_at=at(5))
    twice = approval_precheck("w", "running", approval)
    assert twice is not None and "already approved by alice" in twice
