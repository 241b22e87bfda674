"""Activities against vCenter, through pyvmomi (reads go through the PropertyCollector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities import vsphere_client
from workflows.models import OnPremVmQuery, OnPremVmState
from workflows.readiness import DatastoreFacts, HostFacts, OnPremFacts, OnPremVmFacts


class OnPremFactsQuery(BaseModel):
    """Empty on purpose: the whole inventory is read in one PropertyCollector round trip."""


def facts_from_inventory(inventory: vsphere_client.VCenterInventory) -> OnPremFacts:
    vsan = {d.name for d in inventory.datastores if d.type.lower() == "vsan"}
    return OnPremFacts(
        hosts=[
            HostFacts(name=h.name, managed_by_vcenter=h.managed_by_vcenter) for h in inventory.hosts
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


class VSphereActivities:
    """`connect` opens a vCenter session from the worker's settings; credentials stay there."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect

    @activity.defn
    def read_onprem_vm(self, params: OnPremVmQuery) -> OnPremVmState:
        service_instance = self._connect()
        try:
            states = vsphere_client.read_vm_states(service_instance, [params.vm_name])
        finally:
            vsphere_client.disconnect(service_instance)
        state = states.get(params.vm_name)
        if state is None:
            return OnPremVmState(vm_name=params.vm_name, found=False)
        return OnPremVmState(
            vm_name=params.vm_name,
            found=True,
            power_state=state.power_state,
            tools_running_status=state.tools_running_status,
            guest_state=state.guest_state,
            host=state.host,
        )

    @activity.defn
    def read_onprem_facts(self, params: OnPremFactsQuery) -> OnPremFacts:
        service_instance = self._connect()
        try:
            inventory = vsphere_client.read_inventory(service_instance)
        finally:
            vsphere_client.disconnect(service_instance)
        return facts_from_inventory(inventory)
