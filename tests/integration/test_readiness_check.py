"""`failback check` against the lab: every rule the readiness scenario breaks is named for its
machine, the machine that breaks nothing has no blocking finding, and nothing is written."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.manager import LabState, lab_down
from tests.integration.conftest import cli, journal, start_lab

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).parents[2] / "lab" / "scenarios"

# What lab/scenarios/readiness.json breaks, machine by machine (None: the plan as a whole).
EXPECTED_BLOCKING = {
    ("R8", "vm-w2k8-item"),
    ("R3", "vm-standalone-item"),
    ("R2", "vm-nfs-item"),
    ("R10", "vm-unknown-item"),
    ("R12", "vm-unhealthy-item"),
    ("R13", "vm-norp-item"),
    ("R15", "vm-linux-on-win-mt-item"),
    ("R11", "vm-mt-snap-item"),
    ("R15", None),
}
EXPECTED_WARNINGS = {
    ("R4", "vm-rdm-item"),
    ("R4", "vm-vsan-item"),
    ("R7", "phys-01-item"),
    ("R5", "vm-gone-item"),
}


def check(state: LabState, plan: str) -> subprocess.CompletedProcess[str]:
    return cli(state, "check", "--recovery-plan", plan, "--json")


@pytest.fixture(scope="module")
def readiness_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = start_lab(tmp_path_factory.mktemp("readiness"), SCENARIOS / "readiness.json")
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def test_every_broken_rule_is_named_for_its_machine(readiness_lab: LabState) -> None:
    result = check(readiness_lab, "plan-readiness")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ready"] is False
    blocking = {
        (f["rule"], f["item_name"]) for f in report["findings"] if f["severity"] == "blocking"
    }
    warnings = {
        (f["rule"], f["item_name"]) for f in report["findings"] if f["severity"] == "warning"
    }
    assert blocking == EXPECTED_BLOCKING
    assert warnings == EXPECTED_WARNINGS
    for finding in report["findings"]:
        assert finding["found"] and finding["action"]
    # R1/R5/R7: where each machine goes back to.
    location = {m["item_name"]: m["location"] for m in report["machines"]}
    assert location["vm-ok-item"] == "original"
    assert location["vm-gone-item"] == "alternate" and location["phys-01-item"] == "alternate"
    # vm-ok breaks nothing.
    assert not [f for f in report["findings"] if f["item_name"] == "vm-ok-item"]
    assert [e for e in journal(readiness_lab) if e["method"] != "GET"] == []


def test_configuration_server_down(tmp_path_factory: pytest.TempPathFactory) -> None:
    state = start_lab(tmp_path_factory.mktemp("cs-down"), SCENARIOS / "readiness-cs-down.json")
    try:
        result = check(state, "plan-cs-down")
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    rules = {f["rule"] for f in report["findings"] if f["severity"] == "blocking"}
    assert {"R9", "R10", "R14"} <= rules
