"""Issue 15: a modernized VMware failback, end to end in the lab, through the real SDK, the
worker and the Temporal dev server: readiness (the appliance, its datastores, the failback
policy, the log storage account), the reprotect toward on-premises through the appliance's
reprotect agent (InMageRcm), the wait for the initial replication, the planned failover
(InMageRcmFailback, crash-consistent), verification in vCenter, approval, commit, the agent's
registration (isAgentRegistrationSuccessfulAfterFailover) and the reprotect back to Azure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.manager import LabState, lab_down
from starter.commands import (
    approve,
    plan_input,
    plan_status,
    read_failback,
    start_plan_failback,
)
from tests.integration.conftest import (
    cli,
    journal,
    lab_get,
    lab_settings,
    posts,
    simulator_schema_violations,
    start_lab,
    until_verified,
)
from worker.wiring import connect_temporal

SCENARIOS = Path(__file__).resolve().parents[2] / "lab" / "scenarios"


@pytest.fixture(scope="module")
def modern_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("modern-lab"), SCENARIOS / "modernized.json")
    try:
        yield state
        found = simulator_schema_violations(state)
        assert found == [], f"the simulator answered in shapes real ASR does not send: {found[:5]}"
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


async def test_a_modernized_plan_fails_back_end_to_end(modern_lab: LabState) -> None:
    settings = lab_settings(modern_lab)
    client = await connect_temporal(settings)
    handle = await start_plan_failback(
        client, settings, plan_input(settings, "plan-modern", "latest")
    )
    progress: list[str] = []
    for _ in range(600):
        status = await plan_status(client, handle.id)
        if status.phase in ("awaiting-approval", "failed"):
            break
        if status.phase == "waiting-for-replication":
            # What `failback status` shows: the initial replication's percent and bytes.
            view = await read_failback(client, handle.id)
            if view.progress:
                progress.append(view.progress)
        await asyncio.sleep(0.25)
    assert status.phase == "awaiting-approval", status.error
    assert status.readiness is not None and status.readiness.ready, status.readiness
    assert any("%" in p and "GB" in p for p in progress), progress
    assert status.replication is not None and len(status.replication.items) == 2
    locations = {m.item_name: m.location for m in status.readiness.machines}
    assert locations == {"web-01-item": "original", "app-01-item": "alternate"}
    phases = [change.phase for change in status.history]
    assert phases.index("reprotecting-to-onprem") < phases.index("waiting-for-replication")
    assert phases.index("waiting-for-replication") < phases.index("failing-over")

    entries = journal(modern_lab)
    effects = lab_get(modern_lab, "/_lab/state")["vcenter_effects"]
    # vcsim shows the reprotect and the failover: web-01 powered off, then on; app-01 created.
    assert [(e["action"], e["vm_name"]) for e in effects if e["vm_name"] == "web-01"] == [
        ("power_off", "web-01"),
        ("power_on", "web-01"),
    ]
    assert ("create_vm", "app-01") in [(e["action"], e["vm_name"]) for e in effects]
    (whole,) = [
        e
        for e in entries
        if e["method"] == "POST"
        and e["path"].endswith("/replicationRecoveryPlans/plan-modern/plannedFailover")
    ]
    assert whole["body"]["properties"] == {
        "failoverDirection": "RecoveryToPrimary",
        "providerSpecificDetails": [
            {
                "instanceType": "InMageRcmFailback",
                "recoveryPointType": "CrashConsistent",
                "useMultiVmSyncPoint": "False",
            }
        ],
    }
    assert status.failover is not None and status.failover.operation == "plannedFailover"
    for item in ("web-01-item", "app-01-item"):
        (reprotect,) = posts(entries, "reProtect", item)
        details = reprotect["body"]["properties"]["providerSpecificDetails"]
        assert details["instanceType"] == "InMageRcm"
        assert details["reprotectAgentId"] and details["datastoreName"]
        assert details["logStorageAccountId"].endswith("/asrcachelab01")
        assert details["policyId"].endswith("/24-hour-replication-policy-failback")
        # The plan fails back through its own planned failover, no machine on its own.
        assert posts(entries, "plannedFailover", item) == []
        assert posts(entries, "unplannedFailover", item) == []
        assert posts(entries, "failoverCommit", item) == []

    await approve(client, handle.id, "erin", "both back")
    result = await asyncio.wait_for(handle.result(), timeout=300)
    assert result.outcome == "completed", result.summary
    entries = journal(modern_lab)
    state = lab_get(modern_lab, "/_lab/state")
    for item in state["items"]:
        assert item["azure_vm"]["deleted"], item["name"]
        assert item["phase"] == "ReplicatingToAzure", item["name"]
        assert len(posts(entries, "failoverCommit", item["name"])) == 1
        reprotects = posts(entries, "reProtect", item["name"])
        assert len(reprotects) == 2
        back = reprotects[1]["body"]["properties"]["providerSpecificDetails"]
        assert back["instanceType"] == "InMageRcmFailback"
        assert back["processServerId"] and back["policyId"]


@pytest.fixture(scope="module")
def undo_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("undo-lab"), SCENARIOS / "modernized.json")
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


async def test_a_modernized_plan_is_undone_before_commit_and_never_after(
    undo_lab: LabState,
) -> None:
    """`failback undo PLAN --by NAME` once every machine is verified: each machine's failover is
    cancelled (failoverCancel), the Azure VMs run again, nothing is committed, and the plan
    ends undone. An undo of a machine of the plan alone is refused, and so is a second one."""
    settings = lab_settings(undo_lab)
    client = await connect_temporal(settings)
    handle = await start_plan_failback(
        client, settings, plan_input(settings, "plan-modern", "latest")
    )
    for _ in range(600):
        status = await plan_status(client, handle.id)
        if status.phase in ("awaiting-approval", "failed"):
            break
        await asyncio.sleep(0.25)
    assert status.phase == "awaiting-approval", status.error

    member = cli(undo_lab, "undo", status.machines[0].workflow_id, "--by", "frank")
    assert member.returncode != 0 and "undo the plan as a whole" in member.stderr
    assert "Traceback" not in member.stderr

    shown = cli(undo_lab, "undo", handle.id, "--by", "frank", "--comment", "app team says no")
    assert shown.returncode == 0, shown.stderr
    assert "taken" in shown.stdout
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.outcome == "undone", result.summary
    assert result.status.undo is not None and result.status.undo.undone_by == "frank"

    again = cli(undo_lab, "undo", handle.id, "--by", "frank")
    assert again.returncode != 0 and "already ended" in again.stderr

    entries = journal(undo_lab)
    state = lab_get(undo_lab, "/_lab/state")
    for item in state["items"]:
        name = item["name"]
        assert len(posts(entries, "failoverCancel", name)) == 1
        assert posts(entries, "failoverCommit", name) == []
        assert not item["azure_vm"]["deleted"] and item["azure_vm"]["power_state"] == "running"
        assert item["phase"] == "ReplicatingToOnPrem"


@pytest.fixture(scope="module")
def single_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("single-lab"), SCENARIOS / "modernized.json")
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


async def test_a_modernized_machine_on_its_own_is_checked_reprotected_and_failed_back(
    single_lab: LabState,
) -> None:
    """`failback start web-01` while web-01 is still failed over to Azure: the machine checks
    its own readiness, reprotects through the appliance, waits for the initial replication,
    then fails back with its own planned failover (crash-consistent)."""
    settings = lab_settings(single_lab)
    started = cli(single_lab, "start", "web-01")
    assert started.returncode == 0, started.stderr
    workflow_id = started.stdout.strip()
    client = await connect_temporal(settings)
    status = await until_verified(client, workflow_id)
    phases = [c.phase for c in status.history]
    assert phases[:5] == [
        "starting",
        "discovering",
        "checking-readiness",
        "reprotecting-to-onprem",
        "waiting-for-replication",
    ]
    assert status.readiness is not None and status.readiness.ready
    assert status.replication is not None
    await approve(client, workflow_id, "hank", "web-01 back")
    handle = client.get_workflow_handle(workflow_id)
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result["outcome"] == "completed", result
    entries = journal(single_lab)
    assert len(posts(entries, "reProtect", "web-01-item")) == 2
    (failover,) = posts(entries, "plannedFailover", "web-01-item")
    details = failover["body"]["properties"]["providerSpecificDetails"]
    assert details == {"instanceType": "InMageRcmFailback", "recoveryPointType": "CrashConsistent"}
    assert len(posts(entries, "failoverCommit", "web-01-item")) == 1
    # app-01 was not touched.
    assert [e for e in entries if e["method"] == "POST" and "app-01" in e["path"]] == []
