"""The report's view models: what the workflows say, and each machine reconciled with what the
world says now (domain/reconcile.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.models import (
    MachineStatus,
    PlanStatus,
)
from domain.reconcile import Disagreement, Observation, reconcile


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- what the workflows say -------------------------------------------------------------------

# Temporal's execution states, lower-case and hyphenated, plus one of ours for a plan's machines
# whose boot group has not started yet.
NOT_STARTED = "not-started"
RUNNING = "running"


class MachineView(_Model):
    """One machine's failback as its workflow records it (status None: not started yet)."""

    workflow_id: str
    item_name: str
    vm_name: str
    boot_group: int | None = None
    execution: str
    status: MachineStatus | None = None
    outcome: str | None = None
    summary: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attention: str | None = Field(
        default=None,
        description="What a running step says needs a person (e.g. an ASR job held Suspended)",
    )

    @property
    def final(self) -> bool:
        return self.execution not in (RUNNING, NOT_STARTED)


class FailbackView(_Model):
    """A machine's or a plan's failback: the workflow, and every machine's own record."""

    workflow_id: str
    kind: Literal["machine", "plan"]
    execution: str
    outcome: str | None = None
    summary: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan: PlanStatus | None = None
    machines: list[MachineView] = Field(default_factory=list)
    progress: str | None = Field(
        default=None, description="A long wait's progress while it runs (initial replication)"
    )

    @property
    def final(self) -> bool:
        return self.execution != RUNNING

    @property
    def title(self) -> str:
        if self.plan is not None:
            return f"recovery plan {self.plan.recovery_plan}"
        if self.machines:
            return self.machines[0].vm_name
        return self.workflow_id


class MachineReport(_Model):
    view: MachineView
    observation: Observation | None = None
    disagreements: list[Disagreement] = Field(default_factory=list)


class FailbackReport(_Model):
    view: FailbackView
    machines: list[MachineReport]
    generated_at: datetime

    @property
    def disagreements(self) -> list[Disagreement]:
        return [d for m in self.machines for d in m.disagreements]


def build_report(
    view: FailbackView, observations: dict[str, Observation], generated_at: datetime
) -> FailbackReport:
    """`observations` by MachineView.item_name; a machine without one was not checked."""
    machines = []
    for machine in view.machines:
        observation = observations.get(machine.item_name)
        machines.append(
            MachineReport(
                view=machine,
                observation=observation,
                disagreements=reconcile(machine.status, machine.vm_name, observation),
            )
        )
    return FailbackReport(view=view, machines=machines, generated_at=generated_at)
