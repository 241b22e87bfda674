"""Plain pyvmomi adapter for the few vCenter operations failback needs.

Every read goes through the PropertyCollector, never through managed-object attribute accessors:
one round trip per batch instead of one per attribute, and the lab's vcsim (govmomi 0.24.2)
panics when an accessor reads a property that is unset (e.g. ``vm.snapshot`` without snapshots).
No Temporal imports here: activities wrap these calls, the lab's ASR simulator uses them directly.

``read_inventory`` is what the readiness rules need from vCenter (hosts and whether vCenter
manages them, datastores with their type and the hosts that mount them, VMs with their disks,
snapshots and guest OS); ``create_vm_on_host`` re-creates a VM for alternate location recovery.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

POWERED_ON = "poweredOn"
POWERED_OFF = "poweredOff"
DEFAULT_TASK_TIMEOUT_SECONDS = 300.0

_VM_PROPERTIES = [
    "name",
    "runtime.powerState",
    "guest.toolsRunningStatus",
    "guest.guestState",
    "runtime.host",
    "datastore",
]

_HOST_PROPERTIES = [
    "name",
    "runtime.connectionState",
    "datastore",
    "customValue",
    "availableField",
]
_DATASTORE_PROPERTIES = [
    "name",
    "summary.type",
    "summary.accessible",
    "summary.capacity",
    "summary.freeSpace",
    "host",
]
_INVENTORY_VM_PROPERTIES = [
    *_VM_PROPERTIES,
    "guest.toolsStatus",
    "guest.guestFullName",
    "config.guestId",
    "config.guestFullName",
    "config.hardware.device",
    "snapshot",
]

# The host custom attribute by which the lab marks ESXi hosts that vCenter does not manage (the
# vcsim harness serves every host from one inventory; see lab/vcsim/main.go). A real vCenter only
# lists hosts it manages and has no such attribute: a host without it is vCenter-managed.
MANAGED_BY_FIELD = "failback.lab.managedBy"
STANDALONE_ESXI = "standalone-esxi"

GUEST_IDS: dict[str, str] = {
    "Windows": "windows9Server64Guest",
    "Linux": "otherLinux64Guest",
}
_GIB = 1024**3
_KIB = 1024

_PropertyCollector = vmodl.query.PropertyCollector


class VmNotFoundError(LookupError):
    """No VM with this name exists in vCenter."""

    def __init__(self, name: str) -> None:
        super().__init__(f"VM {name!r} not found in vCenter")
        self.name = name


class AmbiguousVmNameError(LookupError):
    """Several VMs share this name (vCenter allows it across folders); refusing to guess."""

    def __init__(self, name: str, count: int) -> None:
        super().__init__(f"{count} VMs in vCenter are named {name!r}; VM names must be unique")
        self.name = name
        self.count = count


class VsphereTaskError(RuntimeError):
    """A vCenter task ended in error or did not finish in time."""


class HostNotFoundError(LookupError):
    """No ESXi host with this name exists in vCenter."""

    def __init__(self, name: str) -> None:
        super().__init__(f"ESXi host {name!r} not found in vCenter")
        self.name = name


class DatastoreNotFoundError(LookupError):
    """No datastore with this name exists in vCenter."""

    def __init__(self, name: str) -> None:
        super().__init__(f"datastore {name!r} not found in vCenter")
        self.name = name


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


class VmState(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    power_state: str
    tools_running_status: str | None
    guest_state: str | None
    host: str | None
    datastores: list[str]


class HostInfo(BaseModel):
    """An ESXi host as vCenter lists it."""

    model_config = ConfigDict(frozen=True)

    name: str
    managed_by_vcenter: bool
    connection_state: str
    datastores: list[str]
    """Names of the datastores the host mounts and can access."""


class DatastoreInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    """summary.type: VMFS, vsan, NFS, NFS41, vvol, ..."""
    accessible: bool
    capacity_bytes: int
    free_space_bytes: int
    hosts: list[str]
    """Names of the hosts that mount the datastore."""


class DiskInfo(BaseModel):
    """One virtual disk of a VM, from config.hardware.device.

    A vSAN disk is a vmdk whose datastore is of type vsan; an RDM's datastore holds its mapping
    file.
    """

    model_config = ConfigDict(frozen=True)

    label: str
    kind: Literal["vmdk", "rdm"]
    datastore: str | None
    capacity_bytes: int
    file_name: str | None
    lun_uuid: str | None = None
    """RDM only: the LUN's uuid."""
    device_name: str | None = None
    """RDM only: the host's device path of the LUN."""

    @property
    def size_gb(self) -> float:
        return self.capacity_bytes / _GIB


class VmInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    host: str | None
    datastores: list[str]
    power_state: str
    tools_status: str | None
    tools_running_status: str | None
    guest_state: str | None
    guest_id: str | None
    """config.guestId, e.g. windows7Server64Guest."""
    guest_full_name: str | None
    """guest.guestFullName: the guest OS as VMware Tools reports it."""
    configured_guest_full_name: str | None
    """config.guestFullName: the OS the VM is configured for."""
    snapshot_count: int
    disks: list[DiskInfo]


class VCenterInventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    hosts: list[HostInfo]
    datastores: list[DatastoreInfo]
    vms: list[VmInfo]

    def host(self, name: str) -> HostInfo:
        for host in self.hosts:
            if host.name == name:
                return host
        raise HostNotFoundError(name)

    def datastore(self, name: str) -> DatastoreInfo:
        for datastore in self.datastores:
            if datastore.name == name:
                return datastore
        raise DatastoreNotFoundError(name)

    def vm(self, name: str) -> VmInfo:
        found = [vm for vm in self.vms if vm.name == name]
        if not found:
            raise VmNotFoundError(name)
        if len(found) > 1:
            raise AmbiguousVmNameError(name, len(found))
        return found[0]


def connect(
    host: str, port: int, user: str, password: str, verify_tls: bool = False
) -> vim.ServiceInstance:
    """Log in to vCenter; TLS verification is off by default because vcsim's cert is self-signed."""
    si: vim.ServiceInstance = SmartConnect(
        host=host,
        port=port,
        user=user,
        pwd=password,
        disableSslCertValidation=not verify_tls,
    )
    return si


def disconnect(si: vim.ServiceInstance) -> None:
    Disconnect(si)


def _retrieve_all(
    collector: Any, specs: Sequence[Any], page_size: int | None = None
) -> Iterator[Any]:
    """Every ObjectContent of a RetrievePropertiesEx, following continuation tokens."""
    options = _PropertyCollector.RetrieveOptions()
    if page_size is not None:
        options.maxObjects = page_size
    result = collector.RetrievePropertiesEx(specSet=list(specs), options=options)
    while result is not None:
        yield from result.objects or []
        if not result.token:
            return
        result = collector.ContinueRetrievePropertiesEx(token=result.token)


def _props(content: Any) -> dict[str, Any]:
    # Unset properties are simply missing from propSet (or listed in missingSet).
    return {prop.name: prop.val for prop in content.propSet or []}


def _view_filter_spec(view: vim.view.ContainerView, properties: dict[type, list[str]]) -> Any:
    traverse_view = _PropertyCollector.TraversalSpec(
        name="traverseView", path="view", skip=False, type=vim.view.ContainerView
    )
    return _PropertyCollector.FilterSpec(
        objectSet=[_PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traverse_view])],
        propSet=[
            _PropertyCollector.PropertySpec(type=kind, pathSet=paths)
            for kind, paths in properties.items()
        ],
    )


