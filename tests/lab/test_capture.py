"""The read-only capture of a vault (starter/capture.py) and its comparison with the simulator
(lab/capture_diff.py), run against the simulator standing in for a real vault."""

from __future__ import annotations

import json
from pathlib import Path

from lab.capture_diff import (
    SimulatorReader,
    compare,
    main,
    sanitised,
    shapes_of,
    simulator_capture,
)
from lab.credential import LabTokenCredential
from lab.scenario import default_scenario_path, load_scenario
from starter.capture import capture, read_capture, write_capture
from tests.lab.conftest import SECRET, StartLab


def test_a_capture_reads_only_and_keeps_shapes_but_no_names(
    start_lab: StartLab, tmp_path: Path
) -> None:
    scenario = load_scenario(default_scenario_path())
    lab = start_lab(scenario)
    token = LabTokenCredential(lab.url, SECRET, str(lab.tls.ca_cert)).get_token("x").token
    azure = scenario.azure
    vault = (
        f"/subscriptions/{azure.subscription_id}/resourceGroups/{azure.resource_group}"
        f"/providers/Microsoft.RecoveryServices/vaults/{azure.vault}"
    )
    answers = capture(SimulatorReader(lab.url, token, str(lab.tls.ca_cert)), vault)
    assert {a.kind for a in answers} >= {"fabrics", "items", "item", "recoveryPoints", "jobs"}
    assert {e["method"] for e in lab.journal()} == {"GET"}

    written = write_capture(answers, tmp_path)
    assert written == len(answers)
    text = "\n".join(p.read_text() for p in tmp_path.glob("*/*.json"))
    for secret in (azure.subscription_id, azure.vault, azure.items[0].vm_name, "10.0.0.4"):
        assert secret not in text, secret
    item = next(body for kind, _, body in read_capture(tmp_path) if kind == "item")
    sent = next(a.body for a in answers if a.kind == "item")
    for key in ("protectionState", "replicationHealth", "allowedOperations"):
        assert item["properties"][key] == sent["properties"][key]
    kind = sent["properties"]["providerSpecificDetails"]["instanceType"]
    assert item["properties"]["providerSpecificDetails"]["instanceType"] == kind
    assert item["id"].startswith("/Subscriptions/00000000-0000-4000-8000-")
    assert "/replicationProtectedItems/" in item["id"]


def test_the_simulator_matches_itself_and_a_difference_is_named(tmp_path: Path) -> None:
    scenario = load_scenario(default_scenario_path())
    simulated = simulator_capture(scenario)
    assert compare(shapes_of(simulated), shapes_of(simulated)) == []

    item = next(body for kind, _, body in simulated if kind == "item")
    item["properties"]["lastPlannedFailoverTime"] = "2026-12-03T10:00:00.1234567Z"
    item["properties"]["replicationHealth"] = "Degraded"
    found = [str(d) for d in compare(shapes_of(simulated), shapes_of(simulator_capture(scenario)))]
    assert any("lastPlannedFailoverTime: only in the capture (time(.7Z))" in d for d in found)
    assert any("replicationHealth" in d and "word:Degraded" in d for d in found)


def test_the_command_exits_1_on_a_difference_and_0_on_none(tmp_path: Path) -> None:
    scenario = load_scenario(default_scenario_path())
    folder = tmp_path / "capture"
    for n, (kind, path, body) in enumerate(simulator_capture(scenario)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        document = {"kind": kind, "path": path, "body": body}
        (folder / kind / f"{n:04d}.json").write_text(json.dumps(document))
    assert main([str(folder)]) == 0
    first = sorted((folder / "item").glob("*.json"))[0]
    document = json.loads(first.read_text())
    document["body"]["properties"]["newKey"] = "x"
    first.write_text(json.dumps(document))
    assert main([str(folder)]) == 1
    assert main([str(tmp_path / "missing")]) == 2


def test_sanitising_is_consistent_within_one_capture() -> None:
    scenario = load_scenario(default_scenario_path())
    simulated = simulator_capture(scenario)
    ids = [body["id"] for kind, _, body in simulated if kind == "item"]
    listed = [d["id"] for kind, _, body in simulated if kind == "items" for d in body["value"]]
    assert ids and set(ids) <= set(listed)
    assert sanitised([]) == []


def test_failback_capture_writes_a_sanitised_folder_through_the_gateway(
    start_lab: StartLab, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    scenario = load_scenario(default_scenario_path())
    lab = start_lab(scenario)
    azure = scenario.azure
    env = {
        **os.environ,
        "FAILBACK_AZURE_ENDPOINT": lab.url,
        "FAILBACK_AZURE_CA_BUNDLE": str(lab.tls.ca_cert),
        "FAILBACK_AZURE_AUTH": "lab",
        "FAILBACK_AZURE_LAB_TOKEN_SECRET": SECRET,
        "FAILBACK_AZURE_SUBSCRIPTION_ID": azure.subscription_id,
        "FAILBACK_AZURE_RESOURCE_GROUP": azure.resource_group,
        "FAILBACK_AZURE_VAULT": azure.vault,
        "FAILBACK_SETTINGS_FILE": "",
    }
    out = tmp_path / "capture"
    done = subprocess.run(
        [sys.executable, "-m", "starter", "capture", "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "sanitised answers" in done.stdout
    assert {e["method"] for e in lab.journal()} == {"GET"}
    assert main([str(out)]) == 0  # the simulator matches its own capture
    again = subprocess.run(
        [sys.executable, "-m", "starter", "capture", "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode != 0 and "not empty" in again.stderr + again.stdout
    assert "Traceback" not in again.stderr
