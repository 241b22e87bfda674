"""Faults through the lab, each kind once: throttling, server errors, a dropped connection, a
slow answer, a failing ASR job, vCenter unreachable, an agent that never registers, a
configuration server that does not know (or loses) a machine. Each ends in a documented state:
retried and completed with one accepted write each, or stopped visibly with the reason and
nothing committed."""

from __future__ import annotations

import pytest

from lab.reliability.cases import (
    AGENT_NEVER,
    CS_FORGOT_MACHINE,
    CS_LOSES_MACHINE,
    DROP_FAILOVER_AFTER,
    DROPPED_FAILED_FAILOVER,
    FAILOVER_JOB_FAILS,
    SERVER_ERROR_COMMIT,
    SLOW_FAILOVER_ANSWER,
    THROTTLED,
    THROTTLED_LONG,
    VCENTER_DOWN_VERIFYING,
)
from lab.reliability.harness import CaseResult, Lab

pytestmark = pytest.mark.integration


def _post_answers(lab: Lab, item: str, action: str) -> list[tuple[int | None, bool]]:
    suffix = f"/replicationProtectedItems/{item}/{action}".lower()
    return [
        (e["status"], bool(e.get("dropped")))
        for e in lab.journal()
        if e["method"] == "POST" and e["path"].lower().endswith(suffix)
    ]


def test_throttled_failover_is_retried_and_sent_once(
    batch: dict[str, CaseResult], reliability_lab: Lab
) -> None:
    result = batch[THROTTLED.name]
    assert result.held, result.report()
    item = THROTTLED.unit.items[0]
    assert _post_answers(reliability_lab, item, "unplannedFailover") == [
        (429, False),
        (429, False),
        (429, False),
        (202, False),
    ]


def test_long_throttling_is_retried_when_arm_says(
    batch: dict[str, CaseResult], reliability_lab: Lab
) -> None:
    """Eight 429s in a row: each retry waits ARM's Retry-After (1 s), so the case completes
    within the harness's 6 min limit; on the retry policy's backoff (5 s doubling up to 2 min)
    the eight retries alone would take 8.6 min."""
    result = batch[THROTTLED_LONG.name]
    assert result.held, result.report()
    item = THROTTLED_LONG.unit.items[0]
    assert _post_answers(reliability_lab, item, "unplannedFailover") == [(429, False)] * 8 + [
        (202, False)
    ]


def test_server_errors_on_commit_are_retried(
    batch: dict[str, CaseResult], reliability_lab: Lab
) -> None:
    result = batch[SERVER_ERROR_COMMIT.name]
    assert result.held, result.report()
    item = SERVER_ERROR_COMMIT.unit.items[0]
    assert _post_answers(reliability_lab, item, "failoverCommit") == [
        (503, False),
        (503, False),
        (202, False),
    ]


def test_lost_answer_to_a_failover_does_not_send_it_again(
    batch: dict[str, CaseResult], reliability_lab: Lab
) -> None:
    """The connection closes after ASR started the job: the retry finds the job and waits."""
    result = batch[DROP_FAILOVER_AFTER.name]
    assert result.held, result.report()
    item = DROP_FAILOVER_AFTER.unit.items[0]
    assert _post_answers(reliability_lab, item, "unplannedFailover") == [(202, True)]


def test_failover_answer_later_than_the_heartbeat_timeout(batch: dict[str, CaseResult]) -> None:
    result = batch[SLOW_FAILOVER_ANSWER.name]
    assert result.held, result.report()


def test_failed_failover_job_stops_the_plan_before_any_commit(
    batch: dict[str, CaseResult],
) -> None:
    result = batch[FAILOVER_JOB_FAILS.name]
    assert result.held, result.report()
    assert result.outcome.startswith("stopped in failing-over"), result.outcome
    assert "nothing was committed" in result.outcome
    # The other machine of the boot group failed over fine, and stood down before commit.
    assert result.end is not None and result.end.plan is not None
    failed = result.end.plan.failed
    other = FAILOVER_JOB_FAILS.unit.items[1]
    assert "stopped before commit" in failed[other], failed


def test_vcenter_unreachable_during_verification(batch: dict[str, CaseResult]) -> None:
    result = batch[VCENTER_DOWN_VERIFYING.name]
    assert result.held, result.report()
    assert any("SIGSTOP" in n for n in result.notes), result.report()


def test_agent_that_never_registers_ends_by_the_operator(batch: dict[str, CaseResult]) -> None:
    """agent-stuck, then `failback agent ID --finish-without-reprotect`: committed once, never
    re-protected, and the plan says so."""
    result = batch[AGENT_NEVER.name]
    assert result.held, result.report()
    assert any("exited 0" in n for n in result.notes), result.report()


def test_machine_unknown_to_the_configuration_server_starts_nothing(
    batch: dict[str, CaseResult],
) -> None:
    result = batch[CS_FORGOT_MACHINE.name]
    assert result.held, result.report()
    assert result.outcome.startswith("stopped in checking-readiness"), result.outcome
    assert all(w.posts == 0 for w in result.writes.values()), result.report()


def test_machine_lost_by_the_configuration_server_during_the_reprotect(
    batch: dict[str, CaseResult],
) -> None:
    result = batch[CS_LOSES_MACHINE.name]
    assert result.held, result.report()
    assert result.outcome.startswith("stopped in reprotecting-to-onprem"), result.outcome
    assert all(w.failover == 0 for w in result.writes.values()), result.report()


def test_lost_answer_to_a_failover_whose_job_fails(batch: dict[str, CaseResult]) -> None:
    """The connection closes after ASR started the failover job, and that job fails: the
    failback must stop with the job's error, as it does when the answer arrives, and never send
    a second failover."""
    result = batch[DROPPED_FAILED_FAILOVER.name]
    assert result.held, result.report()
