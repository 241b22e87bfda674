"""Starting and stopping the simulator: in the caller's event loop or in a background thread."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from aiohttp import web

from lab.asr_sim.app import TokenIssuer, build_app
from lab.asr_sim.effects import (
    PyVmomiVCenterEffects,
    RecordingVCenterEffects,
    VCenterEffects,
    VCenterTarget,
)
from lab.asr_sim.hyperv_effects import HyperVHostEffects
from lab.asr_sim.state import SimulatorState
from lab.identity import LabIdentityProvider
from lab.scenario import Scenario


@dataclass(frozen=True)
class SimulatorConfig:
    scenario: Scenario
    cert: Path
    key: Path
    token_secret: str = field(repr=False)
    host: str = "127.0.0.1"
    # 0: any free port; RunningSimulator.url tells which one.
    port: int = 0
    # Where failover effects go; None: recorded only (no vCenter).
    vcenter: VCenterTarget | None = None
    # Overrides `vcenter`, e.g. a RecordingVCenterEffects a test wants to inspect.
    effects: VCenterEffects | None = None
    token_lifetime_seconds: int = 3600
    # The Hyper-V host stand-in's control plane (a hyperv scenario), and the CA it is signed by.
    hyperv_url: str | None = None
    ca: Path | None = None
    # Walk every JSON answer against the SDK's models and keep what real ASR would not send
    # (GET /_lab/schema). On when FAILBACK_SIM_SCHEMA_CHECK=1, as the test suite sets it.
    schema_check: bool = field(
        default_factory=lambda: os.environ.get("FAILBACK_SIM_SCHEMA_CHECK") == "1"
    )


def parse_vcenter_url(url: str, user: str, password: str) -> VCenterTarget:
    """`https://127.0.0.1:8989/sdk` -> host and port for the vSphere client."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"--vcenter-url must look like https://HOST:PORT/sdk, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return VCenterTarget(host=parts.hostname, port=port, user=user, password=password)


@dataclass
class RunningSimulator:
    url: str
    host: str
    port: int
    state: SimulatorState
    _runner: web.AppRunner

    async def stop(self) -> None:
        await self.state.aclose()
        await self._runner.cleanup()


async def start_simulator(config: SimulatorConfig) -> RunningSimulator:
    """Serve the simulator on the running event loop until `stop()`."""
    effects = config.effects
    if effects is None:
        effects = (
            PyVmomiVCenterEffects(config.vcenter)
            if config.vcenter is not None
            else RecordingVCenterEffects()
        )
    vcenter_address = (config.vcenter.host, config.vcenter.port) if config.vcenter else None
    state = SimulatorState(
        config.scenario,
        effects,
        vcenter_address=vcenter_address,
        hyperv_effects=HyperVHostEffects(
            config.hyperv_url, str(config.ca) if config.ca is not None else None
        ),
    )
    state.schema_check = config.schema_check
    app = build_app(
        state,
        TokenIssuer(config.token_secret, config.token_lifetime_seconds),
        LabIdentityProvider(config.token_secret),
    )

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config.cert, config.key)

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=tls)
        await site.start()
        port = int(runner.addresses[0][1])
    except BaseException:
        await runner.cleanup()
        raise
    return RunningSimulator(
        url=f"https://{config.host}:{port}",
        host=config.host,
        port=port,
        state=state,
        _runner=runner,
    )


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for synchronous callers.

    The Azure SDK's synchronous clients block; sharing their thread with the simulator's loop
    would deadlock, hence the thread. Use as a context manager or call start()/stop().
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: RunningSimulator | None = None

    @property
    def url(self) -> str:
        return self._started().url

    @property
    def state(self) -> SimulatorState:
        """Only for reading in tests; the simulator's loop mutates it concurrently."""
        return self._started().state

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        started: Future[RunningSimulator] = Future()
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    started.set_result(await start_simulator(self._config))
                except BaseException as err:
                    started.set_exception(err)

            loop.run_until_complete(boot())
            if started.exception() is None:
                loop.run_forever()
            loop.close()

        thread = threading.Thread(target=serve, name="asr-simulator", daemon=True)
        thread.start()
        self._running = started.result(timeout=timeout)
        self._loop = loop
        self._thread = thread
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, running, thread = self._loop, self._running, self._thread
        if loop is None or running is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout=timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=timeout)
        self._loop = self._running = self._thread = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _started(self) -> RunningSimulator:
        if self._running is None:
            raise RuntimeError("the simulator thread is not running; call start() first")
        return self._running
