"""ARM counts a read when it arrives, the worker when it sends it: the worker keeps its bucket
below ARM's by the reads it lets be on their way at once (activities/arm_reads.ArmReadBudgetPolicy,
worker/wiring.read_budget)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest

from activities.arm_reads import ArmReadBudgetPolicy
from activities.budget import ReadBudget
from worker.settings import Settings
from worker.wiring import read_budget, reads_on_their_way


class SlowArm(HttpTransport):  # type: ignore[misc]
    """A transport whose every request takes 20 ms to answer; counts those on their way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.on_the_way = 0
        self.most_at_once = 0
        self.methods: list[str] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.on_the_way += 1
            self.most_at_once = max(self.most_at_once, self.on_the_way)
            self.methods.append(request.method)
        time.sleep(0.02)
        with self._lock:
            self.on_the_way -= 1
        return None

    def open(self) -> None: ...
    def close(self) -> None: ...
    def __exit__(self, *args: object) -> None: ...


def sent_at_once(method: str, cap: int, requests: int = 24) -> SlowArm:
    arm = SlowArm()
    policy = ArmReadBudgetPolicy(ReadBudget(capacity=1000, refill_per_second=1000), cap)
    pipeline = Pipeline(transport=arm, policies=[policy])
    with ThreadPoolExecutor(max_workers=requests) as pool:
        list(
            pool.map(lambda _: pipeline.run(HttpRequest(method, "https://arm/x")), range(requests))
        )
    assert len(arm.methods) == requests
    return arm


def test_no_more_reads_are_on_their_way_than_the_cap() -> None:
    arm = sent_at_once("GET", cap=3)
    assert arm.most_at_once == 3


def test_writes_are_not_held_by_the_reads_cap() -> None:
    arm = sent_at_once("PUT", cap=1)
    assert arm.most_at_once > 1


def test_a_cap_below_one_read_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one read"):
        ArmReadBudgetPolicy(ReadBudget(capacity=10, refill_per_second=1), 0)


@pytest.mark.parametrize("share", [1.0, 0.5, 0.25, 0.1])
def test_the_workers_bucket_and_its_reads_on_their_way_fit_in_arms_bucket(share: float) -> None:
    settings = Settings(arm_budget_share=share)
    budget = read_budget(settings)
    arms_share = settings.arm_read_burst * share
    assert budget.capacity + reads_on_their_way(settings) <= arms_share
    assert reads_on_their_way(settings) >= 1
    assert budget.refill_per_second == settings.arm_reads_per_second * share
