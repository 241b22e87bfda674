"""What the simulated failback does to the on-premises side, the way the master target would.

When ASR fails a VM back it powers the on-premises VM on; when it reprotects a machine whose VM
no longer exists on-premises (alternate location, physical servers) it re-creates the VM on the
master target's ESXi host. In the lab that happens in vcsim through the project's own vSphere
client; without a vCenter the effects are only recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from lab.asr_sim.arm import utcnow


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
    """Applies effects in a real (or vcsim) vCenter through activities.vsphere_client."""

    def __init__(self, target: VCenterTarget) -> None:
        self._target = target
        self.calls: list[RecordedEffect] = []

    async def power_on(self, vm_name: str) -> None:
        self.calls.append(RecordedEffect("power_on", vm_name, utcnow()))
        # pyvmomi is blocking; the simulator's event loop must keep answering polls meanwhile.
        await asyncio.to_thread(self._power_on_blocking, vm_name)

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
        with self._session() as (vsphere_client, si):
            try:
                vsphere_client.power_on_vm(si, vm_name)
            except vsphere_client.VmNotFoundError as err:
                raise VCenterEffectError(
                    f"virtual machine {vm_name!r} was not found in vCenter: {err}"
                ) from err
            except Exception as err:
                raise VCenterEffectError(
                    f"powering on {vm_name!r} in vCenter failed: {err}"
                ) from err

    def _create_vm_blocking(
        self, vm_name: str, host: str, datastore: str, os_type: str, disks_gb: tuple[int, ...]
    ) -> None:
        with self._session() as (vsphere_client, si):
            try:
                # Idempotent in the client: a VM already where it was asked for is kept.
                vsphere_client.create_vm_on_host(si, vm_name, host, datastore, os_type, disks_gb)
            except Exception as err:
                raise VCenterEffectError(
                    f"creating {vm_name!r} on host {host!r}, datastore {datastore!r} in vCenter "
                    f"failed: {err}"
                ) from err

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[ModuleType, Any]]:
        # Imported here: the vSphere client pulls in pyvmomi, which a simulator without a
        # vCenter never needs.
        import activities.vsphere_client as vsphere_client

        target = self._target
        try:
            si = vsphere_client.connect(
                target.host, target.port, target.user, target.password, verify_tls=False
            )
        except Exception as err:
            raise VCenterEffectError(
                f"cannot connect to vCenter {target.host}:{target.port}: {err}"
            ) from err
        try:
            yield vsphere_client, si
        finally:
            # A failed logout must not hide the outcome of the effect.
            with contextlib.suppress(Exception):
                vsphere_client.disconnect(si)
