"""Activities against vCenter, through pyvmomi (reads go through the PropertyCollector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import vsphere_client
from workflows.models import OnPremVmQuery, OnPremVmState


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
