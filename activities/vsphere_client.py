"""Plain pyvmomi adapter for the few vCenter operations failback needs.

Every read goes through the PropertyCollector, never through managed-object attribute accessors:
one round trip per batch instead of one per attribute, and the lab's vcsim (govmomi 0.24.2)
panics when an accessor reads a property that is unset (e.g. ``vm.snapshot`` without snapshots).
No Temporal imports here: activities wrap these calls.

``read_inventory`` is what the readiness rules need from vCenter (hosts, datastores with their
type and the hosts that mount them, VMs with their disks, snapshots and guest OS). Failback never
writes to vCenter directly (ASR powers the VMs on); the lab's simulator, which plays ASR's part,
has writes of its own in lab/vcenter_client.py.
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


class VmState(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    power_state: str
    tools_running_status: str | None
    guest_state: str | None
    host: str | None
    datastores: list[str]


class HostInfo(BaseModel):
    """An ESXi host as vCenter lists it (a vCenter lists only the hosts it manages)."""

    model_config = ConfigDict(frozen=True)

    name: str
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
    host: str, port: int, user: str, password: str, verify_tls: bool = True
) -> vim.ServiceInstance:
    """Log in to vCenter; `verify_tls=False` accepts any certificate (the lab's vcsim has a
    self-signed one)."""
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
    try:
        return read_vm_states_of(si, [vm], collector=collector)[0]
    except vmodl.fault.ManagedObjectNotFound:
        return None


def read_vm_states_of(
    si: vim.ServiceInstance, vms: Sequence[Any], *, collector: Any = None
) -> list[VmState | None]:
    """read_vm_state_of for many VMs in two retrievals (their properties, then the names of
    their hosts and datastores), in `vms`' order. Raises ManagedObjectNotFound when one of them
    no longer exists: the caller reads those VMs one by one."""
    if not vms:
        return []
    if collector is None:
        collector = si.RetrieveContent().propertyCollector
    spec = _PropertyCollector.FilterSpec(
        objectSet=[_PropertyCollector.ObjectSpec(obj=vm, skip=False) for vm in vms],
        propSet=[_PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=_VM_PROPERTIES)],
    )
    by_id = {content.obj._moId: _props(content) for content in _retrieve_all(collector, [spec])}
    found = [by_id.get(vm._moId, {}) for vm in vms]
    names_by_id = _entity_names(si, [r for props in found for r in _vm_refs(props)], collector)
    return [
        _vm_state(props["name"], props, names_by_id) if props.get("name") is not None else None
        for props in found
    ]


def _is_false(value: Any) -> bool:
    """An explicit False (an unset optional boolean counts as true, as vSphere means it)."""
    return value is False


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
    return _inventory(
        _collect(
            si,
            {
                vim.HostSystem: _HOST_PROPERTIES,
                vim.Datastore: _DATASTORE_PROPERTIES,
                vim.VirtualMachine: _INVENTORY_VM_PROPERTIES,
            },
            page_size,
        )
    )


def read_inventory_of(
    si: vim.ServiceInstance, vms: Sequence[Any], *, collector: Any = None
) -> VCenterInventory:
    """read_inventory with only these VMs (references): every host and datastore, and the VMs'
    properties read through an ObjectSpec each, whatever the number of VMs in vCenter.

    Why: one plan's readiness needs its own 100 VMs; the whole inventory is ~11 CPU-s of
    decoding in the worker at 10,000 VMs (1.1 at 1,000; bench/RESULTS.md "2026-12-06,
    afternoon"), paid again by every plan that does not share a read in flight. Raises
    ManagedObjectNotFound when one of the VMs no longer exists.
    """
    if collector is None:
        collector = si.RetrieveContent().propertyCollector
    objects = _collect(si, {vim.HostSystem: _HOST_PROPERTIES, vim.Datastore: _DATASTORE_PROPERTIES})
    unique = list({vm._moId: vm for vm in vms}.values())
    if unique:
        spec = _PropertyCollector.FilterSpec(
            objectSet=[_PropertyCollector.ObjectSpec(obj=vm, skip=False) for vm in unique],
            propSet=[
                _PropertyCollector.PropertySpec(
                    type=vim.VirtualMachine, pathSet=_INVENTORY_VM_PROPERTIES
                )
            ],
        )
        found = {c.obj._moId: (c.obj, _props(c)) for c in _retrieve_all(collector, [spec])}
        objects.extend(found[vm._moId] for vm in unique if vm._moId in found)
    return _inventory(objects)


def _inventory(objects: list[tuple[Any, dict[str, Any]]]) -> VCenterInventory:
    """The inventory from hosts, datastores and VMs retrieved together (their references are
    resolved to names from the same objects)."""
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

    def read_known_vm_states(self, names: Sequence[str]) -> dict[str, VmState]:
        """The states of the named VMs the name map knows, read together in one retrieval; a
        name absent from the answer (not in the map, or its reference went stale) is for
        read_vm_state to find."""
        return self._with_retry(lambda connection: self._read_known_vm_states(connection, names))

    def read_inventory_of_named(self, names: Sequence[str]) -> VCenterInventory:
        """Every host and datastore, and the VMs of these names (every VM of a name several
        share, as read_inventory lists them), without reading the other VMs.

        The references come from the name map when it is fresh and knows every name; else, or
        when a VM the map names is gone or renamed, from a map read from now on (once).
        """
        return self._with_retry(lambda connection: self._read_inventory_of_named(connection, names))

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

    def _read_known_vm_states(
        self, connection: _Connection, names: Sequence[str]
    ) -> dict[str, VmState]:
        with self._names_lock:
            fresh = self._names_fresh()
        if not fresh:
            self._names_read_since(connection, self._clock())
        known = [(name, self._cached_ref(name)) for name in dict.fromkeys(names)]
        known = [(name, ref) for name, ref in known if ref is not None]
        try:
            states = read_vm_states_of(
                connection.si, [ref for _, ref in known], collector=connection.collector
            )
        except vmodl.fault.ManagedObjectNotFound:
            return {}
        return {
            name: state
            for (name, _), state in zip(known, states, strict=True)
            if state is not None and state.name == name
        }

    def _read_inventory_of_named(
        self, connection: _Connection, names: Sequence[str]
    ) -> VCenterInventory:
        wanted = dict.fromkeys(names)  # in the order asked: the answer is recorded in a history
        with self._names_lock:
            known = self._names if self._names_fresh() else {}
        for attempt in range(2):
            if attempt or any(name not in known for name in wanted):
                known = self._names_read_since(connection, self._clock())
            refs = [ref for name in wanted for ref in known.get(name, [])]
            try:
                inventory = read_inventory_of(connection.si, refs, collector=connection.collector)
            except vmodl.fault.ManagedObjectNotFound:
                continue
            if (
                len(inventory.vms) == len(refs)
                and {vm.name for vm in inventory.vms} <= wanted.keys()
            ):
                return inventory
        # Renamed or destroyed again in the instant between a map and its VMs' read: the whole
        # inventory says which VMs bear these names now.
        whole = read_inventory(connection.si)
        return whole.model_copy(update={"vms": [vm for vm in whole.vms if vm.name in wanted]})

    def _names_fresh(self) -> bool:
        """Whether the name map is read and young enough to trust (under _names_lock)."""
        read_at = self._names_read_at
        return read_at is not None and self._clock() - read_at <= self._names_max_age

    def _cached_ref(self, name: str) -> Any:
        with self._names_lock:
            if not self._names_fresh():
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
