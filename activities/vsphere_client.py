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
import http.client
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

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

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


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
    size_gb: float
    """Capacity in GiB (capacity_bytes / 2**30)."""
    capacity_bytes: int
    file_name: str | None
    lun_uuid: str | None = None
    """RDM only: the LUN's uuid."""
    device_name: str | None = None
    """RDM only: the host's device path of the LUN."""


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
        for content in result.objects or []:
            _raise_if_not_authenticated(content)
            yield content
        if not result.token:
            return
        result = collector.ContinueRetrievePropertiesEx(token=result.token)


def _raise_if_not_authenticated(content: Any) -> None:
    """Raise the NotAuthenticated fault a retrieval reports per property instead of failing.

    Without a valid session (logged out, expired), vcsim answers RetrievePropertiesEx on an object
    with every property in missingSet with a NotAuthenticated fault rather than failing the call:
    read as "unset", that would look like a VM without a host, or no VM at all. Raised, it lets
    VCenterSession log in again.
    """
    for missing in getattr(content, "missingSet", None) or []:
        fault = getattr(missing, "fault", None)
        if isinstance(fault, vim.fault.NotAuthenticated):
            raise fault


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


def _entity_names(
    si: vim.ServiceInstance, refs: Iterable[Any], collector: Any = None
) -> dict[str, str]:
    """Names of the given managed entities by moref value, in one retrieval."""
    unique = {ref._moId: ref for ref in refs}
    if not unique:
        return {}
    kinds = {type(ref) for ref in unique.values()}
    spec = _PropertyCollector.FilterSpec(
        objectSet=[_PropertyCollector.ObjectSpec(obj=ref, skip=False) for ref in unique.values()],
        propSet=[_PropertyCollector.PropertySpec(type=kind, pathSet=["name"]) for kind in kinds],
    )
    if collector is None:
        collector = si.RetrieveContent().propertyCollector
    names: dict[str, str] = {}
    for obj in _retrieve_all(collector, [spec]):
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
    refs = [ref for _ref, props in selected.values() for ref in _vm_refs(props)]
    names_by_id = _entity_names(si, refs)
    return {name: _vm_state(name, props, names_by_id) for name, (_ref, props) in selected.items()}


def _vm_refs(props: dict[str, Any]) -> list[Any]:
    """The host and datastores a VM's properties refer to, whose names a VmState shows."""
    refs: list[Any] = []
    if props.get("runtime.host") is not None:
        refs.append(props["runtime.host"])
    refs.extend(props.get("datastore") or [])
    return refs


def _vm_state(name: str, props: dict[str, Any], names_by_id: dict[str, str]) -> VmState:
    host = props.get("runtime.host")
    return VmState(
        name=name,
        power_state=str(props.get("runtime.powerState", "unknown")),
        tools_running_status=props.get("guest.toolsRunningStatus"),
        guest_state=props.get("guest.guestState"),
        host=names_by_id.get(host._moId) if host is not None else None,
        datastores=[names_by_id.get(ds._moId, ds._moId) for ds in props.get("datastore") or []],
    )


def vm_refs_by_name(
    si: vim.ServiceInstance, *, page_size: int | None = None
) -> dict[str, list[Any]]:
    """name -> references of the VMs of that name (several when the name is ambiguous).

    One retrieval of the `name` property alone over every VM: still O(VMs), but a fraction of the
    decoding of read_vm_states, which reads six properties of every VM to return a few.
    """
    refs: dict[str, list[Any]] = {}
    for ref, props in _collect_vms(si, ["name"], page_size):
        name = props.get("name")
        if name is not None:
            refs.setdefault(name, []).append(ref)
    return refs


