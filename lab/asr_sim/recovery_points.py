"""Recovery point history of a protected item, generated once at simulator start (pure code)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from lab.scenario import RecoveryPointHistory

RecoveryPointType = Literal["CrashConsistent", "ApplicationConsistent"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class RecoveryPoint:
    name: str
    time: dt.datetime
    type: RecoveryPointType
    is_multi_vm_sync_point: bool = False


def generate_recovery_points(
    history: RecoveryPointHistory, started_at: dt.datetime
) -> list[RecoveryPoint]:
    """Points from newest to oldest.

    Crash-consistent points run back every `crash_consistent_every_seconds` from the newest point,
    which is `lag_seconds` before `started_at`. Application-consistent points are taken on a
    schedule (multiples of `app_consistent_every_seconds` since the Unix epoch), so they are
    usually older than the newest crash-consistent point, as in ASR. Both series stop at
    `retention_seconds` before the newest point. A time holding both kinds yields one
    application-consistent point. Times are whole seconds and names are the epoch second, so items
    with the same history share point times (what multi-VM sync points look like).
    """
    newest = _whole_seconds(started_at) - history.lag_seconds
    oldest = newest - history.retention_seconds

    kinds: dict[int, RecoveryPointType] = {}
    moment = newest
    while moment >= oldest:
        kinds[moment] = "CrashConsistent"
        moment -= history.crash_consistent_every_seconds

    step = history.app_consistent_every_seconds
    moment = newest - newest % step
    while moment >= oldest:
        kinds[moment] = "ApplicationConsistent"
        moment -= step

    return [
        RecoveryPoint(
            name=str(second),
            time=_EPOCH + dt.timedelta(seconds=second),
            type=kinds[second],
        )
        for second in sorted(kinds, reverse=True)
    ]


def _whole_seconds(moment: dt.datetime) -> int:
    return int((moment.astimezone(dt.UTC) - _EPOCH).total_seconds())
