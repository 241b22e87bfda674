"""Shared fixtures for the lab's tests: TLS files, an ASR simulator with real SDK clients, and
the vcsim harness binary."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from lab.asr_sim import RecordingVCenterEffects, SimulatorConfig, SimulatorThread
from lab.certs import LabTls, make_lab_tls
from lab.credential import LabTokenCredential
from lab.scenario import Scenario
from lab.vcenter import build_harness

SECRET = "lab-secret-for-tests"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LabTls:
    return make_lab_tls(tmp_path_factory.mktemp("tls"))


@dataclass
class SimLab:
    """A running simulator and the real, unmodified SDK clients pointed at it."""

    sim: SimulatorThread
    scenario: Scenario
    tls: LabTls
    effects: RecordingVCenterEffects
    asr: SiteRecoveryManagementClient
    compute: ComputeManagementClient

    @property
    def url(self) -> str:
        return self.sim.url

    def lab(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, self.url + path, json=body, verify=str(self.tls.ca_cert), timeout=10
        )

    def journal(self) -> list[dict[str, Any]]:
        return list(self.lab("GET", "/_lab/journal").json())

    def state(self) -> dict[str, Any]:
        return dict(self.lab("GET", "/_lab/state").json())


StartLab = Callable[..., Any]


@pytest.fixture
def start_lab(tls: LabTls) -> Iterator[StartLab]:
    """`start_lab(scenario, effects=None, kind=SimLab)`: a simulator stopped after the test."""
    started: list[SimulatorThread] = []

    def start(
        scenario: Scenario,
        effects: RecordingVCenterEffects | None = None,
        kind: type[SimLab] = SimLab,
    ) -> SimLab:
        effects = effects or RecordingVCenterEffects()
        sim = SimulatorThread(
            SimulatorConfig(
                scenario=scenario,
                cert=tls.server_cert,
                key=tls.server_key,
                token_secret=SECRET,
                effects=effects,
            )
        ).start()
        started.append(sim)
        credential = LabTokenCredential(sim.url, SECRET, str(tls.ca_cert))
        common: dict[str, Any] = {
            "base_url": sim.url,
            "connection_verify": str(tls.ca_cert),
            "polling_interval": 1,
        }
        sub = scenario.azure.subscription_id
        return kind(
            sim=sim,
            scenario=scenario,
            tls=tls,
            effects=effects,
            asr=SiteRecoveryManagementClient(credential, sub, **common),
            compute=ComputeManagementClient(credential, sub, **common),
        )

    yield start
    found = [v for sim in started for v in sim.state.schema_violations]
    for sim in started:
        sim.stop()
    assert found == [], f"the simulator answered in shapes real ASR does not send: {found[:5]}"


# --- The vcsim harness (lab/vcsim/main.go), built once per session for the vCenter tests -------

# Set to a persistent directory (e.g. /work/main/.lab) to reuse the built harness across runs.
VCSIM_LAB_DIR_ENV = "FAILBACK_TEST_LAB_DIR"


@pytest.fixture(scope="session")
def vcsim_lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    override = os.environ.get(VCSIM_LAB_DIR_ENV)
    if override:
        return Path(override)
    return tmp_path_factory.mktemp("vcsim-lab")


@pytest.fixture(scope="session")
def vcsim_harness(vcsim_lab_dir: Path) -> Path:
    return build_harness(vcsim_lab_dir)