def read_vm_state_of(si: vim.ServiceInstance, vm: Any, *, collector: Any = None) -> VmState | None:
    """State of the one VM behind this reference; None when it no longer exists.

    Two small retrievals whatever the size of the inventory: the VM's own properties (an
    ObjectSpec on the VM itself, no traversal), then the names of its host and datastores.
    The caller compares VmState.name with the name it expects: a reference outlives renames.
    """
    if collector is None:
        collector = si.RetrieveContent().propertyCollector
    spec = _PropertyCollector.FilterSpec(
        objectSet=[_PropertyCollector.ObjectSpec(obj=vm, skip=False)],
        propSet=[_PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=_VM_PROPERTIES)],
    )
    try:
        contents = list(_retrieve_all(collector, [spec]))
    except vmodl.fault.ManagedObjectNotFound:
        return None
    props = _props(contents[0]) if contents else {}
    name = props.get("name")
    if name is None:
        return None
    return _vm_state(name, props, _entity_names(si, _vm_refs(props), collector))


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


def _is_false(value: Any) -> bool:
    """An explicit False (an unset optional boolean counts as true, as vSphere means it)."""
    return value is False


def _managed_by_vcenter(props: dict[str, Any]) -> bool:
    fields = props.get("availableField") or []
    keys = {field.key for field in fields if field.name == MANAGED_BY_FIELD}
    for value in props.get("customValue") or []:
        if value.key in keys and getattr(value, "value", None) == STANDALONE_ESXI:
            return False
    return True


def _snapshot_count(snapshot: Any) -> int:
    if snapshot is None:
        return 0
    count = 0
    pending = list(snapshot.rootSnapshotList or [])
    while pending:
        tree = pending.pop()
        count += 1
        pending.extend(tree.childSnapshotList or [])
    return count


def _datastore_of_file(file_name: str | None) -> str | None:
    """The datastore of a "[datastore] path" file name."""
    if file_name and file_name.startswith("[") and "]" in file_name:
        return file_name[1 : file_name.index("]")]
    return None


def _disks(devices: Iterable[Any], names_by_id: dict[str, str]) -> list[DiskInfo]:
    disks: list[DiskInfo] = []
    for device in devices:
        if not isinstance(device, vim.vm.device.VirtualDisk):
            continue
        backing: Any = device.backing
        file_name: str | None = getattr(backing, "fileName", None) or None
        datastore_ref = getattr(backing, "datastore", None)
        datastore = (
            names_by_id.get(datastore_ref._moId, datastore_ref._moId)
            if datastore_ref is not None
            else _datastore_of_file(file_name)
        )
        capacity = device.capacityInBytes or (device.capacityInKB or 0) * _KIB
        is_rdm = isinstance(backing, vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo)
        label = device.deviceInfo.label if device.deviceInfo is not None else f"disk {device.key}"
        disks.append(
            DiskInfo(
                label=label,
                kind="rdm" if is_rdm else "vmdk",
                datastore=datastore,
                size_gb=capacity / _GIB,
                capacity_bytes=capacity,
                file_name=file_name,
                lun_uuid=backing.lunUuid if is_rdm else None,
                device_name=backing.deviceName if is_rdm else None,
            )
        )
    return disks


