"""The verification's Azure reads in rounds (activities/azure_vm_rounds.py): one list answers
every reader waiting, never with a read older than the question, and every failure of the list
falls back to a GET per VM."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from activities.azure_vm_rounds import AzureVmRounds
from activities.compute import VmKey, VmStatusList, vm_key
from domain.models import AzureVmRef, AzureVmState


class FakeCompute:
    """Power states by VM, changed by the test; every read counted, in order."""

    def __init__(self, states: dict[str, str], pages: int = 1) -> None:
        self.states = dict(states)
        self.pages = pages
        self.calls: list[str] = []
        self.list_error: BaseException | None = None
        self.without_views = False
        self.hide: set[str] = set()
        self.first_get_waits: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def read_vm(self, ref: AzureVmRef) -> AzureVmState:
        with self._lock:
            self.calls.append(f"get {ref.name}")
            wait, self.first_get_waits = self.first_get_waits, None
        if wait is not None:
            wait()
        if ref.name not in self.states:
            raise ResourceNotFoundError("not found")
        return AzureVmState(
            resource_group=ref.resource_group,
            name=ref.name,
            exists=True,
            power_state=self.states[ref.name],
        )

    def list_power_states(self) -> VmStatusList:
        with self._lock:
            self.calls.append("list")
        if self.list_error is not None:
            raise self.list_error
        if self.without_views:
            return VmStatusList(without_instance_view=len(self.states), pages=self.pages)
        states: dict[VmKey, str | None] = {
            vm_key("RG", name): power
            for name, power in self.states.items()
            if name not in self.hide
        }
        return VmStatusList(power_states=states, pages=self.pages)


def ref(name: str) -> AzureVmRef:
    return AzureVmRef(resource_group="rg", name=name)


def read_together(
    rounds: AzureVmRounds, compute: FakeCompute, names: list[str]
) -> dict[str, AzureVmState | BaseException]:
    """The first reader's GET waits until every other reader has come: they are the next
    round, all at once."""

    def others_came() -> None:
        deadline = time.monotonic() + 10
        while rounds.waiting < len(names) - 1:
            assert time.monotonic() < deadline, "the other readers never queued"
            time.sleep(0.005)

    compute.first_get_waits = others_came

    def read(name: str) -> AzureVmState | BaseException:
        try:
            return rounds.read_vm(ref(name))
        except Exception as err:
            return err

    with ThreadPoolExecutor(len(names)) as pool:
        first = pool.submit(read, names[0])
        while not compute.calls:
            time.sleep(0.001)
        rest = [pool.submit(read, n) for n in names[1:]]
        answers = [first.result(), *(f.result() for f in rest)]
    return dict(zip(names, answers, strict=True))


NAMES = [f"vm-{i:02d}" for i in range(8)]


def test_one_reader_alone_costs_one_get_as_before() -> None:
    compute = FakeCompute({"vm-00": "deallocated"})
    rounds = AzureVmRounds(compute)
    state = rounds.read_vm(ref("vm-00"))
    assert state.power_state == "deallocated" and state.exists
    assert compute.calls == ["get vm-00"]


def test_readers_who_come_together_are_answered_by_one_list() -> None:
    compute = FakeCompute({n: "deallocated" for n in NAMES})
    rounds = AzureVmRounds(compute)
    answers = read_together(rounds, compute, NAMES)
    assert all(
        isinstance(a, AzureVmState) and a.power_state == "deallocated" for a in answers.values()
    )
    # The first alone, then one list for the seven who came while it read.
    assert compute.calls == ["get vm-00", "list"]
    assert (rounds.use.rounds, rounds.use.lists, rounds.use.answered_by_list) == (2, 1, 7)


def test_no_reader_gets_an_answer_older_than_its_question() -> None:
    """A reader who comes while a round reads is answered by the next round's read, which sees
    what changed meanwhile."""
    compute = FakeCompute({"vm-00": "running", "vm-01": "running"})
    rounds = AzureVmRounds(compute)
    changed = threading.Event()

    def change_then_let_go() -> None:
        # vm-01 stops while vm-00's round reads; its reader asks after that.
        compute.states["vm-01"] = "deallocated"
        changed.set()
        deadline = time.monotonic() + 10
        while rounds.waiting < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)

    compute.first_get_waits = change_then_let_go
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(rounds.read_vm, ref("vm-00"))
        assert changed.wait(10)
        second = pool.submit(rounds.read_vm, ref("vm-01"))
        assert second.result().power_state == "deallocated"
        assert first.result().power_state == "running"
    assert compute.calls == ["get vm-00", "get vm-01"]


def test_a_list_of_more_pages_than_readers_is_not_worth_it() -> None:
    compute = FakeCompute({n: "deallocated" for n in NAMES}, pages=10)
    rounds = AzureVmRounds(compute)
    read_together(rounds, compute, NAMES)  # learns that a list takes 10 pages
    compute.calls.clear()
    answers = read_together(rounds, compute, NAMES)
    assert all(isinstance(a, AzureVmState) for a in answers.values())
    assert compute.calls[0] == "get vm-00"
    assert sorted(compute.calls[1:]) == [f"get {n}" for n in NAMES[1:]]


def test_a_vm_the_list_does_not_show_is_read_by_its_own_get() -> None:
    compute = FakeCompute({n: "deallocated" for n in NAMES})
    compute.hide = {"vm-03"}
    rounds = AzureVmRounds(compute)
    answers = read_together(rounds, compute, NAMES)
    assert isinstance(answers["vm-03"], AzureVmState)
    assert answers["vm-03"].power_state == "deallocated"
    assert compute.calls == ["get vm-00", "list", "get vm-03"]


def test_a_missing_vm_fails_its_own_reader_only() -> None:
    compute = FakeCompute({n: "deallocated" for n in NAMES if n != "vm-05"})
    rounds = AzureVmRounds(compute)
    answers = read_together(rounds, compute, NAMES)
    assert isinstance(answers["vm-05"], ResourceNotFoundError)
    assert all(isinstance(a, AzureVmState) for n, a in answers.items() if n != "vm-05")


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code, self.reason, self.headers = status, "x", {}
        self.content_type, self.text = "application/json", lambda: ""


@pytest.mark.parametrize(
    ("failure", "lists_again"),
    [
        (HttpResponseError("bad request", response=_Response(400)), False),  # type: ignore[arg-type]
        (HttpResponseError("throttled", response=_Response(429)), True),  # type: ignore[arg-type]
        (HttpResponseError("unavailable", response=_Response(503)), True),  # type: ignore[arg-type]
        (ConnectionError("reset"), True),
        ("ignored", False),
    ],
)
def test_a_list_that_fails_falls_back_to_a_get_per_vm(
    failure: BaseException | str, lists_again: bool
) -> None:
    compute = FakeCompute({n: "deallocated" for n in NAMES})
    if failure == "ignored":
        compute.without_views = True
    else:
        assert isinstance(failure, BaseException)
        compute.list_error = failure
    rounds = AzureVmRounds(compute)
    answers = read_together(rounds, compute, NAMES)
    assert all(
        isinstance(a, AzureVmState) and a.power_state == "deallocated" for a in answers.values()
    )
    assert compute.calls[:2] == ["get vm-00", "list"]
    assert sorted(compute.calls[2:]) == sorted(f"get {n}" for n in NAMES[1:])
    assert (rounds.use.stopped is None) is lists_again
    compute.calls.clear()
    read_together(rounds, compute, NAMES)
    assert ("list" in compute.calls) is lists_again


def test_a_rounds_gets_run_together_in_the_readers_lane_of_the_read_budget() -> None:
    """Several GETs at once, as the readers' own threads made them, each in the urgent lane the
    verification asked for (activities/arm_reads.py), not the background one."""
    from activities.arm_reads import _URGENT, urgent_reads

    compute = FakeCompute({n: "deallocated" for n in NAMES}, pages=10)
    lanes: list[bool] = []
    running = peak = 0
    lock = threading.Lock()
    plain_read = compute.read_vm

    def read_vm(ref: AzureVmRef) -> AzureVmState:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            lanes.append(_URGENT.get())
        try:
            time.sleep(0.05)
            return plain_read(ref)
        finally:
            with lock:
                running -= 1

    compute.read_vm = read_vm  # type: ignore[method-assign]
    rounds = AzureVmRounds(compute)
    rounds._list_pages = 10  # a list would cost more than the round's GETs

    def verify(name: str) -> AzureVmState:
        with urgent_reads():
            return rounds.read_vm(ref(name))

    with ThreadPoolExecutor(len(NAMES)) as pool:
        states = list(pool.map(verify, NAMES))
    assert all(s.power_state == "deallocated" for s in states)
    assert "list" not in compute.calls
    assert peak > 1, "the GETs of a round ran one after the other"
    assert lanes == [True] * len(NAMES)


def test_many_vms_asked_at_once_are_one_round_answered_in_order() -> None:
    """A plan's machines read together (activities/verification.py's plan read): one round,
    one list for them all, each answer in its place, a VM the list lacks read by its GET and
    its error returned in its place, not raised for all."""
    compute = FakeCompute({"a": "PowerState/deallocated", "b": "PowerState/running"})
    compute.hide = {"b"}
    rounds = AzureVmRounds(compute)
    answers = rounds.read_vms([ref("b"), ref("a"), ref("gone")])
    assert compute.calls[0] == "list" and sorted(compute.calls[1:]) == ["get b", "get gone"]
    assert rounds.use.rounds == 1
    first, second, third = answers
    assert isinstance(first, AzureVmState) and first.power_state == "PowerState/running"
    assert isinstance(second, AzureVmState) and second.power_state == "PowerState/deallocated"
    assert isinstance(third, ResourceNotFoundError)
    assert rounds.read_vms([]) == []
