"""VSphereActivities against a real vcsim harness: read_onprem_vm reads only the VM it is asked
about (through a cached name -> reference map), and one vCenter session serves every call, logged
in again when it is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from activities import vsphere_client
from activities.vsphere import OnPremFactsQuery, VCenterReads, VSphereActivities
from activities.vsphere_client import (
    connect,
    disconnect,
    read_inventory,
    read_vm_states,
    vm_refs_by_name,
)
from domain.models import OnPremVmQuery, OnPremVmState
from lab.localhost import free_port
from lab.scenario import load_scenario
from lab.vcenter import (
    VcsimEndpoint,
    inventory_from_scenario,
    start_vcsim,
    stop_vcsim,
)
from lab.vcenter_client import create_vm_on_host, power_off_vm, power_on_vm, wait_for_task

USER = "lab-admin"
PASSWORD = "s3cret-lab"
HOST = "esx-01.corp.local"
DATASTORE = "ds-vmfs-01"
# The classic single-VM scenario's inventory (web-01 and mt-linux-01), which these tests name.
CLASSIC_SINGLE_VM = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "single-vm.json"
# Added to its two VMs, every other one powered on.
EXTRA_VMS = [f"extra-{i:02d}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def vcsim(vcsim_harness: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcsimEndpoint]:
    run_dir = tmp_path_factory.mktemp("vcsim-read-one-vm")
    inventory = inventory_from_scenario(load_scenario(CLASSIC_SINGLE_VM))
    inventory["vms"] += [
        {
            "name": name,
            "host": HOST,
            "datastore": DATASTORE,
            "os_type": "Linux",
            "power_state": "poweredOn" if i % 2 else "poweredOff",
            "disks": [{"kind": "vmdk", "datastore": DATASTORE, "size_gb": 1}],
            "snapshots": 0,
            "guest_os_version": "",
        }
        for i, name in enumerate(EXTRA_VMS)
    ]
    process, endpoint = start_vcsim(
        vcsim_harness, inventory, run_dir, free_port(), USER, PASSWORD, run_dir / "vcsim.log"
    )
    try:
        yield endpoint
    finally:
        stop_vcsim(process, timeout=10)


@pytest.fixture(scope="module")
def si(vcsim: VcsimEndpoint) -> Iterator[vim.ServiceInstance]:
    """A session of the test's own, to look and to change things behind the activities' back."""
    instance = connect(vcsim.host, vcsim.port, vcsim.username, vcsim.password, verify_tls=False)
    try:
        yield instance
    finally:
        disconnect(instance)


class CountingConnect:
    def __init__(self, endpoint: VcsimEndpoint) -> None:
        self.endpoint = endpoint
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        e = self.endpoint
        return connect(e.host, e.port, e.username, e.password, verify_tls=False)


@pytest.fixture
def logins(vcsim: VcsimEndpoint) -> CountingConnect:
    return CountingConnect(vcsim)


@pytest.fixture
def activities(logins: CountingConnect) -> Iterator[VSphereActivities]:
    instance = VSphereActivities(VCenterReads(logins))
    try:
        yield instance
    finally:
        instance.close()


def read(activities: VSphereActivities, name: str) -> OnPremVmState:
    return activities.read_onprem_vm(OnPremVmQuery(vm_name=name))


def recorded_retrievals(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """From now on, the objects of each PropertyCollector retrieval, a list per retrieval."""
    retrievals: list[list[Any]] = []
    real = vsphere_client._retrieve_all

    def recording(collector: Any, specs: Any, page_size: int | None = None) -> Iterator[Any]:
        objects: list[Any] = []
        retrievals.append(objects)
        for content in real(collector, specs, page_size):
            objects.append(content.obj)
            yield content

    monkeypatch.setattr(vsphere_client, "_retrieve_all", recording)
    return retrievals


def shared_si(activities: VSphereActivities) -> Any:
    return activities._vcenter._session.run(lambda si: si)


def _destroy(si: vim.ServiceInstance, name: str) -> None:
    [ref] = vm_refs_by_name(si)[name]
    power_off_vm(si, name)
    wait_for_task(si, ref.Destroy_Task(), 30)


def _rename(si: vim.ServiceInstance, name: str, new_name: str) -> None:
    [ref] = vm_refs_by_name(si)[name]
    wait_for_task(si, ref.Rename_Task(newName=new_name), 30)


def _create(si: vim.ServiceInstance, name: str) -> None:
    create_vm_on_host(si, name, HOST, DATASTORE, "Linux", [1])


# --- reading one VM --------------------------------------------------------------------------


def test_reads_each_vm_among_several_as_the_whole_inventory_shows_it(
    activities: VSphereActivities, si: vim.ServiceInstance
) -> None:
    names = ["web-01", "mt-linux-01", *EXTRA_VMS]
    expected = read_vm_states(si, names)
    assert set(expected) == set(names)
    for name in names:
        want = expected[name]
        assert read(activities, name) == OnPremVmState(
            vm_name=name,
            found=True,
            power_state=want.power_state,
            tools_running_status=want.tools_running_status,
            guest_state=want.guest_state,
            host=HOST,
        )
    assert read(activities, "extra-02").power_state == "poweredOn"
    assert read(activities, "extra-01").power_state == "poweredOff"


def test_a_read_retrieves_only_that_vm(
    activities: VSphereActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    read(activities, "extra-03")  # the name map is read once, on the first miss
    retrievals = recorded_retrievals(monkeypatch)
    state = read(activities, "extra-05")
    retrieved = [ref for objects in retrievals for ref in objects]

    assert state.found
    vms = [ref for ref in retrieved if isinstance(ref, vim.VirtualMachine)]
    assert len(vms) == 1, "read_onprem_vm must not read every VM of the inventory"
    # The VM itself, then the names of its host and its datastore.
    assert len(retrieved) == 3


def test_a_plans_vms_are_read_together_in_one_retrieval(
    activities: VSphereActivities, si: vim.ServiceInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan's first verification reads (activities/verification.py): the VMs the name map
    knows in one retrieval of their properties (and one of their hosts' and datastores'
    names), each as a read of its own would show it; a name vCenter does not know is absent,
    for the read of its own that says so."""
    names = ["web-01", *EXTRA_VMS]
    singly = {name: read(activities, name) for name in names}
    retrievals = recorded_retrievals(monkeypatch)
    together = activities._vcenter.read_known_vms([*names, "no-such-vm"])

    assert together == singly
    assert len(retrievals) == 2, "the VMs, then the names of their hosts and datastores"
    assert sum(isinstance(ref, vim.VirtualMachine) for ref in retrievals[0]) == len(names)


