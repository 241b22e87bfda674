"""One lab for every reliability test (vcsim, the ASR simulator, a file-backed Temporal dev
server and a worker, all real processes), with a recovery plan of its own for each case."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.reliability.cases import TEST_BATCH, TEST_CASES
from lab.reliability.harness import CaseResult, Lab, run_cases, start_lab


@pytest.fixture(scope="session")
def reliability_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(tmp_path_factory.mktemp("reliability"), [c.unit for c in TEST_CASES])
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
async def batch(reliability_lab: Lab) -> dict[str, CaseResult]:
    """The faults and safety cases that do not disturb the whole lab, run side by side (the
    vCenter pause, which does, first and alone); each test then checks its own case."""
    return await run_cases(reliability_lab, TEST_BATCH)
