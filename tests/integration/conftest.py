"""The lab for integration tests: vcsim, the ASR simulator, a Temporal dev server and a worker,
all real processes started by `lab.manager.lab_up`, as `failback lab up` does."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from domain.models import MachineStatus, Phase
from lab.manager import LabState, lab_down, lab_up, operator_environ
from starter.commands import machine_status
from worker.settings import Settings

SECOND_VM = "app-01"
THIRD_VM = "db-01"
UI_VM = "ui-01"
HELD_VM = "hold-01"


# The classic single-VM scenario: these tests prove the classic (legacy) path, whose wire they
# read (unplannedFailover, InMage); modernized has its own (test_modernized_failback.py,
# tests/reliability/test_modernized.py), and the demo runs it.
CLASSIC_SINGLE_VM = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "single-vm.json"


def integration_scenario() -> dict[str, Any]:
    """The classic single-VM scenario plus more machines, with the lab's fast timings."""
    data = json.loads(CLASSIC_SINGLE_VM.read_text())
    data["name"] = "integration"
    vms = data["vcenter"]["vms"]
    items = data["azure"]["items"]
    for vm in (SECOND_VM, THIRD_VM, UI_VM, HELD_VM):
        vms.append({**vms[0], "name": vm})
        items.append({**items[0], "name": f"{vm}-item", "vm_name": vm, "azure_vm_name": vm})
    items[0]["agent_registration_delay_seconds"] = 4
    data["azure"]["jobs"] = {"failover_seconds": 2, "commit_seconds": 1, "reprotect_seconds": 1}
    return data


def start_lab(
    root: Path,
    scenario: Path,
    say: Callable[[str], None] = lambda _: None,
    temporal_mtls: bool = False,
    signed_decisions: bool = False,
    extra_settings: dict[str, str] | None = None,
    workers: int = 1,
    principal_per_worker: bool = False,
) -> LabState:
    shared_build = Path(".lab").resolve()
    lab_dir = root / "lab"
    # Reuse the harness `make` built so that the tests do not compile Go again.
    if (shared_build / "bin").exists():
        lab_dir.mkdir()
        (lab_dir / "bin").symlink_to(shared_build / "bin")
    return lab_up(
        scenario,
        lab_dir,
        say=say,
        temporal_mtls=temporal_mtls,
        signed_decisions=signed_decisions,
        extra_settings=extra_settings,
        workers=workers,
        principal_per_worker=principal_per_worker,
    )


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    root = tmp_path_factory.mktemp("lab")
    scenario = root / "scenario.json"
    scenario.write_text(json.dumps(integration_scenario()))
    state = start_lab(root, scenario)
    try:
        yield state
        found = simulator_schema_violations(state)
        assert found == [], f"the simulator answered in shapes real ASR does not send: {found[:5]}"
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def cli(state: LabState, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `failback ARGS` as a user would, with the lab's settings and no others."""
    return cli_with(state.settings, *args)


def cli_with(settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `failback ARGS` with these FAILBACK_* settings and no others."""
    env = operator_environ()
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lab_settings(state: LabState) -> Settings:
    return Settings(**{k.removeprefix("FAILBACK_").lower(): v for k, v in state.settings.items()})


def lab_get(state: LabState, path: str) -> Any:
    context = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
    with urllib.request.urlopen(f"{state.asr_url}{path}", context=context, timeout=10) as reply:
        return json.loads(reply.read())


def lab_post(state: LabState, path: str, body: Any) -> Any:
    context = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
    request = urllib.request.Request(
        f"{state.asr_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        return json.loads(reply.read())


async def until_verified(client: Client, workflow_id: str, tries: int = 240) -> MachineStatus:
    """The machine's status once it awaits approval (verified on-premises); fails the test with
    the workflow's error if it fails instead or never gets there."""
    for _ in range(tries):
        status = await machine_status(client, workflow_id)
        if status.phase in (Phase.AWAITING_APPROVAL, Phase.FAILED):
            break
        await asyncio.sleep(0.25)
    assert status.phase == Phase.AWAITING_APPROVAL, status.error
    return status


async def until_phase(read: Callable[[], Awaitable[Any]], wanted: str, tries: int = 400) -> Any:
    """The status `read` gives once its phase is `wanted`; fails the test with the workflow's
    error if it fails instead or never gets there."""
    for _ in range(tries):
        status = await read()
        if status.phase in (wanted, Phase.FAILED):
            break
        await asyncio.sleep(0.25)
    assert status.phase == wanted, status.error
    return status


def history_text(history: Any) -> str:
    """A history as text with every payload decoded: where a leaked secret would sit."""
    raw = history.to_json()
    return raw + "\n" + "\n".join(_decoded_payloads(json.loads(raw)))


def _decoded_payloads(node: object) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                try:
                    found.append(base64.b64decode(value).decode("utf-8", errors="replace"))
                except ValueError:
                    found.append(value)
            else:
                found.extend(_decoded_payloads(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_decoded_payloads(value))
    return found


def journal(state: LabState) -> list[dict[str, Any]]:
    return list(lab_get(state, "/_lab/journal"))


def posts(entries: list[dict[str, Any]], action: str, item: str) -> list[dict[str, Any]]:
    suffix = f"/replicationProtectedItems/{item}/{action}"
    return [e for e in entries if e["method"] == "POST" and e["path"].endswith(suffix)]


def simulator_schema_violations(state: LabState) -> list[dict[str, str]]:
    """What the lab's simulator answered that real ASR is not known to send."""
    answer = lab_get(state, "/_lab/schema")
    assert answer["checked"], "the simulator ran without FAILBACK_SIM_SCHEMA_CHECK"
    return list(answer["violations"])
