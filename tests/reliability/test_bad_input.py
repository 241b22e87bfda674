"""Bad input through the CLI (`python -m starter ...` with the lab's settings, as an operator
runs it): malformed scenario and settings files, an unknown plan, machine or workflow id, an
invalid approval, an invalid recovery point choice. Each: a clear error, a non-zero exit, no
Python traceback, and nothing started (no POST in the journal, no workflow)."""

from __future__ import annotations

import pytest

from lab.reliability.bad_input import BAD_INPUTS, BadInput, BadInputResult, run_bad_inputs
from lab.reliability.cases import THROTTLED
from lab.reliability.harness import CaseResult, Lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finished(batch: dict[str, CaseResult], reliability_lab: Lab) -> dict[str, str]:
    """Ids of a failback that has completed (from the batch), and an existing plan's name."""
    result = batch[THROTTLED.name]
    assert result.held, result.report()
    settings = reliability_lab.settings()
    unit = THROTTLED.unit
    return {
        "finished": f"failback-plan-{settings.azure_vault}-{unit.plan}",
        "finished_machine": f"failback-{settings.azure_vault}-{unit.vms[0]}",
        "plan": unit.plan,
    }


def _marks(bad: BadInput) -> list[pytest.MarkDecorator]:
    if bad.known_bug is None:
        return []
    return [
        pytest.mark.xfail(
            strict=True, raises=AssertionError, reason=f"product bug: {bad.known_bug}"
        )
    ]


@pytest.fixture(scope="module")
async def refused(
    reliability_lab: Lab, finished: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, BadInputResult]:
    """Every case, a few at a time (run_bad_inputs); each test below reads its own result."""
    root = tmp_path_factory.mktemp("bad-input")
    return await run_bad_inputs(reliability_lab, BAD_INPUTS, root, finished)


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.name, marks=_marks(b)) for b in BAD_INPUTS])
async def test_bad_input_is_refused_clearly_and_starts_nothing(
    bad: BadInput, refused: dict[str, BadInputResult]
) -> None:
    result = refused[bad.name]
    assert result.held, f"{result.command}: {result.violations}\n{result.message}"
