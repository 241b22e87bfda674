"""Waiting for the commit approval: shared by the machine and the plan workflows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

from domain.models import Approval, ApprovalPolicy


async def wait_for_approval(
    current: Callable[[], Approval | None],
    stop: Callable[[], bool],
    policy: ApprovalPolicy,
    remind: Callable[[float], None],
    auto_undo: Callable[[float], None] | None = None,
) -> Approval | None:
    """Return the approval (a human's, or the opt-in auto-commit policy's), or None if `stop`
    ended the wait first. Reminds every `policy.reminder_every_seconds` while it waits. With
    the opt-in auto-undo policy, `auto_undo` is called when its time is up (it must make `stop`
    true)."""
    started = workflow.now()
    reminder_every = timedelta(seconds=policy.reminder_every_seconds)
    next_reminder = started + reminder_every
    automatic = policy.auto_commit_after_seconds or (
        policy.auto_undo_after_seconds if auto_undo is not None else None
    )
    auto_commit_at = started + timedelta(seconds=automatic) if automatic is not None else None
    while current() is None and not stop():
        wake = min(next_reminder, auto_commit_at) if auto_commit_at else next_reminder
        try:
            await workflow.wait_condition(
                lambda: current() is not None or stop(),
                timeout=max(wake - workflow.now(), timedelta(milliseconds=1)),
            )
        except TimeoutError:
            now = workflow.now()
            if auto_commit_at is not None and now >= auto_commit_at:
                if policy.auto_commit_after_seconds is None:
                    assert auto_undo is not None
                    auto_undo((now - started).total_seconds())
                    return None
                return Approval(
                    approved_by=f"auto-commit policy ({policy.auto_commit_after_seconds / 60:g} "
                    "min)",
                    comment="no human approval within the configured time; the operator opted "
                    "in to auto-commit when starting the failback",
                    approved_at=now,
                )
            if now >= next_reminder:
                remind((now - started).total_seconds())
                next_reminder += reminder_every
    return current()
