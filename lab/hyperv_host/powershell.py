"""The part of Windows PowerShell with the Hyper-V module that the stand-in runs: enough for a
client that reads VMs and switches and prints JSON, answered as the real cmdlets would.

It runs statements (one per line or `;`): `$ErrorActionPreference = 'Stop'`,
`$x = Get-VM -Name 'NAME' [-ErrorAction SilentlyContinue]`, `$names = @('A', 'B')`,
`$x = @(Get-VM -Name $names [-ErrorAction SilentlyContinue])` (several VMs in one call),
`if ($null -eq $x) { ... }`, `ConvertTo-Json -Compress [-Depth N] @{ key = EXPRESSION; ... }`
(nesting past the depth, 2 unless given, printed as PowerShell prints it: as a string) and
`exit N`; and the expressions listed in `_expression`, among them
`@($x | ForEach-Object { @{ key = EXPRESSION; ... } })` with `$_` for each VM. On a VMM
server's endpoint, VMM's cmdlets too (`Get-SCVirtualMachine`, `Get-SCVMCheckpoint`,
`Get-SCVMHost`) and `Get-VM -ComputerName HOST`, which asks a managed host; a Hyper-V host has
no VMM cmdlets, and the VMM server runs no VMs of its own. Anything else fails as PowerShell
does with a term it does not know, so a client
that drifts from what a Hyper-V host answers finds out here, not on a customer's host.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lab.hyperv_host.state import HostState, HyperVVm


class PowerShellError(Exception):
    """A terminating error: PowerShell writes it to stderr and exits 1."""


@dataclass(frozen=True)
class ScVm:
    """A VM as VMM's `Get-SCVirtualMachine` returns it: VMM's property names, not Hyper-V's."""

    vm: HyperVVm

    @property
    def virtual_machine_state(self) -> str:
        # VMM's VMComputerSystemState names: Running, PowerOff, Saved, Paused, ...
        return "PowerOff" if self.vm.state == "Off" else self.vm.state


@dataclass
class Run:
    state: HostState
    host: str
    variables: dict[str, Any] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    exit_code: int | None = None


def run_script(script: str, state: HostState, host: str) -> tuple[str, str, int]:
    """stdout, stderr (CLIXML, as powershell.exe writes it to a remote shell) and exit code."""
    run = Run(state, host)
    try:
        with state.lock:
            _block(run, script)
    except PowerShellError as err:
        return "\r\n".join(run.out), _clixml(str(err)), 1
    return "\r\n".join(run.out) + ("\r\n" if run.out else ""), "", run.exit_code or 0


def _clixml(message: str) -> str:
    text = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        "#< CLIXML\r\n"
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        f'<S S="Error">{text}_x000D__x000A_</S></Objs>'
    )


def _block(run: Run, text: str) -> None:
    for statement in _statements(text):
        if run.exit_code is not None:
            return
        _statement(run, statement)


def _statements(text: str) -> list[str]:
    """Split on newlines and `;` outside quotes and braces."""
    parts: list[str] = []
    depth = 0
    quote = False
    current: list[str] = []
    for char in text:
        if char == "'":
            quote = not quote
        elif not quote and char == "{":
            depth += 1
        elif not quote and char == "}":
            depth -= 1
        if not quote and depth == 0 and char in "\n;":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p and not p.startswith("#")]


_ASSIGN = re.compile(r"^\$(\w+)\s*=\s*(.+)$", re.S)
_IF_NULL = re.compile(r"^if\s*\(\s*\$null\s+-eq\s+\$(\w+)\s*\)\s*\{(.*)\}$", re.S)
_TO_JSON = re.compile(r"^ConvertTo-Json\s+-Compress(?:\s+-Depth\s+(\d+))?\s+@\{(.*)\}$", re.S)
_GET_VM = re.compile(r"^Get-VM\s+-Name\s+'([^']+)'(\s+-ErrorAction\s+SilentlyContinue)?$")
_GET_VMS = re.compile(r"^@\(\s*Get-VM\s+-Name\s+\$(\w+)(\s+-ErrorAction\s+SilentlyContinue)?\s*\)$")
_STRINGS = re.compile(r"^@\(\s*((?:'(?:[^']|'')*'\s*,?\s*)*)\)$", re.S)
_STRING = re.compile(r"'((?:[^']|'')*)'")
_FOR_EACH_TABLE = re.compile(
    r"^@\(\s*\$(\w+)\s*\|\s*ForEach-Object\s*\{\s*@\{(.*)\}\s*\}\s*\)$", re.S
)
# ConvertTo-Json's -Depth when none is given.
_JSON_DEPTH = 2
_GET_VM_REMOTE = re.compile(
    r"^Get-VM\s+-ComputerName\s+(\S+)\s+-Name\s+(\S+)(\s+-ErrorAction\s+SilentlyContinue)?$"
)
_GET_SC_VM = re.compile(r"^Get-SCVirtualMachine\s+-Name\s+'([^']+)'$")
_EXIT = re.compile(r"^exit\s+(\d+)$")


