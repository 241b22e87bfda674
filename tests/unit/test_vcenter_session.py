"""vsphere_client.VCenterSession without a vCenter: one login shared by threads, one retry on a
new session when the session or its connection is lost, and the name -> reference map."""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from pyVmomi import vim

from activities import vsphere_client
from activities.vsphere_client import AmbiguousVmNameError, VCenterSession, VmState


class FakeConnect:
    """Returns a new fake service instance per login, slowly, to let threads race."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sessions: list[Any] = []
        self.logged_out: list[Any] = []

    def __call__(self) -> Any:
        time.sleep(self.delay)
        si = SimpleNamespace(
            RetrieveContent=lambda: SimpleNamespace(propertyCollector=object()),
            _stub=SimpleNamespace(poolSize=5),
            number=len(self.sessions),
        )
        self.sessions.append(si)
        return si


def test_threads_share_one_login() -> None:
    connect = FakeConnect(delay=0.05)
    session = VCenterSession(connect)
    with ThreadPoolExecutor(max_workers=32) as pool:
        used = list(pool.map(lambda _: session.run(lambda si: si.number), range(200)))
    assert used == [0] * 200
    assert len(connect.sessions) == 1
    assert connect.sessions[0]._stub.poolSize == vsphere_client.HTTP_POOL_SIZE


@pytest.mark.parametrize(
    "error",
    [
        vim.fault.NotAuthenticated(),
        ConnectionResetError("reset by peer"),
        BrokenPipeError(),
        TimeoutError("timed out"),
        http.client.RemoteDisconnected("closed"),
        http.client.BadStatusLine("garbage"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_lost_session_is_replaced_and_the_call_retried_once(error: Exception) -> None:
    connect = FakeConnect()
    session = VCenterSession(connect)
    calls: list[int] = []

    def operation(si: Any) -> str:
        calls.append(si.number)
        if len(calls) == 1:
            raise error
        return "read"

    assert session.run(operation) == "read"
    assert calls == [0, 1]
    # The new session serves the calls after it.
    assert session.run(lambda si: si.number) == 1
    assert len(connect.sessions) == 2


def test_a_second_failure_is_raised() -> None:
    connect = FakeConnect()
    session = VCenterSession(connect)

    def operation(si: Any) -> None:
        raise vim.fault.NotAuthenticated()

    with pytest.raises(vim.fault.NotAuthenticated):
        session.run(operation)
    assert len(connect.sessions) == 2


def test_other_errors_are_not_retried() -> None:
    connect = FakeConnect()
    session = VCenterSession(connect)
    calls: list[int] = []

    def operation(si: Any) -> None:
        calls.append(si.number)
        raise vim.fault.InvalidPowerState()

    with pytest.raises(vim.fault.InvalidPowerState):
        session.run(operation)
    assert calls == [0]
    assert len(connect.sessions) == 1


def test_a_failed_login_is_raised_and_tried_again_on_the_next_call() -> None:
    attempts: list[int] = []
    good = FakeConnect()

    def connect() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise vim.fault.InvalidLogin()
        return good()

    session = VCenterSession(connect)
    with pytest.raises(vim.fault.InvalidLogin):
        session.run(lambda si: si)
    assert session.run(lambda si: si.number) == 0


def test_only_the_failed_session_is_dropped() -> None:
    """Threads that failed on the old session do not throw away the one another thread opened."""
    connect = FakeConnect()
    session = VCenterSession(connect)
    barrier = threading.Barrier(8)

    def operation(si: Any) -> int:
        if si.number == 0:
            barrier.wait(timeout=5)  # every thread holds the old session when it fails
            raise vim.fault.NotAuthenticated()
        return int(si.number)

    with ThreadPoolExecutor(max_workers=8) as pool:
        used = list(pool.map(lambda _: session.run(operation), range(8)))
    assert used == [1] * 8
    assert len(connect.sessions) == 2


# --- the name map --------------------------------------------------------------------------


def _state(name: str) -> VmState:
    return VmState(
        name=name,
        power_state="poweredOn",
        tools_running_status=None,
        guest_state=None,
        host="esx",
        datastores=[],
    )


class FakeVCenter:
    """VMs by reference, read through monkeypatched vm_refs_by_name / read_vm_state_of."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, vms: dict[str, str]) -> None:
        self.vms = dict(vms)  # reference -> name
        self.name_reads = 0
        self.state_reads: list[str] = []
        monkeypatch.setattr(vsphere_client, "vm_refs_by_name", self.vm_refs_by_name)
        monkeypatch.setattr(vsphere_client, "read_vm_state_of", self.read_vm_state_of)

    def vm_refs_by_name(self, si: Any, *, page_size: int | None = None) -> dict[str, list[Any]]:
        self.name_reads += 1
        refs: dict[str, list[Any]] = {}
        for ref, name in self.vms.items():
            refs.setdefault(name, []).append(ref)
        return refs

    def read_vm_state_of(self, si: Any, vm: Any, *, collector: Any = None) -> VmState | None:
        self.state_reads.append(vm)
        name = self.vms.get(vm)
        return None if name is None else _state(name)


def test_the_name_map_is_read_once_then_only_the_vm(monkeypatch: pytest.MonkeyPatch) -> None:
    vcenter = FakeVCenter(monkeypatch, {"vm-1": "a", "vm-2": "b"})
    session = VCenterSession(FakeConnect())
    for _ in range(3):
        assert session.read_vm_state("a") == _state("a")
        assert session.read_vm_state("b") == _state("b")
    assert vcenter.name_reads == 1
    assert vcenter.state_reads == ["vm-1", "vm-2"] * 3


