"""What the Hyper-V host stand-in knows: hosts with their virtual switches, and VMs with their
power state, heartbeat, checkpoints and network adapters, as the scenario gives them and as ASR's
simulator changes them (a failback starts the VM; an alternate-location failback creates it)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class HostError(Exception):
    """An operation the host refuses, as Hyper-V would (the message is its error)."""


@dataclass
class HyperVVm:
    name: str
    host: str
    vm_id: str
    state: str = "Off"
    switches: list[str] = field(default_factory=list)
    checkpoints: int = 0
    # The guest's heartbeat integration service reports OK this long after the VM starts.
    heartbeat_after_seconds: float = 1.0
    # The guest never answers (integration services missing or the OS hangs).
    heartbeat_never: bool = False
    started_at: dt.datetime | None = None

    def heartbeat(self, now: dt.datetime) -> str:
        """Hyper-V's VMHeartbeatStatus name; empty while the VM is off ($null in PowerShell)."""
        if self.state != "Running" or self.started_at is None:
            return ""
        if self.heartbeat_never:
            return "NoContact"
        waited = (now - self.started_at).total_seconds()
        return "OkApplicationsHealthy" if waited >= self.heartbeat_after_seconds else "NoContact"


@dataclass
class HyperVHost:
    name: str
    switches: list[str] = field(default_factory=list)


class HostState:
    """Every host of the lab's Hyper-V site. One stand-in serves them all (each host's name is
    what `$env:COMPUTERNAME` says to a session opened for it, chosen by the URL's path).

    With `vmm`, a System Center VMM server manages the hosts: it is one more endpoint, with no
    VMs of its own, that answers VMM's cmdlets about every host's VMs."""

    def __init__(
        self,
        hosts: list[HyperVHost],
        vms: list[HyperVVm],
        clock: Callable[[], dt.datetime] = utcnow,
        vmm: str | None = None,
    ) -> None:
        self.hosts = {h.name.lower(): h for h in hosts}
        self.vmm = vmm
        self.vms = {v.name.lower(): v for v in vms}
        self.clock = clock
        self.lock = threading.Lock()
        # What ASR's simulator did to the host, for GET /_lab/state.
        self.events: list[dict[str, str]] = []

    def endpoints(self) -> list[str]:
        """Every machine the stand-in answers WinRM for: the hosts, then the VMM server."""
        return [h.name for h in self.hosts.values()] + ([self.vmm] if self.vmm else [])

    def is_vmm(self, name: str) -> bool:
        return self.vmm is not None and self.vmm.lower() == name.lower()

    def host(self, name: str) -> HyperVHost:
        if self.is_vmm(name):
            # The VMM server runs no VMs and has no virtual switches of its own.
            return HyperVHost(str(self.vmm))
        found = self.hosts.get(name.lower())
        if found is None:
            raise HostError(f"no Hyper-V host {name!r} in this site")
        return found

    def vm(self, name: str) -> HyperVVm | None:
        return self.vms.get(name.lower())

    def vms_on(self, host: str) -> list[HyperVVm]:
        return [v for v in self.vms.values() if v.host.lower() == host.lower()]

    def start(self, name: str) -> None:
        with self.lock:
            vm = self._existing(name)
            if vm.state != "Running":
                vm.state = "Running"
                vm.started_at = self.clock()
            self._note("start", name)

    def stop(self, name: str) -> None:
        with self.lock:
            vm = self._existing(name)
            vm.state = "Off"
            vm.started_at = None
            self._note("stop", name)

    def create(self, name: str, host: str, switches: list[str]) -> HyperVVm:
        """ASR's CreateVmIfNotFound: the VM made on `host`, off, its adapters on switches of the
        same names (Hyper-V refuses a switch the host does not have)."""
        with self.lock:
            existing = self.vm(name)
            if existing is not None:
                return existing
            target = self.host(host)
            missing = [s for s in switches if s not in target.switches]
            if missing:
                raise HostError(
                    f"host {target.name} has no virtual switch named {', '.join(missing)}"
                )
            vm = HyperVVm(name=name, host=target.name, vm_id=str(uuid.uuid4()), switches=switches)
            self.vms[name.lower()] = vm
            self._note("create", name, host=target.name)
            return vm

    def _existing(self, name: str) -> HyperVVm:
        vm = self.vm(name)
        if vm is None:
            raise HostError(f"Hyper-V was unable to find a virtual machine with name {name!r}")
        return vm

    def _note(self, action: str, vm: str, **more: str) -> None:
        self.events.append({"action": action, "vm": vm, "time": self.clock().isoformat(), **more})
