"""ASR jobs as the failback reads them: what a job's state means, and which job is ours.

Pure: the gateways translate ASR's job documents into `JobFact`s; the rules here decide.

J-STATE: ASR's job states (service.json `JobProperties.state`, Get-AzRecoveryServicesAsrJob):
NotStarted, InProgress, Succeeded, Failed, Cancelled, Suspended, Other. `Suspended` waits for an
operator (ASR resumes it through `replicationJobs/{job}/resume`); `Other` is not an end; a job whose
`stateDescription` says PartiallySucceeded did not do all it was asked to, whatever its state.

J-OWN: after a lost answer, a write finds the job it started the way real jobs name their target:
the VM's friendly name (`targetObjectName`), the operation's scenario and a time window, never the
item's ARM name alone (a job's `targetObjectId` is an internal GUID).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class JobFact(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    scenario_name: str = ""
    state: str = ""
    state_description: str = ""
    target_object_id: str = ""
    target_object_name: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None


class JobOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    # Succeeded in name only: ASR's description says it did part of the work.
    PARTIAL = "partially-succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Suspended: ASR waits for an operator to resume (or cancel) it.
    NEEDS_OPERATOR = "needs-operator"


_RUNNING = frozenset({"NotStarted", "InProgress", "Other"})
_CANCELLED = frozenset({"Cancelled", "Canceled"})


def job_outcome(job: JobFact) -> JobOutcome:
    """J-STATE: what a job's state means for the write that awaits it."""
    if job.state_description.replace(" ", "").lower() == "partiallysucceeded":
        return JobOutcome.PARTIAL
    if job.state == "Succeeded":
        return JobOutcome.SUCCEEDED
    if job.state == "Failed":
        return JobOutcome.FAILED
    if job.state in _CANCELLED:
        return JobOutcome.CANCELLED
    if job.state == "Suspended":
        return JobOutcome.NEEDS_OPERATOR
    # NotStarted, InProgress, Other, and any state ASR adds later: not an end.
    return JobOutcome.RUNNING


def has_ended(job: JobFact) -> bool:
    return job_outcome(job) not in (JobOutcome.RUNNING, JobOutcome.NEEDS_OPERATOR)


def find_own_job(
    jobs: Iterable[JobFact],
    *,
    scenarios: frozenset[str],
    vm_name: str,
    item_name: str,
    since: datetime,
    exclude: Iterable[str] = (),
) -> JobFact | None:
    """J-OWN: the newest job of this operation on this machine that started since `since`."""
    excluded = set(exclude)
    names = {vm_name.lower(), item_name.lower()}
    candidates = [
        job
        for job in jobs
        if job.scenario_name in scenarios
        and job.name not in excluded
        and _targets(job, names)
        and job.start_time is not None
        and job.start_time >= since
    ]
    return max(candidates, key=lambda j: j.start_time or since, default=None)


def _targets(job: JobFact, names: set[str]) -> bool:
    if job.target_object_name.lower() in names:
        return True
    # Some jobs name the item by its ARM id; a GUID never equals a name we hold.
    last = job.target_object_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return bool(last) and last in names


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def is_replication_group(group_name: str | None, group_id: str | None) -> bool:
    """Whether an item belongs to a replication group a user made.

    ASR gives every standalone VM a group of its own, created with it, whose name and id are the
    same GUID (Azure PowerShell's InMage failover checks exactly that); only a group with a name
    of its own holds several machines that must fail over to one point.
    """
    if not group_name:
        return False
    auto_created = bool(_GUID.match(group_name)) and group_name.lower() == (group_id or "").lower()
    return not auto_created
