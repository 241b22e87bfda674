"""The seam between ASR's architectures and the one failback lifecycle (DESIGN.md).

Each architecture (classic VMware/physical today; modernized VMware/physical and Hyper-V next)
is one module here with one `Architecture`: how to read its items' states, when each operation
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
from domain.architectures.modernized import MODERNIZED

# MODERNIZED is modelled (its states and operations, from the recordings) but joins this list
# only with its lifecycle (issue 15): until then its items are refused by name, not driven
# through the classic steps.
ARCHITECTURES: tuple[Architecture, ...] = (CLASSIC,)


def architecture_named(name: ArchitectureName) -> Architecture:
    for architecture in ARCHITECTURES:
        if architecture.name == name:
            return architecture
    raise UnknownArchitectureError(f"no architecture {name!r} is built in")


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
    "MODERNIZED",
    "Architecture",
    "ArchitectureName",
    "ItemView",
    "OperationRule",
    "UnknownArchitectureError",
    "architecture_named",
    "architecture_of",
]
