"""The report's timeline: one row per machine (and the plan), a bar per phase, as SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.models import (
    PhaseChange,
    PlanPhaseChange,
)
from domain.phases import TERMINAL_NAMES
from starter.report.build import FailbackReport, FailbackView, MachineView
from starter.report.words import _attr, _clock, _shorten, _text, duration

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
