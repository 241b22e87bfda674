"""The `failback` CLI as an operator meets it: `status` (text, --json, --watch, Ctrl-C), an
approval of a finished failback, an unknown id and an unreachable Temporal; every refusal one
clear line, a non-zero exit and no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.manager import LabState, lab_down, operator_environ
from starter.commands import failback_input, start_failback
from tests.integration.conftest import cli, lab_settings, start_lab, until_verified
from worker.wiring import connect_temporal

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).parents[2] / "lab" / "scenarios" / "single-vm.json"


@pytest.fixture(scope="module")
def cli_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("cli-lab"), SCENARIO)
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


@pytest.fixture(scope="module")
async def awaiting(cli_lab: LabState) -> str:
    """A failback of web-01, verified and waiting for its approval."""
    settings = lab_settings(cli_lab)
    client = await connect_temporal(settings)
    handle = await start_failback(client, settings, failback_input(settings, None, "web-01"))
    await until_verified(client, handle.id)
    return handle.id


def env_of(state: LabState, **overrides: str) -> dict[str, str]:
    env = operator_environ()
    env.update(state.settings)
    env.update(overrides)
    return env


def popen(state: LabState, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "starter", *args],
        env=env_of(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def refused(shown: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert shown.returncode != 0, shown.stdout
    assert "Traceback" not in shown.stderr, shown.stderr
    for phrase in phrases:
        assert phrase in shown.stderr, shown.stderr


def test_status_of_a_failback_awaiting_approval(cli_lab: LabState, awaiting: str) -> None:
    shown = cli(cli_lab, "status", awaiting)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "web-01" in text and "awaiting-approval" in text
    assert "run `failback approve`" in text
    assert "data-loss window" in text and "recovery point" in text
    assert "unplannedFailover" in text and "Succeeded" in text
    assert "passed at" in text and "poweredOn" in text
    assert "not approved yet" in text

    data = json.loads(cli(cli_lab, "status", awaiting, "--json").stdout)
    assert data["phase"] == "awaiting-approval"
    assert data["workflow_id"] == awaiting and data["execution"] == "running"
    assert data["verification"]["passed"] is True
    [failover] = data["operations"]
    assert failover["operation"] == "unplannedFailover" and failover["job_id"] in text
    assert data["recovery_point"]["chosen"]["id"]


def test_ctrl_c_stops_watching_cleanly_and_the_failback_goes_on(
    cli_lab: LabState, awaiting: str
) -> None:
    watching = popen(cli_lab, "status", awaiting, "--watch")
    time.sleep(3)  # a few refreshes
    assert watching.poll() is None, watching.communicate()
    watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=20)
    assert watching.returncode == 0, err
    assert "Traceback" not in err, err
    assert "stopped watching; the failback goes on" in err
    assert "awaiting-approval" in out  # the last view drawn stays on screen
    assert json.loads(cli(cli_lab, "status", awaiting, "--json").stdout)["execution"] == "running"


def test_watch_follows_the_approval_to_the_end(cli_lab: LabState, awaiting: str) -> None:
    watching = popen(cli_lab, "status", awaiting, "--watch")
    try:
        time.sleep(1.5)
        approved = cli(cli_lab, "approve", awaiting, "--by", "alice", "--comment", "web-01 ok")
        assert approved.returncode == 0, approved.stderr
        assert "commit of web-01 approved by alice" in approved.stdout
        # No Ctrl-C: the watch ends by itself when the failback does.
        out, err = watching.communicate(timeout=60)
    finally:
        if watching.poll() is None:
            watching.kill()
    assert watching.returncode == 0, err
    assert "Traceback" not in err, err
    assert "the failback has ended (completed)" in out
    assert "approved by alice" in out and "reProtect" in out


def test_approving_a_finished_failback_is_refused(cli_lab: LabState, awaiting: str) -> None:
    data = json.loads(cli(cli_lab, "status", awaiting, "--json").stdout)
    assert data["execution"] == "completed", "run after the watch test, which approves"
    refused(
        cli(cli_lab, "approve", awaiting, "--by", "bob"),
        "not approved",
        "already ended (completed)",
        f"failback report {awaiting}",
    )
    # Nothing about the failback changed: still alice's approval, and bob's never arrived.
    after = json.loads(cli(cli_lab, "status", awaiting, "--json").stdout)
    assert after["approval"]["approved_by"] == "alice"
    assert after["rejected_approvals"] == []


def test_status_of_a_finished_failback(cli_lab: LabState, awaiting: str) -> None:
    shown = cli(cli_lab, "status", awaiting)
    assert shown.returncode == 0, shown.stderr
    assert "completed" in shown.stdout and "failed back to its recovery point" in shown.stdout
    assert "approved by alice" in shown.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["status", "failback-vault-dr-nope"],
        ["status", "failback-vault-dr-nope", "--json"],
        ["approve", "failback-vault-dr-nope", "--by", "alice"],
        ["report", "failback-vault-dr-nope"],
    ],
)
def test_unknown_id_says_where_ids_come_from(cli_lab: LabState, command: list[str]) -> None:
    refused(
        cli(cli_lab, *command),
        "no failback with id failback-vault-dr-nope",
        "`failback start` prints the id",
    )


def test_unreachable_temporal_names_the_setting(cli_lab: LabState) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "starter", "status", "failback-vault-dr-web-01"],
        env=env_of(cli_lab, FAILBACK_TEMPORAL_ADDRESS="127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    refused(shown, "cannot reach Temporal at 127.0.0.1:1", "FAILBACK_TEMPORAL_ADDRESS")


def test_watch_and_json_together_are_refused(cli_lab: LabState) -> None:
    refused(cli(cli_lab, "status", "any", "--watch", "--json"), "choose one")
