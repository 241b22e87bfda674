"""Record the histories of the lab's standard runs for the replay tests (tests/replay).

    .venv/bin/python scripts/record_histories.py [--output tests/replay/histories]

Starts a fresh lab per run (vcsim, the ASR simulator, a Temporal dev server and a worker running
the current code, as `failback lab up` does, reusing the harness built in .lab/bin), runs it end
to end, and saves the full history of every workflow it started, the plans' child workflows
included, as `SCENARIO__WORKFLOWTYPE__NAME.json.gz` (`WorkflowHistory.to_json()`, gzipped; its
first event names the workflow id and type). The output folder's histories are replaced only when
every run succeeded. Re-run it whenever a workflow changes on purpose in a way
the stored histories no longer match (see tests/replay/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import shutil
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHistory

from domain.models import Phase
from lab.manager import LabState, lab_down, lab_up
from starter.commands import (
    CommandError,
    approve,
    cut_over,
    failback_input,
    machine_status,
    plan_input,
    plan_status,
    start_failback,
    start_plan_failback,
    undo,
    with_choices,
)
from starter.identity import attest
from starter.observe import name_machine
from worker.settings import Settings
from worker.wiring import connect_temporal

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "lab" / "scenarios"
DEFAULT_OUTPUT = ROOT / "tests" / "replay" / "histories"
# The failed run: a plan whose second boot group's only machine fails its failover, after the
# first group's machines are verified and awaiting approval, so that they must stand down.
FAILURE_PLAN = "plan-stand-down"
# Machines outside any replication group: the plan fails over machine by machine, and the first
# group's machines stand down (plan-erp's own run records the failover of a whole plan).
FAILURE_PLAN_GROUPS = [["web-01-item", "web-02-item"], ["cache-01-item"]]
FAILING_ITEM = "cache-01-item"
WAIT_SECONDS = 300.0
# Gzipped JSON: the plans' histories carry every recovery point read (1.2 MB as text).
SUFFIX = ".json.gz"


@dataclass(frozen=True)
class Recorded:
    scenario: str
    workflow_id: str
    workflow_type: str
    history: WorkflowHistory

    @property
    def ended(self) -> str:
        last = self.history.events[-1]
        return last.WhichOneof("attributes") or "unknown"


RunBody = Callable[[Client, Settings, LabState], Awaitable[str]]


@dataclass(frozen=True)
class StandardRun:
    name: str
    scenario: Callable[[Path], Path]
    body: RunBody
    description: str
    # The lab requires signed-in decisions (`lab up --signed-decisions`), with these rules.
    signed_decisions: dict[str, str] | None = None


def say(text: str) -> None:
    print(text, flush=True)


# --- the lab ---------------------------------------------------------------------------------


def start_lab(root: Path, scenario: Path, signed: dict[str, str] | None = None) -> LabState:
    """As tests/integration/conftest.py's start_lab: reuse the harness `make` built."""
    shared_bin = ROOT / ".lab" / "bin"
    lab_dir = root / "lab"
    if shared_bin.exists():
        lab_dir.mkdir()
        (lab_dir / "bin").symlink_to(shared_bin)
    return lab_up(
        scenario,
        lab_dir,
        say=lambda _: None,
        signed_decisions=signed is not None,
        extra_settings=signed,
    )


def lab_settings(state: LabState) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("FAILBACK_").lower(): v for k, v in state.settings.items()
    }
    return Settings(**values)


def lab_request(state: LabState, method: str, path: str, body: Any = None) -> Any:
    context = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{state.asr_url}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        text = reply.read()
    return json.loads(text) if text else None


def shipped(name: str) -> Callable[[Path], Path]:
    return lambda _root: SCENARIOS / name


def scenario_variant(
    root: Path, shipped_name: str, name: str, description: str, change: Callable[[Any], None]
) -> Path:
    """A shipped scenario changed for one recording, written where that recording's lab runs."""
    data = json.loads((SCENARIOS / shipped_name).read_text())
    data["name"], data["description"] = name, description
    change(data)
    path = root / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def failure_scenario(root: Path) -> Path:
    return scenario_variant(
        root,
        "recovery-plan.json",
        "plan-failure",
        "recovery-plan.json plus plan-stand-down: db-01 and db-02, then cache-01, whose failover "
        "job the recording makes fail",
        lambda data: data["azure"]["recovery_plans"].append(
            {"name": FAILURE_PLAN, "boot_groups": FAILURE_PLAN_GROUPS}
        ),
    )


