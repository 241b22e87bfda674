"""Issue 16: Hyper-V failback end to end in the lab, through the CLI, the real SDK, the worker, the
Temporal dev server, and pywinrm against the lab's Hyper-V host stand-in (WinRM over HTTPS):
readiness (R23-R27), the planned failover from Azure (HyperVReplicaAzureFailback) in both
data-sync modes, original and alternate location, verification on the host, approval, commit
("finalize failback") and reverse replication (HyperVReplicaAzure)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.models import MachineStatus
from lab.manager import LabState, lab_down
from starter.commands import CommandError, machine_status, plan_status
from tests.integration.conftest import (
    cli,
    journal,
    lab_get,
    lab_settings,
    posts,
    simulator_schema_violations,
    start_lab,
    until_phase,
)
from worker.wiring import connect_temporal

SCENARIO = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "hyperv.json"


@pytest.fixture()
def hyperv_lab(tmp_path: Path) -> Iterator[LabState]:
    """A lab of its own per test: each one changes the hosts and the vault for good."""
    state = start_lab(tmp_path, SCENARIO)
    try:
        yield state
        found = simulator_schema_violations(state)
        assert found == [], f"the simulator answered in shapes real ASR does not send: {found[:5]}"
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def host_state(state: LabState) -> dict[str, Any]:
    """What the Hyper-V hosts hold, from the stand-in's control plane."""
    url = next(iter(state.hyperv_endpoints.values())).removesuffix("/wsman")
    context = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
    with urllib.request.urlopen(f"{url}/_lab/state", context=context, timeout=10) as reply:
        return dict(json.loads(reply.read()))


