"""Faults injected through `POST /_lab/faults`: synchronous HTTP errors, failing jobs, and
connection faults (an answer that never comes: the connection is closed; an answer that comes late).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from lab.asr_sim.operations import Operation, known_task_names, operation_spec

_DEFAULT_HTTP_CODES = {
    429: "SubscriptionRequestsThrottled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class _FaultBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=1, description="How many matching requests or jobs it hits")


class HttpFault(_FaultBase):
    """Answer the next `count` matching ARM requests with `status` and an ARM error body."""

    kind: Literal["http"]
    method: str | None = Field(default=None, description="HTTP method to match; any if absent")
    path_suffix: str | None = Field(
        default=None, description="Match paths ending with this (case-insensitive); any if absent"
    )
    status: int = Field(ge=400, le=599)
    # Retry-After 0 is falsy for azure-core and silently changes its behaviour: never send it.
    retry_after: int | None = Field(default=1, ge=1, description="Retry-After seconds; null: none")
    code: str | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _fill_defaults(self) -> HttpFault:
        if self.method is not None:
            self.method = self.method.upper()
        if self.code is None:
            self.code = _DEFAULT_HTTP_CODES.get(self.status, "InjectedFault")
        if self.message is None:
            self.message = f"Injected lab fault: HTTP {self.status} {self.code}."
        return self

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method.upper() != self.method:
            return False
        return self.path_suffix is None or path.lower().endswith(self.path_suffix.lower())


class JobFailureFault(_FaultBase):
    """Make the next `count` jobs of `operation` fail asynchronously with `code` / `message`."""

    kind: Literal["job_failure"]
    operation: Operation
    code: str = Field(min_length=1)
    message: str = Field(min_length=1)
    item: str | None = Field(default=None, description="Protected item name; any if absent")
    task: str | None = Field(default=None, description="Task that fails; a default per operation")
    possible_causes: str | None = None
    recommended_action: str | None = None

    @model_validator(mode="after")
    def _task_exists(self) -> JobFailureFault:
        names = known_task_names(self.operation)
        if self.task is not None and self.task not in names:
            raise ValueError(
                f"task {self.task!r} is not a task of {self.operation.value}; "
                f"choose one of {list(names)}"
            )
        return self

    def failing_task(self, architecture: str) -> str:
        return self.task or operation_spec(architecture, self.operation).default_failure_task


class JobStateFault(_FaultBase):
    """Make the next `count` jobs of `operation` show one of ASR's less common job states.

    - Suspended: after task `task` the job stops in state Suspended until
      `POST replicationJobs/{job}/resume`, then goes on (ASR's "waiting for an operator").
    - Other: for `seconds` after task `task` the job's state reads Other, then it goes on.
    - PartiallySucceeded: the job ends Succeeded with stateDescription PartiallySucceeded and its
      last task Failed; what the operation changes on the item still changes.
    The states are documented (service.json JobProperties.state); when real ASR shows them for
    these operations is UNKNOWN.
    """

    kind: Literal["job_state"]
    operation: Operation
    state: Literal["Suspended", "Other", "PartiallySucceeded"]
    item: str | None = Field(default=None, description="Protected item name; any if absent")
    task: str | None = Field(default=None, description="Task after which it strikes; the first")
    seconds: float = Field(default=3.0, gt=0, le=600, description="How long Other lasts")

    @model_validator(mode="after")
    def _task_exists(self) -> JobStateFault:
        names = known_task_names(self.operation)
        if self.task is not None and self.task not in names:
            raise ValueError(
                f"task {self.task!r} is not a task of {self.operation.value}; "
                f"choose one of {list(names)}"
            )
        return self


class _ConnectionFault(_FaultBase):
    method: str | None = Field(default=None, description="HTTP method to match; any if absent")
    path_suffix: str | None = Field(
        default=None, description="Match paths ending with this (case-insensitive); any if absent"
    )
    after_processing: bool = Field(
        default=False,
        description="False: before the request is processed (it has no effect); True: after it "
        "was processed (a POST has started its job) and only the answer is lost or late",
    )

    @model_validator(mode="after")
    def _upper_method(self) -> _ConnectionFault:
        if self.method is not None:
            self.method = self.method.upper()
        return self

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method.upper() != self.method:
            return False
        return self.path_suffix is None or path.lower().endswith(self.path_suffix.lower())


class DropFault(_ConnectionFault):
    """Close the connection of the next `count` matching ARM requests without any answer."""

    kind: Literal["drop"]


class DelayFault(_ConnectionFault):
    """Answer the next `count` matching ARM requests `seconds` late."""

    kind: Literal["delay"]
    seconds: float = Field(gt=0, le=600)


AnyFault = HttpFault | JobFailureFault | JobStateFault | DropFault | DelayFault
ConnectionFault = DropFault | DelayFault
Fault = Annotated[AnyFault, Field(discriminator="kind")]
FAULT_ADAPTER: TypeAdapter[AnyFault] = TypeAdapter(Fault)


_JobFault = TypeVar("_JobFault", JobFailureFault, JobStateFault)


@dataclass
class _Armed:
    fault_id: int
    fault: AnyFault
    remaining: int


class FaultBook:
    """Armed faults, each used up after `count` hits; the oldest matching fault fires first."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._armed: list[_Armed] = []

    def add(self, fault: AnyFault) -> int:
        fault_id = next(self._ids)
        self._armed.append(_Armed(fault_id, fault, fault.count))
        return fault_id

    def clear(self) -> None:
        self._armed.clear()

    def take_http(self, method: str, path: str) -> HttpFault | None:
        for armed in self._armed:
            fault = armed.fault
            if isinstance(fault, HttpFault) and fault.matches(method, path):
                self._use(armed)
                return fault
        return None

    def take_connection(self, method: str, path: str) -> ConnectionFault | None:
        for armed in self._armed:
            fault = armed.fault
            if isinstance(fault, DropFault | DelayFault) and fault.matches(method, path):
                self._use(armed)
                return fault
        return None

    def take_job_failure(self, operation: Operation, item_name: str) -> JobFailureFault | None:
        return self._take_job_fault(JobFailureFault, operation, item_name)

    def take_job_state(self, operation: Operation, item_name: str) -> JobStateFault | None:
        return self._take_job_fault(JobStateFault, operation, item_name)

    def _take_job_fault(
        self, kind: type[_JobFault], operation: Operation, item_name: str
    ) -> _JobFault | None:
        for armed in self._armed:
            fault = armed.fault
            if (
                isinstance(fault, kind)
                and fault.operation == operation
                and (fault.item is None or fault.item.lower() == item_name.lower())
            ):
                self._use(armed)
                return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "id": armed.fault_id,
                "remaining": armed.remaining,
                **armed.fault.model_dump(mode="json"),
            }
            for armed in self._armed
        ]

    def _use(self, armed: _Armed) -> None:
        armed.remaining -= 1
        if armed.remaining <= 0:
            self._armed.remove(armed)
