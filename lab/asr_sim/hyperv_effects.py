"""What the simulated Hyper-V failback does on-premises, as ASR's provider on the host would:
look at the VM, create it at an alternate location, start it. In the lab that happens on the
Hyper-V host stand-in (lab/hyperv_host) through its control plane, over HTTPS with the lab's CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.error
import urllib.request
from typing import Any


class HostEffectError(Exception):
    """The host refused or could not be reached; the message is shown in the ASR job."""


class HyperVHostEffects:
    """The stand-in's control plane at `url` (any of its hosts' addresses)."""

    def __init__(self, url: str | None, ca_file: str | None = None) -> None:
        self.url = url.rstrip("/") if url else None
        self._tls = ssl.create_default_context(cafile=ca_file) if ca_file else None
        # Every effect asked for, in order (GET /_lab/state shows them).
        self.calls: list[dict[str, Any]] = []

    async def find_vm(self, name: str) -> dict[str, Any] | None:
        state = await self._call("GET", "/_lab/state")
        return next((v for v in state["vms"] if v["name"].lower() == name.lower()), None)

    async def start_vm(self, name: str) -> None:
        self.calls.append({"action": "start", "vm": name})
        await self._call("POST", f"/_lab/vms/{name}/start")

    async def stop_vm(self, name: str) -> None:
        self.calls.append({"action": "stop", "vm": name})
        await self._call("POST", f"/_lab/vms/{name}/stop")

    async def create_vm(self, name: str, host: str, switches: list[str]) -> None:
        self.calls.append({"action": "create", "vm": name, "host": host})
        await self._call("POST", "/_lab/vms", {"name": name, "host": host, "switches": switches})

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if self.url is None:
            raise HostEffectError("the lab has no Hyper-V host (no hyperv section in its scenario)")
        return await asyncio.to_thread(self._blocking, method, path, body)

    def _blocking(self, method: str, path: str, body: Any) -> Any:
        assert self.url is not None
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(request, context=self._tls, timeout=30) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("error", detail)
            raise HostEffectError(str(detail)) from err
        except OSError as err:
            raise HostEffectError(f"the Hyper-V host does not answer ({err})") from err