def read_inventory(si: vim.ServiceInstance, *, page_size: int | None = None) -> VCenterInventory:
    """Hosts, datastores and VMs with what the readiness rules check, in one retrieval.

    One PropertyCollector retrieval over a container view of hosts, datastores and VMs (plus
    continuation pages); references between them are resolved from the same result.
    """
    objects = _collect(
        si,
        {
            vim.HostSystem: _HOST_PROPERTIES,
            vim.Datastore: _DATASTORE_PROPERTIES,
            vim.VirtualMachine: _INVENTORY_VM_PROPERTIES,
        },
        page_size,
    )
    names_by_id = {ref._moId: props["name"] for ref, props in objects if "name" in props}
    by_kind: dict[type, list[tuple[Any, dict[str, Any]]]] = {
        vim.HostSystem: [],
        vim.Datastore: [],
        vim.VirtualMachine: [],
    }
    for ref, props in objects:
        for kind, found in by_kind.items():
            if isinstance(ref, kind):
                found.append((ref, props))

    # Per datastore: is it accessible at all, which hosts mount it, and which of those can access
    # it (only known for datastores that list their mounts).
    accessible: dict[str, bool] = {}
    mounted_on: dict[str, list[str]] = {}
    usable_by: dict[str, set[str]] = {}
    for ref, props in by_kind[vim.Datastore]:
        accessible[ref._moId] = not _is_false(props.get("summary.accessible"))
        mounted_on[ref._moId] = []
        mounts = props.get("host") or []
        if mounts:
            usable_by[ref._moId] = set()
        for mount in mounts:
            info = mount.mountInfo
            if info is not None and _is_false(info.mounted):
                continue
            mounted_on[ref._moId].append(names_by_id.get(mount.key._moId, mount.key._moId))
            if info is None or not _is_false(info.accessible):
                usable_by[ref._moId].add(mount.key._moId)

    hosts = [
        HostInfo(
            name=props["name"],
            managed_by_vcenter=_managed_by_vcenter(props),
            connection_state=str(props.get("runtime.connectionState", "unknown")),
            datastores=[
                names_by_id.get(ds._moId, ds._moId)
                for ds in props.get("datastore") or []
                # Without a mount list, the host's own datastore list is the answer.
                if accessible.get(ds._moId, True)
                and (ds._moId not in usable_by or ref._moId in usable_by[ds._moId])
            ],
        )
        for ref, props in by_kind[vim.HostSystem]
    ]
    datastores = [
        DatastoreInfo(
            name=props["name"],
            type=str(props.get("summary.type", "unknown")),
            accessible=accessible[ref._moId],
            capacity_bytes=int(props.get("summary.capacity") or 0),
            free_space_bytes=int(props.get("summary.freeSpace") or 0),
            hosts=mounted_on[ref._moId],
        )
        for ref, props in by_kind[vim.Datastore]
    ]
    vms = []
    for _ref, props in by_kind[vim.VirtualMachine]:
        host = props.get("runtime.host")
        vms.append(
            VmInfo(
                name=props["name"],
                host=names_by_id.get(host._moId, host._moId) if host is not None else None,
                datastores=[
                    names_by_id.get(ds._moId, ds._moId) for ds in props.get("datastore") or []
                ],
                power_state=str(props.get("runtime.powerState", "unknown")),
                tools_status=_optional_str(props.get("guest.toolsStatus")),
                tools_running_status=props.get("guest.toolsRunningStatus"),
                guest_state=props.get("guest.guestState"),
                guest_id=props.get("config.guestId"),
                guest_full_name=props.get("guest.guestFullName"),
                configured_guest_full_name=props.get("config.guestFullName"),
                snapshot_count=_snapshot_count(props.get("snapshot")),
                disks=_disks(props.get("config.hardware.device") or [], names_by_id),
            )
        )
    return VCenterInventory(hosts=hosts, datastores=datastores, vms=vms)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


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
        _wait_for_task(si, task, timeout_seconds)
    state = existing()
    if state is None:
        raise VmNotFoundError(name)
    return state


# --- One shared vCenter session per worker -------------------------------------------------------

SESSION_ERRORS: tuple[type[BaseException], ...] = (
    vim.fault.NotAuthenticated,
    OSError,
    http.client.HTTPException,
)
"""What makes VCenterSession log in again and retry once: the session expired or was logged out
(NotAuthenticated), or the connection broke (socket errors, ConnectionError, timeouts, TLS errors
are OSErrors; a dropped or garbled HTTP exchange is an HTTPException)."""

HTTP_POOL_SIZE = 32
"""HTTP connections a session keeps open for its threads (pyVmomi keeps 5, and opens and closes a
new TLS connection for every concurrent request beyond)."""


@dataclass(frozen=True)
class _Connection:
    si: Any
    collector: Any


