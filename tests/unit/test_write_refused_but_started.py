"""A write refused because an earlier attempt's request started the same job (answered too late
for that attempt) resumes that job instead of failing (activities/asr/operations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.asr.operations import AsrWrites, Write
from domain.architectures import CLASSIC
from domain.models import FailoverInput, ProtectedItemRef, VaultRef
from domain.operations import AsrOperation

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
PARAMS = FailoverInput(
    vault=VaultRef(resource_group="rg", vault="v"),
    item=ProtectedItemRef(fabric="f", container="c", name="web-01-item"),
    vm_name="web-01",
    not_before=NOW,
    recovery_point_type="LatestTime",
    poll_interval_seconds=0.01,
)


def refused(status: int) -> HttpResponseError:
    response = SimpleNamespace(status_code=status, headers={}, reason="refused", text=lambda: "")
    error = HttpResponseError(message="refused", response=response)  # type: ignore[arg-type]
    error.status_code = status
    return error


class Gateway:
    def __init__(self, jobs: list[Any], status: int) -> None:
        self.jobs, self.status, self.sent = jobs, status, 0

    def send(self, *args: Any, **kwargs: Any) -> None:
        self.sent += 1
        raise refused(self.status)

    def list_jobs(self, vault: VaultRef) -> list[Any]:
        return self.jobs

    def get_item(self, vault: VaultRef, item: ProtectedItemRef) -> Any:
        return SimpleNamespace(properties=SimpleNamespace(current_scenario=None))


def job(name: str, started: datetime) -> Any:
    return SimpleNamespace(
        name=name,
        properties=SimpleNamespace(
            scenario_name="UnplannedFailover",
            state="InProgress",
            state_description="",
            target_object_id="88bc391e-0000-0000-0000-000c2955bb50",
            target_object_name="web-01",
            start_time=started,
            end_time=None,
        ),
    )


def send(gateway: Gateway) -> tuple[str, bool]:
    writes = AsrWrites(gateway)  # type: ignore[arg-type]
    write = Write(AsrOperation.UNPLANNED_FAILOVER, lambda *a, **k: None)
    rule = CLASSIC.operation(AsrOperation.UNPLANNED_FAILOVER)
    return ActivityEnvironment().run(writes._send, write, rule, PARAMS, lambda _: None)


def test_a_conflict_with_the_earlier_attempts_job_resumes_it() -> None:
    gateway = Gateway([job("j-earlier", NOW + timedelta(seconds=1))], 409)
    assert send(gateway) == ("j-earlier", True)
    assert gateway.sent == 1


def test_a_refusal_with_no_such_job_is_a_refusal() -> None:
    gateway = Gateway([job("j-old", NOW - timedelta(hours=1))], 400)
    with pytest.raises(ApplicationError, match="ASR refused"):
        send(gateway)
