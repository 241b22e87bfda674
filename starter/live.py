"""`failback status`: a failback drawn with rich, once or live until it ends.

The renderables are built from the same FailbackView the report uses, so the status view and the
report cannot tell two stories. User-supplied text (approval comments, notes) goes into rich
`Text` objects, never into markup, so a comment like "[red]" is shown as written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from domain.models import MachineStatus, Phase, PlanStatus
from domain.operations import AsrOperation
from starter.report import (
    NOT_STARTED,
    PHASE_COLOURS,
    FailbackView,
    MachineView,
    duration,
    when,
)

REFRESH_SECONDS = 1.0
SHORT_OPERATIONS = {
    AsrOperation.UNPLANNED_FAILOVER: "failover",
    AsrOperation.FAILOVER_COMMIT: "commit",
    AsrOperation.REPROTECT_TO_AZURE: "reprotect",
}


def _phase(phase: str) -> Text:
    colour = PHASE_COLOURS.get(phase)
    return Text(phase, style=f"bold {colour}" if colour else "bold")


def _clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S") if moment else "-"


def _facts() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def _point_text(status: MachineStatus) -> Text:
    point = status.recovery_point
    if point is None:
        return Text("not chosen yet", style="dim")
    if point.asked_as == "AzureVmDisks":
        return Text(
            "none asked: Hyper-V copies the Azure VM's disks as they are when it shuts down "
            "(nothing written in Azure is lost)"
        )
    return Text.assemble(
        (point.chosen.id, "cyan"),
        f"\n{when(point.chosen.time)} ({point.chosen.type}); latest {when(point.latest.time)}; ",
        ("data-loss window ", "bold"),
        duration(point.data_loss_window_seconds),
    )


def _sync_text(status: MachineStatus) -> Text:
    """Hyper-V: the two phases of a for-downtime failback, and the downtime taken."""
    if status.data_sync == "for-downtime":
        text = Text(
            "for-downtime: synchronized while the Azure VM ran"
            + (f" (done {when(status.synchronized_at)})" if status.synchronized_at else "")
            + "; then the cut-over"
        )
        if status.cutover is not None:
            text.append(f" given by {status.cutover.cut_over_by} at {when(status.cutover.at)}")
    else:
        text = Text("for-synchronization: the Azure VM shut down at once, a full download")
    if status.downtime_seconds is not None:
        text.append("\ndowntime taken: ", style="bold")
        text.append(f"{duration(status.downtime_seconds)} (Azure VM off -> VM up on-premises)")
    return text


def _jobs_text(status: MachineStatus) -> Text:
    if not status.operations:
        return Text("none finished yet", style="dim")
    text = Text()
    for index, op in enumerate(status.operations):
        if index:
            text.append("\n")
        text.append(f"{op.operation:<18}")
        text.append(op.job_id or "(already done)", style="cyan")
        text.append(f"  {op.state}", style="green" if op.state == "Succeeded" else "yellow")
        text.append(f"  {_clock(op.started_at)} -> {_clock(op.ended_at)}")
        if op.resumed:
            text.append("  (resumed, not sent again)", style="dim")
    return text


def _verification_text(status: MachineStatus) -> Text:
    verification = status.verification
    if verification is None:
        return Text("not yet", style="dim")
    onprem, azure = verification.onprem, verification.azure
    text = Text.assemble(
        ("passed" if verification.passed else "FAILED", "green" if verification.passed else "red"),
        f" at {when(verification.checked_at)}\n",
    )
    if onprem.platform == "hyperv":
        text.append(
            f"on-premises {onprem.vm_name} on Hyper-V host {onprem.host or '-'}: "
            + (
                f"{onprem.power_state}, heartbeat {onprem.heartbeat or 'no contact'}\n"
                if onprem.found
                else "not found\n"
            )
        )
    elif onprem.found:
        text.append(
            f"on-premises {onprem.vm_name}: {onprem.power_state}, VMware Tools "
            f"{onprem.tools_running_status or 'unknown'}, host {onprem.host or '-'}\n"
        )
    else:
        text.append(f"on-premises {onprem.vm_name}: not found in vCenter\n")
    where = f"{azure.resource_group}/{azure.name}"
    text.append(
        f"Azure VM {where}: {azure.power_state or 'unknown'}"
        if azure.exists
        else f"Azure VM {where}: does not exist"
    )
    for problem in verification.problems:
        text.append(f"\n{problem}", style="red")
    return text


def _approval_text(status: MachineStatus | PlanStatus) -> Text:
    approval = status.approval
    text = (
        Text.assemble(
            ("approved by ", "green"),
            (approval.approved_by, "bold green"),
            f" at {when(approval.approved_at)}",
            f": {approval.comment}" if approval.comment else "",
        )
        if approval is not None
        else Text("not approved yet", style="dim")
    )
    for refused in status.rejected_approvals:
        text.append(
            f"\nrefused: {refused.approved_by} at {when(refused.received_at)} "
            f"({refused.phase}): {refused.reason}",
            style="yellow",
        )
    return text


def _phases_text(status: MachineStatus) -> Text:
    text = Text()
    for index, change in enumerate(status.history):
        if index:
            text.append(" > ", style="dim")
        text.append(f"{_clock(change.at)} ")
        text.append_text(_phase(str(change.phase)))
    return text


def machine_renderable(machine: MachineView) -> RenderableType:
    grid = _facts()
    grid.add_row(
        "machine",
        Text.assemble(
            (machine.vm_name, "bold"),
            f"  ({machine.workflow_id}, {machine.execution})",
        ),
    )
    status = machine.status
    if status is None:
        grid.add_row(
            "phase",
            Text(
                "not started: its boot group has not been reached"
                if machine.execution == NOT_STARTED
                else f"{machine.execution}; its status cannot be read",
                style="dim",
            ),
        )
        return grid
    grid.add_row("phase", _phase(str(status.phase)))
    grid.add_row("waiting for", Text(status.waiting_for))
    if machine.attention:
        grid.add_row("needs a person", Text(machine.attention, style="bold yellow"))
    grid.add_row("recovery point", _point_text(status))
    if status.data_sync is not None:
        grid.add_row("data sync", _sync_text(status))
    grid.add_row("ASR jobs", _jobs_text(status))
    grid.add_row("verification", _verification_text(status))
    grid.add_row("approval", _approval_text(status))
    if status.agent_wait is not None:
        wait = status.agent_wait
        grid.add_row(
            "mobility agent",
            Text(
                f"{wait.checks} check(s) since {when(wait.started_at)}; "
                + (
                    f"registered at {when(wait.registered_at)}"
                    if wait.registered_at
                    else "not registered yet"
                )
            ),
        )
    grid.add_row("phases", _phases_text(status))
    if machine.summary:
        grid.add_row("result", Text(machine.summary))
    if status.error:
        grid.add_row("error", Text(status.error, style="bold red"))
    return grid


def _plan_header(view: FailbackView, plan: PlanStatus) -> Table:
    grid = _facts()
    grid.add_row(
        "recovery plan",
        Text.assemble((plan.recovery_plan, "bold"), f"  ({view.workflow_id}, {view.execution})"),
    )
    grid.add_row("phase", _phase(plan.phase))
    grid.add_row("waiting for", Text(plan.waiting_for))
    if view.progress:
        grid.add_row("progress", Text(view.progress.removeprefix("initial replication: ")))
    if plan.replication is not None:
        waited = int(plan.replication.waited_seconds)
        grid.add_row(
            "initial replication",
            Text(
                f"done in {waited // 60} min {waited % 60} s "
                f"({len(plan.replication.items)} machines)"
            ),
        )
    if plan.recovery_points is not None:
        grid.add_row("recovery points", Text(plan.recovery_points.policy))
    grid.add_row("approval", _approval_text(plan))
    if view.summary:
        grid.add_row("result", Text(view.summary))
    for name, why in sorted(plan.failed.items()):
        grid.add_row("failed", Text(f"{name}: {why}", style="red"))
    if plan.error:
        grid.add_row("error", Text(plan.error, style="bold red"))
    return grid


def _machines_table(plan: PlanStatus, machines: list[MachineView]) -> Table:
    """One table for the whole plan, a section per boot group, so the columns line up. Job ids
    are left to each machine's own view (`failback status MACHINE-ID`): they would crowd out
    what the plan's rows are for, where each machine is."""
    table = Table(expand=True)
    table.add_column("", no_wrap=True)
    table.add_column("machine", no_wrap=True)
    table.add_column("phase", no_wrap=True)
    table.add_column("waiting for / error", overflow="fold", ratio=1)
    table.add_column("recovery point (UTC)", no_wrap=True)
    table.add_column("data loss", no_wrap=True)
    table.add_column("ASR jobs", no_wrap=True)
    for group in range(1, plan.boot_groups + 1):
        current = "\n(current)" if plan.current_boot_group == group else ""
        members = [m for m in machines if m.boot_group == group]
        for index, machine in enumerate(members):
            label = f"boot group {group}{current}" if index == 0 else ""
            table.add_row(label, machine.vm_name, *_machine_cells(machine))
        table.add_section()
    return table