def slow_plan_job_scenario(root: Path) -> Path:
    return scenario_variant(
        root,
        "modernized.json",
        "machines-during-job",
        "modernized.json with the plan's failover job taking 6 s: the plan starts its machines "
        "a second into it (the lab's FAILBACK_MACHINES_START_INTO_PLAN_JOB_SECONDS)",
        lambda data: data["azure"]["jobs"].update(failover_seconds=6),
    )


def hyperv_at_home_scenario(root: Path) -> Path:
    def app_01_at_home(data: Any) -> None:
        web = next(vm for vm in data["hyperv"]["vms"] if vm["name"] == "web-01")
        data["hyperv"]["vms"].append({**web, "name": "app-01"})

    return scenario_variant(
        root,
        "hyperv.json",
        "hyperv-plan-whole",
        "hyperv.json with app-01's VM still on hv-01 (off), as web-01's is: nothing to create, "
        "so a plan failing back for synchronization fails over through its planned failover",
        app_01_at_home,
    )


def hyperv_still_booting_scenario(root: Path) -> Path:
    def app_01_at_home_booting_slowly(data: Any) -> None:
        web = next(vm for vm in data["hyperv"]["vms"] if vm["name"] == "web-01")
        data["hyperv"]["vms"].append({**web, "name": "app-01", "heartbeat_after_seconds": 8})
        data["azure"]["jobs"].update(failover_seconds=6)

    return scenario_variant(
        root,
        "hyperv.json",
        "unverified-told-first",
        "hyperv.json with app-01's VM still on hv-01 (off), its guest's heartbeat OK 8 s after "
        "it starts, and the plan's failover job taking 6 s: the plan starts its machines during "
        "the job, and its read at the job's end finds app-01 still booting",
        app_01_at_home_booting_slowly,
    )


# --- the runs --------------------------------------------------------------------------------


async def wait_for_phase(read: Callable[[], Awaitable[Any]], phases: set[str]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        status = await read()
        if str(status.phase) in phases:
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"still {status.phase} after {WAIT_SECONDS:.0f} s")
        await asyncio.sleep(0.25)


async def single_vm(client: Client, settings: Settings, _lab: LabState) -> str:
    # As `failback start web-01` sends it: both of the machine's names, found in the vault.
    item_name, vm_name = name_machine(settings, "web-01")
    handle = await start_failback(client, settings, failback_input(settings, item_name, vm_name))
    status = await wait_for_phase(
        lambda: machine_status(client, handle.id), {Phase.AWAITING_APPROVAL, Phase.FAILED}
    )
    if status.phase != Phase.AWAITING_APPROVAL:
        raise RuntimeError(f"web-01 did not reach approval: {status.error}")
    await approve(client, handle.id, "alice", "recorded for the replay tests")
    result = await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    if result.outcome != "completed":
        raise RuntimeError(f"web-01: {result.summary}")
    return handle.id


def plan_run(plan: str, recovery_point: str, approver: str, undo_it: bool = False) -> RunBody:
    """A plan failed back to approval, then approved (completed) or, `undo_it`, undone before
    its commit (modernized)."""

    async def body(client: Client, settings: Settings, _lab: LabState) -> str:
        handle = await start_plan_failback(
            client, settings, plan_input(settings, plan, recovery_point)
        )
        status = await wait_for_phase(
            lambda: plan_status(client, handle.id), {"awaiting-approval", "failed"}
        )
        if status.phase != "awaiting-approval":
            raise RuntimeError(f"{plan} did not reach approval: {status.error}")
        decide = undo if undo_it else approve
        await decide(client, handle.id, approver, "recorded for the replay tests")
        result = await asyncio.wait_for(handle.result(), WAIT_SECONDS)
        if result.outcome != ("undone" if undo_it else "completed"):
            raise RuntimeError(f"{plan}: {result.summary}")
        return handle.id

    return body


