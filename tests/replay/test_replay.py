"""Stored histories of the lab's standard runs, replayed against the current workflow code.

No server: the Replayer runs the workflows from the recorded events, and a workflow that now
issues different commands (another activity, a timer fewer, a child in another order) fails with a
nondeterminism error, as a worker would on a running failback after a deploy. Recorded by
scripts/record_histories.py; see tests/replay/README.md.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.vsphere import OnPremFactsQuery, VSphereActivities
from domain.models import MachineFailbackInput, MachineFailbackResult
from worker.wiring import WORKFLOWS, workflow_runner
from workflows.machine import MachineFailbackWorkflow
from workflows.versioning import ACTIVE_PATCHES

HISTORIES = Path(__file__).parent / "histories"
SUFFIX = ".json.gz"
STORED = sorted(HISTORIES.glob(f"*{SUFFIX}"))
INCOMPATIBLE = (
    "the workflow code is no longer compatible with this stored history: if the change is "
    "intended, version it with workflow.patched() or re-record with scripts/record_histories.py"
)
CLOSED = {
    "workflow_execution_completed_event_attributes",
    "workflow_execution_failed_event_attributes",
    "workflow_execution_canceled_event_attributes",
    "workflow_execution_terminated_event_attributes",
    "workflow_execution_timed_out_event_attributes",
    "workflow_execution_continued_as_new_event_attributes",
}


def load(path: Path) -> WorkflowHistory:
    data = json.loads(gzip.decompress(path.read_bytes()))
    started = data["events"][0]["workflowExecutionStartedEventAttributes"]
    return WorkflowHistory.from_json(started.get("workflowId") or path.name, data)


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def ended(history: WorkflowHistory) -> str:
    return history.events[-1].WhichOneof("attributes") or "none"


def signals(history: WorkflowHistory) -> set[str]:
    return {
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
    }


async def one(history: WorkflowHistory) -> AsyncIterator[WorkflowHistory]:
    yield history


async def replay(workflows: Sequence[type], history: WorkflowHistory) -> None:
    replayer = Replayer(
        workflows=workflows,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflows(one(history), raise_on_replay_failure=True)


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.name.removesuffix(SUFFIX))
async def test_stored_history_replays_on_the_current_code(path: Path) -> None:
    history = load(path)
    try:
        await replay(WORKFLOWS, history)
    except Exception as err:
        pytest.fail(
            f"{path.relative_to(HISTORIES.parents[2])} ({workflow_type(history)} "
            f"{history.workflow_id}): {INCOMPATIBLE}.\n{type(err).__name__}: {err}",
            pytrace=False,
        )


def test_stored_histories_cover_every_workflow_and_the_failure_path() -> None:
    """The folder cannot be emptied, or thinned to the happy path, without this failing."""
    assert STORED, f"no stored histories in {HISTORIES}: run scripts/record_histories.py"
    histories = {path.name: load(path) for path in STORED}
    by_type: dict[str, list[WorkflowHistory]] = {}
    for history in histories.values():
        by_type.setdefault(workflow_type(history), []).append(history)

    registered = {str(workflow._Definition.must_from_class(cls).name) for cls in WORKFLOWS}
    assert registered <= set(by_type), (
        f"no stored history of {sorted(registered - set(by_type))}: add a standard run to "
        "scripts/record_histories.py and re-record"
    )
    partial = [name for name, h in histories.items() if ended(h) not in CLOSED]
    assert not partial, f"histories of workflows that had not finished: {partial}"
    for name in ("MachineFailbackWorkflow", "PlanFailbackWorkflow"):
        endings = {ended(h) for h in by_type[name]}
        assert "workflow_execution_completed_event_attributes" in endings, name
        assert "workflow_execution_failed_event_attributes" in endings, (
            f"no failed {name} is stored: the failure path needs replay coverage"
        )
    # The failed plan told its machines to stand down, and they did.
    stood_down = [
        h
        for h in by_type["MachineFailbackWorkflow"]
        if "stand_down" in signals(h) and ended(h) == "workflow_execution_failed_event_attributes"
    ]
    assert stood_down, "no stored machine history stands down on its plan's order"
    approved = [h for h in by_type["MachineFailbackWorkflow"] if "approve_commit" in signals(h)]
    assert approved, "no stored machine history receives a commit approval"
    undone = [h for h in by_type["MachineFailbackWorkflow"] if "undo_failback" in signals(h)]
    assert undone, "no stored machine history is undone before commit (modernized)"
    cut = [h for h in by_type["MachineFailbackWorkflow"] if "cut_over" in signals(h)]
    assert cut, "no stored machine history is cut over (Hyper-V for-downtime)"
    told = [h for h in by_type["MachineFailbackWorkflow"] if "plan_job_ended" in signals(h)]
    assert told, "no stored machine history was started during its plan's job and told its end"
    kept = [h for h in by_type["PlanFailbackWorkflow"] if points_read_on_own_queue(h)]
    assert kept, "no stored plan history reads its points on the worker that listed them"


def points_read_on_own_queue(history: WorkflowHistory) -> bool:
    """The plan's point selection was scheduled on a worker's own task queue (not the shared
    one its workflow tasks ran on)."""
    shared = history.events[0].workflow_execution_started_event_attributes.task_queue.name
    return any(
        e.activity_task_scheduled_event_attributes.activity_type.name == "read_recovery_points"
        and e.activity_task_scheduled_event_attributes.task_queue.name != shared
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    )


def patches(history: WorkflowHistory) -> set[str]:
    """The workflow.patched() ids a history recorded (core's patch markers)."""
    found = set()
    for event in history.events:
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        marker = event.marker_recorded_event_attributes
        for payload in marker.details["patch-data"].payloads:
            found.add(json.loads(payload.data)["id"])
    return found


def test_every_patch_a_history_recorded_is_listed() -> None:
    """A stored history replays only while its patch's branch is kept: each marker it recorded
    must still be an entry of workflows/versioning.py (step 2 of its life cycle removes a patch
    only after the histories are re-recorded past it)."""
    listed = {p.id for p in ACTIVE_PATCHES}
    for history in map(load, STORED):
        assert patches(history) <= listed, history.workflow_id


def test_both_branches_of_every_active_patch_are_replayed() -> None:
    """While a patch is active, the folder holds histories from before it (the old branch, as
    failbacks already running replay) and at least one recorded with its marker (the new)."""
    recorded = [patches(load(path)) for path in STORED]
    for patch in ACTIVE_PATCHES:
        assert any(patch.id in found for found in recorded), (
            f"no stored history recorded patch {patch.id}: record one (scripts/record_histories.py)"
        )
        assert any(patch.id not in found for found in recorded), patch.id


def test_no_stored_history_was_started_with_a_revision() -> None:
    """There is one versioning mechanism: no input field picks an older behaviour."""
    for history in map(load, STORED):
        started = history.events[0].workflow_execution_started_event_attributes
        if started.input.payloads:
            assert "revision" not in json.loads(started.input.payloads[0].data)


# --- the guard guards: an incompatible change is caught ---------------------------------------


@workflow.defn(name="MachineFailbackWorkflow", sandboxed=False)
class MachineFailbackWithPreflight(MachineFailbackWorkflow):
    """What a careless change looks like: the same workflow, plus one activity call (a pre-flight
    read of vCenter) before everything it did before, with no workflow.patched()."""

    @workflow.run
    async def run(self, params: MachineFailbackInput) -> MachineFailbackResult:
        await workflow.execute_activity_method(
            VSphereActivities.read_onprem_facts,
            OnPremFactsQuery(),
            start_to_close_timeout=timedelta(minutes=2),
        )
        return await super().run(params)


@workflow.defn(name="MachineFailbackWorkflow", sandboxed=False)
class MachineFailbackWithPatchedPreflight(MachineFailbackWorkflow):
    """The same change done right: behind workflow.patched(), which is False when replaying a
    history recorded before the change, so old runs keep their path and new ones take the new."""

    @workflow.run
    async def run(self, params: MachineFailbackInput) -> MachineFailbackResult:
        if workflow.patched("preflight-onprem-facts"):
            await workflow.execute_activity_method(
                VSphereActivities.read_onprem_facts,
                OnPremFactsQuery(),
                start_to_close_timeout=timedelta(minutes=2),
            )
        return await super().run(params)


def first_machine_history(scenario: str) -> list[Path]:
    for path in STORED:
        if path.name.startswith(f"{scenario}__MachineFailbackWorkflow__"):
            return [path]
    return []


# A machine on its own (it discovers first), one in a plan (it fails over first), one that stood
# down (it fails).
@pytest.mark.parametrize(
    "path",
    [
        *first_machine_history("single-vm"),
        *first_machine_history("recovery-plan"),
        *first_machine_history("plan-failure"),
    ],
    ids=lambda p: p.name.removesuffix(SUFFIX),
)
async def test_an_unversioned_extra_activity_call_is_reported_as_nondeterminism(path: Path) -> None:
    history = load(path)
    await replay(WORKFLOWS, history)  # the stored history is fine with the real code ...
    with pytest.raises(workflow.NondeterminismError) as caught:
        # ... and not with the changed one, under the same workflow name.
        await replay([MachineFailbackWithPreflight], history)
    assert "Nondeterminism error" in str(caught.value), caught.value
    # The README's advice holds: the same change behind workflow.patched() replays.
    await replay([MachineFailbackWithPatchedPreflight], history)
