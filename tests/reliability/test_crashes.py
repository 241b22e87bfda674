"""kill -9 the worker at three points of a plan failback (inside the failover job of a plan that
reprotects first; awaiting approval; inside the commit job), and restart the Temporal dev server
(file-backed) once: every run completes, and ASR accepted exactly one unplannedFailover,
failoverCommit and reProtect to Azure per machine, and one reProtect to on-premises where the
plan reprotects first. The other kill points are scripts/reliability.py's job."""

from __future__ import annotations

import pytest

from lab.reliability.cases import TEST_CRASHES, TEST_TEMPORAL
from lab.reliability.harness import Case, Lab, run_case

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", [*TEST_CRASHES, *TEST_TEMPORAL], ids=lambda c: c.name)
async def test_failback_completes_once_after(reliability_lab: Lab, case: Case) -> None:
    result = await run_case(reliability_lab, case)
    assert case.action is not None
    assert any(n.startswith(case.action.label) for n in result.notes), result.report()
    assert result.held, result.report()
    reprotected_first = 1 if case.unit.kind == "reprotect" else 0
    for item, writes in result.writes.items():
        assert (writes.failover, writes.commit, writes.reprotect_azure) == (1, 1, 1), item
        assert writes.reprotect_onprem == reprotected_first, item
