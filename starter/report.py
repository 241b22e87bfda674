"""The failback report: what the workflows recorded, next to what ASR, vCenter and Azure say now.

Pure: models in, text out. The reads (Temporal, ASR, vCenter, Azure) are in starter/service.py,
so that everything here can be proven with hand-made models.

Formats: Markdown with the timeline embedded as an `<img src="data:image/svg+xml;base64,...">`
(one self-contained file, whether written to a file or to standard output), and a standalone
HTML page with the SVG inline.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.decisions import AZURE_VM_OFF_STATES
from domain.models import (
    Approval,
    AzureVmState,
    MachineStatus,
    OnPremVmState,
    OperationResult,
    Phase,
    PhaseChange,
    PlanPhaseChange,
    PlanStatus,
    RejectedApproval,
)
from domain.operations import AsrOperation
from domain.phases import TERMINAL_NAMES


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- what the workflows say -------------------------------------------------------------------

# Temporal's execution states, lower-case and hyphenated, plus one of ours for a plan's machines
# whose boot group has not started yet.
NOT_STARTED = "not-started"
RUNNING = "running"


class MachineView(_Model):
    """One machine's failback as its workflow records it (status None: not started yet)."""

    workflow_id: str
    machine: str
    vm_name: str
    boot_group: int | None = None
    execution: str
    status: MachineStatus | None = None
    outcome: str | None = None
    summary: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.execution not in (RUNNING, NOT_STARTED)


class FailbackView(_Model):
    """A machine's or a plan's failback: the workflow, and every machine's own record."""

    workflow_id: str
    kind: Literal["machine", "plan"]
    execution: str
    outcome: str | None = None
    summary: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan: PlanStatus | None = None
    machines: list[MachineView] = Field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.execution != RUNNING

    @property
    def title(self) -> str:
        if self.plan is not None:
            return f"recovery plan {self.plan.recovery_plan}"
        if self.machines:
            return self.machines[0].vm_name
        return self.workflow_id


# --- what the world says now ------------------------------------------------------------------


class AsrJob(_Model):
    """An ASR job as the vault shows it now."""

    job_id: str
    found: bool
    state: str | None = None
    scenario: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    errors: list[str] = Field(default_factory=list)


class Observation(_Model):
    """What ASR, vCenter and Azure said about one machine when the report was made. An error
    means that side could not be read: nothing is concluded from it."""

    machine: str
    read_at: datetime
    jobs: list[AsrJob] = Field(default_factory=list)
    asr_error: str | None = None
    onprem: OnPremVmState | None = None
    onprem_error: str | None = None
    azure: AzureVmState | None = None
    azure_error: str | None = None

    def job(self, job_id: str) -> AsrJob | None:
        return next((j for j in self.jobs if j.job_id == job_id), None)


class Disagreement(_Model):
    machine: str
    about: str
    recorded: str = Field(description="What ASR (or the workflow) says happened")
    found: str = Field(description="What the system that should show it says now")

    @property
    def text(self) -> str:
        return f"{self.recorded}, but {self.found}"


DONE_STATES = frozenset({"Succeeded", "AlreadyDone"})
FAILOVER = AsrOperation.UNPLANNED_FAILOVER
COMMIT = AsrOperation.FAILOVER_COMMIT


def _effective_state(op: OperationResult, observation: Observation) -> str:
    """ASR's state of the job now when it could be read, else what the workflow recorded."""
    if op.job_id and observation.asr_error is None:
        job = observation.job(op.job_id)
        if job is not None and job.found and job.state:
            return job.state
    return op.state


def _done(
    status: MachineStatus, observation: Observation, operation: str
) -> OperationResult | None:
    for op in status.operations:
        if op.operation == operation and _effective_state(op, observation) in DONE_STATES:
            return op
    return None


def _job_words(op: OperationResult) -> str:
    if op.job_id:
        return f"ASR's {op.operation} job {op.job_id} {op.state}"
    return f"ASR showed {op.operation} already done"


