"""Recovery point history of a protected item, generated once at simulator start (pure code)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lab.scenario import RecoveryPointHistory, RecoveryPointKind

RecoveryPointType = RecoveryPointKind

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class RecoveryPoint:
    name: str
    time: dt.datetime
    type: RecoveryPointType
    is_multi_vm_sync_point: bool = False


def generate_recovery_points(
    history: RecoveryPointHistory,
    started_at: dt.datetime,
    *,
    in_replication_group: bool = False,
    begins_at: dt.datetime | None = None,
) -> list[RecoveryPoint]:
    """Points from newest to oldest.

    Times sit on a grid aligned to the Unix epoch: crash-consistent points at the multiples of
    `crash_consistent_every_seconds`, application-consistent ones at the multiples of
    `app_consistent_every_seconds`. Items with the same intervals therefore share point times,
    which is what multi-VM sync points look like. The newest point is at or before
    `started_at - lag_seconds`, the oldest at or after `retention_seconds` before that. A point
    inside one of the history's gaps (for the gap's point types) is dropped. A time holding both
    kinds yields one application-consistent point. For a member of a replication group the
    application-consistent points are multi-VM sync points. `none` yields no point at all.
    Names are the epoch second, so they are unique per item.

    `begins_at` is when replication started producing points (a reprotect's initial replication
    completed): nothing older exists, and a crash-consistent point marks that moment itself,
    because ASR has a consistent copy as soon as the initial replication is done, not only at
    the next grid time.
    """
    if history.none:
        return []
    start = _whole_seconds(started_at)
    newest = start - history.lag_seconds
    oldest = newest - history.retention_seconds
    first: int | None = None
    if begins_at is not None:
        first = _whole_seconds(begins_at)
        if first > newest:
            return []
        oldest = max(oldest, first)

    def in_gap(second: int, kind: RecoveryPointType) -> bool:
        return any(
            kind in gap.types and gap.to_seconds_ago <= start - second <= gap.from_seconds_ago
            for gap in history.gaps
        )

    kinds: dict[int, RecoveryPointType] = {}
    for second in _grid(newest, oldest, history.crash_consistent_every_seconds):
        if not in_gap(second, "CrashConsistent"):
            kinds[second] = "CrashConsistent"
    for second in _grid(newest, oldest, history.app_consistent_every_seconds):
        if not in_gap(second, "ApplicationConsistent"):
            kinds[second] = "ApplicationConsistent"
    if first is not None and first >= oldest and not in_gap(first, "CrashConsistent"):
        kinds.setdefault(first, "CrashConsistent")

    return [
        RecoveryPoint(
            name=str(second),
            time=_EPOCH + dt.timedelta(seconds=second),
            type=kinds[second],
            is_multi_vm_sync_point=in_replication_group
            and kinds[second] == "ApplicationConsistent",
        )
        for second in sorted(kinds, reverse=True)
    ]


def _grid(newest: int, oldest: int, step: int) -> range:
    """Multiples of `step` from the last one at or before `newest` down to `oldest`."""
    first = newest - newest % step
    return range(first, oldest - 1, -step)


def _whole_seconds(moment: dt.datetime) -> int:
    return int((moment.astimezone(dt.UTC) - _EPOCH).total_seconds())