class VCenterSession:
    """One vCenter session shared by every thread of a worker, and a VM name -> reference map.

    `connect` logs in (SmartConnect); it is called on first use, under a lock so that concurrent
    callers share one login, and again when a call fails with one of SESSION_ERRORS: the session
    is then dropped and the call retried once on a new one. pyVmomi's stub may be shared between
    threads (it guards its pool of HTTP connections with a lock; the session is a cookie).

    read_vm_state finds a VM by name without reading every VM: the reference comes from a map of
    every VM's name (one cheap retrieval of `name` only), then only that VM is read. The map is
    read again when a name is not in it, when its reference no longer exists or now has another
    name (the VM was destroyed or renamed, perhaps with a new VM of that name), or when it is
    older than `names_max_age_seconds`, which bounds how long a second VM of a name that was
    unique goes unnoticed (read_vm_states raises AmbiguousVmNameError for it at once).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        names_max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._names_max_age = names_max_age_seconds
        self._clock = clock
        self._session_lock = threading.Lock()
        self._connection: _Connection | None = None
        # The name map, swapped whole under _names_lock; _refresh_lock lets one thread at a
        # time read it again while the others wait for (and reuse) that read.
        self._names_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._names: dict[str, list[Any]] = {}
        self._names_read_at: float | None = None

    def run(self, operation: Callable[[vim.ServiceInstance], _T]) -> _T:
        """operation(si) on the shared session, on a new session once if that one failed."""
        return self._with_retry(lambda connection: operation(connection.si))

    def read_vm_state(self, name: str) -> VmState | None:
        """The named VM's state (None when no VM has that name), reading only that VM.

        Raises AmbiguousVmNameError when several VMs have the name (seen when the map is read).
        """
        return self._with_retry(lambda connection: self._read_vm_state(connection, name))

    def close(self) -> None:
        """Log out (best effort); a later call logs in again."""
        with self._session_lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                disconnect(connection.si)

    # --- the session

    def _current(self) -> _Connection:
        with self._session_lock:
            if self._connection is None:
                si = self._connect()
                stub: Any = getattr(si, "_stub", None)
                pool_size = getattr(stub, "poolSize", None)
                if isinstance(pool_size, int):
                    stub.poolSize = max(pool_size, HTTP_POOL_SIZE)
                self._connection = _Connection(si, si.RetrieveContent().propertyCollector)
            return self._connection

    def _drop(self, connection: _Connection) -> None:
        # Only the session that failed: another thread may already have logged in again.
        with self._session_lock:
            if self._connection is connection:
                self._connection = None

    def _with_retry(self, operation: Callable[[_Connection], _T]) -> _T:
        connection = self._current()
        try:
            return operation(connection)
        except SESSION_ERRORS as err:
            # No logout: the session is gone, or the connection to log out on is broken.
            _log.warning("vCenter session lost (%s: %s); logging in again", type(err).__name__, err)
            self._drop(connection)
        return operation(self._current())

    # --- one VM by name

    def _read_vm_state(self, connection: _Connection, name: str) -> VmState | None:
        ref = self._cached_ref(name)
        if ref is not None:
            state = read_vm_state_of(connection.si, ref, collector=connection.collector)
            if state is not None and state.name == name:
                return state
        # Not in the map, or its reference went stale: a map read from now on is needed.
        refs = self._names_read_since(connection, self._clock()).get(name, [])
        if not refs:
            return None
        if len(refs) > 1:
            raise AmbiguousVmNameError(name, len(refs))
        state = read_vm_state_of(connection.si, refs[0], collector=connection.collector)
        # Destroyed or renamed in the instant since the map was read: no VM of that name then.
        return state if state is not None and state.name == name else None

    def _cached_ref(self, name: str) -> Any:
        with self._names_lock:
            read_at = self._names_read_at
            if read_at is None or self._clock() - read_at > self._names_max_age:
                return None
            refs = self._names.get(name) or []
            return refs[0] if len(refs) == 1 else None

    def _names_read_since(self, connection: _Connection, since: float) -> dict[str, list[Any]]:
        """The name map, read again unless a read started after `since` (by another thread)."""
        with self._refresh_lock:
            with self._names_lock:
                if self._names_read_at is not None and self._names_read_at > since:
                    return self._names
            started = self._clock()
            names = vm_refs_by_name(connection.si)
            with self._names_lock:
                self._names, self._names_read_at = names, started
            return names