def reconcile(view: MachineView, observation: Observation | None) -> list[Disagreement]:
    """Where ASR's record of this failback and vCenter's or Azure's present state disagree.

    Each rule compares one claim with the system that should show it: a job the workflow saw
    succeed with the job in the vault, a failover with the VM in vCenter, a commit with the
    Azure VM. A side that could not be read is not evidence either way."""
    status = view.status
    if status is None or observation is None:
        return []
    vm = view.vm_name
    found: list[Disagreement] = []

    if observation.asr_error is None:
        for op in status.operations:
            if not op.job_id:
                continue
            job = observation.job(op.job_id)
            if job is None:
                continue
            if not job.found:
                found.append(
                    Disagreement(
                        machine=vm,
                        about=op.operation,
                        recorded=f"the workflow recorded {op.operation} job {op.job_id} as "
                        f"{op.state}",
                        found="the vault has no such job now",
                    )
                )
            elif job.state and job.state != op.state and op.state != "AlreadyDone":
                found.append(
                    Disagreement(
                        machine=vm,
                        about=op.operation,
                        recorded=f"the workflow recorded {op.operation} job {op.job_id} as "
                        f"{op.state}",
                        found=f"ASR says the job is {job.state} now",
                    )
                )

    failover = _done(status, observation, FAILOVER)
    commit = _done(status, observation, COMMIT)
    onprem = observation.onprem if observation.onprem_error is None else None
    azure = observation.azure if observation.azure_error is None else None

    if failover is not None and onprem is not None:
        if not onprem.found:
            found.append(
                Disagreement(
                    machine=vm,
                    about="on-premises VM",
                    recorded=_job_words(failover),
                    found=f"vCenter has no VM named {vm} now",
                )
            )
        elif onprem.power_state != "poweredOn":
            found.append(
                Disagreement(
                    machine=vm,
                    about="on-premises VM",
                    recorded=_job_words(failover),
                    found=f"vCenter says {vm} is {onprem.power_state or 'in no known state'} now",
                )
            )
        elif onprem.tools_running_status != "guestToolsRunning":
            found.append(
                Disagreement(
                    machine=vm,
                    about="on-premises guest",
                    recorded=_job_words(failover),
                    found=f"vCenter says the guest of {vm} is not up now (VMware Tools: "
                    f"{onprem.tools_running_status or 'unknown'})",
                )
            )

    if azure is not None:
        where = f"{azure.resource_group}/{azure.name}"
        if commit is not None and azure.exists:
            found.append(
                Disagreement(
                    machine=vm,
                    about="Azure VM",
                    recorded=_job_words(commit),
                    found=f"the Azure VM {where} still exists "
                    f"({azure.power_state or 'power state unknown'})",
                )
            )
        elif (
            commit is None
            and failover is not None
            and azure.exists
            and azure.power_state not in AZURE_VM_OFF_STATES
        ):
            found.append(
                Disagreement(
                    machine=vm,
                    about="Azure VM",
                    recorded=_job_words(failover) + " (ASR shuts the Azure VM down)",
                    found=f"the Azure VM {where} is {azure.power_state or 'in no known state'}: "
                    "both copies may be running",
                )
            )
        elif (
            commit is None
            and failover is not None
            and not azure.exists
            and not _entered(status, Phase.COMMITTING)
        ):
            found.append(
                Disagreement(
                    machine=vm,
                    about="Azure VM",
                    recorded="no commit was sent (the Azure VM is kept until the commit)",
                    found=f"the Azure VM {where} no longer exists",
                )
            )
    return found


def _entered(status: MachineStatus, phase: Phase) -> bool:
    return any(change.phase == phase for change in status.history)


class MachineReport(_Model):
    view: MachineView
    observation: Observation | None = None
    disagreements: list[Disagreement] = Field(default_factory=list)


class FailbackReport(_Model):
    view: FailbackView
    machines: list[MachineReport]
    generated_at: datetime

    @property
    def disagreements(self) -> list[Disagreement]:
        return [d for m in self.machines for d in m.disagreements]


def build_report(
    view: FailbackView, observations: dict[str, Observation], generated_at: datetime
) -> FailbackReport:
    """`observations` by MachineView.machine; a machine without one was not checked."""
    machines = []
    for machine in view.machines:
        observation = observations.get(machine.machine)
        machines.append(
            MachineReport(
                view=machine,
                observation=observation,
                disagreements=reconcile(machine, observation),
            )
        )
    return FailbackReport(view=view, machines=machines, generated_at=generated_at)


# --- the timeline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    phase: str
    start: datetime
    end: datetime
    note: str = ""


