"""Tells, in the worker's log, when the workers on its task queue claim more of a principal's
ARM budgets than there is (domain/budget_shares.py): `--scale worker=N` with the share left at 1."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from domain.budget_shares import OverdrawWatch, budget_identity, overdrawn_budgets
from worker.settings import Settings
from worker.task_queue import POLLER_SEEN_WITHIN, polling_identities

logger = logging.getLogger(__name__)

# A finding is told once it has held for POLLER_SEEN_WITHIN, longer than a stopped worker stays
# listed (OverdrawWatch).
CHECK_EVERY = timedelta(seconds=60)


def arm_principal(settings: Settings) -> str:
    """The principal ARM counts this worker's requests against, as far as the worker can name
    it: the lab's stand-in, else AZURE_CLIENT_ID (a service principal, workload identity or
    user-assigned managed identity); workers with neither are taken to share one."""
    return settings.azure_lab_client_id or os.environ.get("AZURE_CLIENT_ID") or "default"


def worker_identity(settings: Settings) -> str:
    """The SDK's own identity (pid@host) with this worker's principal and budget share."""
    return budget_identity(
        f"{os.getpid()}@{socket.gethostname()}", arm_principal(settings), settings.arm_budget_share
    )


async def watch_budget_shares(
    client: Client,
    task_queue: str,
    every: timedelta = CHECK_EVERY,
    settle: timedelta = POLLER_SEEN_WITHIN,
) -> None:
    """Checks `every` so often until cancelled, and tells a finding that has held for `settle`;
    an unanswered check is skipped, never fatal."""
    watch = OverdrawWatch(settle_seconds=settle.total_seconds())
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            identities = await polling_identities(client, task_queue, datetime.now(UTC))
        except RPCError as err:
            logger.info("could not list the workers on %s for ARM's budgets: %s", task_queue, err)
            continue
        for overdrawn in watch.to_tell(overdrawn_budgets(identities), loop.time()):
            logger.warning("ARM budgets overdrawn on %s: %s", task_queue, overdrawn.advice())
