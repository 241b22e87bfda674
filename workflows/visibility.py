"""What the Web UI shows of a failback: its search attributes, sent once per workflow task."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate


class SearchAttributeBatcher:
    """Upserts gathered and sent once per workflow task.

    Each upsert is a history event and a visibility write: ~5 ms of the server's CPU, half an
    activity's (bench/RESULTS.md). A plan's machine sends three in its first task (labels,
    discovering, failing-over). The Web UI sees a workflow as it is at the end of a task, so the
    updates are gathered and sent by a callback that runs once the task's code has gone as far
    as it can; a terminal phase is sent at once, before the workflow's own end."""

    def __init__(self) -> None:
        self._unsent: dict[str, SearchAttributeUpdate[Any]] = {}
        self._scheduled = False

    def set(self, updates: list[SearchAttributeUpdate[Any]], at_once: bool = False) -> None:
        for update in updates:
            self._unsent[update.key.name] = update
        if at_once:
            self._send()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        if self._unsent:
            workflow.upsert_search_attributes(list(self._unsent.values()))
            self._unsent.clear()