async def signed_plan(client: Client, settings: Settings, _lab: LabState) -> str:
    """plan-modern with signed decisions: started by alice, refused to her (four-eyes), then
    approved by bob and carol (two distinct approvers)."""

    def signed_in(user: str) -> Settings:
        return settings.model_copy(update={"lab_identity": user})

    handle = await start_plan_failback(
        client, signed_in("alice"), plan_input(settings, "plan-modern", "latest")
    )
    status = await wait_for_phase(
        lambda: plan_status(client, handle.id), {"awaiting-approval", "failed"}
    )
    if status.phase != "awaiting-approval":
        raise RuntimeError(f"plan-modern did not reach approval: {status.error}")
    for user in ("alice", "bob", "carol"):
        attestation = await attest(signed_in(user), handle.id, "approve", "replay tests")
        with contextlib.suppress(CommandError):  # alice's is refused (R30), and recorded
            await approve(client, handle.id, "", "recorded for the replay tests", attestation)
    result = await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    if result.outcome != "completed" or len(result.status.rejected_approvals) != 1:
        raise RuntimeError(f"plan-modern (signed): {result.summary}")
    return handle.id


async def hyperv_plan(client: Client, settings: Settings, _lab: LabState) -> str:
    """plan-hyperv for-downtime, with ASR creating app-01 again on hv-02: held at the
    suspension until the plan's cut-over, then approved."""
    params = with_choices(
        plan_input(settings, "plan-hyperv", "latest"),
        master_target="hv-02.corp.local",
        data_sync="for-downtime",
    )
    handle = await start_plan_failback(client, settings, params)

    async def synchronized() -> Any:
        plan = await plan_status(client, handle.id)
        machines = [await machine_status(client, m.workflow_id) for m in plan.machines[:1]]
        return machines[0] if machines else plan

    await wait_for_phase(synchronized, {"synchronized-awaiting-cutover", "failed"})
    await cut_over(client, handle.id, "hana", "recorded for the replay tests")
    status = await wait_for_phase(
        lambda: plan_status(client, handle.id), {"awaiting-approval", "failed"}
    )
    if status.phase != "awaiting-approval":
        raise RuntimeError(f"plan-hyperv did not reach approval: {status.error}")
    await approve(client, handle.id, "hana", "recorded for the replay tests")
    result = await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    if result.outcome != "completed":
        raise RuntimeError(f"plan-hyperv: {result.summary}")
    return handle.id


async def failing_plan(client: Client, settings: Settings, lab: LabState) -> str:
    lab_request(
        lab,
        "POST",
        "/_lab/faults",
        {
            "kind": "job_failure",
            "operation": "unplannedFailover",
            "item": FAILING_ITEM,
            "code": "8038",
            "message": "Injected for the replay tests: the VM could not be started on-premises.",
        },
    )
    handle = await start_plan_failback(
        client, settings, plan_input(settings, FAILURE_PLAN, "latest")
    )
    try:
        await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    except WorkflowFailureError:
        pass
    else:
        raise RuntimeError(f"{FAILURE_PLAN} completed although {FAILING_ITEM}'s failover failed")
    status = await plan_status(client, handle.id)
    if status.phase != "failed" or FAILING_ITEM not in status.failed:
        raise RuntimeError(f"{FAILURE_PLAN} did not fail on {FAILING_ITEM}: {status.error}")
    stood_down = sorted(set(status.failed) - {FAILING_ITEM})
    if stood_down != sorted(FAILURE_PLAN_GROUPS[0]):
        raise RuntimeError(f"expected the first boot group to stand down, got {status.failed}")
    commits = [
        e
        for e in lab_request(lab, "GET", "/_lab/journal")
        if e["method"] == "POST" and e["path"].endswith("/failoverCommit")
    ]
    if commits:
        raise RuntimeError(f"{FAILURE_PLAN} committed something: {commits}")
    return handle.id


