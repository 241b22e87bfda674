"""Safety properties, end to end in the lab: no commit without approval and a passed
verification; under app-consistent, a plan with a replication group fails over whole, every
member at the group's common point, the one `failback preview` showed; a cancelled failback
leaves the Azure copies intact."""

from __future__ import annotations

import pytest

from lab.reliability.cases import (
    SAFETY_APP_CONSISTENT,
    SAFETY_APPROVAL,
    SAFETY_CANCEL_AWAITING,
    SAFETY_MEMBER_APPROVED_ALONE,
    SAFETY_VERIFICATION_FAILS,
)
from lab.reliability.harness import CaseResult, Lab, accepted

pytestmark = pytest.mark.integration


def test_commit_only_after_verification_and_approval(batch: dict[str, CaseResult]) -> None:
    """Approvals sent before the verification passed (as signals straight to the plan and to the
    machine, and through `failback approve`, which exits 2 with "not approved" and prints
    nothing on stdout) are refused; nothing is committed while the plan waits; the commit is
    sent after the approval, which came after the verification. The verification is held open
    until the CLI has answered, so a CLI slow to start on a loaded machine cannot find the plan
    already awaiting approval (and rightly approve it)."""
    result = batch[SAFETY_APPROVAL.name]
    assert result.held, result.report()
    assert any("approved" in n and "commit sent" in n for n in result.notes), result.report()


def test_failed_verification_never_commits(batch: dict[str, CaseResult]) -> None:
    result = batch[SAFETY_VERIFICATION_FAILS.name]
    assert result.held, result.report()
    assert "verification failed" in result.outcome, result.outcome
    assert all(w.commit_posts == 0 for w in result.writes.values()), result.report()


def test_app_consistent_group_fails_over_at_the_previewed_common_point(
    batch: dict[str, CaseResult], reliability_lab: Lab
) -> None:
    """FO-PLAN: the plan holds the group, so it fails over whole, once, asking LatestTag; the
    simulator took the previewed common point for every member."""
    result = batch[SAFETY_APP_CONSISTENT.name]
    assert result.held, result.report()
    preview = result.data["preview"]
    group = next(g for g in preview["groups"] if g["members"])
    chosen = {m["item_name"]: m["chosen"] for m in preview["machines"]}
    entries = reliability_lab.journal()
    plan = SAFETY_APP_CONSISTENT.unit.plan
    (whole,) = accepted(entries, "", "unplannedFailover", plan=plan)
    assert whole["body"]["properties"]["providerSpecificDetails"] == [
        {"instanceType": "InMage", "recoveryPointType": "LatestTag"}
    ]
    taken = {i["name"]: i["failover_recovery_point"] for i in reliability_lab.sim_state()["items"]}
    for member in group["members"]:
        assert accepted(entries, member, "unplannedFailover") == []
        assert chosen[member]["time"] == group["common_point_time"]
        assert taken[member] == chosen[member]["name"]


def test_cancelled_failback_leaves_the_azure_vms(batch: dict[str, CaseResult]) -> None:
    result = batch[SAFETY_CANCEL_AWAITING.name]
    assert result.held, result.report()
    assert any("exists, deallocated" in n for n in result.notes), result.report()
    assert all(w.commit_posts == 0 for w in result.writes.values()), result.report()


def test_a_plan_member_is_not_committed_alone(batch: dict[str, CaseResult]) -> None:
    """One approval covers the plan; a plan with a failed machine commits nothing: `failback
    approve` with a member's own id, while another member still fails over, is refused."""
    result = batch[SAFETY_MEMBER_APPROVED_ALONE.name]
    assert result.held, result.report()