def _collect(
    si: vim.ServiceInstance, properties: dict[type, list[str]], page_size: int | None = None
) -> list[tuple[Any, dict[str, Any]]]:
    """(reference, properties) of every entity of the given kinds, in one retrieval."""
    content = si.RetrieveContent()
    if content.viewManager is None:
        raise RuntimeError("the vSphere endpoint offers no ViewManager; cannot list the inventory")
    view = content.viewManager.CreateContainerView(
        container=content.rootFolder, type=list(properties), recursive=True
    )
    try:
        spec = _view_filter_spec(view, properties)
        return [
            (obj.obj, _props(obj))
            for obj in _retrieve_all(content.propertyCollector, [spec], page_size)
        ]
    finally:
        view.DestroyView()


def _collect_vms(
    si: vim.ServiceInstance, properties: list[str], page_size: int | None = None
) -> list[tuple[Any, dict[str, Any]]]:
    """(VM reference, properties) for every VM in the inventory, in one retrieval."""
    return _collect(si, {vim.VirtualMachine: properties}, page_size)


def _entity_names(si: vim.ServiceInstance, refs: Iterable[Any]) -> dict[str, str]:
    """Names of the given managed entities by moref value, in one retrieval."""
    unique = {ref._moId: ref for ref in refs}
    if not unique:
        return {}
    kinds = {type(ref) for ref in unique.values()}
    spec = _PropertyCollector.FilterSpec(
        objectSet=[_PropertyCollector.ObjectSpec(obj=ref, skip=False) for ref in unique.values()],
        propSet=[_PropertyCollector.PropertySpec(type=kind, pathSet=["name"]) for kind in kinds],
    )
    names: dict[str, str] = {}
    for obj in _retrieve_all(si.RetrieveContent().propertyCollector, [spec]):
        name = _props(obj).get("name")
        if name is not None:
            names[obj.obj._moId] = name
    return names


def _select(
    vms: list[tuple[Any, dict[str, Any]]], names: set[str]
) -> dict[str, tuple[Any, dict[str, Any]]]:
    selected: dict[str, tuple[Any, dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    for ref, props in vms:
        name = props.get("name")
        if name in names:
            counts[name] = counts.get(name, 0) + 1
            selected[name] = (ref, props)
    for name, count in counts.items():
        if count > 1:
            raise AmbiguousVmNameError(name, count)
    return selected


def read_vm_states(
    si: vim.ServiceInstance, names: Iterable[str], *, page_size: int | None = None
) -> dict[str, VmState]:
    """Current state of the named VMs; names vCenter does not know are absent from the result.

    page_size caps objects per PropertyCollector page (vCenter's maxObjects); None lets the
    server choose.
    """
    wanted = set(names)
    if not wanted:
        return {}
    selected = _select(_collect_vms(si, _VM_PROPERTIES, page_size), wanted)

    refs: list[Any] = []
    for _ref, props in selected.values():
        if props.get("runtime.host") is not None:
            refs.append(props["runtime.host"])
        refs.extend(props.get("datastore") or [])
    names_by_id = _entity_names(si, refs)

    states: dict[str, VmState] = {}
    for name, (_ref, props) in selected.items():
        host = props.get("runtime.host")
        states[name] = VmState(
            name=name,
            power_state=str(props.get("runtime.powerState", "unknown")),
            tools_running_status=props.get("guest.toolsRunningStatus"),
            guest_state=props.get("guest.guestState"),
            host=names_by_id.get(host._moId) if host is not None else None,
            datastores=[names_by_id.get(ds._moId, ds._moId) for ds in props.get("datastore") or []],
        )
    return states


def _find_vm(si: vim.ServiceInstance, name: str) -> tuple[Any, str]:
    """The VM's reference and power state, found through the PropertyCollector."""
    selected = _select(_collect_vms(si, ["name", "runtime.powerState"]), {name})
    if name not in selected:
        raise VmNotFoundError(name)
    ref, props = selected[name]
    return ref, str(props.get("runtime.powerState", "unknown"))


def _wait_for_task(si: vim.ServiceInstance, task: Any, timeout_seconds: float) -> None:
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
            _wait_for_task(si, task, timeout_seconds)
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
