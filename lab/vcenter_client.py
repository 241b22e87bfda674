"""The lab's writes to vCenter: what the ASR simulator does on-premises, and what the lab's tests
do to set a scene (power a VM off, destroy or rename one).

The product only reads vCenter (activities/vsphere_client.py); failing back powers VMs on through
ASR, never directly. In the lab, the simulator plays the master target: it powers the failed-back
VM on and re-creates a VM for alternate location recovery, through these functions. They read the
way the product does, through the PropertyCollector (see activities/vsphere_client.py for why).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

# The product's PropertyCollector reads, which the writes share rather than copy.
from activities.vsphere_client import (
    DatastoreNotFoundError,
    HostNotFoundError,
    VmNotFoundError,
    VmState,
    _collect,
    _collect_vms,
    _is_false,
    _PropertyCollector,
    _props,
    _retrieve_all,
    _select,
    read_vm_states,
)

POWERED_ON = "poweredOn"
POWERED_OFF = "poweredOff"
DEFAULT_TASK_TIMEOUT_SECONDS = 300.0

GUEST_IDS: dict[str, str] = {
    "Windows": "windows9Server64Guest",
    "Linux": "otherLinux64Guest",
}
_GIB = 1024**3
_KIB = 1024


class VsphereTaskError(RuntimeError):
    """A vCenter task ended in error or did not finish in time."""


class DatastoreNotAccessibleError(ValueError):
    """The datastore is not mounted (or not accessible) on the ESXi host."""

    def __init__(self, datastore: str, host: str) -> None:
        super().__init__(f"datastore {datastore!r} is not accessible from ESXi host {host!r}")
        self.datastore = datastore
        self.host = host


class VmAlreadyExistsError(RuntimeError):
    """A VM with this name exists, but not where it was to be created."""

    def __init__(self, name: str, host: str | None, datastores: Sequence[str]) -> None:
        super().__init__(
            f"VM {name!r} already exists on host {host!r}, datastores {list(datastores)}"
        )
        self.name = name
        self.host = host
        self.datastores = list(datastores)


def _find_vm(si: vim.ServiceInstance, name: str) -> tuple[Any, str]:
    """The VM's reference and power state, found through the PropertyCollector."""
    selected = _select(_collect_vms(si, ["name", "runtime.powerState"]), {name})
    if name not in selected:
        raise VmNotFoundError(name)
    ref, props = selected[name]
    return ref, str(props.get("runtime.powerState", "unknown"))


