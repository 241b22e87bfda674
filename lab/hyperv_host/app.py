"""The Hyper-V host stand-in's HTTP side: Windows Remote Management (WS-Management over HTTPS,
Basic authentication) as a Windows host answers a remote shell, so that a real WinRM client
library (pywinrm) runs against it unmodified; and the lab's control plane (`/_lab/...`), through
which ASR's simulator does what the real provider does to the host.

One stand-in serves every host of the site, each on a port of its own as `https://ADDRESS:PORT/wsman`
(a real host's is `https://HOST:5986/wsman`); the control plane answers on each of them.

WS-Management shell: Create (a shell), Command (powershell -encodedcommand ...), Receive (its
output, then CommandState Done with the exit code), Signal (terminate), Delete (the shell). A
request that is not one of these is answered with a SOAP fault, as WinRM does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lab.hyperv_host.powershell import run_script
from lab.hyperv_host.state import HostError, HostState

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
NS = {"s": SOAP, "a": ADDRESSING, "w": WSMAN, "rsp": SHELL}
ACTIONS = {
    f"{TRANSFER}/Create": "create",
    f"{SHELL}/Command": "command",
    f"{SHELL}/Receive": "receive",
    f"{SHELL}/Signal": "signal",
    f"{TRANSFER}/Delete": "delete",
}
CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
STATE_KEY = web.AppKey("hyperv_host", object)
HOST_KEY = web.AppKey("hyperv_host_name", str)


@dataclass
class Command:
    stdout: bytes
    stderr: bytes
    exit_code: int
    received: bool = False


@dataclass
class Shell:
    host: str
    commands: dict[str, Command] = field(default_factory=dict)


@dataclass
class StandIn:
    state: HostState
    username: str
    password: str
    shells: dict[str, Shell] = field(default_factory=dict)
    # Every WinRM request, for tests and GET /_lab/journal.
    journal: list[dict[str, Any]] = field(default_factory=list)


# A WinRM shell runs its command through cmd.exe, whose command line holds 8,191 characters:
# `powershell -encodedcommand` with a script of more than about 3,000 characters fails so
# (diyan/pywinrm#184, WinRb/WinRM#41).
COMMAND_LINE_LIMIT = 8191


def build_app(stand_in: StandIn, host: str) -> web.Application:
    """Host `host`'s WinRM endpoint, and the lab's control plane over the whole site."""
    app = web.Application()
    app[STATE_KEY] = stand_in
    app[HOST_KEY] = host
    app.router.add_post("/wsman", wsman)
    app.router.add_get("/_lab/state", lab_state)
    app.router.add_get("/_lab/journal", lab_journal)
    app.router.add_post("/_lab/vms/{name}/start", lab_start)
    app.router.add_post("/_lab/vms/{name}/stop", lab_stop)
    app.router.add_post("/_lab/vms", lab_create)
    return app


def _stand_in(request: web.Request) -> StandIn:
    stand_in = request.app[STATE_KEY]
    assert isinstance(stand_in, StandIn)
    return stand_in


# --- WS-Management -------------------------------------------------------------------------------


async def wsman(request: web.Request) -> web.Response:
    stand_in = _stand_in(request)
    host = request.app[HOST_KEY]
    if not _authorized(request, stand_in):
        return web.Response(
            status=401, headers={"WWW-Authenticate": 'Basic realm="WSMAN"'}, text=""
        )
    body = await request.read()
    try:
        envelope = ET.fromstring(body)
    except ET.ParseError:
        return _fault("", "s:Sender", "w:SchemaValidationError", "The request is not XML.")
    action = envelope.findtext("s:Header/a:Action", default="", namespaces=NS).strip()
    message_id = envelope.findtext("s:Header/a:MessageID", default="", namespaces=NS).strip()
    shell_id = envelope.findtext(
        "s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", default="", namespaces=NS
    ).strip()
    kind = ACTIONS.get(action)
    stand_in.journal.append({"host": host, "action": kind or action, "shell": shell_id})
    if kind is None:
        return _fault(
            message_id, "s:Sender", "a:ActionNotSupported", f"The action {action} is not supported."
        )
    if kind == "create":
        new_id = str(uuid.uuid4()).upper()
        stand_in.shells[new_id] = Shell(host=host)
        return _answer(
            f"{TRANSFER}/CreateResponse",
            message_id,
            f'<x:ResourceCreated xmlns:x="{TRANSFER}"><a:Address>{request.url}</a:Address>'
            "<a:ReferenceParameters><w:ResourceURI>"
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{new_id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{new_id}</rsp:ShellId></rsp:Shell>",
        )
    shell = stand_in.shells.get(shell_id)
    if shell is None:
        return _fault(
            message_id, "s:Sender", "w:InvalidSelectors", "The shell was not found on the server."
        )
    if kind == "command":
        return _command(stand_in, shell, envelope, message_id)
    if kind == "receive":
        return _receive(shell, envelope, message_id)
    if kind == "signal":
        command_id = envelope.find("s:Body/rsp:Signal", NS)
        if command_id is not None:
            shell.commands.pop(command_id.get("CommandId", ""), None)
        return _answer(f"{SHELL}/SignalResponse", message_id, "<rsp:SignalResponse/>")
    stand_in.shells.pop(shell_id, None)
    return _answer(f"{TRANSFER}/DeleteResponse", message_id, "")


def _authorized(request: web.Request, stand_in: StandIn) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user, stand_in.username) and hmac.compare_digest(
        password, stand_in.password
    )


def _command(
    stand_in: StandIn, shell: Shell, envelope: ET.Element, message_id: str
) -> web.Response:
    line = envelope.findtext("s:Body/rsp:CommandLine/rsp:Command", default="", namespaces=NS)
    arguments = envelope.findtext("s:Body/rsp:CommandLine/rsp:Arguments", default="", namespaces=NS)
    text = f"{line} {arguments}".strip()
    match = re.fullmatch(r"(?i)powershell(?:\.exe)?\s+-encodedcommand\s+(\S+)", text)
    if len(text) > COMMAND_LINE_LIMIT:
        result = Command(b"", b"The command line is too long.\r\n", 1)
    elif match is None:
        name = text.split()[0] if text else ""
        result = Command(
            b"",
            f"'{name}' is not recognized as an internal or external command.\r\n".encode(),
            1,
        )
    else:
        try:
            script = base64.b64decode(match.group(1)).decode("utf-16-le")
        except (binascii.Error, UnicodeDecodeError):
            script = None
        if script is None:
            result = Command(
                b"",
                b"Cannot process the command because the value is not Base64 encoded UTF-16.\r\n",
                1,
            )
        else:
            out, err, code = run_script(script, stand_in.state, shell.host)
            result = Command(out.encode(), err.encode(), code)
    command_id = str(uuid.uuid4()).upper()
    shell.commands[command_id] = result
    return _answer(
        f"{SHELL}/CommandResponse",
        message_id,
        f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>",
    )


def _receive(shell: Shell, envelope: ET.Element, message_id: str) -> web.Response:
    stream = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
    command_id = stream.get("CommandId", "") if stream is not None else ""
    command = shell.commands.get(command_id)
    if command is None:
        return _fault(message_id, "s:Sender", "w:InvalidParameter", "The command was not found.")
    command.received = True
    out = base64.b64encode(command.stdout).decode()
    err = base64.b64encode(command.stderr).decode()
    return _answer(
        f"{SHELL}/ReceiveResponse",
        message_id,
        "<rsp:ReceiveResponse>"
        f'<rsp:Stream Name="stdout" CommandId="{command_id}">{out}</rsp:Stream>'
        f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream>'
        f'<rsp:Stream Name="stderr" CommandId="{command_id}">{err}</rsp:Stream>'
        f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream>'
        f'<rsp:CommandState CommandId="{command_id}" '
        f'State="{SHELL}/CommandState/Done"><rsp:ExitCode>{command.exit_code}</rsp:ExitCode>'
        "</rsp:CommandState></rsp:ReceiveResponse>",
    )


def _envelope(action: str, relates_to: str, body: str) -> str:
    return (
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}" '
        f'xmlns:rsp="{SHELL}"><s:Header><a:Action>{action}</a:Action>'
        f"<a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:To>{ADDRESSING}/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )


def _answer(action: str, relates_to: str, body: str) -> web.Response:
    return web.Response(
        status=200,
        body=_envelope(action, relates_to, body).encode(),
        content_type=None,
        headers={"Content-Type": CONTENT_TYPE},
    )


def _fault(relates_to: str, code: str, subcode: str, reason: str) -> web.Response:
    body = (
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason>'
        "</s:Fault>"
    )
    return web.Response(
        status=500,
        body=_envelope(f"{ADDRESSING}/fault", relates_to, body).encode(),
        headers={"Content-Type": CONTENT_TYPE},
    )


# --- the lab's control plane (ASR's simulator acts through it) -----------------------------------


async def lab_state(request: web.Request) -> web.Response:
    state = _stand_in(request).state
    now = state.clock()
    return web.json_response(
        {
            "hosts": [{"name": h.name, "switches": h.switches} for h in state.hosts.values()],
            "vms": [
                {
                    "name": v.name,
                    "host": v.host,
                    "id": v.vm_id,
                    "state": v.state,
                    "heartbeat": v.heartbeat(now),
                    "checkpoints": v.checkpoints,
                    "switches": v.switches,
                }
                for v in state.vms.values()
            ],
            "events": state.events,
        }
    )


async def lab_journal(request: web.Request) -> web.Response:
    return web.json_response(_stand_in(request).journal)


async def lab_start(request: web.Request) -> web.Response:
    return _act(request, lambda s, name: s.start(name))


async def lab_stop(request: web.Request) -> web.Response:
    return _act(request, lambda s, name: s.stop(name))


def _act(request: web.Request, do: Any) -> web.Response:
    state = _stand_in(request).state
    try:
        do(state, request.match_info["name"])
    except HostError as err:
        return web.json_response({"error": str(err)}, status=409)
    return web.json_response({"ok": True})


async def lab_create(request: web.Request) -> web.Response:
    state = _stand_in(request).state
    data = await request.json()
    try:
        vm = state.create(str(data["name"]), str(data["host"]), list(data.get("switches", [])))
    except (HostError, KeyError) as err:
        return web.json_response({"error": str(err)}, status=409)
    return web.json_response({"name": vm.name, "host": vm.host, "id": vm.vm_id})
