"""ARM's request budget as a token bucket, kept by the worker so that its writes stay inside it.

Azure Resource Manager throttles each subscription and principal with token buckets (writes: 200
tokens, refilled at 10 a second). A failback of 1,000 machines commits them all after one
approval; sent at once, most of those commits would come back 429. Pure: the caller passes the
clock, and waits as long as `reserve` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    capacity: float
    refill_per_second: float
    _tokens: float = field(init=False)
    _at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.refill_per_second <= 0:
            raise ValueError(
                f"a token bucket needs a capacity of at least 1 and a positive refill rate, "
                f"not {self.capacity} and {self.refill_per_second}"
            )
        self._tokens = self.capacity

    def reserve(self, now: float) -> float:
        """Take one token for a request at `now`; return how long the request must wait for it.

        Reservations are first come, first served: a token taken while the bucket is empty is
        one the bucket has yet to refill, and later callers queue behind it."""
        if self._at is not None and now > self._at:
            self._tokens = min(
                self.capacity, self._tokens + (now - self._at) * self.refill_per_second
            )
        self._at = now if self._at is None else max(self._at, now)
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.refill_per_second
