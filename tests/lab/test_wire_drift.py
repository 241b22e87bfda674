"""Drift guard (issue 14, point 6): the api-versions this product was built and checked against.

The simulator speaks the SDK's default api-version, and the recorded bodies it is modelled on
come from the api-versions listed here. Upgrading the SDK, or adding a recording, fails this test
on purpose: re-run the schema walk (tests/lab/test_asr_sim_schema.py) and the replays, re-read
lab/ASR_SIMULATOR.md, then update the pins below.
"""

from __future__ import annotations

import importlib.metadata
import re

from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from lab.asr_sim.arm import ASR_API_VERSION
from lab.asr_sim.schema import WIRE

SDK_VERSION = "2.0.0"
SDK_API_VERSION = "2025-08-01"
RECORDED_API_VERSIONS = {"2021-06-01", "2021-11-01", "2024-02-01", "2025-08-01"}


def test_the_sdk_is_the_one_the_simulator_was_checked_against() -> None:
    assert importlib.metadata.version("azure-mgmt-recoveryservicessiterecovery") == SDK_VERSION
    client = SiteRecoveryManagementClient(credential=object(), subscription_id="s")  # type: ignore[arg-type]
    assert client._config.api_version == SDK_API_VERSION
    assert ASR_API_VERSION == SDK_API_VERSION


def test_the_recordings_are_the_ones_the_simulator_is_modelled_on() -> None:
    found = {
        version
        for path in WIRE.rglob("*.json")
        for version in re.findall(r"api-version=(\d{4}-\d{2}-\d{2})", path.read_text())
    }
    assert found == RECORDED_API_VERSIONS


def test_the_raw_vm_list_asks_for_the_compute_sdks_own_api_version() -> None:
    import inspect

    from azure.mgmt.compute.operations import VirtualMachinesOperations

    from activities.compute import COMPUTE_API_VERSION
    from lab.asr_sim.arm import COMPUTE_API_VERSIONS

    # The SDK's default for List All, as its generated code names it.
    assert f'"{COMPUTE_API_VERSION}"' in inspect.getsource(VirtualMachinesOperations.list_all)
    assert COMPUTE_API_VERSION in COMPUTE_API_VERSIONS
