"""A recovery plan fails back in the lab: 3 boot groups, 2 replication groups, standalone
machines; the journal proves the points and the order."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lab.manager import LabState, lab_down
from starter.commands import (
    approve,
    machine_status,
    plan_input,
    plan_status,
    start_plan_failback,
)
from starter.observe import preview_plan
from tests.integration.conftest import cli, journal, lab_get, lab_settings, posts, start_lab
from worker.wiring import connect_temporal

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).parents[2] / "lab" / "scenarios"


@pytest.fixture(scope="module")
def plan_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("plan-lab"), SCENARIOS / "recovery-plan.json")
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def test_plan_fails_back_in_boot_group_order_at_the_previewed_points(
    plan_lab: LabState,
) -> None:
    settings = lab_settings(plan_lab)
    params = plan_input(settings, "plan-erp", "app-consistent")

    before = len(journal(plan_lab))
    preview = preview_plan(settings, params)
    shown = cli(
        plan_lab,
        "preview",
        "--recovery-plan",
        "plan-erp",
        "--recovery-point",
        "app-consistent",
        "--json",
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["machines"] == json.loads(preview.model_dump_json())["machines"]
    assert [e for e in journal(plan_lab)[before:] if e["method"] != "GET"] == []

    rg_db = next(g for g in preview.groups if g.group == "rg-db")
    db1, db2 = preview.for_item("db-01-item"), preview.for_item("db-02-item")
    assert db1.chosen.time == db2.chosen.time == rg_db.common_point_time
    assert db1.chosen.time < db1.latest.time  # db-02's lag pulls the group back
    assert all(m.chosen.type == "ApplicationConsistent" for m in preview.machines)

    client = await connect_temporal(settings)
    run_starts = len(journal(plan_lab))
    handle = await start_plan_failback(client, settings, params)
    for _ in range(600):
        status = await plan_status(client, handle.id)
        if status.phase in ("awaiting-approval", "failed"):
            break
        await asyncio.sleep(0.25)
    assert status.phase == "awaiting-approval", status.error
    assert posts(journal(plan_lab), "failoverCommit", "db-01-item") == []
    covers = await approve(client, handle.id, "dana", "ERP checked")
    assert "7 machines" in covers
    result = await asyncio.wait_for(handle.result(), timeout=300)
    assert result.outcome == "completed", result.summary

    entries = journal(plan_lab)
    verified_at: dict[str, datetime] = {}
    for machine in status.machines:
        machine_state = await machine_status(client, machine.workflow_id)
        assert machine_state.verification is not None and machine_state.verification.passed
        verified_at[machine.item_name] = machine_state.verification.checked_at
    # FO-PLAN: plan-erp holds replication groups, so it failed over whole, in one request as
    # Azure PowerShell sends it; no machine sent a failover of its own.
    plan_posts = [
        e
        for e in entries
        if e["method"] == "POST"
        and e["path"].endswith("/replicationRecoveryPlans/plan-erp/unplannedFailover")
    ]
    assert len(plan_posts) == 1
    assert plan_posts[0]["body"]["properties"] == {
        "failoverDirection": "RecoveryToPrimary",
        "sourceSiteOperations": "NotRequired",
        "providerSpecificDetails": [{"instanceType": "InMage", "recoveryPointType": "LatestTag"}],
    }
    assert status.failover is not None and status.failover.job_id
    lab = lab_get(plan_lab, "/_lab/state")
    taken = {i["name"]: i["failover_recovery_point"] for i in lab["items"]}
    for machine in status.machines:
        assert posts(entries, "unplannedFailover", machine.item_name) == []
        # What ASR took is what the preview showed: the group's common point, or the machine's
        # newest application-consistent one.
        assert taken[machine.item_name] == preview.for_item(machine.item_name).chosen.name
        assert len(posts(entries, "failoverCommit", machine.item_name)) == 1
    # ASR booted the plan's groups in order.
    booted = {
        e["vm_name"]: parse_time(e["time"])
        for e in lab["vcenter_effects"]
        if e["action"] == "power_on"
    }
    for later in status.machines:
        for earlier in status.machines:
            if earlier.boot_group < later.boot_group:
                assert booted[later.vm_name] >= booted[earlier.vm_name]
    shown_status = cli(plan_lab, "status", handle.id)
    assert shown_status.returncode == 0, shown_status.stderr
    assert "boot group 3" in shown_status.stdout and "completed" in shown_status.stdout

    # Readiness lists each machine's recovery points; the selection takes that list on the same
    # worker instead of asking again.
    point_lists = Counter(
        e["path"].split("/replicationProtectedItems/")[1].split("/")[0]
        for e in entries[run_starts:]
        if e["method"] == "GET"
        and e["path"].endswith("/recoveryPoints")
        and "$skiptoken" not in e["query"]  # a list's first page
    )
    assert point_lists == {m.item_name: 1 for m in status.machines}, point_lists

    # The running jobs are watched with one filtered list of the vault per poll; a job is read
    # by itself once, when it has left that list (the plan's failover, 7 commits and 7
    # re-protects at least).
    job_reads = Counter(
        e["path"].rsplit("/", 1)[-1]
        for e in entries
        if e["method"] == "GET" and "/replicationJobs/" in e["path"]
    )
    running_lists = [
        e
        for e in entries
        if e["method"] == "GET"
        and e["path"].endswith("/replicationJobs")
        and "JobStatus eq 'InProgress'" in e["query"].get("$filter", "")
    ]
    assert len(job_reads) >= 15 and running_lists
    assert sum(job_reads.values()) <= len(job_reads) + 2, job_reads


def test_unknown_plan_is_refused_and_nothing_is_written(plan_lab: LabState) -> None:
    before = len(journal(plan_lab))
    shown = cli(plan_lab, "preview", "--recovery-plan", "no-such-plan")
    assert shown.returncode != 0
    assert "no-such-plan" in shown.stderr and "plan-erp" in shown.stderr
    assert [e for e in journal(plan_lab)[before:] if e["method"] != "GET"] == []


@pytest.fixture(scope="module")
def reprotect_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("reprotect-lab"), SCENARIOS / "reprotect.json")
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


async def test_machines_still_in_azure_are_reprotected_first(reprotect_lab: LabState) -> None:
    """The plan reprotects both machines to on-premises, re-creates app-01 (alternate location)
    on the master target's host on the VMFS datastore, and then fails both back."""
    from activities import vsphere_client

    settings = lab_settings(reprotect_lab)
    assert settings.vcenter_host and settings.vcenter_user and settings.vcenter_password
    client = await connect_temporal(settings)
    handle = await start_plan_failback(
        client, settings, plan_input(settings, "plan-reprotect", "latest")
    )
    for _ in range(600):
        status = await plan_status(client, handle.id)
        if status.phase in ("awaiting-approval", "failed"):
            break
        await asyncio.sleep(0.25)
    assert status.phase == "awaiting-approval", status.error
    phases = [change.phase for change in status.history]
    assert phases.index("checking-readiness") < phases.index("reprotecting-to-onprem")
    assert phases.index("waiting-for-replication") < phases.index("failing-over")
    assert status.readiness is not None and status.readiness.ready
    locations = {m.item_name: m.location for m in status.readiness.machines}
    assert locations == {"web-01-item": "original", "app-01-item": "alternate"}

    entries = journal(reprotect_lab)
    for item in ("web-01-item", "app-01-item"):
        reprotects = posts(entries, "reProtect", item)
        assert len(reprotects) == 1, reprotects
        details = reprotects[0]["body"]["properties"]["providerSpecificDetails"]
        assert details["instanceType"] == "InMage"
        assert details["masterTargetId"] == "mt-linux-01"
        assert details["profileId"] and details["retentionDrive"]
        first_failover = posts(entries, "unplannedFailover", item)[0]
        assert parse_time(first_failover["time"]) > parse_time(reprotects[0]["time"])
    app_details = posts(entries, "reProtect", "app-01-item")[0]["body"]["properties"]
    assert app_details["providerSpecificDetails"]["datastoreName"] == "ds-vmfs-01"

    si = vsphere_client.connect(
        settings.vcenter_host,
        settings.vcenter_port,
        settings.vcenter_user,
        settings.vcenter_password.get_secret_value(),
        verify_tls=settings.vcenter_verify_tls,
    )
    try:
        inventory = vsphere_client.read_inventory(si)
    finally:
        vsphere_client.disconnect(si)
    app = inventory.vm("app-01")
    master_target = inventory.vm("mt-linux-01")
    assert app is not None and master_target is not None
    assert app.host == master_target.host and app.datastores == ["ds-vmfs-01"]
    assert app.power_state == "poweredOn"

    await approve(client, handle.id, "erin", "both back")
    result = await asyncio.wait_for(handle.result(), timeout=300)
    assert result.outcome == "completed", result.summary
