"""What one activity read, handed to the next one on the same worker that would read it again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Handover(Generic[T]):
    """Values kept for at most `max_age_seconds`, each taken at most once.

    The plan's readiness check lists every machine's recovery points to count them, and the point
    selection that follows lists them again: 1,000 requests at 1,000 machines for the same
    answer (bench/RESULTS.md). The selection takes what readiness kept if it is young enough and
    reads afresh otherwise (another worker, a retry later, a re-protect in between)."""

    def __init__(self, max_age_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age_seconds
        self._clock = clock
        self._kept: dict[Hashable, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def keep(self, key: Hashable, value: T) -> None:
        now = self._clock()
        with self._lock:
            for old in [k for k, (at, _) in self._kept.items() if now - at > self._max_age]:
                del self._kept[old]
            self._kept[key] = (now, value)

    def take(self, key: Hashable) -> T | None:
        with self._lock:
            entry = self._kept.pop(key, None)
        if entry is None or self._clock() - entry[0] > self._max_age:
            return None
        return entry[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
