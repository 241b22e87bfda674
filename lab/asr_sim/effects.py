"""What the simulated failback does to the on-premises side, the way the master target would.

When ASR fails a VM back it powers the on-premises VM on; when it reprotects a machine whose VM
no longer exists on-premises (alternate location, physical servers) it re-creates the VM on the
master target's ESXi host. In the lab that happens in vcsim through lab.vcenter_client;
without a vCenter the effects are only recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lab.asr_sim.arm import utcnow

# Set to 1 in the simulator's environment: power VMs on by their kept managed object id.
POWER_ON_BY_ID_ENV = "ASR_SIM_POWER_ON_BY_ID"


class VCenterEffectError(Exception):
    """The on-premises side refused or failed an effect; the message is shown in the ASR job."""


@dataclass(frozen=True)
class RecordedEffect:
    action: str
    vm_name: str
    time: dt.datetime
    # Where a created VM goes (create_vm only).
    host: str | None = None
    datastore: str | None = None
    os_type: str | None = None
    disks_gb: tuple[int, ...] = ()


class VCenterEffects(Protocol):
    # Every effect asked for, applied or not; the simulator shows it in GET /_lab/state.
    calls: list[RecordedEffect]

    async def power_on(self, vm_name: str) -> None:
        """Power the VM on; raise VCenterEffectError when it cannot be done."""
        ...

    async def power_off(self, vm_name: str) -> None:
        """Power the VM off (no-op when off); raise VCenterEffectError when it cannot be done."""
        ...

    async def create_vm(
        self, vm_name: str, host: str, datastore: str, os_type: str, disks_gb: Sequence[int]
    ) -> None:
        """Create the VM (powered off) on the ESXi host with new disks on the datastore;
        nothing when it is already there. Raise VCenterEffectError when it cannot be done."""
        ...


@dataclass
class RecordingVCenterEffects:
    """Records effects instead of applying them; VMs in `missing_vms` behave as not found
    until created, and creating one in `uncreatable_vms` fails."""

    missing_vms: set[str] = field(default_factory=set)
    uncreatable_vms: set[str] = field(default_factory=set)
    calls: list[RecordedEffect] = field(default_factory=list)

    async def power_on(self, vm_name: str) -> None:
        self.calls.append(RecordedEffect("power_on", vm_name, utcnow()))
        if vm_name in self.missing_vms:
            raise VCenterEffectError(f"virtual machine {vm_name!r} was not found in vCenter")

    async def power_off(self, vm_name: str) -> None:
        self.calls.append(RecordedEffect("power_off", vm_name, utcnow()))
        if vm_name in self.missing_vms:
            raise VCenterEffectError(f"virtual machine {vm_name!r} was not found in vCenter")

    async def create_vm(
        self, vm_name: str, host: str, datastore: str, os_type: str, disks_gb: Sequence[int]
    ) -> None:
        self.calls.append(
            RecordedEffect(
                "create_vm", vm_name, utcnow(), host, datastore, os_type, tuple(disks_gb)
            )
        )
        if vm_name in self.uncreatable_vms:
            raise VCenterEffectError(
                f"cannot create virtual machine {vm_name!r} on host {host!r}, datastore "
                f"{datastore!r}"
            )
        # Created: from now on it exists, so the failover can power it on.
        self.missing_vms.discard(vm_name)


@dataclass(frozen=True)
class VCenterTarget:
    host: str
    port: int
    user: str
    password: str = field(repr=False)


class PyVmomiVCenterEffects:
    """Applies effects in a real (or vcsim) vCenter through lab.vcenter_client.

    `power_on_by_id` (default: the environment variable ASR_SIM_POWER_ON_BY_ID=1, which the
    benchmark sets): a power-on goes to the VM by its managed object id, looked up by name once
    and kept, instead of `vcenter_client.power_on_vm`, which finds the VM by reading every VM of
    the inventory and reads them all again afterwards: ~0.35 s of pyVmomi decoding per power-on
    at 1,000 VMs, on the simulator's GIL, which stretched every failover job of a large lab.
    Ids are stable for a VM's lifetime; a VM created later is looked up afresh.
    """

    def __init__(self, target: VCenterTarget, power_on_by_id: bool | None = None) -> None:
        self._target = target
        self.calls: list[RecordedEffect] = []
        if power_on_by_id is None:
            power_on_by_id = os.environ.get(POWER_ON_BY_ID_ENV, "") in ("1", "true", "yes")
        self.power_on_by_id = power_on_by_id
        self._vm_ids: dict[str, str] = {}
        self._vm_ids_lock = threading.Lock()
        # Signed-in sessions kept between effects: a session per effect (TLS handshake, login,
        # logout) was the simulator's largest cost at 10,000 power-ons (bench/RESULTS.md).
        self._idle_sessions: queue.SimpleQueue[Any] = queue.SimpleQueue()

    async def power_on(self, vm_name: str) -> None:
        self.calls.append(RecordedEffect("power_on", vm_name, utcnow()))
        # pyvmomi is blocking; the simulator's event loop must keep answering polls meanwhile.
        await asyncio.to_thread(self._power_on_blocking, vm_name)

    async def power_off(self, vm_name: str) -> None:
        self.calls.append(RecordedEffect("power_off", vm_name, utcnow()))
        await asyncio.to_thread(self._power_off_blocking, vm_name)

    def _power_off_blocking(self, vm_name: str) -> None:
        import lab.vcenter_client as vcenter_client

        with self._session() as si:
            try:
                vcenter_client.power_off_vm(si, vm_name)
            except Exception as err:
                raise VCenterEffectError(
                    f"powering off {vm_name!r} in vCenter failed: {err}"
                ) from err

    async def create_vm(
        self, vm_name: str, host: str, datastore: str, os_type: str, disks_gb: Sequence[int]
    ) -> None:
        self.calls.append(
            RecordedEffect(
                "create_vm", vm_name, utcnow(), host, datastore, os_type, tuple(disks_gb)
            )
        )
        await asyncio.to_thread(
            self._create_vm_blocking, vm_name, host, datastore, os_type, tuple(disks_gb)
        )

    def _power_on_blocking(self, vm_name: str) -> None:
        import activities.vsphere_client as vsphere_client
        import lab.vcenter_client as vcenter_client

        with self._session() as si:
            try:
                if not self.power_on_by_id:
                    vcenter_client.power_on_vm(si, vm_name)
                    return
                try:
                    _power_on_by_id(si, self._vm_id(si, vm_name))
                except _StaleVmId:
                    # Deleted or re-created since it was looked up: look it up again, once.
                    with self._vm_ids_lock:
                        self._vm_ids.pop(vm_name, None)
                    _power_on_by_id(si, self._vm_id(si, vm_name))
            except (vsphere_client.VmNotFoundError, _StaleVmId) as err:
                raise VCenterEffectError(
                    f"virtual machine {vm_name!r} was not found in vCenter: {err}"
                ) from err
            except Exception as err:
                raise VCenterEffectError(
                    f"powering on {vm_name!r} in vCenter failed: {err}"
                ) from err

    def _vm_id(self, si: Any, vm_name: str) -> str:
        """The VM's managed object id; the inventory's names are read once (and again when a
        name is not among them: a VM created since)."""
        with self._vm_ids_lock:
            if vm_name not in self._vm_ids:
                self._vm_ids.update(_vm_ids_by_name(si))
            found = self._vm_ids.get(vm_name)
        if found is None:
            import activities.vsphere_client as vsphere_client

            raise vsphere_client.VmNotFoundError(vm_name)
        return found

    def _create_vm_blocking(
        self, vm_name: str, host: str, datastore: str, os_type: str, disks_gb: tuple[int, ...]
    ) -> None:
        import lab.vcenter_client as vcenter_client

        with self._session() as si:
            with self._vm_ids_lock:
                self._vm_ids.pop(vm_name, None)
            try:
                # Idempotent in the client: a VM already where it was asked for is kept.
                vcenter_client.create_vm_on_host(si, vm_name, host, datastore, os_type, disks_gb)
            except Exception as err:
                raise VCenterEffectError(
                    f"creating {vm_name!r} on host {host!r}, datastore {datastore!r} in vCenter "
                    f"failed: {err}"
                ) from err

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        # Imported here: the vSphere client pulls in pyvmomi, which a simulator without a
        # vCenter never needs.
        import activities.vsphere_client as vsphere_client

        si = self._signed_in_idle_session()
        if si is None:
            target = self._target
            try:
                # The lab's vcsim has a self-signed certificate.
                si = vsphere_client.connect(
                    target.host, target.port, target.user, target.password, verify_tls=False
                )
            except Exception as err:
                raise VCenterEffectError(
                    f"cannot connect to vCenter {target.host}:{target.port}: {err}"
                ) from err
        try:
            yield si
        except BaseException:
            # A session an effect failed in is not trusted again; a failed logout must not hide
            # the outcome of the effect.
            with contextlib.suppress(Exception):
                vsphere_client.disconnect(si)
            raise
        self._idle_sessions.put(si)

    def _signed_in_idle_session(self) -> Any | None:
        """A kept session that vCenter still knows (one it forgot, after a restart say, is
        dropped), or None."""
        while True:
            try:
                si = self._idle_sessions.get_nowait()
            except queue.Empty:
                return None
            try:
                if si.content.sessionManager.currentSession is not None:
                    return si
            except Exception:
                pass


class _StaleVmId(LookupError):
    """The VM with the kept id is gone (deleted, or re-created with a new id)."""


def _vm_ids_by_name(si: Any) -> dict[str, str]:
    """Every VM's name -> managed object id, in one PropertyCollector retrieval of names only."""
    from pyVmomi import vim, vmodl

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    collector = vmodl.query.PropertyCollector
    try:
        spec = collector.FilterSpec(
            objectSet=[
                collector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        collector.TraversalSpec(
                            name="traverseView",
                            path="view",
                            skip=False,
                            type=vim.view.ContainerView,
                        )
                    ],
                )
            ],
            propSet=[collector.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])],
        )
        ids: dict[str, str] = {}
        result = content.propertyCollector.RetrievePropertiesEx(
            specSet=[spec], options=collector.RetrieveOptions()
        )
        while result is not None:
            for obj in result.objects or []:
                for prop in obj.propSet or []:
                    ids[prop.val] = obj.obj._moId
            if not result.token:
                break
            result = content.propertyCollector.ContinueRetrievePropertiesEx(token=result.token)
        return ids
    finally:
        view.DestroyView()


