"""The failback report: what the workflows recorded, next to what ASR, vCenter and Azure say now.

Pure: models in, text out. The reads (Temporal, ASR, vCenter, Azure) are in starter/commands.py
and starter/observe.py, so that everything here can be proven with hand-made models.
build.py holds the view models, domain/reconcile.py the rules that compare them with the world,
svg.py the timeline and render.py the Markdown, HTML and JSON.
"""

from domain.reconcile import AsrJob, Disagreement, Observation, reconcile
from starter.report.build import (
    NOT_STARTED,
    RUNNING,
    FailbackReport,
    FailbackView,
    MachineReport,
    MachineView,
    build_report,
)
from starter.report.render import render, render_html, render_markdown
from starter.report.svg import (
    PHASE_COLOURS,
    Segment,
    TimelineRow,
    machine_timeline_rows,
    phase_segments,
    plan_timeline_rows,
    report_timeline,
    timeline_svg,
)
from starter.report.words import duration, when

__all__ = [
    "NOT_STARTED",
    "PHASE_COLOURS",
    "RUNNING",
    "AsrJob",
    "Disagreement",
    "FailbackReport",
    "FailbackView",
    "MachineReport",
    "MachineView",
    "Observation",
    "Segment",
    "TimelineRow",
    "build_report",
    "duration",
    "machine_timeline_rows",
    "phase_segments",
    "plan_timeline_rows",
    "reconcile",
    "render",
    "render_html",
    "render_markdown",
    "report_timeline",
    "timeline_svg",
    "when",
]
