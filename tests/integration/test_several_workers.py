"""Issue 18 point 2, in the lab: two worker processes on one task queue share a plan's failback,
each keeping half of ARM's budgets (FAILBACK_ARM_BUDGET_SHARE), and the simulator, which
enforces ARM's read and write buckets per principal, refuses none of their requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from lab.manager import TEMPORAL_CONFIG_VARIABLE, lab_down, restart_worker
from starter.commands import plan_status
from tests.integration.conftest import (
    cli,
    journal,
    lab_get,
    lab_settings,
    start_lab,
    until_phase,
)
from worker.wiring import connect_temporal

SCENARIOS = Path(__file__).resolve().parents[2] / "lab" / "scenarios"
SCENARIO = SCENARIOS / "modernized.json"
CLASSIC_PLANS = SCENARIOS / "recovery-plan.json"


async def test_two_workers_share_a_plan_and_arm_refuses_nothing(tmp_path: Path) -> None:
    state = start_lab(tmp_path, SCENARIO, workers=2)
    try:
        assert {p.name for p in state.processes} >= {"worker", "worker-2"}
        assert state.settings["FAILBACK_ARM_BUDGET_SHARE"] == "0.500000"
        started = cli(state, "start", "--recovery-plan", "plan-modern")
        assert started.returncode == 0, started.stderr
        workflow_id = started.stdout.strip()
        client = await connect_temporal(lab_settings(state))
        await until_phase(lambda: plan_status(client, workflow_id), "awaiting-approval")
        assert cli(state, "approve", workflow_id, "--by", "alice").returncode == 0
        done = await until_phase(lambda: plan_status(client, workflow_id), "completed")

        identities = set()
        for workflow in [workflow_id, *(m.workflow_id for m in done.machines)]:
            history = await client.get_workflow_handle(workflow).fetch_history()
            for event in history.events:
                if event.HasField("activity_task_started_event_attributes"):
                    identities.add(event.activity_task_started_event_attributes.identity)
                if event.HasField("workflow_task_started_event_attributes"):
                    identities.add(event.workflow_task_started_event_attributes.identity)
        assert len(identities) >= 2, identities
        # plan-modern's machines were reprotected first: the points readiness listed went
        # stale, and the point selection listed them afresh, on the shared queue.
        ran_on = activities_ran_on(await client.get_workflow_handle(workflow_id).fetch_history())
        assert ran_on["read_recovery_points"][0] == "failback", ran_on
        throttled = lab_get(state, "/_lab/state")["throttled"]
        assert throttled == {"read": 0, "write": 0}
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def activities_ran_on(history: WorkflowHistory) -> dict[str, tuple[str, str]]:
    """Each activity type's last attempt: the task queue it was scheduled on and the worker
    that ran it."""
    by_event = {e.event_id: e for e in history.events}
    ran_on: dict[str, tuple[str, str]] = {}
    for event in history.events:
        if event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            scheduled = by_event[
                started.scheduled_event_id
            ].activity_task_scheduled_event_attributes
            ran_on[scheduled.activity_type.name] = (scheduled.task_queue.name, started.identity)
    return ran_on


async def test_the_points_are_selected_on_the_worker_that_listed_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan with nothing to reprotect: its point selection runs, through the worker's own task
    queue, on the worker whose readiness read listed the points, and takes them there (one list
    of points per machine in ASR's journal) with eager activity execution off, as on a server
    with its defaults, where the shared queue would hand it to either worker."""
    monkeypatch.setenv(TEMPORAL_CONFIG_VARIABLE, "system.enableActivityEagerExecution=false")
    state = start_lab(tmp_path, CLASSIC_PLANS, workers=2)
    try:
        started = cli(state, "start", "--recovery-plan", "plan-erp")
        assert started.returncode == 0, started.stderr
        workflow_id = started.stdout.strip()
        client = await connect_temporal(lab_settings(state))
        status = await until_phase(lambda: plan_status(client, workflow_id), "awaiting-approval")
        ran_on = activities_ran_on(await client.get_workflow_handle(workflow_id).fetch_history())
        readiness_queue, readiness_worker = ran_on["read_asr_facts"]
        points_queue, points_worker = ran_on["read_recovery_points"]
        # Readiness on the queue each worker polls while its read budget can pay for a plan.
        assert readiness_queue == "failback.readiness", ran_on
        assert points_queue.startswith("failback@"), ran_on
        assert points_worker == readiness_worker, ran_on
        # A list's first page (the lab's pages are small: the rest follow by $skiptoken).
        lists = [
            e["path"].lower().split("/replicationprotecteditems/")[1]
            for e in journal(state)
            if e["method"] == "GET"
            and e["path"].lower().endswith("/recoverypoints")
            and "$skiptoken" not in (e.get("query") or {})
        ]
        assert len(set(lists)) == len(status.machines) == len(lists), lists
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def _principal_of(pid: int) -> str | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        name, _, value = entry.decode(errors="replace").partition("=")
        if name == "FAILBACK_AZURE_LAB_CLIENT_ID":
            return value
    return None


def test_a_restarted_worker_keeps_its_own_principal(tmp_path: Path) -> None:
    state = start_lab(tmp_path, SCENARIO, workers=2, principal_per_worker=True)
    try:
        by_name = {p.name: p.pid for p in state.processes}
        assert _principal_of(by_name["worker"]) == "worker"
        assert _principal_of(by_name["worker-2"]) == "worker-2"
        assert "FAILBACK_ARM_BUDGET_SHARE" not in state.settings  # whole budgets each
        replacement = restart_worker(Path(state.lab_dir))
        assert replacement.pid != by_name["worker"]
        assert _principal_of(replacement.pid) == "worker"
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)