def test_a_stale_reference_reads_the_map_again(monkeypatch: pytest.MonkeyPatch) -> None:
    vcenter = FakeVCenter(monkeypatch, {"vm-1": "a"})
    session = VCenterSession(FakeConnect())
    assert session.read_vm_state("a") is not None
    del vcenter.vms["vm-1"]
    vcenter.vms["vm-9"] = "a"
    assert session.read_vm_state("a") == _state("a")
    assert vcenter.name_reads == 2
    assert vcenter.state_reads[-1] == "vm-9"


def test_an_unknown_name_is_none_and_a_new_vm_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    vcenter = FakeVCenter(monkeypatch, {"vm-1": "a"})
    session = VCenterSession(FakeConnect())
    assert session.read_vm_state("b") is None
    vcenter.vms["vm-2"] = "b"
    assert session.read_vm_state("b") == _state("b")


def test_an_ambiguous_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeVCenter(monkeypatch, {"vm-1": "a", "vm-2": "a"})
    session = VCenterSession(FakeConnect())
    with pytest.raises(AmbiguousVmNameError) as caught:
        session.read_vm_state("a")
    assert caught.value.count == 2


def test_the_map_is_read_again_when_old(monkeypatch: pytest.MonkeyPatch) -> None:
    vcenter = FakeVCenter(monkeypatch, {"vm-1": "a"})
    now = [0.0]
    session = VCenterSession(FakeConnect(), names_max_age_seconds=60, clock=lambda: now[0])
    session.read_vm_state("a")
    now[0] = 30.0
    session.read_vm_state("a")
    assert vcenter.name_reads == 1
    vcenter.vms["vm-2"] = "a"  # a second VM of that name: noticed once the map is old
    now[0] = 61.0
    with pytest.raises(AmbiguousVmNameError):
        session.read_vm_state("a")
    assert vcenter.name_reads == 2


def test_concurrent_misses_share_map_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    vcenter = FakeVCenter(monkeypatch, {f"vm-{i}": f"n{i}" for i in range(100)})
    real = vcenter.vm_refs_by_name

    def slow(si: Any, *, page_size: int | None = None) -> dict[str, list[Any]]:
        time.sleep(0.05)
        return real(si, page_size=page_size)

    monkeypatch.setattr(vsphere_client, "vm_refs_by_name", slow)
    session = VCenterSession(FakeConnect())
    with ThreadPoolExecutor(max_workers=50) as pool:
        states = list(pool.map(lambda i: session.read_vm_state(f"n{i}"), range(100)))
    assert [s.name if s else None for s in states] == [f"n{i}" for i in range(100)]
    # Threads that miss while the map is being read wait for the next read and share it.
    assert vcenter.name_reads <= 3


# --- a failback's facts of its own VMs -------------------------------------------------------


def _vm(name: str) -> vsphere_client.VmInfo:
    return vsphere_client.VmInfo(
        name=name,
        host="esx-01",
        datastores=[],
        power_state="poweredOn",
        tools_status=None,
        tools_running_status=None,
        guest_state=None,
        guest_id=None,
        guest_full_name=None,
        configured_guest_full_name=None,
        snapshot_count=0,
        disks=[],
    )


def _inventory(*names: str) -> vsphere_client.VCenterInventory:
    return vsphere_client.VCenterInventory(hosts=[], datastores=[], vms=[_vm(n) for n in names])


def test_named_vms_whose_references_keep_changing_are_read_from_the_whole_inventory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A VM renamed between the map and its read, twice over: the whole inventory answers."""
    maps: list[int] = []
    wholes: list[int] = []

    def name_map(si: Any, **_: Any) -> dict[str, list[Any]]:
        maps.append(1)
        return {"web-01": [SimpleNamespace(_moId=f"vm-{len(maps)}")]}

    def whole(si: Any, **_: Any) -> vsphere_client.VCenterInventory:
        wholes.append(1)
        return _inventory("web-01", "db-01", "other")

    monkeypatch.setattr(vsphere_client, "vm_refs_by_name", name_map)
    monkeypatch.setattr(
        vsphere_client, "read_inventory_of", lambda si, refs, **_: _inventory("renamed")
    )
    monkeypatch.setattr(vsphere_client, "read_inventory", whole)
    session = VCenterSession(FakeConnect())

    inventory = session.read_inventory_of_named(["web-01", "db-01"])

    assert [vm.name for vm in inventory.vms] == ["web-01", "db-01"]
    assert (len(maps), len(wholes)) == (2, 1)


def test_named_vms_the_fresh_map_knows_are_read_without_reading_the_map_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    maps: list[int] = []

    def name_map(si: Any, **_: Any) -> dict[str, list[Any]]:
        maps.append(1)
        return {n: [SimpleNamespace(_moId=n)] for n in ("web-01", "db-01")}

    monkeypatch.setattr(vsphere_client, "vm_refs_by_name", name_map)
    monkeypatch.setattr(
        vsphere_client,
        "read_inventory_of",
        lambda si, refs, **_: _inventory(*(ref._moId for ref in refs)),
    )
    session = VCenterSession(FakeConnect())

    assert [vm.name for vm in session.read_inventory_of_named(["db-01", "web-01"]).vms] == [
        "db-01",
        "web-01",
    ]
    assert [vm.name for vm in session.read_inventory_of_named(["web-01"]).vms] == ["web-01"]
    assert len(maps) == 1
    # A name the map lacks is looked for in a map read again, once.
    assert session.read_inventory_of_named(["new-vm"]).vms == []
    assert len(maps) == 2
