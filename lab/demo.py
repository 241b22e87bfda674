"""`failback demo` (and `make demo`): a whole failback in the lab, narrated, then the lab stops."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
from temporalio.client import WorkflowFailureError

from domain.models import CutoverRequest, Phase
from lab.manager import lab_down, lab_up
from lab.scenario import load_scenario
from starter.commands import (
    approve,
    failback_input,
    machine_status,
    start_failback,
    web_ui_link,
    with_choices,
)
from worker.settings import Settings
from worker.wiring import connect_temporal
from workflows.machine import MachineFailbackWorkflow

DEMO_APPROVER = "failback demo"
DEMO_TIMEOUT_SECONDS = 600


def _say(text: str) -> None:
    click.echo(f"==> {text}")


async def _fail_back(settings: Settings, vm_name: str, data_sync: str) -> bool:
    client = await connect_temporal(settings)
    params = with_choices(failback_input(settings, None, vm_name), data_sync=data_sync)
    handle = await start_failback(client, settings, params)
    _say(f"started failback of {vm_name}: workflow id {handle.id}")
    link = web_ui_link(settings, handle.id)
    if link:
        _say(f"watch it in the Temporal Web UI: {link}")

    shown = 0
    approved = cut_over = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEMO_TIMEOUT_SECONDS
    while loop.time() < deadline:
        status = await machine_status(client, handle.id)
        for change in status.history[shown:]:
            note = f" ({change.note})" if change.note else ""
            click.echo(f"    {change.at:%H:%M:%S}  {change.phase}{note}")
        shown = len(status.history)
        if status.phase == Phase.AWAITING_CUTOVER and not cut_over:
            _say(
                "synchronized while the Azure VM runs; ASR holds its job for the cut-over "
                "(`failback cutover ID --by NAME`): giving it myself"
            )
            await client.get_workflow_handle(handle.id).signal(
                MachineFailbackWorkflow.cut_over,
                CutoverRequest(cut_over_by=DEMO_APPROVER, comment="the lab demo's cut-over"),
            )
            cut_over = True
        if status.phase == Phase.AWAITING_APPROVAL and not approved:
            if status.verification is not None:
                onprem = status.verification.onprem
                azure = status.verification.azure
                guest = (
                    f"heartbeat {onprem.heartbeat} on Hyper-V host {onprem.host}"
                    if onprem.platform == "hyperv"
                    else f"tools {onprem.tools_running_status}"
                )
                _say(
                    f"verified: {onprem.vm_name} is {onprem.power_state} with {guest}; Azure "
                    f"VM {azure.name} is {azure.power_state if azure.exists else 'gone'}"
                )
                if status.downtime_seconds is not None:
                    _say(f"downtime taken: {status.downtime_seconds:.0f} s")
            _say(f"sending the commit approval myself, as {DEMO_APPROVER!r}")
            await approve(client, handle.id, DEMO_APPROVER, "approved by the lab demo")
            approved = True
        if status.phase in (Phase.COMPLETED, Phase.COMPLETED_WITHOUT_REPROTECT, Phase.FAILED):
            break
        await asyncio.sleep(0.5)
    else:
        _say(f"the failback did not finish within {DEMO_TIMEOUT_SECONDS} s")
        return False

    try:
        result = await handle.result()
    except WorkflowFailureError as err:
        _say(f"the failback failed: {err.cause}")
        return False
    _say(result.summary)
    for op in result.status.operations:
        click.echo(f"    ASR {op.operation}: job {op.job_id} {op.state}")
    if link:
        _say(f"the whole run, step by step, in the Web UI: {link}")
    return result.outcome == "completed"


def run_demo(
    scenario_path: Path | None, lab_dir: Path | None, data_sync: str = "for-synchronization"
) -> int:
    state = lab_up(scenario_path, lab_dir, say=_say)
    try:
        os.environ.update(state.settings)
        settings = Settings()
        scenario = load_scenario(state.scenario)
        ok = asyncio.run(_fail_back(settings, scenario.azure.items[0].vm_name, data_sync))
    finally:
        _say("stopping the lab")
        lab_down(Path(state.lab_dir), say=lambda text: click.echo(f"    {text}"))
    if ok:
        _say("demo finished: the machine is back on-premises and re-protected to Azure")
        return 0
    _say("demo FAILED; the logs are in " + str(Path(state.lab_dir) / "logs"))
    return 1
