"""The Hyper-V hosts, read over Windows Remote Management (WinRM over HTTPS) with pywinrm: the
one gateway to them. Independently of ASR, a failed-back VM is verified where it runs: it
exists, is Running, and its guest's heartbeat integration service reports OK. Readiness reads
each host's virtual switches and VMs (power state, checkpoints).

The scripts are plain Windows PowerShell with the Hyper-V module, each printing one line of JSON,
so that a real host answers them as the lab's stand-in does (lab/hyperv_host).

With System Center VMM, the VMM server is the machine asked (it is the provider ASR names, and
it knows which host runs the VM): VMM's cmdlets find the VM, its state and checkpoints, and
Hyper-V's `Get-VM -ComputerName` reads the heartbeat from the host VMM says it is on.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.liveness import kept_alive
from activities.threads import map_in_threads
from domain import errors
from domain.models import OnPremVmState
from domain.readiness import HyperVHostFacts, HyperVVmFacts, OnPremFacts


def _quoted(text: str) -> str:
    """A PowerShell single-quoted string literal."""
    return "'" + text.replace("'", "''") + "'"


def _vm_lookup(lookup: str, *report: str) -> str:
    """Find the VM as `$vm`; print {found: false} if there is none, else what `report` prints."""
    not_found = "if ($null -eq $vm) { ConvertTo-Json -Compress @{ found = $false }; exit 0 }"
    return "\n".join(["$ErrorActionPreference = 'Stop'", lookup, not_found, *report])


def vm_script(vm_name: str) -> str:
    return _vm_lookup(
        f"$vm = Get-VM -Name {_quoted(vm_name)} -ErrorAction SilentlyContinue",
        "ConvertTo-Json -Compress @{ found = $true; name = $vm.Name; id = [string]$vm.Id; "
        "state = [string]$vm.State; heartbeat = [string]$vm.Heartbeat; "
        "checkpoints = @(Get-VMSnapshot -VM $vm).Count; "
        "switches = @($vm.NetworkAdapters.SwitchName); host = $env:COMPUTERNAME }",
    )


# Each VM's facts, as `vm_script` prints them for one.
_VM_FACTS = (
    "@{ name = $_.Name; id = [string]$_.Id; state = [string]$_.State; "
    "heartbeat = [string]$_.Heartbeat; checkpoints = @(Get-VMSnapshot -VM $_).Count; "
    "switches = @($_.NetworkAdapters.SwitchName) }"
)


def vms_script(vm_names: Sequence[str]) -> str:
    """Several VMs of one host in one call: `Get-VM -Name` takes a list, and a name it does not
    find is left out of the answer (the caller reads it as not found). -Depth 4: ConvertTo-Json
    prints what is nested deeper than its default 2 as a string, and each VM's switches are a
    list in a table in the list of VMs."""
    names = ", ".join(_quoted(n) for n in vm_names)
    return "\n".join(
        [
            "$ErrorActionPreference = 'Stop'",
            f"$names = @({names})",
            "$found = @(Get-VM -Name $names -ErrorAction SilentlyContinue)",
            "ConvertTo-Json -Compress -Depth 4 @{ host = $env:COMPUTERNAME; "
            f"vms = @($found | ForEach-Object {{ {_VM_FACTS} }}) }}",
        ]
    )


# The command line a WinRM shell runs (`powershell -encodedcommand` and the script in base64 of
# UTF-16) goes through cmd.exe, which takes 8,191 characters: a longer one fails "The command
# line is too long" (diyan/pywinrm#184). A host's VMs are asked in as many scripts as that takes.
COMMAND_LINE_LIMIT = 8191


def command_line_length(script: str) -> int:
    return len("powershell -encodedcommand ") + len(base64.b64encode(script.encode("utf_16_le")))


def vms_scripts(vm_names: Sequence[str]) -> list[str]:
    """`vm_names` in as few scripts as the command line allows."""
    scripts: list[str] = []
    part: list[str] = []
    for name in vm_names:
        if part and command_line_length(vms_script([*part, name])) > COMMAND_LINE_LIMIT:
            scripts.append(vms_script(part))
            part = []
        part.append(name)
    if part:
        scripts.append(vms_script(part))
    return scripts


def vmm_vm_script(vm_name: str) -> str:
    return _vm_lookup(
        f"$vm = Get-SCVirtualMachine -Name {_quoted(vm_name)}",
        "$hv = Get-VM -ComputerName $vm.VMHost.Name -Name $vm.Name -ErrorAction SilentlyContinue",
        "ConvertTo-Json -Compress @{ found = $true; name = $vm.Name; "
        "state = [string]$vm.VirtualMachineState; heartbeat = [string]$hv.Heartbeat; "
        "checkpoints = @(Get-SCVMCheckpoint -VM $vm).Count; "
        "switches = @($vm.VirtualNetworkAdapters.VirtualNetwork); host = $vm.VMHost.Name }",
    )


# VMM's VMComputerSystemState names where they differ from Hyper-V's VMState (the rules and the
# verification speak Hyper-V's).
_VMM_STATES = {"PowerOff": "Off", "Stored": "Off"}

VMM_SCRIPT = (
    "$ErrorActionPreference = 'Stop'\n"
    "ConvertTo-Json -Compress @{ host = $env:COMPUTERNAME; "
    "hosts = @(Get-SCVMHost | ForEach-Object { $_.Name }); "
    "vms = @(Get-SCVirtualMachine | ForEach-Object { $_.Name }) }"
)

HOST_SCRIPT = (
    "$ErrorActionPreference = 'Stop'\n"
    "ConvertTo-Json -Compress @{ host = $env:COMPUTERNAME; "
    "switches = @(Get-VMSwitch | ForEach-Object { $_.Name }); "
    "vms = @(Get-VM | ForEach-Object { $_.Name }) }"
)


class HyperVFactsQuery(BaseModel):
    """The hosts readiness asks about (the machines' own, and a chosen alternate), and the VMs
    to look for on them."""

    hosts: list[str] = Field(default_factory=list)
    vm_names: list[str] = Field(default_factory=list)
    vmm_servers: list[str] = Field(
        default_factory=list,
        description="Which of `hosts` are VMM servers (asked with VMM's cmdlets)",
    )


class HostUnreachable(Exception):
    """The host did not answer, refused the credentials, or failed the script."""


@dataclass(frozen=True)
class HyperVEndpoints:
    """Where each host's WinRM listens, and how to log on (the worker's settings only)."""

    username: str
    password: str
    # Host name -> https://HOST:5986/wsman unless the settings say otherwise.
    urls: dict[str, str]
    ca_bundle: str | None = None
    verify_tls: bool = True

    def url(self, host: str) -> str:
        return self.urls.get(host) or self.urls.get(host.lower()) or f"https://{host}:5986/wsman"


RunScript = Callable[[str, str], str]


# Shells a worker process keeps open on one host at once. WinRM allows a user 30 shells at once
# by default (MaxShellsPerUser); past that a host refuses the next one. Every read here is a
# shell of its own, and a boot group's machines would otherwise open one per VM together: 6
# leave room for five workers (and an operator's session) on one host.
SHELLS_PER_HOST = 6
# Hosts (or, through VMM, VMs) a readiness or verification read asks at once (each host still
# bounded as above).
READS_AT_ONCE = 8


class HyperVGateway:
    """Runs a script on a host and returns its standard output (one JSON line)."""

    def __init__(
        self, endpoints: HyperVEndpoints | None, shells_per_host: int = SHELLS_PER_HOST
    ) -> None:
        self._endpoints = endpoints
        self._shells_per_host = shells_per_host
        self._shells: dict[str, threading.BoundedSemaphore] = {}
        self._shells_lock = threading.Lock()

    def _shell_of(self, host: str) -> threading.BoundedSemaphore:
        with self._shells_lock:
            key = host.lower()
            if key not in self._shells:
                self._shells[key] = threading.BoundedSemaphore(self._shells_per_host)
            return self._shells[key]

    def run(self, host: str, script: str) -> Any:
        with self._shell_of(host):
            return self._run(host, script)

    def _run(self, host: str, script: str) -> Any:
        if self._endpoints is None:
            raise ApplicationError(
                "the worker has no Hyper-V credentials: set FAILBACK_HYPERV_USERNAME and "
                "FAILBACK_HYPERV_PASSWORD (and FAILBACK_HYPERV_ENDPOINTS for hosts not at "
                "https://HOST:5986/wsman)",
                type=errors.CONFIGURATION_INVALID,
                non_retryable=True,
            )
        import winrm
        from winrm.exceptions import WinRMError, WinRMTransportError

        endpoints = self._endpoints
        session = winrm.Session(
            endpoints.url(host),
            auth=(endpoints.username, endpoints.password),
            transport="basic",
            server_cert_validation="validate" if endpoints.verify_tls else "ignore",
            ca_trust_path=endpoints.ca_bundle or "legacy_requests",
            operation_timeout_sec=20,
            read_timeout_sec=30,
        )
        try:
            result = session.run_ps(script)
        except (WinRMError, WinRMTransportError, OSError) as err:
            raise HostUnreachable(f"{host}: {type(err).__name__}: {err}") from err
        except Exception as err:  # requests' connection errors and the like
            raise HostUnreachable(f"{host}: {type(err).__name__}: {err}") from err
        if result.status_code != 0:
            message = result.std_err.decode(errors="replace").strip() or "no message"
            raise HostUnreachable(f"{host}: the script failed ({message})")
        try:
            return json.loads(result.std_out.decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError) as err:
            raise HostUnreachable(f"{host}: the answer is not JSON") from err


def _vm_state(vm_name: str, host: str, facts: dict[str, Any] | None) -> OnPremVmState:
    """A VM as a script printed it (None: the host has no VM of that name)."""
    if facts is None:
        return OnPremVmState(vm_name=vm_name, found=False, host=host, platform="hyperv")
    return OnPremVmState(
        vm_name=vm_name,
        found=True,
        power_state=str(facts.get("state") or "") or None,
        heartbeat=str(facts.get("heartbeat") or "") or None,
        host=host,
        platform="hyperv",
    )


class HyperVReads:
    def __init__(self, gateway: HyperVGateway) -> None:
        self.gateway = gateway

    def read_vm(self, vm_name: str, host: str, vmm: bool = False) -> OnPremVmState:
        """`host`: the Hyper-V host, or with `vmm` the VMM server (the state then names the host
        VMM says runs the VM)."""
        facts = self._vm_facts(vm_name, host, vmm)
        if not facts.get("found"):
            return _vm_state(vm_name, host, None)
        return _vm_state(vm_name, str(facts.get("host") or "") if vmm else host, facts)

    def read_vms(self, vm_names: Sequence[str], host: str) -> dict[str, OnPremVmState]:
        """Several VMs of one Hyper-V host (not a VMM server), each by the name asked: one
        shell for as many as a command line holds, where a shell each cost a host a
        PowerShell start per VM (a plan's 100 VMs: seconds before its failover and after its
        job, bench/RESULTS.md). An unreachable host raises HostUnreachable for all of them."""
        facts = self._vms_facts(vm_names, host)
        return {name: _vm_state(name, host, facts.get(name)) for name in vm_names}

    def _vms_facts(self, vm_names: Sequence[str], host: str) -> dict[str, dict[str, Any]]:
        """The facts of each VM found, by the name asked (Get-VM matches names whatever their
        case; a name two VMs share answers with the first)."""
        asked = {name.lower(): name for name in vm_names}
        found: dict[str, dict[str, Any]] = {}
        for script in vms_scripts(list(asked.values())):
            answer = self.gateway.run(host, script)
            for vm in answer.get("vms") or []:
                name = asked.get(str(vm.get("name") or "").lower())
                if name is not None and name not in found:
                    found[name] = dict(vm)
        return found

    def _vm_facts(self, vm_name: str, host: str, vmm: bool) -> dict[str, Any]:
        if not vmm:
            return dict(self.gateway.run(host, vm_script(vm_name)))
        facts = dict(self.gateway.run(host, vmm_vm_script(vm_name)))
        state = str(facts.get("state") or "")
        facts["state"] = _VMM_STATES.get(state, state)
        return facts

    def read_onprem_facts(self, query: HyperVFactsQuery) -> OnPremFacts:
        """Every host readiness names: its switches and VMs; an unreadable host says why. The
        hosts a few at once, and a host's VMs in one script (`read_vms`): a plan's 100 VMs
        were 100 shells, seconds before its failover could be sent (bench/RESULTS.md)."""
        vmm = {name.lower() for name in query.vmm_servers}
        return OnPremFacts(
            hyperv_hosts=map_in_threads(
                lambda h: self._host(h, query.vm_names, h.lower() in vmm),
                query.hosts,
                READS_AT_ONCE,
            )
        )

    def _host(self, host: str, vm_names: Sequence[str], vmm: bool) -> HyperVHostFacts:
        def vm_facts(name: str, facts: dict[str, Any]) -> HyperVVmFacts:
            return HyperVVmFacts(
                name=name,
                state=str(facts.get("state") or "Unknown"),
                checkpoints=int(facts.get("checkpoints") or 0),
                switches=list(facts.get("switches") or []),
            )

        try:
            listing = self.gateway.run(host, VMM_SCRIPT if vmm else HOST_SCRIPT)
            present = set(listing.get("vms") or [])
            names = [n for n in vm_names if n in present]
            if vmm:
                # VMM's cmdlets and the heartbeat's host differ per VM: one script each.
                vms = map_in_threads(
                    lambda n: vm_facts(n, self._vm_facts(n, host, vmm=True)), names, READS_AT_ONCE
                )
            else:
                together = self._vms_facts(names, host)
                vms = [vm_facts(n, together[n]) for n in names if n in together]
        except HostUnreachable as err:
            return HyperVHostFacts(name=host, reachable=False, problem=str(err))
        return HyperVHostFacts(
            name=host, reachable=True, switches=list(listing.get("switches") or []), vms=vms
        )


class HyperVActivities:
    """The Hyper-V hosts' part of readiness (verification reads them in VerificationActivities)."""

    def __init__(self, reads: HyperVReads) -> None:
        self._reads = reads

    @activity.defn
    @kept_alive
    def read_hyperv_facts(self, query: HyperVFactsQuery) -> OnPremFacts:
        return self._reads.read_onprem_facts(query)
