"""What every architecture answers: the small interface the lifecycle asks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.operations import AsrOperation
from domain.readiness import MachineState, ReadinessReport, ReprotectChoice

# The readiness rules of an architecture over both systems' facts, with the operator's choices
# for the reprotect toward on-premises (ReprotectToOnPremOptions' fields).
Assess = Callable[..., tuple[ReadinessReport, list[ReprotectChoice]]]


class ArchitectureName(StrEnum):
    CLASSIC = "classic"
    MODERNIZED = "modernized"
    HYPERV = "hyperv"


class UnknownArchitectureError(ValueError):
    """An item replicates with a provider no architecture of ours recognises."""


class ItemView(BaseModel):
    """A protected item as ASR shows it, the part the architectures decide on."""

    model_config = ConfigDict(frozen=True)

    instance_type: str = Field(description="The provider details' instanceType")
    protection_state: str = ""
    allowed_operations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OperationRule:
    """How to recognise one ASR write of an architecture on the wire and in an item's state."""

    operation: AsrOperation
    # ASR's allowedOperations names, one of which must be offered before the write is sent.
    allowed_operations: frozenset[str]
    # The scenarioName of the jobs this write starts: how a retry finds its own job.
    job_scenarios: frozenset[str]
    # The item already shows the write's effect: a retry after a lost answer sends nothing.
    already_done: Callable[[ItemView], bool]


@dataclass(frozen=True)
class Architecture:
    name: ArchitectureName
    title: str
    # instanceType values of its items' provider details, in either direction.
    providers: frozenset[str]
    # The provider of an item replicating (or being re-protected) toward Azure.
    to_azure_provider: str
    # Reprotect to on-premises before the failback (it also commits a pending failover).
    reprotects_before_failback: bool
    # The failover toward on-premises (unplanned for classic, planned for the others).
    failover: AsrOperation
    # Whether a failover toward on-premises can be undone before commit (failoverCancel).
    can_undo: bool
    operations: tuple[OperationRule, ...]
    # What the readiness rules need to know of an item's state.
    machine_state: Callable[[ItemView], MachineState]
    # Replicating back to on-premises, healthy enough to fail over (with health and points).
    replicating_back: Callable[[ItemView], bool]
    # Already protected to Azure again: the agent was there for it.
    protected_to_azure: Callable[[ItemView], bool]
    # Its readiness rules (domain/readiness*.py): what `failback check` reports and the plan
    # acts on; called as assess(asr_facts, onprem_facts, **reprotect_to_onprem_choices).
    assess: Assess
    # The readiness rules of DESIGN.md that apply, by number.
    rules: tuple[str, ...] = ()
    # Where its machines live on-premises: what readiness reads and verification asks.
    onprem_platform: Literal["vcenter", "hyperv"] = "vcenter"
    # After the commit, a mobility agent must register before the re-protect to Azure (R16).
    waits_for_agent: bool = True
    # Its readiness rules also look at on-premises VMs that only ASR names (classic: the master
    # targets, R9 R11), so vCenter is read for them after ASR.
    onprem_vms_named_by_asr: bool = False

    def operation(self, operation: AsrOperation) -> OperationRule:
        for rule in self.operations:
            if rule.operation == operation:
                return rule
        raise UnknownArchitectureError(f"the {self.title} architecture has no {operation}")