RUNS = [
    StandardRun(
        "single-vm",
        shipped("single-vm.json"),
        single_vm,
        "one machine (web-01), approved, completed",
    ),
    StandardRun(
        "recovery-plan",
        shipped("recovery-plan.json"),
        plan_run("plan-erp", "app-consistent", "dana"),
        "plan-erp (3 boot groups, 7 machines) at app-consistent points, approved, completed",
    ),
    StandardRun(
        "reprotect",
        shipped("reprotect.json"),
        plan_run("plan-reprotect", "latest", "erin"),
        "plan-reprotect: reprotect to on-premises first, then latest points, approved, completed",
    ),
    StandardRun(
        "modernized",
        shipped("modernized.json"),
        plan_run("plan-modern", "latest", "gina"),
        "plan-modern (modernized): reprotect through the appliance, the plan's planned "
        "failover, approved, completed",
    ),
    StandardRun(
        "modernized-undo",
        shipped("modernized.json"),
        plan_run("plan-modern", "latest", "frank", undo_it=True),
        "plan-modern (modernized), verified, then undone before commit",
    ),
    StandardRun(
        "hyperv",
        shipped("hyperv.json"),
        hyperv_plan,
        "plan-hyperv (Hyper-V) for-downtime, app-01 created again on hv-02: synchronized, cut "
        "over by the plan, approved, completed",
    ),
    StandardRun(
        "signed",
        shipped("modernized.json"),
        signed_plan,
        "plan-modern with signed decisions (patch authenticated-decisions): started by alice, "
        "her approval refused (four-eyes), approved by bob and carol, completed",
        signed_decisions={"FAILBACK_FOUR_EYES": "true", "FAILBACK_APPROVERS_REQUIRED": "2"},
    ),
    StandardRun(
        "plan-reads-first",
        shipped("recovery-plan.json"),
        plan_run("plan-erp", "app-consistent", "hana"),
        "plan-erp (3 boot groups, 7 machines, FO-PLAN) with the patch "
        "plan-reads-first-verification: the plan's failover activity reads every machine's "
        "first verification, a group found verified lets the next start, approved, completed",
    ),
    StandardRun(
        "onprem-facts-classic",
        shipped("recovery-plan.json"),
        plan_run("plan-erp", "latest", "ivan"),
        "plan-erp (classic) with the patch onprem-facts-of-the-plan: vCenter asked for the "
        "plan's VMs and its master targets' after ASR, approved, completed",
    ),
    StandardRun(
        "onprem-facts-modernized",
        shipped("modernized.json"),
        plan_run("plan-modern", "latest", "jane"),
        "plan-modern (modernized) with the patch onprem-facts-of-the-plan: vCenter asked for "
        "the plan's VMs alongside ASR, approved, completed",
    ),
    StandardRun(
        "machines-during-job",
        slow_plan_job_scenario,
        plan_run("plan-modern", "latest", "kim"),
        "plan-modern (modernized) with the patch machines-start-during-plan-job: its 6 s job "
        "runs while the plan starts its machines, each told the job's end by a signal, approved, "
        "completed",
    ),
    StandardRun(
        "plan-approves-on-read",
        slow_plan_job_scenario,
        plan_run("plan-modern", "latest", "lena"),
        "plan-modern (modernized) with the patch plan-approves-on-its-read: its 6 s job runs "
        "while the plan starts its machines; the plan's read verifies both, it awaits approval "
        "without their word and tells each so with the job's end, approved, completed",
    ),
    StandardRun(
        "points-where-listed",
        shipped("recovery-plan.json"),
        plan_run("plan-erp", "latest", "mona"),
        "plan-erp (classic, nothing to reprotect) with the patch points-read-where-listed: the "
        "point selection runs on the task queue of the worker whose readiness read listed the "
        "points, approved, completed",
    ),
    StandardRun(
        "hyperv-plan-whole",
        hyperv_at_home_scenario,
        plan_run("plan-hyperv", "latest", "olga"),
        "plan-hyperv (Hyper-V, every VM at home) for-synchronization with the patch "
        "hyperv-plan-fails-over-whole: the recovery plan's planned failover, one job, each "
        "machine verified on its host, approved, completed",
    ),
    StandardRun(
        "unverified-told-first",
        hyperv_still_booting_scenario,
        plan_run("plan-hyperv", "latest", "pia"),
        "plan-hyperv (Hyper-V, every VM at home) with the patches unverified-told-first and "
        "plan-reads-until-verified: its 6 s job runs while the plan starts its machines; its "
        "read at the job's end finds app-01 still booting, which is told the job ended first; "
        "the plan reads it again each poll until verified, app-01 verifies itself too, "
        "approved, completed",
    ),
    StandardRun(
        "plan-failure",
        failure_scenario,
        failing_plan,
        f"{FAILURE_PLAN}: {FAILING_ITEM}'s failover job fails, the plan stops, web-01 and web-02 "
        "stand down before commit",
    ),
]