# Below this many columns the table's columns fold into unreadable slivers.
WIDE_TABLE_COLUMNS = 120


class _PlanMachines:
    """The plan's machines by boot group: a table when the terminal is wide, lines when not."""

    def __init__(self, plan: PlanStatus, machines: list[MachineView]) -> None:
        self.plan = plan
        self.machines = machines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width >= WIDE_TABLE_COLUMNS:
            yield _machines_table(self.plan, self.machines)
            return
        for group in range(1, self.plan.boot_groups + 1):
            current = " (current)" if self.plan.current_boot_group == group else ""
            yield Text(f"boot group {group}{current}", style="bold")
            for machine in (m for m in self.machines if m.boot_group == group):
                yield _machine_lines(machine)


def _machine_lines(machine: MachineView) -> Text:
    text = Text("  ")
    text.append(f"{machine.vm_name:<16}", style="bold")
    status = machine.status
    if status is None:
        text.append("not started", style="dim")
        return text
    text.append_text(_phase(str(status.phase)))
    wait = _plan_member_wait(status)
    wait.pad_left(4)
    text.append("\n")
    text.append_text(wait)
    point = status.recovery_point
    if point is not None:
        text.append(
            f"\n    point {when(point.chosen.time)} ({point.chosen.type}), data loss "
            f"{duration(point.data_loss_window_seconds)}"
        )
    if status.verification is not None:
        passed = status.verification.passed
        text.append("\n    verification ")
        text.append("passed" if passed else "failed", "green" if passed else "red")
    for op in status.operations:
        name = SHORT_OPERATIONS.get(op.operation, op.operation)
        text.append(f"\n    {name} {op.job_id or '-'} {op.state}")
    return text


