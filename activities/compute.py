"""The one client of Azure Compute: the failed-over VM's power state, and its activity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from temporalio import activity

from activities import arm_json
from activities.liveness import kept_alive
from domain.models import AzureVmRef, AzureVmState

# The api-version of the raw list: azure-mgmt-compute 39's own (tests/lab/test_wire_drift.py).
COMPUTE_API_VERSION = "2026-04-01"

# (resource group, VM name), lower case: how ARM compares them.
VmKey = tuple[str, str]


def vm_key(resource_group: str, name: str) -> VmKey:
    return resource_group.lower(), name.lower()


@dataclass
class VmStatusList:
    """A list of the subscription's VMs: the power state of each listed with an instance view,
    how many were listed without one, and the pages (reads) it took."""

    power_states: dict[VmKey, str | None] = field(default_factory=dict)
    without_instance_view: int = 0
    pages: int = 0


class ComputeGateway:
    def __init__(self, client: Any, subscription_id: str | None = None) -> None:
        self.client = client
        self.subscription_id = subscription_id

    def read_vm(self, ref: AzureVmRef) -> AzureVmState:
        try:
            view = self.client.virtual_machines.instance_view(ref.resource_group, ref.name)
        except ResourceNotFoundError:
            return AzureVmState(resource_group=ref.resource_group, name=ref.name, exists=False)
        return AzureVmState(
            resource_group=ref.resource_group,
            name=ref.name,
            exists=True,
            power_state=power_state(
                [{"code": str(status.code or "")} for status in view.statuses or []]
            ),
        )

    def list_power_states(self) -> VmStatusList:
        """Every VM of the subscription with its power state: Compute's List All with
        statusOnly=true, whose purpose is "the run time status of all Virtual Machines in the
        subscription". Raw JSON (activities/arm_json.py says why)."""
        assert self.subscription_id, "a list needs the subscription"
        listed = VmStatusList()
        path = (
            f"/subscriptions/{quote(self.subscription_id, safe='')}"
            "/providers/Microsoft.Compute/virtualMachines"
        )
        query = {"statusOnly": "true"}
        for page in arm_json.json_pages(self.client, path, COMPUTE_API_VERSION, query):
            listed.pages += 1
            for vm in page.get("value") or []:
                state = _listed_state(vm)
                if state is None:
                    listed.without_instance_view += 1
                else:
                    listed.power_states[state[0]] = state[1]
        return listed


def power_state(statuses: list[dict[str, Any]]) -> str | None:
    """The `PowerState/...` status's state ("running", "deallocated"), if there is one."""
    power = None
    for status in statuses:
        code = str(status.get("code") or "")
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1]
    return power


def _listed_state(vm: Any) -> tuple[VmKey, str | None] | None:
    """(key, power state) of a listed VM with an instance view; None without one."""
    if not isinstance(vm, dict):
        return None
    view = (vm.get("properties") or {}).get("instanceView")
    parts = str(vm.get("id") or "").split("/")
    lowered = [p.lower() for p in parts]
    at = lowered.index("resourcegroups") + 1 if "resourcegroups" in lowered else len(parts)
    if not isinstance(view, dict) or at >= len(parts):
        return None
    resource_group = parts[at]
    name = str(vm.get("name") or parts[-1])
    return vm_key(resource_group, name), power_state(view.get("statuses") or [])


class ComputeActivities:
    def __init__(self, compute: ComputeGateway) -> None:
        self._compute = compute

    @activity.defn
    @kept_alive
    def read_azure_vm(self, params: AzureVmRef) -> AzureVmState:
        return self._compute.read_vm(params)
