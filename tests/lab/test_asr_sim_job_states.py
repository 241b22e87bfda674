"""Job states beyond success and failure (faults of kind job_state): Suspended until ASR's resume,
Other for a while, and Succeeded with the description PartiallySucceeded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from tests.lab.test_asr_sim_reprotect import AsrLab, fast, make_lab, scenario_data

__all__ = ["make_lab"]  # the fixture, used by name below

ITEM = "web-01-item"


def _lab(make_lab: Callable[..., AsrLab], **fault: Any) -> AsrLab:
    lab = make_lab(fast(scenario_data("reprotect.json")))
    body = {"kind": "job_state", "operation": "reProtect", "item": ITEM, **fault}
    lab.lab("POST", "/_lab/faults", body).raise_for_status()
    return lab


def _job(lab: AsrLab) -> Any:
    (job,) = lab.jobs()
    return job


def _wait_for(lab: AsrLab, state: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = _job(lab)
        if job.properties.state == state:
            return job
        time.sleep(0.1)
    raise AssertionError(f"the job never showed {state}; it is {job.properties.state}")


def test_a_suspended_job_waits_for_resume_then_succeeds(make_lab: Callable[..., AsrLab]) -> None:
    lab = _lab(make_lab, state="Suspended")
    lab.reprotect_to_onprem(ITEM)
    job = _wait_for(lab, "Suspended")
    time.sleep(1.0)  # far longer than the job's own 0.3 s: it stays suspended
    assert _job(lab).properties.state == "Suspended"
    a = lab.scenario.azure
    lab.asr.replication_jobs.begin_resume(
        a.resource_group, a.vault, job.name, {"properties": {"comments": "go on"}}
    ).result()
    assert _wait_for(lab, "Succeeded").properties.state_description == "Completed"


def test_other_is_a_state_on_the_way(make_lab: Callable[..., AsrLab]) -> None:
    lab = _lab(make_lab, state="Other", seconds=0.8)
    lab.reprotect_to_onprem(ITEM)
    _wait_for(lab, "Other")
    assert _wait_for(lab, "Succeeded").properties.state_description == "Completed"


def test_partially_succeeded_is_succeeded_in_name_only(make_lab: Callable[..., AsrLab]) -> None:
    lab = _lab(make_lab, state="PartiallySucceeded")
    lab.reprotect_to_onprem(ITEM).result()
    job = _wait_for(lab, "Succeeded")
    assert job.properties.state_description == "PartiallySucceeded"
    assert job.properties.tasks[-1].state == "Failed"


def test_only_a_suspended_job_resumes(make_lab: Callable[..., AsrLab]) -> None:
    lab = _lab(make_lab, state="Other", seconds=0.1)
    lab.reprotect_to_onprem(ITEM).result()
    job = _wait_for(lab, "Succeeded")
    a = lab.scenario.azure
    with pytest.raises(HttpResponseError, match="only a suspended job resumes"):
        lab.asr.replication_jobs.begin_resume(a.resource_group, a.vault, job.name, {}).result()