POINT_TYPES = {"ApplicationConsistent": "app-consistent", "CrashConsistent": "crash-consistent"}


def _plan_member_wait(status: MachineStatus) -> Text:
    if status.error:
        return Text(status.error, style="red")
    if status.phase == Phase.AWAITING_APPROVAL:
        # The machine's own words say "run `failback approve`"; in a plan, the plan is approved.
        return Text("waiting for the plan's commit approval")
    return Text(status.waiting_for)


def _machine_cells(machine: MachineView) -> list[RenderableType]:
    status = machine.status
    if status is None:
        return [Text("not started", style="dim"), "", "", "", ""]
    phase = _phase(str(status.phase))
    verification = status.verification
    if verification is not None:
        phase.append("\nverified" if verification.passed else "\nverification failed")
        phase.stylize("green" if verification.passed else "red", len(str(status.phase)))
    point = status.recovery_point
    return [
        phase,
        _plan_member_wait(status),
        (
            f"{point.chosen.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}\n"
            f"{POINT_TYPES.get(point.chosen.type, point.chosen.type)}"
        )
        if point
        else "-",
        duration(point.data_loss_window_seconds) if point else "-",
        "\n".join(
            f"{SHORT_OPERATIONS.get(op.operation, op.operation)} {op.state}"
            for op in status.operations
        )
        or "-",
    ]


def plan_renderable(view: FailbackView) -> RenderableType:
    plan = view.plan
    if plan is None:
        return Text(
            f"recovery plan failback {view.workflow_id} ({view.execution}): its status cannot be "
            f"read{': ' + view.error if view.error else ''}"
        )
    parts: list[RenderableType] = [_plan_header(view, plan)]
    if plan.boot_groups:
        parts.append(Text(""))
        parts.append(_PlanMachines(plan, view.machines))
    started = [m for m in view.machines if m.status is not None]
    if started:
        parts.append(
            Text(f"one machine in detail: failback status {started[0].workflow_id}", style="dim")
        )
    return Group(*parts)


def failback_renderable(view: FailbackView, footer: str = "") -> RenderableType:
    body = plan_renderable(view) if view.kind == "plan" else machine_renderable(view.machines[0])
    if not footer:
        return body
    return Group(body, Text(""), Text(footer, style="dim"))


def view_json(view: FailbackView) -> dict[str, Any]:
    """`failback status --json`: the workflow's own status as before (MachineStatus, or
    PlanStatus with `machine_status`), plus `workflow_id`, `execution`, `outcome`, `summary`."""
    extra = {
        "workflow_id": view.workflow_id,
        "execution": view.execution,
        "outcome": view.outcome,
        "summary": view.summary,
    }
    if view.kind == "plan":
        data: dict[str, Any] = json.loads(view.plan.model_dump_json()) if view.plan else {}
        data["machine_status"] = {
            m.item_name: json.loads(m.status.model_dump_json())
            for m in view.machines
            if m.status is not None
        }
        return {**data, **extra}
    status = view.machines[0].status
    data = json.loads(status.model_dump_json()) if status else {"error": view.error}
    return {**data, **extra}


async def watch(
    fetch: Callable[[], Awaitable[FailbackView]],
    console: Console,
    interval: float = REFRESH_SECONDS,
) -> FailbackView:
    """Redraw every `interval` seconds until the failback ends. A failed refresh (a worker
    restarting, Temporal briefly away) is shown and retried: watching outlives such blips."""
    view = await fetch()

    def footer(problem: str) -> str:
        if view.final:
            return f"the failback has ended ({view.execution})"
        return (
            f"updated {datetime.now(UTC):%H:%M:%S} UTC; refreshing every {interval:g} s. "
            "Ctrl-C stops watching (the failback goes on)"
            + (f"\nlast refresh failed: {problem}; retrying" if problem else "")
        )

    try:
        with Live(
            failback_renderable(view, footer("")),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            while not view.final:
                await asyncio.sleep(interval)
                problem = ""
                try:
                    view = await fetch()
                except Exception as err:  # shown in the view; the next refresh tries again
                    problem = str(err) or type(err).__name__
                live.update(failback_renderable(view, footer(problem)), refresh=True)
    finally:
        # Live leaves the cursor at the end of its last line, also when Ctrl-C ends it; what
        # comes next (the prompt, the "stopped watching" line) belongs below.
        console.line()
    return view