# --- histories -------------------------------------------------------------------------------


def child_ids(history: WorkflowHistory) -> list[str]:
    ids: list[str] = []
    for event in history.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            ids.append(event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
    return ids


async def collect(client: Client, scenario: str, top_id: str) -> list[Recorded]:
    """The workflow's history and, depth first, every child's."""
    recorded: list[Recorded] = []
    pending = [top_id]
    while pending:
        workflow_id = pending.pop(0)
        handle = client.get_workflow_handle(workflow_id)
        description = await handle.describe()
        if description.close_time is None:
            raise RuntimeError(f"{workflow_id} is still running; its history would be partial")
        history = await handle.fetch_history()
        recorded.append(Recorded(scenario, workflow_id, description.workflow_type, history))
        pending.extend(child_ids(history))
    return recorded


def file_name(entry: Recorded, settings: Settings) -> str:
    vault = settings.azure_vault or ""
    short = entry.workflow_id
    for prefix in (f"failback-plan-{vault}-", f"failback-{vault}-"):
        if short.startswith(prefix):
            short = short.removeprefix(prefix)
            break
    return f"{entry.scenario}__{entry.workflow_type}__{short}{SUFFIX}"


async def record_run(run: StandardRun, scratch: Path, output: Path) -> list[Path]:
    root = scratch / run.name
    root.mkdir()
    say(f"== {run.name}: {run.description}")
    started = time.monotonic()
    lab = start_lab(root, run.scenario(root), run.signed_decisions)
    try:
        settings = lab_settings(lab)
        client = await connect_temporal(settings)
        top_id = await run.body(client, settings, lab)
        recorded = await collect(client, run.name, top_id)
    finally:
        lab_down(Path(lab.lab_dir), say=lambda _: None)
    written = []
    for entry in recorded:
        path = output / file_name(entry, settings)
        # mtime 0: the same history gives the same bytes.
        path.write_bytes(gzip.compress(entry.history.to_json().encode(), mtime=0))
        written.append(path)
        say(f"   {path.name:<58} {len(entry.history.events):>5} events  {entry.ended}")
    say(f"   recorded in {time.monotonic() - started:.0f} s")
    return written


async def record_all(output: Path, only: set[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="record-histories-") as scratch_name:
        scratch = Path(scratch_name)
        fresh = scratch / "histories"
        fresh.mkdir()
        if only and output.exists():
            # Keep the other runs' histories as they are.
            for kept in output.glob(f"*__*{SUFFIX}"):
                if kept.name.split("__")[0] not in only:
                    shutil.copy2(kept, fresh / kept.name)
        for run in RUNS:
            if not only or run.name in only:
                await record_run(run, scratch, fresh)
        # Every run succeeded: only now replace what was stored.
        output.mkdir(parents=True, exist_ok=True)
        for old in output.glob(f"*{SUFFIX}"):
            old.unlink()
        for new in sorted(fresh.iterdir()):
            shutil.copy2(new, output / new.name)
    say(f"wrote {output}:")
    total = 0
    for path in sorted(output.glob(f"*{SUFFIX}")):
        history = WorkflowHistory.from_json(path.name, gzip.decompress(path.read_bytes()).decode())
        size = path.stat().st_size
        total += size
        say(f"  {path.name:<60} {len(history.events):>5} events {size / 1024:>7.1f} KiB")
    say(f"  total {total / 1024:.1f} KiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--only",
        action="append",
        choices=[run.name for run in RUNS],
        help="re-record only this run (repeatable); the others' histories are kept",
    )
    args = parser.parse_args(argv)
    asyncio.run(record_all(args.output.resolve(), set(args.only or [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
