"""What the simulated failback does to the on-premises side, the way the master target would.

When ASR fails a VM back it powers the on-premises VM on. In the lab that happens in vcsim through
the project's own vSphere client; without a vCenter the effects are only recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from lab.asr_sim.arm import utcnow


class VCenterEffectError(Exception):
    """The on-premises side refused or failed an effect; the message is shown in the ASR job."""


@dataclass(frozen=True)
class RecordedEffect:
    action: str
    vm_name: str
    time: dt.datetime


class VCenterEffects(Protocol):
    # Every effect asked for, applied or not; the simulator shows it in GET /_lab/state.
    calls: list[RecordedEffect]

    async def power_on(self, vm_name: str) -> None:
        """Power the VM on; raise VCenterEffectError when it cannot be done."""
        ...


@dataclass
class RecordingVCenterEffects:
    """Records effects instead of applying them; VMs in `missing_vms` behave as not found."""

    missing_vms: set[str] = field(default_factory=set)
    calls: list[RecordedEffect] = field(default_factory=list)

    async def power_on(self, vm_name: str) -> None:
        self.calls.append(RecordedEffect("power_on", vm_name, utcnow()))
        if vm_name in self.missing_vms:
            raise VCenterEffectError(f"virtual machine {vm_name!r} was not found in vCenter")


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

    def _power_on_blocking(self, vm_name: str) -> None:
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
            vsphere_client.power_on_vm(si, vm_name)
        except vsphere_client.VmNotFoundError as err:
            raise VCenterEffectError(
                f"virtual machine {vm_name!r} was not found in vCenter: {err}"
            ) from err
        except Exception as err:
            raise VCenterEffectError(f"powering on {vm_name!r} in vCenter failed: {err}") from err
        finally:
            # A failed logout must not hide the outcome of the power-on.
            with contextlib.suppress(Exception):
                vsphere_client.disconnect(si)