@dataclass(frozen=True)
class TimelineRow:
    label: str
    segments: list[Segment]


PHASE_COLOURS = {
    "starting": "#b0bec5",
    "discovering": "#90a4ae",
    "checking-readiness": "#8d6e63",
    "reprotecting-to-onprem": "#6d4c41",
    "waiting-for-replication": "#a1887f",
    "failing-over": "#1e88e5",
    "verifying": "#00acc1",
    "awaiting-approval": "#fbc02d",
    "finishing": "#b39ddb",
    "committing": "#e53935",
    "waiting-for-agent": "#fb8c00",
    "agent-stuck": "#d81b60",
    "reprotecting": "#5e35b1",
    "completed": "#2e7d32",
    "completed-without-reprotect": "#9e9d24",
    "failed": "#b71c1c",
}
OTHER_COLOUR = "#757575"


def phase_segments(
    history: Sequence[PhaseChange | PlanPhaseChange], end: datetime
) -> list[Segment]:
    """Each phase from its entry to the next phase's; the last one runs to `end`. A phase
    entered again with a new note (a plan's next boot group) stays one bar."""
    segments: list[Segment] = []
    for index, change in enumerate(history):
        phase = str(change.phase)
        if segments and segments[-1].phase == phase:
            continue
        following = next((c for c in history[index + 1 :] if str(c.phase) != phase), None)
        if phase in TERMINAL_NAMES:
            stop = change.at
        else:
            stop = following.at if following is not None else max(end, change.at)
        segments.append(Segment(phase=phase, start=change.at, end=stop, note=change.note))
    return segments


# Tick spacings a reader can count in, from seconds (the lab) to days (a stuck agent).
_TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600]
_TICK_STEPS += [43200, 86400, 172800, 604800]


def _tick_step(span_seconds: float, max_ticks: int = 8) -> int:
    for step in _TICK_STEPS:
        if span_seconds / step <= max_ticks:
            return step
    return _TICK_STEPS[-1]


