"""The CLI's side of the workflow tests that call starter.commands directly: its own connection
to Temporal, a worker too busy to answer it, and what it sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from starter import commands


async def cli_client(env: WorkflowEnvironment) -> Client:
    """A connection of its own, as the CLI's process has: a status query the server gives up on
    must not take the test's connection with it."""
    config = env.client.config()
    return await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=config["data_converter"],
    )


def worker_too_busy_to_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A status deadline no worker can meet stands for the worker too busy to answer (at 10,000
    machines on two cores no query was answered within the CLI's 15 s)."""
    monkeypatch.setattr(commands, "QUERY_TIMEOUT", timedelta(milliseconds=1))


def signals_in(history: WorkflowHistory) -> list[str]:
    """The signals a failback was sent, in order."""
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
