"""The simulator answers only in shapes real ASR is known to send (issue 14, point 1).

Every answer is walked against the SDK 2.0.0 models (lab/asr_sim/schema.py): a key or enum value
the models do not know, or a pinned field's value that no recording, spec example or document
shows, fails, unless the allow-list in that module names the recording that shows it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lab.asr_sim import schema
from lab.scenario import load_scenario
from tests.lab.conftest import SimLab, StartLab

SCENARIOS = sorted((Path(__file__).parents[2] / "lab" / "scenarios").glob("*.json"))


def test_microsofts_recorded_bodies_pass_the_walk() -> None:
    bodies = list(schema.wire_bodies())
    assert len(bodies) > 100
    found = [(path, str(v)) for path, body in bodies for v in schema.check_body(path, body)]
    assert found == []


def _recorded_item() -> tuple[str, dict[str, Any]]:
    for path, body in schema.wire_bodies():
        is_item = schema.response_model(path) == ("ReplicationProtectedItem", False)
        if is_item and "providerSpecificDetails" in body.get("properties", {}):
            return path, body
    raise AssertionError("no recorded protected item")


def test_the_walk_finds_an_invented_key_and_an_invented_state() -> None:
    path, item = _recorded_item()
    invented_key = copy.deepcopy(item)
    invented_key["properties"]["providerSpecificDetails"]["labOnlyFlag"] = True
    assert [v.problem for v in schema.check_body(path, invented_key)] == [
        f"no such key in {_provider_model(item)}"
    ]
    invented_state = copy.deepcopy(item)
    invented_state["properties"]["protectionState"] = "UnplannedFailoverCommitPending"
    (violation,) = schema.check_body(path, invented_state)
    assert violation.path == "$.properties.protectionState"


def test_an_unknown_provider_is_found() -> None:
    path, item = _recorded_item()
    item = copy.deepcopy(item)
    item["properties"]["providerSpecificDetails"]["instanceType"] = "LabReplica"
    assert any("LabReplica" in v.problem for v in schema.check_body(path, item))


def _provider_model(item: dict[str, Any]) -> str:
    kind = item["properties"]["providerSpecificDetails"]["instanceType"]
    mapping = schema.model("ReplicationProviderSpecificSettings").__mapping__  # type: ignore[attr-defined]
    return str(mapping[kind].__name__)


def read_everything(lab: SimLab) -> int:
    """GET every resource the client reads, through the real SDK; the number of answers."""
    asr = lab.asr
    vault = lab.scenario.azure
    group, name = vault.resource_group, vault.vault
    answers = 0
    for item in asr.replication_protected_items.list(group, name):
        answers += 1
        parts = item.id.split("/")
        fabric, container, item_name = parts[-5], parts[-3], parts[-1]
        asr.replication_protected_items.get(group, name, fabric, container, item_name)
        points = asr.recovery_points.list_by_replication_protected_items(
            group, name, fabric, container, item_name
        )
        answers += 1 + len(list(points))
    for plan in asr.replication_recovery_plans.list(group, name):
        asr.replication_recovery_plans.get(group, name, plan.name)
        answers += 2
    for fabric in asr.replication_fabrics.list(group, name):
        asr.replication_fabrics.get(group, name, fabric.name)
        answers += 2
        for container in asr.replication_protection_containers.list_by_replication_fabrics(
            group, name, fabric.name
        ):
            answers += 1 + bool(container)
        for vcenter in asr.replicationv_centers.list_by_replication_fabrics(
            group, name, fabric.name
        ):
            answers += 1 + bool(vcenter)
    for policy in asr.replication_policies.list(group, name):
        answers += 1 + bool(policy)
    for job in asr.replication_jobs.list(group, name):
        answers += 1 + bool(job)
    return answers


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_is_rendered_in_real_asr_shapes(path: Path, start_lab: StartLab) -> None:
    lab = start_lab(load_scenario(path))
    lab.sim.state.schema_check = True
    assert read_everything(lab) > 0
    assert lab.sim.state.schema_violations == []
