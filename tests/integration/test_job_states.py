"""J-STATE through the whole stack: an ASR job held Suspended holds the failback, visibly, until an
operator resumes it; the failback then goes on as if nothing happened, with no second failover."""

from __future__ import annotations

import asyncio

import pytest

from domain.models import Phase
from lab.manager import LabState
from starter.commands import failback_input, machine_status, read_failback, start_failback
from tests.integration.conftest import (
    HELD_VM,
    journal,
    lab_post,
    lab_settings,
    posts,
    until_verified,
)
from worker.wiring import build_asr_gateway, connect_temporal

pytestmark = pytest.mark.integration


async def test_a_suspended_failover_waits_for_the_operator_and_says_so(lab: LabState) -> None:
    settings = lab_settings(lab)
    item = f"{HELD_VM}-item"
    lab_post(
        lab,
        "/_lab/faults",
        {"kind": "job_state", "operation": "unplannedFailover", "item": item, "state": "Suspended"},
    )
    client = await connect_temporal(settings)
    handle = await start_failback(client, settings, failback_input(settings, None, HELD_VM))
    try:
        view = None
        for _ in range(240):
            view = (await read_failback(client, handle.id)).machines[0]
            if view.attention:
                break
            await asyncio.sleep(0.25)
        assert view is not None and view.attention, "the suspended job was never shown"
        assert "Suspended" in view.attention and "resume" in view.attention
        assert view.status is not None and view.status.phase == Phase.FAILING_OVER

        # Held, not ended: well past the job's own 2 s, the failback still waits.
        await asyncio.sleep(3)
        assert (await machine_status(client, handle.id)).phase == Phase.FAILING_OVER

        gateway = build_asr_gateway(settings)
        (sent,) = posts(journal(lab), "unplannedFailover", item)
        assert sent["status"] == 202
        jobs = gateway.client.replication_jobs.list(
            settings.azure_resource_group, settings.azure_vault
        )
        (job,) = [j.name for j in jobs if str(j.properties.state) == "Suspended"]
        gateway.client.replication_jobs.begin_resume(
            settings.azure_resource_group,
            settings.azure_vault,
            job,
            {"properties": {"comments": "checked by the operator"}},
        ).result()

        await until_verified(client, handle.id)
        assert len(posts(journal(lab), "unplannedFailover", item)) == 1
        view = (await read_failback(client, handle.id)).machines[0]
        assert view.attention is None
    finally:
        await handle.terminate("test over")