def _read_one(si: Any, obj: Any, kind: Any, paths: list[str]) -> dict[str, Any]:
    from pyVmomi import vmodl

    collector = vmodl.query.PropertyCollector
    spec = collector.FilterSpec(
        objectSet=[collector.ObjectSpec(obj=obj, skip=False)],
        propSet=[collector.PropertySpec(type=kind, pathSet=paths)],
    )
    try:
        contents = si.RetrieveContent().propertyCollector.RetrieveContents([spec])
    except vmodl.fault.ManagedObjectNotFound as err:
        raise _StaleVmId(str(err)) from err
    return {p.name: p.val for c in contents or [] for p in c.propSet or []}


def _power_on_by_id(si: Any, vm_id: str, timeout_seconds: float = 300.0) -> None:
    """Power the VM on (nothing when it is on) and wait for the task."""
    from pyVmomi import vim

    vm = vim.VirtualMachine(vm_id, si._stub)
    state = _read_one(si, vm, vim.VirtualMachine, ["runtime.powerState"]).get("runtime.powerState")
    if state is None:
        raise _StaleVmId(vm_id)
    if state == "poweredOn":
        return
    task = vm.PowerOnVM_Task()
    deadline = time.monotonic() + timeout_seconds
    delay = 0.02
    while True:
        info = _read_one(si, task, vim.Task, ["info.state", "info.error"])
        if info.get("info.state") == vim.TaskInfo.State.success:
            return
        if info.get("info.state") == vim.TaskInfo.State.error:
            error = info.get("info.error")
            # Powered on by someone else between the read and the task: what was asked for.
            if isinstance(error, vim.fault.InvalidPowerState):
                return
            raise RuntimeError(f"power-on task failed: {error}")
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"power-on task still {info.get('info.state')} after {timeout_seconds:.0f} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
