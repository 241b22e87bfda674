"""The seam between ASR's architectures and the one failback lifecycle (DESIGN.md).

Each architecture (classic VMware/physical, modernized VMware/physical, Hyper-V) is one module
here with one `Architecture`: how to read its items' states, when each operation
is already done, which ASR operations and job scenarios are its own, and which steps of the
lifecycle it takes. Everything that differs per architecture is asked of it; adding one is
adding a module and naming it in `ARCHITECTURES`, not editing branches across the code.
"""

from __future__ import annotations

from domain.architectures.base import (
    Architecture,
    ArchitectureName,
    ItemView,
    OperationRule,
    UnknownArchitectureError,
)
from domain.architectures.classic import CLASSIC
from domain.architectures.hyperv import HYPERV
from domain.architectures.modernized import MODERNIZED
from domain.readiness import AsrFacts, OnPremFacts, ReadinessReport, ReprotectChoice

ARCHITECTURES: tuple[Architecture, ...] = (CLASSIC, MODERNIZED, HYPERV)


def architecture_named(name: str) -> Architecture:
    for architecture in ARCHITECTURES:
        if architecture.name == name:
            return architecture
    raise UnknownArchitectureError(f"no architecture {name!r} is built in")


def architecture_named_can_undo(name: str) -> bool:
    """Whether a failback of this architecture can be undone before its commit."""
    return architecture_named(ArchitectureName(name)).can_undo


def assess_readiness(
    facts: AsrFacts, onprem: OnPremFacts, **choices: str | None
) -> tuple[ReadinessReport, list[ReprotectChoice]]:
    """The readiness rules of the facts' architecture, with the operator's reprotect choices:
    what `failback check` reports and the plan workflow acts on, the same for both."""
    return architecture_named(ArchitectureName(facts.architecture)).assess(facts, onprem, **choices)


def architecture_of(instance_type: str) -> Architecture:
    """The architecture of an item, from its provider details' `instanceType`."""
    for architecture in ARCHITECTURES:
        if instance_type in architecture.providers:
            return architecture
    known = ", ".join(sorted(p for a in ARCHITECTURES for p in a.providers))
    raise UnknownArchitectureError(
        f"replication provider {instance_type or 'unknown'!r} is not one this product fails "
        f"back (it knows {known})"
    )


__all__ = [
    "ARCHITECTURES",
    "CLASSIC",
    "HYPERV",
    "MODERNIZED",
    "Architecture",
    "ArchitectureName",
    "ItemView",
    "OperationRule",
    "UnknownArchitectureError",
    "architecture_named",
    "architecture_named_can_undo",
    "architecture_of",
    "assess_readiness",
]
