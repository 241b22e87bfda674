"""Issue 16, point 6: the guarantees of the VMware paths, proved for Hyper-V in a lab of its own:
a for-downtime failback held at ASR's suspension until the cut-over, kill -9 while the job is
suspended and right after ASR took the resume, and the resume's answer lost. Each completes
with exactly one accepted write per machine and operation, the resume included. The whole
Hyper-V matrix is `python -m lab.reliability`'s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.reliability.cases import TEST_HYPERV
from lab.reliability.harness import Case, Lab, run_case, start_lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hyperv_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(
        tmp_path_factory.mktemp("reliability-hyperv"),
        [c.unit for c in TEST_HYPERV],
        architecture="hyperv",
    )
    try:
        yield lab
    finally:
        lab.down()


@pytest.mark.parametrize("case", TEST_HYPERV, ids=lambda c: c.name)
async def test_hyperv_holds(hyperv_lab: Lab, case: Case) -> None:
    result = await run_case(hyperv_lab, case)
    assert result.held, result.report()
    for item, writes in result.writes.items():
        assert (writes.failover, writes.commit, writes.reprotect_azure) == (1, 1, 1), item
        assert writes.resume == 1, item
