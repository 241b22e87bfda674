"""The Temporal Web UI, in headless Chromium (Debian's), finds a failback by the custom search
attributes the workflow upserts, and a screenshot of it is saved."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from domain.models import Phase
from lab.manager import LabState
from starter.commands import approve, failback_input, machine_status, start_failback
from tests.integration.conftest import UI_VM, lab_settings
from worker.wiring import connect_temporal

pytestmark = pytest.mark.integration

SCREENSHOT = Path(".lab") / "screenshots" / "web-ui-search-attributes.png"
# Closed network: Chromium must not try to reach Google's services at start.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def workflows_url(lab: LabState, query: str) -> str:
    return f"{lab.temporal_ui_url}/namespaces/default/workflows?query={urllib.parse.quote(query)}"


async def test_web_ui_finds_the_failback_by_its_search_attributes(
    lab: LabState, tmp_path: Path
) -> None:
    settings = lab_settings(lab)
    client = await connect_temporal(settings)
    handle = await start_failback(client, settings, failback_input(settings, None, UI_VM))
    for _ in range(240):
        if (await machine_status(client, handle.id)).phase == Phase.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.25)
    await approve(client, handle.id, "ui-check", "")
    await asyncio.wait_for(handle.result(), timeout=120)

    found = workflows_url(lab, f'FailbackPhase="completed" AND Vault="{settings.azure_vault}"')
    page = chromium(tmp_path / "profile", "--dump-dom", found)
    assert page.returncode == 0, page.stderr[-2000:]
    assert handle.id in page.stdout, "the Web UI did not list the completed failback"

    elsewhere = workflows_url(lab, 'FailbackPhase="agent-stuck"')
    page = chromium(tmp_path / "profile", "--dump-dom", elsewhere)
    assert handle.id not in page.stdout, "a filter on another phase still lists it"

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shot = chromium(
        tmp_path / "profile", "--window-size=1400,900", f"--screenshot={SCREENSHOT}", found
    )
    assert shot.returncode == 0 and SCREENSHOT.stat().st_size > 10_000
