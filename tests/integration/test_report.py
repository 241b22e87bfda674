"""`failback report` in the lab: one machine failed back for real, then reported in Markdown and
HTML, reconciled with the simulator's jobs, vcsim and the (deleted) Azure VM; then the VM is
powered off behind the orchestrator's back and the report says so."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities import vsphere_client
from domain.models import MachineFailbackResult
from lab import vcenter_client
from lab.manager import LabState, lab_down
from starter.commands import approve, failback_input, start_failback
from tests.integration.conftest import (
    cli,
    journal,
    lab_get,
    lab_settings,
    posts,
    start_lab,
    until_verified,
)
from worker.wiring import connect_temporal

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).parents[2] / "lab" / "scenarios" / "single-vm.json"
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def report_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("report-lab"), SCENARIO)
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


@pytest.fixture(scope="module")
async def failed_back(report_lab: LabState) -> tuple[str, MachineFailbackResult]:
    settings = lab_settings(report_lab)
    client = await connect_temporal(settings)
    handle = await start_failback(client, settings, failback_input(settings, None, "web-01"))
    await until_verified(client, handle.id)
    await approve(client, handle.id, "alice", "web-01 answers on :443")
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.outcome == "completed", result.summary
    return handle.id, result


def failover_point_id(state: LabState) -> str:
    """The point ASR failed web-01 over to (the item's failoverRecoveryPointId), which the
    report names: asked for as LatestTime (RP-ASK), it is the newest the failback chose."""
    [failover] = posts(journal(state), "unplannedFailover", "web-01-item")
    assert failover["body"]["properties"]["providerSpecificDetails"]["recoveryPointType"] == (
        "LatestTime"
    )
    [item] = [i for i in lab_get(state, "/_lab/state")["items"] if i["name"] == "web-01-item"]
    return str(item["resource"]["properties"]["failoverRecoveryPointId"])


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_markdown_report_of_a_completed_failback(
    report_lab: LabState, failed_back: tuple[str, MachineFailbackResult]
) -> None:
    workflow_id, result = failed_back
    before = len(journal(report_lab))
    shown = cli(report_lab, "report", workflow_id, "--format", "md")
    assert shown.returncode == 0, shown.stderr
    no_traceback(shown.stderr)
    text = shown.stdout

    # What ASR was asked to fail over to is what the report names.
    assert f"`{failover_point_id(report_lab)}`" in text
    for op in result.status.operations:
        assert op.job_id and f"`{op.job_id}`" in text
    assert {op.operation for op in result.status.operations} == {
        "unplannedFailover",
        "failoverCommit",
        "reProtect",
    }
    assert "**approved by**: alice" in text and "web-01 answers on :443" in text
    assert "poweredOn" in text and "guestToolsRunning" in text
    assert "rg-dr-recovery/web-01: does not exist" in text  # the commit deleted it
    assert "No disagreement" in text and "WARNING" not in text

    encoded = re.search(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', text)
    assert encoded is not None
    svg = ET.fromstring(base64.b64decode(encoded.group(1)))
    labels = {t.text for t in svg.iter(f"{SVG_NS}text")}
    assert {"failing-over", "awaiting-approval", "committing", "reprotecting"} <= labels

    # The ASR jobs were read, by GET only: a report changes nothing.
    later = journal(report_lab)[before:]
    assert [e for e in later if e["method"] != "GET"] == []
    job_reads = [e for e in later if "/replicationJobs/" in e["path"]]
    assert len(job_reads) == len(result.status.operations)


def test_html_report_is_a_standalone_page(
    report_lab: LabState, failed_back: tuple[str, MachineFailbackResult], tmp_path: Path
) -> None:
    workflow_id, result = failed_back
    output = tmp_path / "web-01.html"
    shown = cli(report_lab, "report", workflow_id, "--format", "html", "--output", str(output))
    assert shown.returncode == 0, shown.stderr
    assert f"written to {output}" in shown.stdout and "no disagreement" in shown.stdout
    page = output.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert failover_point_id(report_lab) in page
    assert "alice" in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    ET.fromstring(svg)
    for op in result.status.operations:
        assert op.job_id and op.job_id in page


def test_vm_powered_off_after_the_failback_is_reported_as_a_disagreement(
    report_lab: LabState, failed_back: tuple[str, MachineFailbackResult]
) -> None:
    workflow_id, result = failed_back
    settings = lab_settings(report_lab)
    assert settings.vcenter_host and settings.vcenter_user and settings.vcenter_password
    si = vsphere_client.connect(
        settings.vcenter_host,
        settings.vcenter_port,
        settings.vcenter_user,
        settings.vcenter_password.get_secret_value(),
        verify_tls=settings.vcenter_verify_tls,
    )
    try:
        assert vcenter_client.power_off_vm(si, "web-01").power_state == "poweredOff"
    finally:
        vsphere_client.disconnect(si)

    failover = next(op for op in result.status.operations if op.operation == "unplannedFailover")
    shown = cli(report_lab, "report", workflow_id)
    assert shown.returncode == 0, shown.stderr
    assert "**WARNING** 1 disagreement" in shown.stdout
    assert (
        f"ASR's unplannedFailover job {failover.job_id} Succeeded, but vCenter says web-01 is "
        "poweredOff now"
    ) in shown.stdout
    assert "No disagreement" not in shown.stdout

    data = json.loads(cli(report_lab, "report", workflow_id, "--format", "json").stdout)
    [machine] = data["machines"]
    [disagreement] = machine["disagreements"]
    assert disagreement["about"] == "on-premises VM"
    assert machine["observation"]["onprem"]["power_state"] == "poweredOff"
    # What the workflow verified at the time stays as it was: the report shows both.
    assert machine["view"]["status"]["verification"]["onprem"]["power_state"] == "poweredOn"