def _statement(run: Run, statement: str) -> None:
    if statement.replace(" ", "") == "$ErrorActionPreference='Stop'":
        return
    if match := _EXIT.match(statement):
        run.exit_code = int(match.group(1))
        return
    if match := _IF_NULL.match(statement):
        if run.variables.get(match.group(1)) is None:
            _block(run, match.group(2))
        return
    if match := _ASSIGN.match(statement):
        run.variables[match.group(1)] = _command(run, match.group(2).strip())
        return
    if match := _TO_JSON.match(statement):
        depth = int(match.group(1)) if match.group(1) else _JSON_DEPTH
        table = _table(run, match.group(2))
        run.out.append(json.dumps(_within_depth(table, depth, 0), separators=(",", ":")))
        return
    raise PowerShellError(_unknown(statement))


def _table(run: Run, body: str) -> dict[str, Any]:
    """A hashtable literal's entries (`key = EXPRESSION; ...`), evaluated."""
    pairs = {}
    for entry in _statements(body):
        key, _, value = entry.partition("=")
        pairs[key.strip()] = _expression(run, value.strip())
    return pairs


def _within_depth(value: Any, depth: int, level: int) -> Any:
    """What ConvertTo-Json prints of `value` at `level`: a hashtable or array nested deeper than
    -Depth is printed as its string (a hashtable's type name, an array's items joined by
    spaces), not as JSON; a client that forgets -Depth reads a string where it wanted a list."""
    if isinstance(value, dict):
        if level > depth:
            return "System.Collections.Hashtable"
        return {k: _within_depth(v, depth, level + 1) for k, v in value.items()}
    if isinstance(value, list):
        if level > depth:
            return " ".join(str(v) for v in value)
        return [_within_depth(v, depth, level + 1) for v in value]
    return value


def _command(run: Run, text: str) -> Any:
    if match := _STRINGS.match(text):
        return _strings(match)
    if match := _GET_VMS.match(text):
        names = run.variables.get(match.group(1))
        asked = names if isinstance(names, list) else [names]
        found = []
        for name in asked:
            vm = _hyperv_vm(run, str(name), run.host, bool(match.group(2)))
            if vm is not None:
                found.append(vm)
        return found
    if match := _GET_VM.match(text):
        return _hyperv_vm(run, match.group(1), run.host, bool(match.group(2)))
    if match := _GET_VM_REMOTE.match(text):
        host = str(_expression(run, match.group(1)))
        if host.lower() not in run.state.hosts:
            raise PowerShellError(
                f"Get-VM : Hyper-V was unable to connect to the computer '{host}'."
            )
        return _hyperv_vm(run, str(_expression(run, match.group(2))), host, bool(match.group(3)))
    if match := _GET_SC_VM.match(text):
        _vmm_only(run, "Get-SCVirtualMachine")
        # VMM returns nothing (no error) for a name it does not manage.
        vm = run.state.vm(match.group(1))
        return ScVm(vm) if vm is not None else None
    raise PowerShellError(_unknown(text))


def _strings(match: re.Match[str]) -> list[str]:
    """An array of string literals, `@('A', 'B')`."""
    return [v.replace("''", "'") for v in _STRING.findall(match.group(1))]


def _hyperv_vm(run: Run, name: str, host: str, silently: bool) -> HyperVVm | None:
    vm = run.state.vm(name)
    if vm is None or vm.host.lower() != host.lower():
        if silently:
            return None
        raise PowerShellError(
            f'Get-VM : Hyper-V was unable to find a virtual machine with name "{name}".'
        )
    return vm


def _vmm_only(run: Run, cmdlet: str) -> None:
    if not run.state.is_vmm(run.host):
        raise PowerShellError(_unknown(cmdlet))


def _sc_vm(run: Run, name: str) -> HyperVVm:
    value = run.variables.get(name)
    if not isinstance(value, ScVm):
        raise PowerShellError(f"${name} is not a VM from Get-SCVirtualMachine")
    return value.vm


