"""J-STATE and J-OWN (domain/jobs.py), and which items are in a replication group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.jobs import (
    JobFact,
    JobOutcome,
    find_own_job,
    has_ended,
    is_replication_group,
    job_outcome,
)

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
FAILOVER = frozenset({"UnplannedFailover"})


def test_j_state_every_documented_state() -> None:
    def outcome(state: str, description: str = "") -> JobOutcome:
        return job_outcome(JobFact(name="j", state=state, state_description=description))

    assert outcome("Succeeded", "Completed") is JobOutcome.SUCCEEDED
    assert outcome("Failed") is JobOutcome.FAILED
    assert outcome("Cancelled") is JobOutcome.CANCELLED
    assert outcome("Suspended") is JobOutcome.NEEDS_OPERATOR
    assert outcome("Other") is JobOutcome.RUNNING
    assert outcome("NotStarted") is JobOutcome.RUNNING
    assert outcome("InProgress") is JobOutcome.RUNNING
    assert outcome("Succeeded", "PartiallySucceeded") is JobOutcome.PARTIAL
    assert outcome("Failed", "Partially succeeded") is JobOutcome.PARTIAL


@given(st.text(max_size=20))
def test_j_state_an_unknown_state_is_never_an_end(state: str) -> None:
    if state in {"Succeeded", "Failed", "Cancelled", "Canceled"}:
        return
    job = JobFact(name="j", state=state)
    assert not has_ended(job)


def _job(name: str, minutes: int, **fields: str) -> JobFact:
    defaults = {"scenario_name": "UnplannedFailover", "target_object_name": "web-01"}
    return JobFact(name=name, start_time=T0 + timedelta(minutes=minutes), **(defaults | fields))


def test_j_own_matches_the_vm_friendly_name_not_the_guid_target() -> None:
    ours = _job("j2", 5, target_object_id="88bc391e-0000-0000-0000-000c2955bb50")
    found = find_own_job(
        [ours, _job("j3", 6, target_object_name="db-01")],
        scenarios=FAILOVER,
        vm_name="web-01",
        item_name="4f1c5c5e-item",
        since=T0,
    )
    assert found == ours


def test_j_own_skips_earlier_attempts_other_scenarios_and_excluded_jobs() -> None:
    jobs = [
        _job("before", -1),
        _job("commit", 3, scenario_name="CommitFailover"),
        _job("excluded", 4),
        _job("ours", 2),
    ]
    found = find_own_job(
        jobs, scenarios=FAILOVER, vm_name="web-01", item_name="x", since=T0, exclude=["excluded"]
    )
    assert found is not None and found.name == "ours"


def test_j_own_falls_back_to_an_arm_id_target() -> None:
    job = _job("j", 1, target_object_name="", target_object_id="/Subscriptions/s/.../web-01-item")
    assert find_own_job([job], scenarios=FAILOVER, vm_name="v", item_name="web-01-item", since=T0)


@given(st.uuids())
def test_an_auto_created_group_is_no_replication_group(guid: object) -> None:
    text = str(guid)
    assert not is_replication_group(text, text.upper())
    assert is_replication_group("rg-db", text)
    assert is_replication_group(text, "another-id")
    assert not is_replication_group(None, text)
    assert not is_replication_group("", None)
