"""The one client of Azure Compute: the failed-over VM's power state, and its activity."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from temporalio import activity

from activities.liveness import kept_alive
from domain.models import AzureVmRef, AzureVmState


class ComputeGateway:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read_vm(self, ref: AzureVmRef) -> AzureVmState:
        try:
            view = self.client.virtual_machines.instance_view(ref.resource_group, ref.name)
        except ResourceNotFoundError:
            return AzureVmState(resource_group=ref.resource_group, name=ref.name, exists=False)
        power = None
        for status in view.statuses or []:
            code = str(status.code or "")
            if code.startswith("PowerState/"):
                power = code.split("/", 1)[1]
        return AzureVmState(
            resource_group=ref.resource_group, name=ref.name, exists=True, power_state=power
        )


class ComputeActivities:
    def __init__(self, compute: ComputeGateway) -> None:
        self._compute = compute

    @activity.defn
    @kept_alive
    def read_azure_vm(self, params: AzureVmRef) -> AzureVmState:
        return self._compute.read_vm(params)
