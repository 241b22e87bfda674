"""The worker's writes stay within ARM's write budget: with a bucket of one token refilled each
second, three failovers asked for at once reach the ASR simulator a second apart, each once.

The real activities, the real Azure SDK and the lab's ASR simulator; only Temporal is replaced
by ActivityEnvironment.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from domain.models import (
    DiscoverMachineInput,
    FailoverInput,
    ReprotectToAzureOptions,
    SelectRecoveryPointInput,
    VaultRef,
)
from lab.manager import LabState, lab_down
from tests.integration.conftest import (
    integration_scenario,
    journal,
    lab_settings,
    posts,
    start_lab,
)
from worker.wiring import build_asr_activities

pytestmark = pytest.mark.integration

MACHINES = ["bud-01", "bud-02", "bud-03"]


@pytest.fixture(scope="module")
def budget_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    data = integration_scenario()
    vms, items = data["vcenter"]["vms"], data["azure"]["items"]
    for vm in MACHINES:
        vms.append({**vms[0], "name": vm})
        items.append({**items[0], "name": f"{vm}-item", "vm_name": vm, "azure_vm_name": vm})
    root = tmp_path_factory.mktemp("budget-lab")
    scenario = root / "scenario.json"
    scenario.write_text(json.dumps(data))
    state = start_lab(root, scenario)
    try:
        yield state
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)


def test_writes_wait_for_the_write_budget(budget_lab: LabState) -> None:
    settings = lab_settings(budget_lab)
    # A budget of one write a second, as the worker builds it from its settings.
    one_a_second = settings.model_copy(update={"arm_write_burst": 1, "arm_writes_per_second": 1.0})
    asr = build_asr_activities(one_a_second)
    assert settings.azure_resource_group and settings.azure_vault
    vault = VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault)
    environment = ActivityEnvironment()
    requests = []
    for vm in MACHINES:
        machine = environment.run(
            asr.discover_machine,
            DiscoverMachineInput(
                vault=vault,
                vm_name=vm,
                recovery_resource_group=str(settings.azure_recovery_resource_group),
                reprotect_to_azure=ReprotectToAzureOptions(
                    policy_id=settings.azure_reprotect_policy_id
                ),
            ),
        )
        point = environment.run(
            asr.select_recovery_point, SelectRecoveryPointInput(vault=vault, item=machine.item)
        )
        requests.append(
            FailoverInput(
                vault=vault,
                item=machine.item,
                not_before=datetime.now(UTC),
                recovery_point_type=point.asked_as,
                poll_interval_seconds=0.5,
            )
        )
    heartbeats: list[tuple[object, ...]] = []
    environment.on_heartbeat = lambda *details: heartbeats.append(details)

    async def all_at_once() -> list[str]:
        results = await asyncio.gather(
            *(environment.run(asr.fail_over, request) for request in requests)
        )
        return [r.state for r in results]

    assert asyncio.run(all_at_once()) == ["Succeeded"] * 3

    entries = journal(budget_lab)
    sent = []
    for vm in MACHINES:
        [post] = posts(entries, "unplannedFailover", f"{vm}-item")
        sent.append(datetime.fromisoformat(post["time"].replace("Z", "+00:00")))
    sent.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    # One token a second: the second and third failovers waited for theirs (the simulator's
    # clock and the worker's agree to within a few milliseconds on one machine).
    assert all(gap >= 0.9 for gap in gaps), gaps
    # While they waited they said they were alive, without a job name a retry would resume.
    assert () in heartbeats
