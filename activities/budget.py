"""ARM's request budget as a token bucket, kept by the worker so that its writes stay inside it.

Azure Resource Manager throttles each subscription and principal with token buckets (writes: 200
tokens, refilled at 10 a second). A failback of 1,000 machines commits them all after one
approval; sent at once, most of those commits would come back 429. Pure: the caller passes the
clock, and waits as long as `reserve` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A token counts as whole within this much: a wait computed to the instant a token is whole may
# land a rounding error short of it, and a waiter must not wait for that error again.
_ROUNDING = 1e-9


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

    def available(self, now: float) -> float:
        """Tokens in the bucket at `now` (negative: owed to reservations already queued)."""
        if self._at is None or now <= self._at:
            return self._tokens
        return min(self.capacity, self._tokens + (now - self._at) * self.refill_per_second)

    def seconds_until(self, now: float, tokens: float) -> float:
        """How long until the bucket holds `tokens` (at most its capacity) again: 0 when it
        does, within a rounding error; else the wait to hold them exactly, so that a caller
        waking then finds them."""
        wanted = min(tokens, self.capacity)
        held = self.available(now)
        if held >= wanted - _ROUNDING:
            return 0.0
        return (wanted - held) / self.refill_per_second

    def take(self, now: float) -> None:
        """Take one token at `now`, whole or not (the caller has checked)."""
        if self._at is not None and now > self._at:
            self._tokens = min(
                self.capacity, self._tokens + (now - self._at) * self.refill_per_second
            )
        self._at = now if self._at is None else max(self._at, now)
        self._tokens -= 1

    def reserve(self, now: float) -> float:
        """Take one token for a request at `now`; return how long the request must wait for it.

        Reservations are first come, first served: a token taken while the bucket is empty is
        one the bucket has yet to refill, and later callers queue behind it."""
        self.take(now)
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.refill_per_second


# What the urgent lane keeps when background reads borrow its tokens: this many seconds of its
# refill (7.5 reads with a principal's whole bucket and the default share), enough for a job's
# end and a plan's verification round (a page or a few of Azure's VM list) to go at once, and
# what it lacks beyond comes at its own rate, first. Why not its whole reserve: before the
# failovers no read is urgent, and a reserve kept for none made the readiness of a worker's
# third and fourth plans wait for reads ARM would have taken (bench/RESULTS.md,
# "2026-12-06, afternoon": at 1,000 machines ARM's bucket never fell below the 60 tokens so kept
# plus the 50 kept for reads on their way).
URGENT_FLOOR_SECONDS = 1.0


@dataclass
class ReadBudget:
    """ARM's read bucket (per subscription and principal: 250 tokens, refilled at 25 a second),
    kept by the worker so that its reads are never refused with 429, and spent where it matters
    first: a share of it is kept for the reads that decide what happens next (a job's end, a
    verification), which may also draw on the rest; discovery, readiness, recovery points and
    other background reads draw on the rest, and on the share's tokens beyond a second of its
    refill while no urgent read waits (URGENT_FLOOR_SECONDS). Together the two lanes never
    exceed the bucket. Pure, like TokenBucket: the caller passes the clock, and waits as long
    as `take_or_wait` says before it asks again (who asks first is the caller's choice:
    activities/arm_reads.ReadTurns)."""

    capacity: float
    refill_per_second: float
    urgent_share: float = 0.3
    _urgent: TokenBucket = field(init=False)
    _background: TokenBucket = field(init=False)
    _urgent_kept: float = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.urgent_share < 1:
            raise ValueError(f"the urgent share is a fraction, not {self.urgent_share}")
        urgent_capacity = max(1.0, self.capacity * self.urgent_share)
        self._urgent = TokenBucket(urgent_capacity, self.refill_per_second * self.urgent_share)
        self._background = TokenBucket(
            max(1.0, self.capacity - urgent_capacity),
            self.refill_per_second * (1 - self.urgent_share),
        )
        # Borrowing leaves the lane this many tokens (a lane smaller than that lends only when
        # full, leaving it empty).
        self._urgent_kept = min(
            urgent_capacity - 1, self._urgent.refill_per_second * URGENT_FLOOR_SECONDS
        )

    @property
    def background_most(self) -> float:
        """The most `background_available` can be: both lanes full."""
        urgent_lendable = max(0.0, self._urgent.capacity - self._urgent_kept)
        return self._background.capacity + urgent_lendable

    @property
    def background_refill_per_second(self) -> float:
        """How fast `background_available` grows at least (the urgent lane's refill adds to it
        only while that lane is not full)."""
        return self._background.refill_per_second

    def background_available(self, now: float) -> float:
        """The tokens background reads could take at `now` while no urgent read waits: their
        lane's and the urgent lane's beyond what it keeps (may be fractional)."""
        lendable = max(0.0, self._urgent.available(now) - self._urgent_kept)
        return self._background.available(now) + lendable

    def take_or_wait(self, now: float, urgent: bool, other_lane_idle: bool = True) -> float:
        """Take one read's token at `now` and return 0, or take nothing and return how long
        until the read's lane (or the other, when `other_lane_idle`: no read waits in it) has a
        whole token. Never in debt: a reader that waits keeps its place only as its caller
        keeps it (activities/arm_reads.ReadTurns)."""
        if urgent:
            # A job's end or a verification: its own lane first, the rest's tokens while no
            # background read waits for them (else a stream of urgent reads would starve them).
            if self._urgent.seconds_until(now, 1) == 0:
                self._urgent.take(now)
                return 0.0
            if not other_lane_idle:
                return self._urgent.seconds_until(now, 1)
            if self._background.seconds_until(now, 1) == 0:
                self._background.take(now)
                return 0.0
            return min(self._urgent.seconds_until(now, 1), self._background.seconds_until(now, 1))
        if self._background.seconds_until(now, 1) == 0:
            self._background.take(now)
            return 0.0
        # The urgent lane's tokens beyond what it keeps (URGENT_FLOOR_SECONDS) would wait for
        # reads nobody makes: a background read may take one. Before a plan's failover no read
        # is urgent, and without this its readiness had 70 % of ARM's rate only (bench/
        # RESULTS.md, 2026-12-04 evening) and 70 % of its burst. Only while no urgent read
        # waits: one waiting for its lane's next token would lose it to the background.
        if not other_lane_idle:
            return self._background.seconds_until(now, 1)
        lendable = self._urgent_kept + 1
        if self._urgent.seconds_until(now, lendable) == 0:
            self._urgent.take(now)
            return 0.0
        return min(
            self._background.seconds_until(now, 1),
            self._urgent.seconds_until(now, lendable),
        )
