"""Recovery points readiness read, handed to the point selection once and only while fresh."""

from __future__ import annotations

import threading

from activities.handover import Handover


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_value_is_taken_once() -> None:
    handover: Handover[list[str]] = Handover(30.0, clock=FakeClock())
    handover.keep("web-01", ["p1", "p2"])
    assert handover.take("web-01") == ["p1", "p2"]
    assert handover.take("web-01") is None
    assert handover.take("never-kept") is None


def test_an_empty_list_is_a_value_not_a_miss() -> None:
    handover: Handover[list[str]] = Handover(30.0, clock=FakeClock())
    handover.keep("db-01", [])
    assert handover.take("db-01") == []


def test_a_value_older_than_the_limit_is_not_handed_over() -> None:
    clock = FakeClock()
    handover: Handover[str] = Handover(30.0, clock=clock)
    handover.keep("web-01", "old")
    clock.now += 30.5
    assert handover.take("web-01") is None


def test_stale_values_are_dropped_when_new_ones_are_kept() -> None:
    clock = FakeClock()
    handover: Handover[int] = Handover(30.0, clock=clock)
    for machine in range(100):
        handover.keep(machine, machine)
    clock.now += 31
    handover.keep("fresh", 1)
    assert len(handover) == 1


def test_threads_take_each_value_at_most_once() -> None:
    handover: Handover[int] = Handover(30.0)
    for machine in range(200):
        handover.keep(machine, machine)
    taken: list[int] = []
    lock = threading.Lock()

    def take_all() -> None:
        for machine in range(200):
            value = handover.take(machine)
            if value is not None:
                with lock:
                    taken.append(value)

    threads = [threading.Thread(target=take_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(200))
