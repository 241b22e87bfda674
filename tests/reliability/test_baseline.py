"""The plans of the reliability cases, without any fault: each kind completes with exactly one
accepted write of each kind per machine (the yardstick the other cases are measured against)."""

from __future__ import annotations

import pytest

from lab.reliability.cases import BASELINE_REPLICATING, BASELINE_REPROTECT
from lab.reliability.harness import CaseResult

pytestmark = pytest.mark.integration


def test_plan_replicating_back_completes_once(batch: dict[str, CaseResult]) -> None:
    result = batch[BASELINE_REPLICATING.name]
    assert result.held, result.report()


def test_plan_reprotected_first_is_reprotected_to_azure_at_the_end(
    batch: dict[str, CaseResult],
) -> None:
    """Reprotect to on-premises, fail over, commit, re-protect to Azure: one accepted reProtect
    in each direction per machine. A reProtect to Azure must never be mistaken for the
    reProtect to on-premises of the same machine (both are SwitchReplicationGroupProtection
    jobs)."""
    result = batch[BASELINE_REPROTECT.name]
    for item, writes in result.writes.items():
        assert writes.reprotect_onprem == 1, result.report()
        assert writes.reprotect_azure == 1, (
            f"{item}: {writes.reprotect_azure} accepted reProtect to Azure\n{result.report()}"
        )
    assert result.held, result.report()
