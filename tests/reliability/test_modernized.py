"""Issue 15, point 5: what the product proves for classic, proved again for modernized, in a lab
of its own: a baseline and an undo, kill -9 inside the plan's plannedFailover job and inside the
failoverCancel jobs of an undo, a lost answer to the plan's plannedFailover. Each completes (or
ends undone) with exactly one accepted write per machine and operation, nothing committed before
the approval, and never an undo after a commit. The whole modernized matrix is
`python -m lab.reliability`'s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.reliability.cases import TEST_MODERNIZED
from lab.reliability.harness import Case, Lab, run_case, start_lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def modernized_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(
        tmp_path_factory.mktemp("reliability-modernized"),
        [c.unit for c in TEST_MODERNIZED],
        architecture="modernized",
    )
    try:
        yield lab
    finally:
        lab.down()


@pytest.mark.parametrize("case", TEST_MODERNIZED, ids=lambda c: c.name)
async def test_modernized_holds(modernized_lab: Lab, case: Case) -> None:
    result = await run_case(modernized_lab, case)
    assert result.held, result.report()
    for item, writes in result.writes.items():
        if case.expect == "refused":
            assert writes.posts == 0, item  # refused before anything was sent
            continue
        assert writes.failover == 1, item
        if case.expect == "undone":
            assert (writes.cancel, writes.commit, writes.commit_posts) == (1, 0, 0), item
        elif case.expect == "completed":
            assert (writes.commit, writes.reprotect_azure, writes.cancel) == (1, 1, 0), item
