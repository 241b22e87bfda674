"""The whole path in the lab: Temporal dev server, worker, vcsim, the ASR simulator, real SDKs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from activities import vsphere_client
from lab.manager import LabState
from starter.commands import approve, failback_input, start_failback
from tests.integration.conftest import (
    history_text,
    journal,
    lab_get,
    lab_settings,
    posts,
    until_verified,
)
from worker.wiring import connect_temporal

pytestmark = pytest.mark.integration


def onprem_power(state: LabState, vm: str) -> str:
    settings = lab_settings(state)
    assert settings.vcenter_host and settings.vcenter_user and settings.vcenter_password
    si = vsphere_client.connect(
        settings.vcenter_host,
        settings.vcenter_port,
        settings.vcenter_user,
        settings.vcenter_password.get_secret_value(),
        verify_tls=settings.vcenter_verify_tls,
    )
    try:
        return vsphere_client.read_vm_states(si, [vm])[vm].power_state
    finally:
        vsphere_client.disconnect(si)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def test_one_machine_fails_back_end_to_end(lab: LabState) -> None:
    settings = lab_settings(lab)
    client = await connect_temporal(settings)
    assert onprem_power(lab, "web-01") == "poweredOff"

    handle = await start_failback(client, settings, failback_input(settings, None, "web-01"))
    status = await until_verified(client, handle.id)
    # The world agrees with what the workflow verified: the VM runs on-premises, before commit.
    assert onprem_power(lab, "web-01") == "poweredOn"
    assert posts(journal(lab), "failoverCommit", "web-01-item") == []

    await approve(client, handle.id, "alice", "checked web-01")
    result = await asyncio.wait_for(handle.result(), timeout=120)

    assert result.outcome == "completed", result.summary
    status = result.status
    assert status.approval is not None and status.approval.approved_by == "alice"
    assert status.recovery_point is not None
    entries = journal(lab)

    failovers = posts(entries, "unplannedFailover", "web-01-item")
    assert len(failovers) == 1 and failovers[0]["status"] == 202
    details = failovers[0]["body"]["properties"]["providerSpecificDetails"]
    # RP-ASK: one machine's latest point is asked for as ASR's newest, as Azure PowerShell does.
    assert details["recoveryPointType"] == "LatestTime" == status.recovery_point.asked_as
    assert "recoveryPointId" not in details

    commits = posts(entries, "failoverCommit", "web-01-item")
    assert len(commits) == 1 and commits[0]["status"] == 202
    assert parse_time(commits[0]["time"]) > status.approval.approved_at

    reprotects = posts(entries, "reProtect", "web-01-item")
    assert reprotects, "no reProtect was sent"
    reprotect_ops = [op for op in status.operations if op.operation == "reProtect"]
    assert len(reprotect_ops) == 1 and reprotect_ops[0].state == "Succeeded"
    job = lab_get(lab, "/_lab/state")
    registered_at = agent_registered_at(job, "web-01-item")
    assert registered_at is not None
    accepted = [r for r in reprotects if r["status"] == 202]
    # The successful re-protect is the last one sent, and it went out after the agent registered.
    assert parse_time(accepted[-1]["time"]) >= registered_at
    # The agent took seconds to register after the commit: the workflow waited for it.
    assert registered_at > parse_time(commits[0]["time"])
    assert status.agent_wait is not None and status.agent_wait.checks >= 2
    assert onprem_power(lab, "web-01") == "poweredOn"


def agent_registered_at(state: dict, item: str) -> datetime | None:
    """Read the simulator's own record of when the mobility agent registered."""
    for entry in state["items"]:
        if entry["name"] == item:
            assert entry["agent_registered"], "the simulator says the agent never registered"
            value = entry["agent_registers_at"]
            return parse_time(value) if value else None
    raise AssertionError(f"{item} not in the simulator's state")


async def test_no_secret_in_workflow_history(lab: LabState) -> None:
    settings = lab_settings(lab)
    client = await connect_temporal(settings)
    secrets_in_lab = [
        lab.settings["FAILBACK_VCENTER_PASSWORD"],
        lab.settings["FAILBACK_AZURE_LAB_TOKEN_SECRET"],
    ]
    checked = 0
    async for execution in client.list_workflows():
        history = await client.get_workflow_handle(execution.id).fetch_history()
        text = history_text(history)
        assert "recoveryPointId" in text or "recovery_point" in text or "vm_name" in text
        for secret in secrets_in_lab:
            assert secret not in text, f"a secret is in the history of {execution.id}"
        checked += 1
    assert checked >= 1