def test_a_vm_that_does_not_exist_is_not_found(activities: VSphereActivities) -> None:
    assert read(activities, "no-such-vm") == OnPremVmState(vm_name="no-such-vm", found=False)
    assert read(activities, "web-01").found


def test_a_vm_state_change_shows_on_the_next_read(
    activities: VSphereActivities, si: vim.ServiceInstance
) -> None:
    power_off_vm(si, "extra-07")
    assert read(activities, "extra-07").power_state == "poweredOff"
    power_on_vm(si, "extra-07")
    state = read(activities, "extra-07")
    assert (state.power_state, state.tools_running_status, state.guest_state) == (
        "poweredOn",
        "guestToolsRunning",
        "running",
    )


def test_a_vm_destroyed_and_recreated_is_found_again(
    activities: VSphereActivities, si: vim.ServiceInstance
) -> None:
    name = "cycle-destroy"
    _create(si, name)
    power_on_vm(si, name)
    [first] = vm_refs_by_name(si)[name]
    assert read(activities, name).power_state == "poweredOn"  # its reference is now cached

    _destroy(si, name)
    assert read(activities, name) == OnPremVmState(vm_name=name, found=False)

    _create(si, name)
    [second] = vm_refs_by_name(si)[name]
    assert second._moId != first._moId
    state = read(activities, name)
    assert (state.found, state.power_state, state.host) == (True, "poweredOff", HOST)

    # Destroyed and recreated between two reads: the cached reference no longer exists.
    power_on_vm(si, name)
    assert read(activities, name).power_state == "poweredOn"
    _destroy(si, name)
    _create(si, name)
    assert read(activities, name).power_state == "poweredOff"


def test_a_renamed_vm_is_followed_by_name_not_by_reference(
    activities: VSphereActivities, si: vim.ServiceInstance
) -> None:
    old, new = "cycle-rename-a", "cycle-rename-b"
    _create(si, old)
    power_on_vm(si, old)
    assert read(activities, old).power_state == "poweredOn"

    _rename(si, old, new)
    # The cached reference now answers to another name: that is not the VM asked about.
    assert read(activities, old) == OnPremVmState(vm_name=old, found=False)
    assert read(activities, new).power_state == "poweredOn"

    _create(si, old)  # a new VM takes the old name
    assert read(activities, old).power_state == "poweredOff"
    assert read(activities, new).power_state == "poweredOn"


# --- one session, logged in again when lost --------------------------------------------------


def test_one_session_serves_every_call(
    activities: VSphereActivities, logins: CountingConnect
) -> None:
    names = ["web-01", "mt-linux-01", *EXTRA_VMS, "no-such-vm"] * 5
    with ThreadPoolExecutor(max_workers=16) as pool:
        states = list(pool.map(lambda name: read(activities, name), names))
    assert [s.found for s in states] == [name != "no-such-vm" for name in names]
    activities.read_onprem_facts(OnPremFactsQuery())
    assert logins.calls == 1


