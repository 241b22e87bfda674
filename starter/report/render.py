"""The report as Markdown (the timeline embedded as a data: image, one self-contained file) and
as a standalone HTML page (the SVG inline); and as JSON."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from domain.models import (
    Approval,
    AzureVmState,
    OnPremVmState,
    OperationResult,
    PlanStatus,
    RejectedApproval,
)
from domain.reconcile import Observation
from starter.report.build import FailbackReport, MachineReport
from starter.report.svg import _end_of, _seconds, phase_segments, report_timeline
from starter.report.words import _attr, _text, duration, when

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
                [[d.vm_name, d.recorded, d.found] for d in disagreements],
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
                    f"{', '.join(group.members)}; common point "
                    + (
                        when(group.common_point_time)
                        if group.common_point_time is not None
                        else "ASR's to pick (no multi-VM flag on its points)"
                    ),
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
    if plan.failover is not None:
        blocks.append(Heading(3, "The recovery plan's failover (FO-PLAN)"))
        blocks.append(_operations_table([plan.failover], None))
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
    title = view.vm_name if view.vm_name == view.item_name else f"{view.vm_name} ({view.item_name})"
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
                    ("asked of ASR as", _asked_as(point.asked_as)),
                    ("time", when(point.chosen.time)),
                    ("type", point.chosen.type),
                    ("latest point", f"{when(point.latest.time)} ({point.latest.type})"),
                    ("data-loss window", duration(point.data_loss_window_seconds)),
                ]
            )
        )

    if status.data_sync is not None:
        blocks.append(Heading(3, "Data synchronization (Hyper-V)"))
        sync_facts: list[tuple[str, Any]] = [("mode", str(status.data_sync))]
        if status.synchronized_at is not None:
            sync_facts.append(("synchronized (Azure VM running) at", when(status.synchronized_at)))
        if status.cutover is not None:
            sync_facts.append(
                ("cut over", f"{when(status.cutover.at)} by {status.cutover.cut_over_by}")
            )
        if status.downtime_seconds is not None:
            sync_facts.append(
                (
                    "downtime taken (Azure VM off -> VM up on-premises)",
                    duration(status.downtime_seconds),
                )
            )
        blocks.append(Facts(sync_facts))

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
    if state.platform == "hyperv":
        if not state.found:
            return f"{state.vm_name}: not found on Hyper-V host {state.host or '-'}"
        return (
            f"{state.vm_name} on Hyper-V host {state.host or '-'}: {state.power_state}, "
            f"heartbeat {state.heartbeat or 'no contact'}"
        )
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


def _asked_as(kind: str) -> str:
    """How the failover named its point (RP-ASK), in words."""
    return {
        "LatestTime": "LatestTime (ASR's newest point when it failed over)",
        "LatestTag": "LatestTag (ASR's newest application-consistent point when it failed over)",
        "CrashConsistent": "CrashConsistent (a point ASR made at the failover, after the Azure "
        "VM was shut down: no data lost)",
        "ApplicationConsistent": "ApplicationConsistent (ASR's newest application-consistent "
        "point when it failed over)",
        "AzureVmDisks": "no point (Hyper-V: the Azure VM's disks as they were when it shut "
        "down; nothing written in Azure lost)",
    }.get(kind, f"{kind} (this point, by its id)")
