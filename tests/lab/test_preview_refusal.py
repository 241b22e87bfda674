"""`failback preview` against the ASR simulator: a replication group without a common
application-consistent point is refused, naming the group and its members; only GETs are sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.scenario import load_scenario
from starter.commands import CommandError, plan_input
from starter.observe import preview_plan
from tests.lab.conftest import SECRET, SimLab, StartLab
from worker.settings import Settings

SCENARIOS = Path(__file__).parents[2] / "lab" / "scenarios"


def settings_for(lab: SimLab) -> Settings:
    azure = lab.scenario.azure
    return Settings(
        azure_subscription_id=azure.subscription_id,
        azure_resource_group=azure.resource_group,
        azure_vault=azure.vault,
        azure_recovery_resource_group=azure.recovery_resource_group,
        azure_reprotect_policy_id=azure.azure_policy_id,
        azure_endpoint=lab.url,
        azure_ca_bundle=str(lab.tls.ca_cert),
        azure_auth="lab",
        azure_lab_token_secret=SECRET,  # type: ignore[arg-type]
        azure_polling_interval=1,
    )


def test_no_common_point_is_refused_and_named(start_lab: StartLab) -> None:
    lab = start_lab(load_scenario(SCENARIOS / "plan-no-common-point.json"))
    settings = settings_for(lab)
    with pytest.raises(CommandError) as refused:
        preview_plan(settings, plan_input(settings, "plan-pair", "app-consistent"))
    message = str(refused.value)
    assert "rg-pair" in message and "pair-01-item" in message and "pair-02-item" in message
    # The same plan can fail back at the latest points.
    latest = preview_plan(settings, plan_input(settings, "plan-pair", "latest"))
    assert {m.item_name for m in latest.machines} == {
        "pair-01-item",
        "pair-02-item",
        "solo-01-item",
    }
    assert {e["method"] for e in lab.journal()} == {"GET"}
