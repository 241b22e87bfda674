"""The harness's own checks can fail: a fault case whose fault never fired is not a pass."""

from __future__ import annotations

from typing import Any, cast

from lab.reliability.harness import Lab, Unit, unfired_faults


class ArmedFaults:
    """Stands in for the lab: only the simulator's list of armed faults."""

    def __init__(self, faults: list[dict[str, Any]]) -> None:
        self._faults = faults

    def faults(self) -> list[dict[str, Any]]:
        return self._faults


def test_a_fault_still_armed_at_the_end_is_reported() -> None:
    unit = Unit("a", "reprotect")
    lab = ArmedFaults(
        [
            {
                "kind": "http",
                "path_suffix": f"/replicationProtectedItems/{unit.items[0]}/reProtect",
                "remaining": 2,
                "count": 3,
            },
            {
                "kind": "job_failure",
                "operation": "reProtect",
                "item": unit.items[1],
                "remaining": 1,
                "count": 1,
            },
            {
                "kind": "drop",
                "path_suffix": f"/replicationRecoveryPlans/{unit.plan}/plannedFailover",
                "remaining": 1,
                "count": 1,
            },
        ]
    )
    left = unfired_faults(cast(Lab, lab), unit)
    assert len(left) == 3
    assert "http on /replicationProtectedItems/a-web-item/reProtect, 2 of 3 left" in left


def test_another_units_fault_is_not_this_units() -> None:
    # "b-a" ends like "a": the match is on whole names, not on a suffix.
    mine, other = Unit("a"), Unit("b-a")
    lab = ArmedFaults(
        [
            {
                "kind": "http",
                "path_suffix": f"/replicationProtectedItems/{other.items[0]}/reProtect",
                "remaining": 1,
                "count": 1,
            }
        ]
    )
    assert unfired_faults(cast(Lab, lab), mine) == []
    assert len(unfired_faults(cast(Lab, lab), other)) == 1
