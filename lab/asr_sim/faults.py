"""Faults injected through `POST /_lab/faults`: synchronous HTTP errors and failing jobs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from lab.asr_sim.operations import OPERATIONS, Operation, task_names

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
        names = task_names(self.operation)
        if self.task is not None and self.task not in names:
            raise ValueError(
                f"task {self.task!r} is not a task of {self.operation.value}; "
                f"choose one of {list(names)}"
            )
        return self

    @property
    def failing_task(self) -> str:
        return self.task or OPERATIONS[self.operation].default_failure_task


Fault = Annotated[HttpFault | JobFailureFault, Field(discriminator="kind")]
FAULT_ADAPTER: TypeAdapter[HttpFault | JobFailureFault] = TypeAdapter(Fault)


@dataclass
class _Armed:
    fault_id: int
    fault: HttpFault | JobFailureFault
    remaining: int


class FaultBook:
    """Armed faults, each used up after `count` hits; the oldest matching fault fires first."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._armed: list[_Armed] = []

    def add(self, fault: HttpFault | JobFailureFault) -> int:
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

    def take_job_failure(self, operation: Operation, item_name: str) -> JobFailureFault | None:
        for armed in self._armed:
            fault = armed.fault
            if (
                isinstance(fault, JobFailureFault)
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
