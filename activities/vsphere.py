"""Activities against vCenter, through pyvmomi (reads go through the PropertyCollector)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities import vsphere_client
from activities.liveness import kept_alive
from domain.models import OnPremVmQuery, OnPremVmState
from domain.readiness import DatastoreFacts, HostFacts, OnPremFacts, OnPremVmFacts


class OnPremFactsQuery(BaseModel):
    """`vm_names`: the facts of those VMs only, and of every host and datastore (the rules place
    machines on them); only those VMs are read. None: the whole inventory, in one
    PropertyCollector round trip shared by the reads in flight at once."""

    # None: every VM, as failbacks started before the patch "onprem-facts-of-the-plan" ask. A
    # vCenter's every VM in each plan's history was 1.15 MB at 10,000 VMs (Temporal warns past
    # 512 KB a payload and refuses 2 MB): a plan's answer must grow with the plan, not vCenter.
    vm_names: list[str] | None = None


def facts_from_inventory(
    inventory: vsphere_client.VCenterInventory, standalone_hosts: Collection[str] = ()
) -> OnPremFacts:
    """`standalone_hosts`: hosts vCenter lists but does not manage (see
    Settings.vcenter_standalone_hosts)."""
    vsan = {d.name for d in inventory.datastores if d.type.lower() == "vsan"}
    return OnPremFacts(
        hosts=[
            HostFacts(name=h.name, managed_by_vcenter=h.name not in standalone_hosts)
            for h in inventory.hosts
        ],
        datastores=[
            DatastoreFacts(
                name=d.name, type=d.type, hosts=list(d.hosts), free_space_bytes=d.free_space_bytes
            )
            for d in inventory.datastores
        ],
        vms=[
            OnPremVmFacts(
                name=vm.name,
                host=vm.host,
                datastores=list(vm.datastores),
                # vCenter shows a vSAN disk as a vmdk; what makes it vSAN is its datastore.
                disk_kinds=[
                    "vsan" if disk.kind == "vmdk" and disk.datastore in vsan else disk.kind
                    for disk in vm.disks
                ],
                snapshot_count=vm.snapshot_count,
            )
            for vm in inventory.vms
        ],
    )


def onprem_vm_state(vm_name: str, state: vsphere_client.VmState | None) -> OnPremVmState:
    if state is None:
        return OnPremVmState(vm_name=vm_name, found=False)
    return OnPremVmState(
        vm_name=vm_name,
        found=True,
        power_state=state.power_state,
        tools_running_status=state.tools_running_status,
        guest_state=state.guest_state,
        host=state.host,
    )


class VCenterReads:
    """The one client of vCenter: what the failback reads of it, as domain facts, no Temporal.

    `connect` opens a vCenter session from the settings; credentials stay there. One session
    serves every read (they run on a thread pool): it is opened on first use and opened again,
    once per call, when it expired or its connection broke (see vsphere_client.VCenterSession).
    `close` logs it out.
    """

    def __init__(self, connect: Callable[[], Any], standalone_hosts: Collection[str] = ()) -> None:
        self._session = vsphere_client.VCenterSession(connect)
        self._standalone_hosts = frozenset(standalone_hosts)
        self._facts_lock = threading.Lock()
        self._facts_read: Future[OnPremFacts] | None = None

    def close(self) -> None:
        self._session.close()

    def read_vm(self, vm_name: str) -> OnPremVmState:
        # Reads this one VM, not the whole inventory: per-verification cost must not grow with
        # the number of VMs in vCenter.
        return onprem_vm_state(vm_name, self._session.read_vm_state(vm_name))

    def read_vms(self, vm_names: list[str]) -> dict[str, OnPremVmState]:
        states = self._session.run(lambda si: vsphere_client.read_vm_states(si, vm_names))
        return {name: onprem_vm_state(name, states.get(name)) for name in vm_names}

    def read_known_vms(self, vm_names: list[str]) -> dict[str, OnPremVmState]:
        """The named VMs the session's name map knows, in one retrieval (a plan's first
        verification reads of its machines: activities/verification.py); a name missing from
        the answer is for read_vm."""
        states = self._session.read_known_vm_states(vm_names)
        return {name: onprem_vm_state(name, state) for name, state in states.items()}

    def read_facts_of(self, vm_names: list[str]) -> OnPremFacts:
        """Every host and datastore, and only the named VMs: a plan's readiness reads its own
        VMs, not vCenter's every VM (vsphere_client.read_inventory_of says what that saves)."""
        return facts_from_inventory(
            self._session.read_inventory_of_named(vm_names), self._standalone_hosts
        )

    def read_facts(self) -> OnPremFacts:
        # Plans started together check readiness together: they share the read in flight
        # (one whole-inventory read of 1,000 VMs is seconds of decoding) instead of each
        # reading it again.
        with self._facts_lock:
            shared = self._facts_read
            if shared is None:
                reading = self._facts_read = Future()
        if shared is not None:
            return shared.result()
        try:
            facts = facts_from_inventory(
                self._session.run(vsphere_client.read_inventory), self._standalone_hosts
            )
        except BaseException as err:
            reading.set_exception(err)
            raise
        else:
            reading.set_result(facts)
            return facts
        finally:
            with self._facts_lock:
                self._facts_read = None


class VSphereActivities:
    """vCenter's activities, over the one vCenter client of the worker."""

    def __init__(self, vcenter: VCenterReads) -> None:
        self._vcenter = vcenter

    def close(self) -> None:
        self._vcenter.close()

    @activity.defn
    @kept_alive
    def read_onprem_vm(self, params: OnPremVmQuery) -> OnPremVmState:
        return self._vcenter.read_vm(params.vm_name)

    @activity.defn
    @kept_alive
    def read_onprem_facts(self, params: OnPremFactsQuery) -> OnPremFacts:
        if params.vm_names is None:
            return self._vcenter.read_facts()
        return self._vcenter.read_facts_of(params.vm_names)
