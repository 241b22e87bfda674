"""A workflow that reaches for the clock and for randomness, for tests/workflows/test_sandbox.py."""

from __future__ import annotations

import random
from datetime import datetime

from temporalio import workflow
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError


@workflow.defn(sandboxed=True)
class TriesNonDeterminism:
    @workflow.run
    async def run(self) -> list[str]:
        refused = []
        for name, call in (("clock", datetime.now), ("random", random.random)):
            try:
                call()
            except RestrictedWorkflowAccessError:
                refused.append(name)
        return refused