def details(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(entry["body"]["properties"]["providerSpecificDetails"])


async def test_a_plan_fails_back_for_synchronization_with_a_vm_created_on_another_host(
    hyperv_lab: LabState,
) -> None:
    """web-01 goes back to its VM on hv-01; app-01's VM is gone, and ASR creates it on hv-02,
    the host named with --master-target (it has the same virtual switch)."""
    checked = cli(
        hyperv_lab, "check", "--recovery-plan", "plan-hyperv", "--master-target", "hv-02.corp.local"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "app-01-item: alternate location" in checked.stdout and "hv-02" in checked.stdout
    previewed = cli(
        hyperv_lab,
        "preview",
        "--recovery-plan",
        "plan-hyperv",
        "--master-target",
        "hv-02.corp.local",
    )
    assert previewed.returncode == 0, previewed.stderr
    assert "machine by machine" in previewed.stdout, previewed.stdout
    assert "a VM to create on another host" in previewed.stdout, previewed.stdout
    started = cli(
        hyperv_lab, "start", "--recovery-plan", "plan-hyperv", "--master-target", "hv-02.corp.local"
    )
    assert started.returncode == 0, started.stderr
    workflow_id = started.stdout.strip()
    client = await connect_temporal(lab_settings(hyperv_lab))
    status = await until_phase(lambda: plan_status(client, workflow_id), "awaiting-approval")

    hosts = host_state(hyperv_lab)
    vms = {vm["name"]: vm for vm in hosts["vms"]}
    assert vms["web-01"]["host"] == "hv-01.corp.local" and vms["web-01"]["state"] == "Running"
    assert vms["app-01"]["host"] == "hv-02.corp.local" and vms["app-01"]["state"] == "Running"
    assert {"action": "create", "vm": "app-01", "host": "hv-02.corp.local"}.items() <= next(
        e for e in hosts["events"] if e["action"] == "create"
    ).items()
    # Verified where the VMs run, independently of ASR: read over WinRM, heartbeat OK.
    for machine in status.machines:
        verified = await machine_status(client, machine.workflow_id)
        assert verified.verification is not None and verified.verification.passed
        assert verified.verification.onprem.platform == "hyperv"
        assert (verified.verification.onprem.heartbeat or "").startswith("Ok")
        assert verified.downtime_seconds is not None and verified.downtime_seconds >= 0

    approved = cli(hyperv_lab, "approve", workflow_id, "--by", "alice")
    assert approved.returncode == 0, approved.stderr
    status = await until_phase(lambda: plan_status(client, workflow_id), "completed")

    entries = journal(hyperv_lab)
    web, app = (
        posts(entries, "plannedFailover", "web-01-item"),
        posts(entries, "plannedFailover", "app-01-item"),
    )
    assert len(web) == 1 and len(app) == 1
    # The recorded body (hyperv-PlannedFailover.json): no failoverDirection.
    assert "failoverDirection" not in web[0]["body"]["properties"]
    assert details(web[0]) == {
        "instanceType": "HyperVReplicaAzureFailback",
        "dataSyncOption": "ForSynchronization",
        "recoveryVmCreationOption": "NoAction",
    }
    assert details(app[0])["recoveryVmCreationOption"] == "CreateVmIfNotFound"
    assert details(app[0])["providerIdForAlternateRecovery"].endswith(
        next(
            p
            for p in lab_get(hyperv_lab, "/_lab/state")["hyperv_providers"]
            if p["host"] == "hv-02.corp.local"
        )["name"]
    )
    state = {i["name"]: i for i in lab_get(hyperv_lab, "/_lab/state")["items"]}
    for item in ("web-01-item", "app-01-item"):
        assert len(posts(entries, "failoverCommit", item)) == 1
        [reprotect] = posts(entries, "reProtect", item)
        assert reprotect["body"]["properties"]["failoverDirection"] == "PrimaryToRecovery"
        assert details(reprotect)["instanceType"] == "HyperVReplicaAzure"
        assert details(reprotect)["hvHostVmId"] == state[item]["vm_id"]
        assert state[item]["azure_vm"]["deleted"]
        assert state[item]["phase"] == "ReplicatingToAzure"


def scenario_with_every_vm_at_home(tmp_path: Path, plan_words: str) -> Path:
    """hyperv.json with app-01's VM still on hv-01 (off), as web-01's is: no VM to create."""
    scenario = json.loads(SCENARIO.read_text())
    web = next(vm for vm in scenario["hyperv"]["vms"] if vm["name"] == "web-01")
    scenario["hyperv"]["vms"].append({**web, "name": "app-01"})
    scenario["azure"]["wire"] = {"hyperv_plan_operations": plan_words}
    scenario["name"] = "hyperv-every-vm-at-home"
    path = tmp_path / "hyperv-every-vm-at-home.json"
    path.write_text(json.dumps(scenario))
    return path


@pytest.mark.parametrize("plan_words", ["plan-words", "item-words"])
async def test_a_plan_for_synchronization_to_its_own_vms_fails_over_in_the_plans_one_job(
    tmp_path: Path, plan_words: str
) -> None:
    """FO-PLAN, Hyper-V: every VM is at home and the data syncs during the failover, so the plan
    fails back through the recovery plan's planned failover (the recorded body of
    hyperv-RPFailback.json), one ASR job booting the boot groups in order, no machine's own;
    each machine is verified on its host, and commits and reverse-replicates on its own. Whether
    the plan offers it as PlannedFailover (a plan's words) or Failback (its items': unrecorded
    before a failback)."""
    state = start_lab(tmp_path, scenario_with_every_vm_at_home(tmp_path, plan_words))
    try:
        checked = cli(state, "check", "--recovery-plan", "plan-hyperv")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "alternate location" not in checked.stdout, checked.stdout
        previewed = cli(state, "preview", "--recovery-plan", "plan-hyperv")
        assert previewed.returncode == 0, previewed.stderr
        assert "fails over whole, in one ASR job" in previewed.stdout, previewed.stdout
        started = cli(state, "start", "--recovery-plan", "plan-hyperv")
        assert started.returncode == 0, started.stderr
        workflow_id = started.stdout.strip()
        client = await connect_temporal(lab_settings(state))
        status = await until_phase(lambda: plan_status(client, workflow_id), "awaiting-approval")
        assert status.failover is not None and status.failover.operation == "plannedFailover"

        entries = journal(state)
        (whole,) = [
            e
            for e in entries
            if e["method"] == "POST"
            and e["path"].endswith("/replicationRecoveryPlans/plan-hyperv/plannedFailover")
        ]
        assert whole["body"]["properties"] == {
            "failoverDirection": "RecoveryToPrimary",
            "providerSpecificDetails": [
                {
                    "instanceType": "HyperVReplicaAzureFailback",
                    "dataSyncOption": "ForSynchronization",
                    "recoveryVmCreationOption": "NoAction",
                }
            ],
        }
        vms = {vm["name"]: vm for vm in host_state(state)["vms"]}
        for machine in status.machines:
            assert vms[machine.vm_name]["host"] == "hv-01.corp.local"
            assert vms[machine.vm_name]["state"] == "Running"
            verified = await machine_status(client, machine.workflow_id)
            assert verified.verification is not None and verified.verification.passed
            assert verified.verification.onprem.platform == "hyperv"
            assert (verified.verification.onprem.heartbeat or "").startswith("Ok")
            assert posts(entries, "plannedFailover", machine.item_name) == []

        assert cli(state, "approve", workflow_id, "--by", "alice").returncode == 0
        status = await until_phase(lambda: plan_status(client, workflow_id), "completed")
        entries = journal(state)
        items = {i["name"]: i for i in lab_get(state, "/_lab/state")["items"]}
        for item in ("web-01-item", "app-01-item"):
            assert len(posts(entries, "failoverCommit", item)) == 1
            (reprotect,) = posts(entries, "reProtect", item)
            assert details(reprotect)["instanceType"] == "HyperVReplicaAzure"
            assert items[item]["azure_vm"]["deleted"]
            assert items[item]["phase"] == "ReplicatingToAzure"
        found = simulator_schema_violations(state)
        assert found == [], f"the simulator answered in shapes real ASR does not send: {found[:5]}"
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


async def test_for_downtime_holds_synchronized_until_the_cutover_then_resumes_once(
    hyperv_lab: LabState,
) -> None:
    """The Azure VM keeps running while ASR synchronizes and suspends its job; the failback
    holds there until `failback cutover`, resumes the job once, and measures the downtime. An
    undo is refused with ASR's own warning; the failback then completes on approval."""
    started = cli(hyperv_lab, "start", "web-01", "--data-sync", "for-downtime")
    assert started.returncode == 0, started.stderr
    workflow_id = started.stdout.strip()
    client = await connect_temporal(lab_settings(hyperv_lab))
    status = await until_phase(
        lambda: machine_status(client, workflow_id), "synchronized-awaiting-cutover"
    )
    await asyncio.sleep(2)  # it holds: nothing more happens without the cut-over
    status = await machine_status(client, workflow_id)
    assert status.phase == "synchronized-awaiting-cutover"
    item = next(
        i for i in lab_get(hyperv_lab, "/_lab/state")["items"] if i["name"] == "web-01-item"
    )
    assert item["azure_vm"]["power_state"] == "running"
    assert {vm["name"]: vm["state"] for vm in host_state(hyperv_lab)["vms"]}["web-01"] == "Off"
    jobs = [
        j
        for j in lab_get(hyperv_lab, "/_lab/state")["jobs"]
        if j["name"] == status.operations[-1].job_id
    ]
    assert jobs and jobs[0]["properties"]["state"] == "Suspended"

    refused = cli(hyperv_lab, "undo", workflow_id, "--by", "bob")
    assert refused.returncode != 0 and "corrupt" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    cut = cli(hyperv_lab, "cutover", workflow_id, "--by", "carol", "--comment", "window open")
    assert cut.returncode == 0, cut.stderr
    again = cli(hyperv_lab, "cutover", workflow_id, "--by", "carol")
    assert again.returncode != 0 and "already" in again.stderr
    status = await until_phase(lambda: machine_status(client, workflow_id), "awaiting-approval")
    assert status.cutover is not None and status.cutover.cut_over_by == "carol"
    assert status.synchronized_at is not None and status.downtime_seconds is not None
    entries = journal(hyperv_lab)
    resumes = [e for e in entries if e["method"] == "POST" and e["path"].endswith("/resume")]
    assert len(resumes) == 1
    assert details(posts(entries, "plannedFailover", "web-01-item")[0])["dataSyncOption"] == (
        "ForDownTime"
    )

    assert cli(hyperv_lab, "approve", workflow_id, "--by", "alice").returncode == 0
    late = cli(hyperv_lab, "cancel", workflow_id, "--by", "dan")
    assert late.returncode != 0 and "Traceback" not in late.stderr
    assert "approved by alice" in late.stderr or "has ended" in late.stderr, late.stderr
    status = await until_phase(lambda: machine_status(client, workflow_id), "completed")


async def test_a_cutover_time_given_at_start_cuts_over_by_itself(hyperv_lab: LabState) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    started = cli(hyperv_lab, "start", "web-01", "--data-sync", "for-downtime", "--cutover-at", at)
    assert started.returncode == 0, started.stderr
    client = await connect_temporal(lab_settings(hyperv_lab))
    for _ in range(400):
        status = await machine_status(client, started.stdout.strip())
        if status.phase in ("awaiting-approval", "failed"):
            break
        await asyncio.sleep(0.25)
    assert status.phase == "awaiting-approval", status.error
    assert status.cutover is not None and "cut-over time" in status.cutover.cut_over_by
    assert status.cutover.at >= datetime.strptime(at, "%Y-%m-%dT%H:%M:%S%z")


async def test_a_plan_cancelled_while_synchronized_stands_down_and_commits_nothing(
    hyperv_lab: LabState,
) -> None:
    """`failback cancel PLAN --by NAME` before the commit: recorded with who and why, every
    machine stands down, nothing is committed, the Azure VMs stay."""
    started = cli(
        hyperv_lab, "start", "--recovery-plan", "plan-hyperv", "--data-sync", "for-downtime"
    )
    assert started.returncode == 0, started.stderr
    workflow_id = started.stdout.strip()
    client = await connect_temporal(lab_settings(hyperv_lab))
    first: MachineStatus | None = None
    for _ in range(400):
        plan = await plan_status(client, workflow_id)
        # The plan lists its machines once it has chosen their points, before it starts their
        # workflows: until the first one runs, there is no status to ask.
        with contextlib.suppress(CommandError):
            first = (
                await machine_status(client, plan.machines[0].workflow_id)
                if plan.machines
                else None
            )
        if first is not None and first.phase in ("synchronized-awaiting-cutover", "failed"):
            break
        await asyncio.sleep(0.25)
    assert first is not None and first.phase == "synchronized-awaiting-cutover", first
    member = cli(hyperv_lab, "cancel", plan.machines[0].workflow_id, "--by", "dan")
    assert member.returncode != 0 and "cancel the plan as a whole" in member.stderr
    done = cli(hyperv_lab, "cancel", workflow_id, "--by", "dan", "--comment", "wrong window")
    assert done.returncode == 0, done.stderr
    assert "not cancelled" in done.stdout and "corrupt" in done.stdout, done.stdout
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(200):
        description = await handle.describe()
        if description.status is not None and description.status.name != "RUNNING":
            break
        await asyncio.sleep(0.25)
    assert description.status is not None and description.status.name == "CANCELED"
    again = cli(hyperv_lab, "cancel", workflow_id, "--by", "dan")
    assert again.returncode != 0 and "has ended" in again.stderr
    entries = journal(hyperv_lab)
    for item in lab_get(hyperv_lab, "/_lab/state")["items"]:
        assert posts(entries, "failoverCommit", item["name"]) == []
        assert not item["azure_vm"]["deleted"]


VMM_SCENARIO = SCENARIO.with_name("hyperv-vmm.json")


async def test_with_vmm_the_vmm_server_is_asked_and_places_a_vm_that_is_gone(
    tmp_path: Path,
) -> None:
    """A site managed by System Center VMM: readiness and verification ask the VMM server (the
    provider ASR names), never a host; app-01's VM is gone and created again with no host named
    (VMM places it); verification reads where VMM says it runs."""
    state = start_lab(tmp_path, VMM_SCENARIO)
    try:
        checked = cli(state, "check", "--recovery-plan", "plan-hyperv-vmm")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "app-01-item: alternate location" in checked.stdout, checked.stdout
        started = cli(state, "start", "--recovery-plan", "plan-hyperv-vmm")
        assert started.returncode == 0, started.stderr
        workflow_id = started.stdout.strip()
        client = await connect_temporal(lab_settings(state))
        status = await until_phase(lambda: plan_status(client, workflow_id), "awaiting-approval")
        for machine in status.machines:
            verified = await machine_status(client, machine.workflow_id)
            assert verified.verification is not None and verified.verification.passed
            # The host VMM says runs it, read through VMM.
            assert verified.verification.onprem.host == "hv-01.corp.local"
            assert (verified.verification.onprem.heartbeat or "").startswith("Ok")
        assert cli(state, "approve", workflow_id, "--by", "alice").returncode == 0
        status = await until_phase(lambda: plan_status(client, workflow_id), "completed")

        entries = journal(state)
        [app] = posts(entries, "plannedFailover", "app-01-item")
        assert details(app)["recoveryVmCreationOption"] == "CreateVmIfNotFound"
        assert "providerIdForAlternateRecovery" not in details(app)
        url = state.hyperv_endpoints["vmm-01.corp.local"].removesuffix("/wsman")
        context = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
        with urllib.request.urlopen(f"{url}/_lab/journal", context=context, timeout=10) as reply:
            winrm_requests = json.loads(reply.read())
        asked = {r["host"] for r in winrm_requests if r["action"] == "command"}
        assert asked == {"vmm-01.corp.local"}, asked
        found = simulator_schema_violations(state)
        assert found == [], f"the simulator answered in shapes real ASR does not send: {found[:5]}"
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)