def test_a_logged_out_session_is_replaced_transparently(
    activities: VSphereActivities, logins: CountingConnect
) -> None:
    assert read(activities, "web-01").found  # cached reference: the read is by reference
    before = shared_si(activities)
    before.content.sessionManager.Logout()

    state = read(activities, "web-01")

    assert (state.found, state.host) == (True, HOST)
    assert logins.calls == 2
    assert shared_si(activities) is not before


def test_a_logged_out_session_is_replaced_for_a_name_lookup_too(
    activities: VSphereActivities, logins: CountingConnect
) -> None:
    assert not read(activities, "no-such-vm").found
    shared_si(activities).content.sessionManager.Logout()
    assert read(activities, "extra-04").found  # not cached: the name map is read first
    assert logins.calls == 2


def test_read_onprem_facts_uses_the_shared_session_and_survives_a_logout(
    activities: VSphereActivities, logins: CountingConnect, si: vim.ServiceInstance
) -> None:
    facts = activities.read_onprem_facts(OnPremFactsQuery())
    assert sorted(vm.name for vm in facts.vms) == sorted(vm.name for vm in read_inventory(si).vms)
    assert [h.name for h in facts.hosts] == [HOST]

    shared_si(activities).content.sessionManager.Logout()
    assert activities.read_onprem_facts(OnPremFactsQuery()) == facts
    assert logins.calls == 2


def test_a_failback_gets_the_facts_of_its_own_vms_and_every_host_and_datastore(
    activities: VSphereActivities, si: vim.ServiceInstance
) -> None:
    """A plan's answer grows with the plan, not with vCenter (1.15 MB a plan at 10,000 VMs)."""
    whole = activities.read_onprem_facts(OnPremFactsQuery())
    asked = ["web-01", "mt-linux-01", "no-such-vm"]
    facts = activities.read_onprem_facts(OnPremFactsQuery(vm_names=asked))
    assert [vm.name for vm in facts.vms] == ["web-01", "mt-linux-01"]  # in the order asked
    assert len(whole.vms) > len(facts.vms)
    by_name = {vm.name: vm for vm in whole.vms}
    assert [by_name[vm.name] for vm in facts.vms] == facts.vms
    assert (facts.hosts, facts.datastores) == (whole.hosts, whole.datastores)


def test_a_failbacks_facts_read_no_other_vm(
    activities: VSphereActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the asked VMs' properties are retrieved (a whole inventory is ~11 CPU-s of decoding
    at 10,000 VMs, bench/RESULTS.md); the name map that finds them holds names only."""
    asked = ["web-01", "extra-02", "extra-05"]
    activities.read_onprem_facts(OnPremFactsQuery(vm_names=asked))  # the name map, read once
    retrievals = recorded_retrievals(monkeypatch)
    facts = activities.read_onprem_facts(OnPremFactsQuery(vm_names=asked))

    assert [vm.name for vm in facts.vms] == asked
    vms_read = [
        ref for objects in retrievals for ref in objects if isinstance(ref, vim.VirtualMachine)
    ]
    assert len(vms_read) == len(asked), "no VM but the asked ones is read"
    assert len(retrievals) == 2, "hosts and datastores, then the asked VMs"


def test_a_failbacks_facts_follow_vms_created_renamed_and_destroyed_since_the_map(
    activities: VSphereActivities, si: vim.ServiceInstance
) -> None:
    """The name map may be older than a change: a VM it does not know is looked for in a map
    read again, and one it names wrongly (renamed, destroyed) is read again through a new map,
    so the answer is always what the whole inventory says of these names."""

    def facts_of(names: list[str]) -> list[str]:
        facts = activities.read_onprem_facts(OnPremFactsQuery(vm_names=names))
        whole = read_inventory(si)
        assert sorted(v.name for v in facts.vms) == sorted(
            v.name for v in whole.vms if v.name in names
        )
        return [vm.name for vm in facts.vms]

    first, second = "facts-cycle-a", "facts-cycle-b"
    assert facts_of(["web-01", first]) == ["web-01"]  # the map now knows every VM but `first`
    _create(si, first)
    assert facts_of(["web-01", first]) == ["web-01", first]  # unknown to the map: read again
    _rename(si, first, second)
    assert facts_of([first]) == []  # the map's reference answers to another name now
    assert facts_of([first, second]) == [second]
    _create(si, first)
    assert facts_of([first, second]) == [first, second]
    _destroy(si, second)
    assert facts_of([first, second]) == [first]  # the map's reference is gone
    _destroy(si, first)
    assert facts_of([first]) == []


def test_close_logs_out_and_a_later_call_logs_in_again(
    activities: VSphereActivities, logins: CountingConnect
) -> None:
    assert read(activities, "web-01").found
    first = shared_si(activities)
    activities.close()
    with pytest.raises(vim.fault.NotAuthenticated):
        first.content.sessionManager.Logout()
    assert read(activities, "web-01").found
    assert logins.calls == 2
