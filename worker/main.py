"""The worker process: polls the task queue and runs workflows and activities."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from worker.budget_watch import watch_budget_shares
from worker.decision_desk import start_desk
from worker.settings import SettingsError, load_settings
from worker.telemetry import configure_tracing, traces_exported
from worker.wiring import (
    OWN_QUEUE_SLOTS,
    READINESS_SLOTS,
    build_worker,
    connect_temporal,
    temporal_connect_hint,
)


async def run_worker() -> None:
    settings = load_settings()
    tracing = traces_exported()
    if tracing:
        configure_tracing()
    try:
        client = await connect_temporal(settings, tracing=tracing)
    except RuntimeError as err:
        # The SDK's failed connect is a plain RuntimeError: say what to check, not a traceback.
        raise SettingsError(
            f"cannot reach Temporal at {settings.temporal_address}: "
            f"{temporal_connect_hint(settings, err)}. ({err})"
        ) from err
    desk = await start_desk(settings)
    if desk is not None:
        logging.info(
            "decision desk on %s:%s", settings.decision_desk_host, settings.decision_desk_port
        )
    with (
        ThreadPoolExecutor(max_workers=settings.activity_slots) as executor,
        ThreadPoolExecutor(max_workers=OWN_QUEUE_SLOTS) as own_executor,
        ThreadPoolExecutor(max_workers=READINESS_SLOTS) as readiness_executor,
    ):
        worker = build_worker(client, settings, executor, own_executor, readiness_executor)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            # `failback lab up` waits for this line.
            logging.info(
                "worker polling task queue %s on %s", settings.task_queue, settings.temporal_address
            )
            watch = asyncio.create_task(watch_budget_shares(client, settings.task_queue))
            await stop.wait()
            watch.cancel()
    if desk is not None:
        await desk.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # azure-core logs every request and response at INFO: at plan scale that is thousands of
    # lines a minute from hundreds of threads contending for one handler (see bench/RESULTS.md).
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        asyncio.run(run_worker())
    except SettingsError as err:
        print(f"failback worker: {err}", file=sys.stderr)
        sys.exit(2)
