"""`failback lab up` when the Temporal dev server dies while it starts (seen once in CI: a panic
while it built its services): the lab starts it again on new ports, says why, and comes up; when
it keeps dying, the error shows the panic's own line, not only the stack under it, and nothing
of the lab is left running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab import manager
from lab.manager import LabExited, lab_down, lab_is_running, read_state
from lab.scenario import default_scenario_path
from tests.integration.conftest import start_lab

PANIC = "panic: failed assigning ephemeral port: listen tcp 127.0.0.1:0: bind: no ports"
# What a Go program prints when it panics: the reason, then more stack than a log tail shows.
DYING_DEV_SERVER = [
    sys.executable,
    "-c",
    f"print({PANIC!r}); print(); "
    "[print(f'devserver.frame{i}()\\n\\t/src/server.go:{i} +0x52') for i in range(40)]; "
    "raise SystemExit(2)",
]


def _dev_server_dying_first(times: int, real: object) -> object:
    calls = {"n": 0}

    def command(lab_dir: Path, temporal_port: int, ui_port: int) -> list[str]:
        calls["n"] += 1
        if calls["n"] <= times:
            return DYING_DEV_SERVER
        return real(lab_dir, temporal_port, ui_port)  # type: ignore[operator]

    return command


def test_a_dev_server_that_dies_while_starting_is_started_again_on_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        manager, "_temporal_command", _dev_server_dying_first(1, manager._temporal_command)
    )
    said: list[str] = []
    lab_dir = tmp_path / "lab"
    state = start_lab(tmp_path, default_scenario_path(), say=said.append)
    try:
        assert lab_is_running(lab_dir)
        told = "\n".join(said)
        assert PANIC in told
        assert "starting the Temporal dev server again (attempt 2)" in told
        first_port = next(line for line in said if line.startswith("starting the Temporal"))
        address = state.settings["FAILBACK_TEMPORAL_ADDRESS"]
        assert address.rsplit(":", 1)[1] not in first_port
        # Only the live dev server is the lab's: `lab down` has no dead pid to chase.
        names = [p.name for p in state.processes]
        assert names.count("temporal") == 1
        assert manager._ports_open(int(address.rsplit(":", 1)[1]))
    finally:
        lab_down(lab_dir, say=lambda _: None)


def test_a_dev_server_that_keeps_dying_is_reported_with_its_panic_and_the_lab_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        manager,
        "_temporal_command",
        _dev_server_dying_first(manager.TEMPORAL_START_ATTEMPTS, manager._temporal_command),
    )
    started: list[manager.LabProcess] = []
    record = manager._write_partial_state

    def remember(lab_dir: Path, processes: list[manager.LabProcess]) -> None:
        started.extend(p for p in processes if p not in started)
        record(lab_dir, processes)

    monkeypatch.setattr(manager, "_write_partial_state", remember)
    lab_dir = tmp_path / "lab"
    with pytest.raises(LabExited) as refused:
        start_lab(tmp_path, default_scenario_path())
    message = str(refused.value)
    assert "the Temporal dev server exited with code 2" in message
    assert message.splitlines()[1] == PANIC
    assert str(lab_dir / "logs" / "temporal.log") in message
    assert [p.name for p in started].count("temporal") == manager.TEMPORAL_START_ATTEMPTS
    assert {"vcsim", "asr-simulator"} <= {p.name for p in started}
    assert not any(manager._alive(p.pid) for p in started)
    assert not lab_is_running(lab_dir)
    assert read_state(lab_dir) is None
    assert not (lab_dir / "processes.json").exists()
