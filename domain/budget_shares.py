"""Whether the workers on a task queue together stay inside ARM's budgets (issue 18, point 4).

ARM keeps its read and write buckets per principal. Workers that sign in as one principal split
them by FAILBACK_ARM_BUDGET_SHARE (1/N each); `docker compose up --scale worker=N` starts N
workers with whatever share the file says, so N workers at share 1 would each spend the whole
budget and ARM would refuse their requests with 429. Each worker therefore names its principal
and share in its Temporal identity, and reads the others' from the task queue's pollers: the
decision below says when their shares add up to more than one principal's budget."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The mark in a worker's Temporal identity: "<pid>@<host> arm-budget=<principal>:<share>".
MARK = "arm-budget="
# Shares are written with 6 decimals, each off by at most half a millionth: N workers at 1/N
# may add up to a little over one without claiming more than the budget.
ROUNDING_PER_WORKER = 1e-6


def budget_identity(base: str, principal: str, share: float) -> str:
    """The worker's identity on Temporal: its own (pid@host) with its principal and share."""
    return f"{base} {MARK}{principal}:{share:.6f}"


def principal_and_share(identity: str) -> tuple[str, float] | None:
    """The principal and share a worker's identity names; None for an identity without them (a
    worker of another program, or of a version before the mark)."""
    for word in identity.split():
        if word.startswith(MARK):
            principal, _, share = word.removeprefix(MARK).rpartition(":")
            try:
                value = float(share)
            except ValueError:
                return None
            return (principal, value) if principal and value > 0 else None
    return None


@dataclass(frozen=True)
class OverdrawnBudget:
    """Workers that share a principal and together claim more than its budgets."""

    principal: str
    workers: int
    total_share: float

    def advice(self) -> str:
        return (
            f"{self.workers} workers sign in to Azure as principal {self.principal} and claim "
            f"{self.total_share:.2f} of its ARM read and write budgets together (at most 1): ARM "
            "will refuse their requests with 429 and every failback waits on the retries. Set "
            f"FAILBACK_ARM_BUDGET_SHARE={1 / self.workers:.6f} on each of them (1/N for N workers "
            "of one principal), or give each worker a principal of its own (AZURE_CLIENT_ID) "
            "and keep its share at 1"
        )


def overdrawn_budgets(identities: Iterable[str]) -> list[OverdrawnBudget]:
    """Each principal whose workers' shares add up to more than one budget, by name."""
    shares: dict[str, list[float]] = {}
    for identity in set(identities):
        found = principal_and_share(identity)
        if found is not None:
            shares.setdefault(found[0], []).append(found[1])
    return [
        OverdrawnBudget(principal=principal, workers=len(claimed), total_share=sum(claimed))
        for principal, claimed in sorted(shares.items())
        if sum(claimed) > 1 + ROUNDING_PER_WORKER * len(claimed)
    ]


class OverdrawWatch:
    """Which findings to tell, check after check. Temporal lists a worker as a poller for a while
    after it stopped, so a restarted worker and its old self briefly look like two: a finding is
    told once it has held for `settle_seconds` (longer than a stopped worker stays listed), once,
    and told again only if it changes."""

    def __init__(self, settle_seconds: float) -> None:
        self._settle_seconds = settle_seconds
        self._first_seen: dict[OverdrawnBudget, float] = {}
        self._told: set[OverdrawnBudget] = set()

    def to_tell(self, found: list[OverdrawnBudget], now: float) -> list[OverdrawnBudget]:
        self._first_seen = {f: self._first_seen.get(f, now) for f in found}
        self._told &= set(found)
        due = [
            f
            for f in found
            if f not in self._told and now - self._first_seen[f] >= self._settle_seconds
        ]
        self._told.update(due)
        return due