def _vm(run: Run, name: str) -> HyperVVm:
    value = run.variables.get(name)
    if not isinstance(value, HyperVVm):
        raise PowerShellError(f"You cannot call a method on a null-valued expression (${name}).")
    return value


def _expression(run: Run, text: str) -> Any:
    literals = {"$true": True, "$false": False, "$null": None}
    if text in literals:
        return literals[text]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"'[^']*'", text):
        return text[1:-1]
    if text == "$env:COMPUTERNAME":
        return run.state.host(run.host).name.split(".")[0].upper()
    if match := _STRINGS.match(text):
        return _strings(match)
    if match := _FOR_EACH_TABLE.match(text):
        items = run.variables.get(match.group(1))
        each = items if isinstance(items, list) else [] if items is None else [items]
        tables = []
        for item in each:
            run.variables["_"] = item
            tables.append(_table(run, match.group(2)))
        run.variables.pop("_", None)
        return tables
    if match := re.fullmatch(r"\$(\w+)\.Name", text):
        value = run.variables.get(match.group(1))
        return value.vm.name if isinstance(value, ScVm) else _vm(run, match.group(1)).name
    if match := re.fullmatch(r"\$(\w+)\.VMHost\.Name", text):
        return _sc_vm(run, match.group(1)).host
    if match := re.fullmatch(r"\[string\]\$(\w+)\.VirtualMachineState", text):
        return ScVm(_sc_vm(run, match.group(1))).virtual_machine_state
    if match := re.fullmatch(r"@\(Get-SCVMCheckpoint\s+-VM\s+\$(\w+)\)\.Count", text):
        _vmm_only(run, "Get-SCVMCheckpoint")
        return _sc_vm(run, match.group(1)).checkpoints
    if match := re.fullmatch(r"@\(\$(\w+)\.VirtualNetworkAdapters\.VirtualNetwork\)", text):
        return list(_sc_vm(run, match.group(1)).switches)
    if re.fullmatch(r"@\(Get-SCVirtualMachine\s*\|\s*ForEach-Object\s*\{\s*\$_\.Name\s*\}\)", text):
        _vmm_only(run, "Get-SCVirtualMachine")
        return [vm.name for vm in run.state.vms.values()]
    if re.fullmatch(r"@\(Get-SCVMHost\s*\|\s*ForEach-Object\s*\{\s*\$_\.Name\s*\}\)", text):
        _vmm_only(run, "Get-SCVMHost")
        return [h.name for h in run.state.hosts.values()]
    if match := re.fullmatch(r"\[string\]\$(\w+)\.Heartbeat", text):
        # A property of $null is $null, and [string]$null is '' (a VM VMM knows, read on a host
        # that does not have it: the answer is empty, not an error).
        if run.variables.get(match.group(1)) is None:
            return ""
        return _vm(run, match.group(1)).heartbeat(run.state.clock())
    if match := re.fullmatch(r"\[string\]\$(\w+)\.(Id|State|Heartbeat)", text):
        vm = _vm(run, match.group(1))
        field_name = match.group(2)
        if field_name == "Id":
            return vm.vm_id
        if field_name == "State":
            return vm.state
        return vm.heartbeat(run.state.clock())
    if match := re.fullmatch(r"@\(Get-VMSnapshot\s+-VM\s+\$(\w+)\)\.Count", text):
        return _vm(run, match.group(1)).checkpoints
    if match := re.fullmatch(r"@\(\$(\w+)\.NetworkAdapters\.SwitchName\)", text):
        return list(_vm(run, match.group(1)).switches)
    if re.fullmatch(r"@\(Get-VMSwitch\s*\|\s*ForEach-Object\s*\{\s*\$_\.Name\s*\}\)", text):
        return list(run.state.host(run.host).switches)
    if re.fullmatch(r"@\(Get-VM\s*\|\s*ForEach-Object\s*\{\s*\$_\.Name\s*\}\)", text):
        return [vm.name for vm in run.state.vms_on(run.host)]
    raise PowerShellError(_unknown(text))


def _unknown(text: str) -> str:
    term = text.split()[0] if text.split() else text
    return (
        f"The term '{term}' is not recognized as the name of a cmdlet, function, script file, or "
        "operable program (the lab's Hyper-V host stand-in runs only what lab/hyperv_host/"
        "powershell.py lists)."
    )
