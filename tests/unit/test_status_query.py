"""A status query only reads: the CLI asks again when the worker failed to answer it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowQueryFailedError

from starter import commands
from starter.commands import CommandError, ask_status

DEADLOCK = "[TMPRL1101] Potential deadlock detected: workflow didn't yield within 2 second(s)."


class FlakyHandle:
    """A workflow handle whose worker fails the first `failures` queries (a fake by name)."""

    id = "failback-plan-vault-rp"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.asked = 0

    async def query(self, query: Any, rpc_timeout: Any = None) -> str:
        self.asked += 1
        if self.asked <= self.failures:
            raise WorkflowQueryFailedError(DEADLOCK)
        return "status"


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "QUERY_RETRY_SECONDS", 0.0)


def test_a_query_the_worker_failed_is_asked_again() -> None:
    handle = FlakyHandle(failures=commands.QUERY_ATTEMPTS - 1)
    assert asyncio.run(ask_status(handle, "status")) == "status"  # type: ignore[arg-type]
    assert handle.asked == commands.QUERY_ATTEMPTS


def test_a_query_that_keeps_failing_ends_in_one_clear_message() -> None:
    handle = FlakyHandle(failures=99)
    with pytest.raises(CommandError) as refused:
        asyncio.run(ask_status(handle, "status"))  # type: ignore[arg-type]
    assert handle.asked == commands.QUERY_ATTEMPTS
    words = str(refused.value)
    assert "failed 3 times" in words and "FAILBACK_MAX_CACHED_WORKFLOWS" in words