def timeline_svg(rows: Sequence[TimelineRow], title: str, width: int = 880) -> str:
    """A Gantt chart: one row per label, one bar per phase segment, time along the top."""
    label_width, right, top, row_height, bar_height = 210, 16, 34, 24, 14
    segments = [s for row in rows for s in row.segments]
    phases_shown = list(dict.fromkeys(s.phase for s in segments))
    legend_rows = math.ceil(len(phases_shown) / 5) if phases_shown else 0
    height = top + row_height * max(len(rows), 1) + 10 + legend_rows * 18 + 8
    chart = width - label_width - right
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_attr(title)}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f"<title>{_text(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if not segments:
        out.append(f'<text x="8" y="{top}" fill="#555">no phase recorded yet</text>')
        out.append("</svg>")
        return "\n".join(out)

    t0 = min(s.start for s in segments)
    t1 = max(s.end for s in segments)
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return label_width + (moment - t0).total_seconds() / span * chart

    # Stripes first, so that the time grid and the bars are drawn over them.
    for index in range(1, len(rows), 2):
        out.append(
            f'<rect x="0" y="{top + index * row_height}" width="{width}" '
            f'height="{row_height}" fill="#f6f6f6"/>'
        )
    step = _tick_step(span)
    daylong = span >= 86400
    first = math.ceil(t0.timestamp() / step) * step
    tick = first
    while tick <= t1.timestamp():
        moment = datetime.fromtimestamp(tick, UTC)
        px = x(moment)
        label = moment.strftime("%m-%d %H:%M" if daylong else "%H:%M:%S")
        out.append(
            f'<line x1="{px:.1f}" y1="{top - 6}" x2="{px:.1f}" '
            f'y2="{top + row_height * len(rows)}" stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{px:.1f}" y="{top - 10}" text-anchor="middle" fill="#555">{label}</text>'
        )
        tick += step

    for index, row in enumerate(rows):
        y = top + index * row_height
        mid = y + row_height / 2
        out.append(
            f'<text x="{label_width - 8}" y="{mid + 4:.1f}" text-anchor="end" fill="#212121">'
            f"{_text(_shorten(row.label, 32))}</text>"
        )
        for segment in row.segments:
            colour = PHASE_COLOURS.get(segment.phase, OTHER_COLOUR)
            left = x(segment.start)
            if segment.phase in TERMINAL_NAMES:
                bar = f'x="{left - 1.5:.1f}" width="3"'
            else:
                bar = f'x="{left:.1f}" width="{max(x(segment.end) - left, 2.0):.1f}"'
            tip = (
                f"{segment.phase}: {_clock(segment.start)} - {_clock(segment.end)} "
                f"({duration(_seconds(segment))})" + (f", {segment.note}" if segment.note else "")
            )
            out.append(
                f'<rect {bar} y="{mid - bar_height / 2:.1f}" height="{bar_height}" '
                f'fill="{colour}" rx="2"><title>{_text(tip)}</title></rect>'
            )

    legend_top = top + row_height * len(rows) + 14
    for index, phase in enumerate(phases_shown):
        lx = 8 + (index % 5) * 172
        ly = legend_top + (index // 5) * 18
        out.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" '
            f'fill="{PHASE_COLOURS.get(phase, OTHER_COLOUR)}"/>'
        )
        out.append(f'<text x="{lx + 14}" y="{ly}" fill="#333">{_text(phase)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _seconds(segment: Segment) -> float:
    return (segment.end - segment.start).total_seconds()


def _end_of(view: MachineView | FailbackView, now: datetime) -> datetime:
    return view.finished_at if view.final and view.finished_at else now


def machine_timeline_rows(view: MachineView, now: datetime) -> list[TimelineRow]:
    """One row per phase, in the order the machine first entered them."""
    if view.status is None:
        return []
    rows: dict[str, list[Segment]] = {}
    for segment in phase_segments(view.status.history, _end_of(view, now)):
        rows.setdefault(segment.phase, []).append(segment)
    return [TimelineRow(label=phase, segments=segs) for phase, segs in rows.items()]


def plan_timeline_rows(view: FailbackView, now: datetime) -> list[TimelineRow]:
    """The plan's own phases first, then one row per machine, boot group by boot group."""
    rows = []
    if view.plan is not None:
        rows.append(
            TimelineRow(
                label=f"plan {view.plan.recovery_plan}",
                segments=phase_segments(view.plan.history, _end_of(view, now)),
            )
        )
    for machine in view.machines:
        if machine.status is None:
            continue
        group = f"group {machine.boot_group}: " if machine.boot_group else ""
        rows.append(
            TimelineRow(
                label=f"{group}{machine.vm_name}",
                segments=phase_segments(machine.status.history, _end_of(machine, now)),
            )
        )
    return rows


def report_timeline(report: FailbackReport) -> str:
    view = report.view
    if view.kind == "plan":
        rows = plan_timeline_rows(view, report.generated_at)
    else:
        rows = machine_timeline_rows(view.machines[0], report.generated_at) if view.machines else []
    return timeline_svg(rows, f"timeline of the failback of {view.title}")


# --- formatting helpers ----------------------------------------------------------------------


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _shorten(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


# --- the document, once, for both formats ------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """An identifier: shown verbatim (backticks in Markdown, <code> in HTML)."""

    text: str


Inline = str | Code
Cell = Inline | Sequence[Inline]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    parts: Sequence[Inline]


@dataclass(frozen=True)
class Facts:
    rows: Sequence[tuple[str, Cell]]


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]


@dataclass(frozen=True)
class Notice:
    """A verdict the reader must not miss: `ok` (all agree) or `warning` (a disagreement)."""

    kind: Literal["ok", "warning"]
    parts: Sequence[Inline]


@dataclass(frozen=True)
class Image:
    svg: str
    alt: str


Block = Heading | Para | Facts | Table | Notice | Image


def _document(report: FailbackReport) -> list[Block]:
    view = report.view
    facts: list[tuple[str, Cell]] = [
        ("workflow", Code(view.workflow_id)),
        ("state", _state_words(view.execution, view.outcome)),
        ("started", when(view.started_at)),
        ("finished", when(view.finished_at) if view.final else "still running"),
        ("report made", when(report.generated_at)),
    ]
    if view.summary:
        facts.append(("summary", view.summary))
    if view.error:
        facts.append(("error", view.error))
    blocks: list[Block] = [Heading(1, f"Failback report: {view.title}"), Facts(facts)]
    blocks.extend(_reconciliation_summary(report))
    if view.plan is not None:
        blocks.extend(_plan_blocks(view.plan))
    blocks.append(Heading(2, "Timeline"))
    blocks.append(Image(report_timeline(report), f"timeline of the failback of {view.title}"))
    for machine in report.machines:
        blocks.extend(_machine_blocks(machine, report.generated_at))
    return blocks


def _state_words(execution: str, outcome: str | None) -> str:
    return execution if outcome in (None, execution) else f"{execution} ({outcome})"


def _reconciliation_summary(report: FailbackReport) -> list[Block]:
    disagreements = report.disagreements
    unchecked = [
        m.view.vm_name
        for m in report.machines
        if m.view.status is not None
        and (
            m.observation is None
            or m.observation.asr_error
            or m.observation.onprem_error
            or m.observation.azure_error
        )
    ]
    blocks: list[Block] = [Heading(2, "ASR, vCenter and Azure now")]
    if disagreements:
        blocks.append(
            Notice(
                "warning",
                [
                    f"{len(disagreements)} disagreement(s) between what ASR recorded and what "
                    "vCenter or Azure show now; see each machine below."
                ],
            )
        )
        blocks.append(
            Table(
                ["machine", "ASR / the workflow says", "but now"],
                [[d.machine, d.recorded, d.found] for d in disagreements],
            )
        )
    else:
        blocks.append(
            Notice(
                "ok",
                [
                    "No disagreement: what ASR recorded for this failback matches what vCenter "
                    "and Azure show now."
                ],
            )
        )
    if unchecked:
        blocks.append(
            Para(
                [
                    "Not fully checked (a system could not be read): "
                    + ", ".join(unchecked)
                    + "; see each machine below."
                ]
            )
        )
    return blocks


def _plan_blocks(plan: PlanStatus) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Recovery plan")]
    facts: list[tuple[str, Cell]] = [
        ("phase", plan.phase),
        ("waiting for", plan.waiting_for),
        ("boot groups", str(plan.boot_groups)),
        ("machines", str(len(plan.machines))),
    ]
    if plan.recovery_points is not None:
        facts.append(("recovery point policy", plan.recovery_points.policy))
        for group in plan.recovery_points.groups:
            facts.append(
                (
                    f"replication group {group.group}",
                    f"{', '.join(group.members)}; common point {when(group.common_point_time)}",
                )
            )
    if plan.readiness is not None:
        facts.append(
            (
                "readiness",
                f"{len(plan.readiness.findings)} finding(s), {len(plan.readiness.blocking)} "
                "blocking",
            )
        )
    for name, why in sorted(plan.failed.items()):
        facts.append((f"failed: {name}", why))
    if plan.error:
        facts.append(("error", plan.error))
    blocks.append(Facts(facts))
    blocks.extend(_approval_blocks(plan.approval, plan.rejected_approvals, level=3))
    if plan.reprotects:
        blocks.append(Heading(3, "Reprotect to on-premises"))
        blocks.append(_operations_table(plan.reprotects, None))
    return blocks


def _approval_blocks(
    approval: Approval | None, refused: Sequence[RejectedApproval], level: int
) -> list[Block]:
    blocks: list[Block] = [Heading(level, "Commit approval")]
    if approval is not None:
        blocks.append(
            Facts(
                [
                    ("approved by", approval.approved_by),
                    ("approved at", when(approval.approved_at)),
                    ("comment", approval.comment or "-"),
                ]
            )
        )
    else:
        blocks.append(Para(["Not approved (yet): nothing has been committed on its authority."]))
    if refused:
        blocks.append(Para(["Refused approvals:"]))
        blocks.append(
            Table(
                ["from", "received", "phase", "why refused"],
                [[r.approved_by, when(r.received_at), str(r.phase), r.reason] for r in refused],
            )
        )
    return blocks


def _operations_table(
    operations: Sequence[OperationResult], observation: Observation | None
) -> Table:
    rows: list[list[Cell]] = []
    for op in operations:
        job = observation.job(op.job_id) if observation and op.job_id else None
        if observation is None or not op.job_id:
            now = "-"
        elif observation.asr_error:
            now = "not read"
        elif job is None:
            now = "-"
        elif not job.found:
            now = "no such job"
        else:
            now = job.state or "?"
            if job.errors:
                now += ": " + "; ".join(job.errors)
        rows.append(
            [
                op.operation,
                Code(op.job_id) if op.job_id else "(none: already done)",
                op.state,
                now,
                when(op.started_at),
                when(op.ended_at),
                "yes" if op.resumed else "no",
            ]
        )
    return Table(
        ["operation", "ASR job", "recorded", "ASR now", "started", "ended", "resumed"], rows
    )


def _machine_blocks(machine: MachineReport, generated_at: datetime) -> list[Block]:
    view = machine.view
    status = view.status
    title = view.vm_name if view.vm_name == view.machine else f"{view.vm_name} ({view.machine})"
    blocks: list[Block] = [Heading(2, f"Machine {title}")]
    facts: list[tuple[str, Cell]] = [("workflow", Code(view.workflow_id))]
    if view.boot_group is not None:
        facts.append(("boot group", str(view.boot_group)))
    facts.append(("state", _state_words(view.execution, view.outcome)))
    if status is None:
        blocks.append(Facts(facts))
        blocks.append(Para(["Not started yet: its boot group has not been reached."]))
        return blocks
    facts.append(("phase", str(status.phase)))
    facts.append(("waiting for", status.waiting_for))
    if view.summary:
        facts.append(("summary", view.summary))
    if status.error:
        facts.append(("error", status.error))
    blocks.append(Facts(facts))

    blocks.append(Heading(3, "Recovery point"))
    point = status.recovery_point
    if point is None:
        blocks.append(Para(["Not chosen yet."]))
    else:
        blocks.append(
            Facts(
                [
                    ("point", Code(point.chosen.id)),
                    ("time", when(point.chosen.time)),
                    ("type", point.chosen.type),
                    ("latest point", f"{when(point.latest.time)} ({point.latest.type})"),
                    ("data-loss window", duration(point.data_loss_window_seconds)),
                ]
            )
        )

    blocks.append(Heading(3, "Phases"))
    blocks.append(
        Table(
            ["phase", "from", "to", "for", "note"],
            [
                [s.phase, when(s.start), when(s.end), duration(_seconds(s)), s.note]
                for s in phase_segments(status.history, _end_of(view, generated_at))
            ],
        )
    )

    blocks.append(Heading(3, "ASR jobs"))
    if status.operations:
        blocks.append(_operations_table(status.operations, machine.observation))
    else:
        blocks.append(Para(["No ASR job has finished yet."]))

    blocks.append(Heading(3, "Verification"))
    verification = status.verification
    if verification is None:
        blocks.append(Para(["Not verified yet."]))
    else:
        onprem, azure = verification.onprem, verification.azure
        blocks.append(
            Facts(
                [
                    ("result", "passed" if verification.passed else "FAILED"),
                    ("checked at", when(verification.checked_at)),
                    ("on-premises VM", _onprem_words(onprem)),
                    ("Azure VM", _azure_words(azure)),
                ]
                + [("problem", p) for p in verification.problems]
            )
        )

    blocks.extend(_approval_blocks(status.approval, status.rejected_approvals, level=3))

    if status.agent_wait is not None:
        wait = status.agent_wait
        blocks.append(Heading(3, "Mobility agent"))
        blocks.append(
            Facts(
                [
                    ("waiting since", when(wait.started_at)),
                    ("checks", str(wait.checks)),
                    ("registered at", when(wait.registered_at)),
                ]
                + ([("stuck since", when(wait.stuck_since))] if wait.stuck_since else [])
            )
        )

    blocks.extend(_world_blocks(machine))
    return blocks


def _onprem_words(state: OnPremVmState) -> str:
    if not state.found:
        return f"{state.vm_name}: not found in vCenter"
    return (
        f"{state.vm_name}: {state.power_state}, VMware Tools "
        f"{state.tools_running_status or 'unknown'}, guest {state.guest_state or 'unknown'}, "
        f"host {state.host or '-'}"
    )


def _azure_words(state: AzureVmState) -> str:
    where = f"{state.resource_group}/{state.name}"
    if not state.exists:
        return f"{where}: does not exist"
    return f"{where}: {state.power_state or 'power state unknown'}"


def _world_blocks(machine: MachineReport) -> list[Block]:
    blocks: list[Block] = [Heading(3, "ASR, vCenter and Azure now")]
    observation = machine.observation
    if observation is None:
        blocks.append(Para(["Not checked."]))
        return blocks
    facts: list[tuple[str, Cell]] = [("read at", when(observation.read_at))]
    facts.append(
        (
            "vCenter",
            f"could not read: {observation.onprem_error}"
            if observation.onprem_error
            else _onprem_words(observation.onprem)
            if observation.onprem
            else "-",
        )
    )
    facts.append(
        (
            "Azure",
            f"could not read: {observation.azure_error}"
            if observation.azure_error
            else _azure_words(observation.azure)
            if observation.azure
            else "-",
        )
    )
    if observation.asr_error:
        facts.append(("ASR", f"could not read: {observation.asr_error}"))
    blocks.append(Facts(facts))
    if machine.disagreements:
        for disagreement in machine.disagreements:
            blocks.append(Notice("warning", [f"Disagreement: {disagreement.text}."]))
    else:
        blocks.append(Notice("ok", ["No disagreement for this machine."]))
    return blocks


# --- Markdown ---------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md_text(value: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", value.replace("\n", " "))


def _md_inline(value: Inline) -> str:
    if isinstance(value, Code):
        fence = "``" if "`" in value.text else "`"
        pad = " " if fence == "``" else ""
        return f"{fence}{pad}{value.text}{pad}{fence}"
    return _md_text(value)


def _md_cell(value: Cell) -> str:
    if isinstance(value, str | Code):
        return _md_inline(value)
    return " ".join(_md_inline(part) for part in value)


def render_markdown(report: FailbackReport) -> str:
    lines: list[str] = []
    for block in _document(report):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md_text(block.text), ""]
        elif isinstance(block, Para):
            lines += [" ".join(_md_inline(p) for p in block.parts), ""]
        elif isinstance(block, Notice):
            mark = "**OK**" if block.kind == "ok" else "**WARNING**"
            lines += [f"> {mark} " + " ".join(_md_inline(p) for p in block.parts), ""]
        elif isinstance(block, Facts):
            lines += [f"- **{_md_text(key)}**: {_md_cell(value)}" for key, value in block.rows]
            lines.append("")
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(_md_text(h) for h in block.headers) + " |")
            lines.append("|" + "---|" * len(block.headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        else:
            encoded = base64.b64encode(block.svg.encode("utf-8")).decode("ascii")
            lines += [
                f'<img alt="{_attr(block.alt)}" src="data:image/svg+xml;base64,{encoded}">',
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1000px;
       color: #212121; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.2em; font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { font-weight: bold; } dd { margin: 0; }
code { background: #f3f3f3; padding: 0 3px; word-break: break-all; }
.notice { padding: 8px 12px; border-radius: 4px; margin: 0.6em 0; }
.ok { background: #e8f5e9; border-left: 4px solid #2e7d32; }
.warning { background: #fff3e0; border-left: 4px solid #e65100; font-weight: bold; }
"""


def _html_inline(value: Inline) -> str:
    if isinstance(value, Code):
        return f"<code>{_text(value.text)}</code>"
    return _text(value)


def _html_cell(value: Cell) -> str:
    if isinstance(value, str | Code):
        return _html_inline(value)
    return " ".join(_html_inline(part) for part in value)


def render_html(report: FailbackReport) -> str:
    body: list[str] = []
    for block in _document(report):
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_text(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append("<p>" + " ".join(_html_inline(p) for p in block.parts) + "</p>")
        elif isinstance(block, Notice):
            body.append(
                f'<div class="notice {block.kind}">'
                + " ".join(_html_inline(p) for p in block.parts)
                + "</div>"
            )
        elif isinstance(block, Facts):
            body.append("<dl>")
            body += [
                f"<dt>{_text(key)}</dt><dd>{_html_cell(value)}</dd>" for key, value in block.rows
            ]
            body.append("</dl>")
        elif isinstance(block, Table):
            body.append("<table><thead><tr>")
            body += [f"<th>{_text(h)}</th>" for h in block.headers]
            body.append("</tr></thead><tbody>")
            body += [
                "<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            ]
            body.append("</tbody></table>")
        else:
            body.append(f'<figure class="timeline">{block.svg}</figure>')
    title = _text(f"Failback report: {report.view.title}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render(report: FailbackReport, fmt: Literal["md", "html", "json"]) -> str:
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    return report.model_dump_json(indent=2) + "\n"
