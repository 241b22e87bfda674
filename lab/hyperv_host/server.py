"""Serving the Hyper-V host stand-in over HTTPS with the lab's certificate: in a thread for tests
and in-process use, or as its own process (`python -m lab.hyperv_host`)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import web

from lab.hyperv_host.app import StandIn, build_app
from lab.hyperv_host.state import HostState


@dataclass(frozen=True)
class HostConfig:
    state: HostState
    cert: Path
    key: Path
    username: str
    password: str
    host: str = "127.0.0.1"
    port: int = 0


@dataclass
class RunningStandIn:
    stand_in: StandIn
    # Each host's WinRM endpoint: https://ADDRESS:PORT/wsman.
    ports: dict[str, int]
    runners: list[web.AppRunner]

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def start_stand_in(config: HostConfig) -> RunningStandIn:
    """Every host of the state (and its VMM server) on a port of its own (`config.port` for the
    first; 0: any)."""
    stand_in = StandIn(config.state, config.username, config.password)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config.cert, config.key)
    running = RunningStandIn(stand_in, {}, [])
    try:
        for index, name in enumerate(config.state.endpoints()):
            runner = web.AppRunner(build_app(stand_in, name), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            running.runners.append(runner)
            port = config.port if index == 0 else 0
            await web.TCPSite(runner, config.host, port, ssl_context=tls).start()
            running.ports[name] = int(runner.addresses[0][1])
    except BaseException:
        await running.stop()
        raise
    return running


class HostStandInThread:
    """The stand-in on its own event loop in a daemon thread (WinRM clients block)."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.running: RunningStandIn | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def url(self, host: str) -> str:
        """Host `host`'s WinRM endpoint."""
        assert self.running is not None, "not started"
        return f"https://{self.config.host}:{self.running.ports[host]}/wsman"

    def start(self, timeout: float = 10.0) -> HostStandInThread:
        started: Future[None] = Future()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def boot() -> None:
                self.running = await start_stand_in(self.config)

            try:
                loop.run_until_complete(boot())
            except BaseException as err:
                started.set_exception(err)
                return
            started.set_result(None)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="hyperv-host", daemon=True)
        self._thread.start()
        started.result(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, running = self._loop, self.running
        if loop is None or running is None:
            return
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> HostStandInThread:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