def wait_for_task(si: vim.ServiceInstance, task: Any, timeout_seconds: float) -> None:
    """Poll the task's info through the PropertyCollector until it succeeds or fails.

    Polling RetrievePropertiesEx instead of pyVim's WaitForTask keeps to one well-supported call
    (the same one used for every other read) and never touches task.info through an accessor.
    """
    collector = si.RetrieveContent().propertyCollector
    spec = _PropertyCollector.FilterSpec(
        objectSet=[_PropertyCollector.ObjectSpec(obj=task, skip=False)],
        propSet=[
            _PropertyCollector.PropertySpec(
                type=vim.Task, pathSet=["info.state", "info.error", "info.descriptionId"]
            )
        ],
    )
    deadline = time.monotonic() + timeout_seconds
    delay = 0.05
    while True:
        props: dict[str, Any] = {}
        for obj in _retrieve_all(collector, [spec]):
            props = _props(obj)
        state = props.get("info.state")
        if state == vim.TaskInfo.State.success:
            return
        if state == vim.TaskInfo.State.error:
            fault = props.get("info.error")
            if fault is not None:
                raise fault
            raise VsphereTaskError(f"task {props.get('info.descriptionId')} failed")
        if time.monotonic() >= deadline:
            raise VsphereTaskError(
                f"task {props.get('info.descriptionId', task._moId)} still {state} after "
                f"{timeout_seconds:.0f} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _set_power(si: vim.ServiceInstance, name: str, target: str, timeout_seconds: float) -> VmState:
    vm, power_state = _find_vm(si, name)
    if power_state != target:
        task = vm.PowerOnVM_Task() if target == POWERED_ON else vm.PowerOffVM_Task()
        # Someone else getting the VM to the target state between our read and the task is the
        # outcome the caller asked for, so not an error.
        with contextlib.suppress(vim.fault.InvalidPowerState):
            wait_for_task(si, task, timeout_seconds)
    states = read_vm_states(si, [name])
    if name not in states:
        raise VmNotFoundError(name)
    return states[name]


def power_on_vm(
    si: vim.ServiceInstance, name: str, timeout_seconds: float = DEFAULT_TASK_TIMEOUT_SECONDS
) -> VmState:
    """Power the VM on (no-op when already on) and return its state afterwards."""
    return _set_power(si, name, POWERED_ON, timeout_seconds)


def power_off_vm(
    si: vim.ServiceInstance, name: str, timeout_seconds: float = DEFAULT_TASK_TIMEOUT_SECONDS
) -> VmState:
    """Power the VM off (hard power-off, no guest shutdown; no-op when already off)."""
    return _set_power(si, name, POWERED_OFF, timeout_seconds)


@dataclass(frozen=True)
class _Placement:
    """Where a new VM goes: the references CreateVM_Task needs."""

    host: Any
    datastore: Any
    pool: Any
    folder: Any


def _placement(si: vim.ServiceInstance, host: str, datastore: str) -> _Placement:
    """The host, datastore, resource pool and VM folder for a new VM, in one retrieval."""
    objects = _collect(
        si,
        {
            vim.HostSystem: ["name", "parent", "datastore"],
            vim.Datastore: ["name", "summary.accessible"],
            vim.ComputeResource: ["parent", "resourcePool"],
            vim.Folder: ["parent"],
            vim.Datacenter: ["vmFolder"],
        },
    )
    by_id = {ref._moId: props for ref, props in objects}

    def props_of(ref: Any) -> dict[str, Any]:
        return by_id.get(ref._moId, {}) if ref is not None else {}

    def named(kind: type, name: str) -> Any:
        return next(
            (ref for ref, props in objects if isinstance(ref, kind) and props.get("name") == name),
            None,
        )

    host_ref = named(vim.HostSystem, host)
    if host_ref is None:
        raise HostNotFoundError(host)
    ds_ref = named(vim.Datastore, datastore)
    if ds_ref is None:
        raise DatastoreNotFoundError(datastore)
    mounted = {ds._moId for ds in props_of(host_ref).get("datastore") or []}
    if ds_ref._moId not in mounted or _is_false(props_of(ds_ref).get("summary.accessible")):
        raise DatastoreNotAccessibleError(datastore, host)

    compute = props_of(host_ref).get("parent")
    pool = props_of(compute).get("resourcePool")
    if pool is None:
        raise RuntimeError(f"ESXi host {host!r} has no resource pool; cannot place a VM on it")
    # Up from the compute resource through host folders to the datacenter, for its VM folder.
    parent = props_of(compute).get("parent")
    while parent is not None and not isinstance(parent, vim.Datacenter):
        parent = props_of(parent).get("parent")
    folder = props_of(parent).get("vmFolder")
    if folder is None:
        raise RuntimeError(f"ESXi host {host!r} is in no datacenter; cannot place a VM on it")
    return _Placement(host=host_ref, datastore=ds_ref, pool=pool, folder=folder)


def _new_vm_spec(
    name: str, datastore_name: str, datastore: Any, guest_id: str, disks_gb: Sequence[int]
) -> Any:
    controller_key = -100
    changes = [
        vim.vm.device.VirtualDeviceSpec(
            operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
            device=vim.vm.device.ParaVirtualSCSIController(
                key=controller_key,
                busNumber=0,
                sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing,
            ),
        )
    ]
    # Unit 7 of a SCSI bus is the controller's own.
    units = [unit for unit in range(16) if unit != 7]
    if len(disks_gb) > len(units):
        raise ValueError(f"{len(disks_gb)} disks do not fit on one SCSI controller (max 15)")
    for index, size_gb in enumerate(disks_gb):
        changes.append(
            vim.vm.device.VirtualDeviceSpec(
                operation=vim.vm.device.VirtualDeviceSpec.Operation.add,
                fileOperation=vim.vm.device.VirtualDeviceSpec.FileOperation.create,
                device=vim.vm.device.VirtualDisk(
                    key=controller_key - 1 - index,
                    controllerKey=controller_key,
                    unitNumber=units[index],
                    capacityInKB=size_gb * _GIB // _KIB,
                    capacityInBytes=size_gb * _GIB,
                    deviceInfo=vim.Description(label=f"Hard disk {index + 1}", summary=""),
                    backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                        # No path: vCenter names the vmdk after the VM, in the VM's directory.
                        fileName=f"[{datastore_name}]",
                        datastore=datastore,
                        diskMode="persistent",
                        thinProvisioned=True,
                    ),
                ),
            )
        )
    return vim.vm.ConfigSpec(
        name=name,
        guestId=guest_id,
        numCPUs=2,
        memoryMB=4096,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore_name}]"),
        deviceChange=changes,
    )


def create_vm_on_host(
    si: vim.ServiceInstance,
    name: str,
    host: str,
    datastore: str,
    os_type: str,
    disks_gb: Sequence[int],
    timeout_seconds: float = DEFAULT_TASK_TIMEOUT_SECONDS,
) -> VmState:
    """Create a powered-off VM on the ESXi host with new thin vmdks on the datastore.

    This is how alternate location recovery (R5) re-creates a VM: on the master target's host, on
    the datastore chosen at reprotect. Whether that datastore is allowed (R6: VMFS only) is the
    readiness rules' decision, not this function's. Idempotent: a VM of that name already on the
    host and datastore is returned as it is; one elsewhere raises VmAlreadyExistsError.
    """
    if os_type not in GUEST_IDS:
        raise ValueError(f"os_type {os_type!r} is not one of {sorted(GUEST_IDS)}")
    if any(size <= 0 for size in disks_gb):
        raise ValueError(f"disk sizes must be positive, got {list(disks_gb)}")

    def existing() -> VmState | None:
        state = read_vm_states(si, [name]).get(name)
        if state is None:
            return None
        if state.host != host or datastore not in state.datastores:
            raise VmAlreadyExistsError(name, state.host, state.datastores)
        return state

    state = existing()
    if state is not None:
        return state
    placement = _placement(si, host, datastore)
    spec = _new_vm_spec(name, datastore, placement.datastore, GUEST_IDS[os_type], disks_gb)
    task = placement.folder.CreateVM_Task(config=spec, pool=placement.pool, host=placement.host)
    # Created concurrently (e.g. by an earlier attempt whose reply was lost): fine if it is where
    # it was asked for, which existing() checks.
    with contextlib.suppress(vim.fault.DuplicateName):
        wait_for_task(si, task, timeout_seconds)
    state = existing()
    if state is None:
        raise VmNotFoundError(name)
    return state
