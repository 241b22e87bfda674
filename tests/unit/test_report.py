"""The failback report, from hand-made models: its content, its SVG, and the reconciliation."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from domain.models import (
    Approval,
    AzureVmState,
    MachineStatus,
    OnPremVmState,
    OperationResult,
    Phase,
    PhaseChange,
    PlanMachine,
    PlanPhaseChange,
    PlanStatus,
    ProtectedItemRef,
    RecoveryPoint,
    RecoveryPointChoice,
    RejectedApproval,
    Verification,
)
from starter.report import (
    AsrJob,
    Disagreement,
    FailbackReport,
    FailbackView,
    MachineView,
    Observation,
    TimelineRow,
    build_report,
    phase_segments,
    reconcile,
    render_html,
    render_markdown,
    timeline_svg,
)

T0 = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
SVG_NS = "{http://www.w3.org/2000/svg}"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def op(name: str, job: str, start: float, end: float) -> OperationResult:
    return OperationResult(
        operation=name,
        job_id=job,
        state="Succeeded",
        started_at=at(start),
        ended_at=at(end),
        resumed=False,
    )


def completed_status(vm: str = "web-01", point_id: str = "rp-web-01-0900") -> MachineStatus:
    chosen = RecoveryPoint(id=point_id, name=point_id, time=at(-600), type="ApplicationConsistent")
    latest = RecoveryPoint(id=f"{point_id}-latest", name="l", time=at(-60), type="CrashConsistent")
    phases = [
        (Phase.STARTING, 0),
        (Phase.DISCOVERING, 1),
        (Phase.FAILING_OVER, 2),
        (Phase.VERIFYING, 40),
        (Phase.AWAITING_APPROVAL, 70),
        (Phase.COMMITTING, 400),
        (Phase.WAITING_FOR_AGENT, 430),
        (Phase.REPROTECTING, 700),
        (Phase.COMPLETED, 760),
    ]
    return MachineStatus(
        item_name=f"{vm}-item",
        phase=Phase.COMPLETED,
        waiting_for="nothing: the failback is complete",
        item=ProtectedItemRef(fabric="cs-01", container="c-01", name=f"{vm}-item"),
        vm_name=vm,
        recovery_point=RecoveryPointChoice(
            chosen=chosen, latest=latest, data_loss_window_seconds=540.0, asked_as="Custom"
        ),
        operations=[
            op("unplannedFailover", f"job-fo-{vm}", 2, 38),
            op("failoverCommit", f"job-commit-{vm}", 400, 428),
            op("reProtect", f"job-rp-{vm}", 700, 758),
        ],
        verification=Verification(
            passed=True,
            checked_at=at(69),
            onprem=OnPremVmState(
                vm_name=vm,
                found=True,
                power_state="poweredOn",
                tools_running_status="guestToolsRunning",
                guest_state="running",
                host="esx-01.corp.local",
            ),
            azure=AzureVmState(
                resource_group="rg-recovery", name=vm, exists=True, power_state="deallocated"
            ),
            problems=[],
        ),
        approval=Approval(approved_by="alice", comment="app checked", approved_at=at(399)),
        rejected_approvals=[
            RejectedApproval(
                approved_by="mallory",
                received_at=at(20),
                phase=Phase.FAILING_OVER,
                reason="the failback is failing-over: an approval is only taken after the "
                "on-premises VM has been verified",
            )
        ],
        history=[PhaseChange(phase=p, at=at(s)) for p, s in phases],
    )


def reconcile_view(view: MachineView, observation: Observation | None) -> list[Disagreement]:
    return reconcile(view.status, view.vm_name, observation)


def machine_view(status: MachineStatus, **extra: object) -> MachineView:
    fields: dict[str, object] = {
        "workflow_id": f"failback-vault-{status.vm_name}",
        "item_name": status.item_name,
        "vm_name": status.vm_name,
        "execution": "completed",
        "status": status,
        "outcome": "completed",
        "summary": f"{status.vm_name} failed back",
        "started_at": at(0),
        "finished_at": at(760),
    }
    fields.update(extra)
    return MachineView.model_validate(fields)


def agreeing(status: MachineStatus, item_name: str) -> Observation:
    """What the world looks like after a clean failback: VM on, Azure VM gone, jobs there."""
    return Observation(
        item_name=item_name,
        read_at=at(900),
        jobs=[
            AsrJob(job_id=o.job_id or "", found=True, state="Succeeded") for o in status.operations
        ],
        onprem=OnPremVmState(
            vm_name=status.vm_name or "",
            found=True,
            power_state="poweredOn",
            tools_running_status="guestToolsRunning",
            host="esx-01.corp.local",
        ),
        azure=AzureVmState(resource_group="rg-recovery", name=status.vm_name or "", exists=False),
    )


def single_report(observation: Observation | None = None) -> FailbackReport:
    status = completed_status()
    machine = machine_view(status)
    view = FailbackView(
        workflow_id=machine.workflow_id,
        kind="machine",
        execution="completed",
        outcome="completed",
        summary=machine.summary,
        started_at=at(0),
        finished_at=at(760),
        machines=[machine],
    )
    observed = observation or agreeing(status, machine.item_name)
    return build_report(view, {machine.item_name: observed}, at(900))


class _Balance(HTMLParser):
    """Every element the page opens is closed, in order (void elements excepted)."""

    VOID = frozenset({"meta", "br", "img", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def assert_balanced(page: str) -> None:
    checker = _Balance()
    checker.feed(page)
    checker.close()
    assert checker.open == []


def svg_of_markdown(text: str) -> str:
    match = re.search(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', text)
    assert match, "no embedded SVG"
    return base64.b64decode(match.group(1)).decode("utf-8")


# --- content ---------------------------------------------------------------------------------


def test_markdown_names_the_machine_point_jobs_verification_and_approval() -> None:
    text = render_markdown(single_report())
    assert "# Failback report: web-01" in text
    assert "`rp-web-01-0900`" in text
    assert "ApplicationConsistent" in text
    assert "9 min" in text  # the data-loss window
    for job in ("job-fo-web-01", "job-commit-web-01", "job-rp-web-01"):
        assert f"`{job}`" in text
    assert "alice" in text and "app checked" in text
    assert "mallory" in text and "only taken after" in text
    assert "poweredOn" in text and "guestToolsRunning" in text and "deallocated" in text
    assert "2025-03-01 09:01:09 UTC" in text  # verification checked_at
    assert "No disagreement" in text and "WARNING" not in text


def test_markdown_embeds_a_parseable_svg_timeline_with_a_bar_per_phase() -> None:
    svg = svg_of_markdown(render_markdown(single_report()))
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    tips = [t.text or "" for t in root.iter(f"{SVG_NS}title")]
    for phase in ("failing-over", "verifying", "awaiting-approval", "committing", "completed"):
        assert any(tip.startswith(f"{phase}:") for tip in tips), phase
    labels = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {"failing-over", "awaiting-approval", "reprotecting"} <= labels


def test_html_is_a_standalone_page_with_the_svg_inline() -> None:
    page = render_html(single_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "data:image" not in page
    assert "rp-web-01-0900" in page and "alice" in page and "job-commit-web-01" in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    ET.fromstring(svg)
    assert_balanced(page)
    # Standalone: nothing fetched from elsewhere.
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_user_text_is_escaped_in_both_formats() -> None:
    status = completed_status().model_copy(
        update={
            "approval": Approval(
                approved_by="eve <script>", comment="a | b *c* </svg>", approved_at=at(399)
            )
        }
    )
    machine = machine_view(status)
    view = FailbackView(workflow_id="w", kind="machine", execution="completed", machines=[machine])
    report = build_report(view, {}, at(900))
    page = render_html(report)
    assert "eve &lt;script&gt;" in page and "<script>" not in page
    assert_balanced(page)
    text = render_markdown(report)
    assert "a \\| b \\*c\\* \\</svg\\>" in text


def plan_report() -> FailbackReport:
    web, db = completed_status("web-01", "rp-web"), completed_status("db-01", "rp-db")
    plan = PlanStatus(
        recovery_plan="plan-erp",
        phase="completed",
        waiting_for="completed",
        boot_groups=2,
        machines=[
            PlanMachine(
                item_name="db-01-item",
                vm_name="db-01",
                boot_group=1,
                workflow_id="failback-v-db-01",
            ),
            PlanMachine(
                item_name="web-01-item",
                vm_name="web-01",
                boot_group=2,
                workflow_id="failback-v-web-01",
            ),
            PlanMachine(
                item_name="app-01-item",
                vm_name="app-01",
                boot_group=2,
                workflow_id="failback-v-app-01",
            ),
        ],
        approval=Approval(approved_by="dana", comment="ERP checked", approved_at=at(399)),
        history=[
            PlanPhaseChange(phase="starting", at=at(0)),
            PlanPhaseChange(phase="failing-over", at=at(1), note="boot group 1 of 2"),
            PlanPhaseChange(phase="failing-over", at=at(30), note="boot group 2 of 2"),
            PlanPhaseChange(phase="awaiting-approval", at=at(80)),
            PlanPhaseChange(phase="finishing", at=at(399)),
            PlanPhaseChange(phase="completed", at=at(770)),
        ],
    )
    machines = [
        machine_view(db, boot_group=1),
        machine_view(web, boot_group=2),
        MachineView(
            workflow_id="failback-v-app-01",
            item_name="app-01-item",
            vm_name="app-01",
            boot_group=2,
            execution="not-started",
        ),
    ]
    view = FailbackView(
        workflow_id="failback-plan-v-plan-erp",
        kind="plan",
        execution="completed",
        outcome="completed",
        plan=plan,
        machines=machines,
        started_at=at(0),
        finished_at=at(770),
    )
    observations = {m.item_name: agreeing(m.status, m.item_name) for m in machines if m.status}
    return build_report(view, observations, at(900))


def test_a_plan_report_has_one_timeline_row_per_machine_and_the_plan_approval() -> None:
    report = plan_report()
    text = render_markdown(report)
    assert "recovery plan plan-erp" in text
    assert "dana" in text and "ERP checked" in text
    assert "`rp-web`" in text and "`rp-db`" in text
    assert "app-01" in text and "Not started yet" in text
    root = ET.fromstring(svg_of_markdown(text))
    labels = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
    assert "plan plan-erp" in labels
    assert "group 1: db-01" in labels and "group 2: web-01" in labels
    assert not any("app-01" in label for label in labels)  # nothing to draw yet
    assert "No disagreement" in render_html(report)


# --- reconciliation --------------------------------------------------------------------------


def test_vm_powered_off_after_a_successful_failover_is_a_disagreement() -> None:
    status = completed_status()
    observed = agreeing(status, "web-01-item")
    assert observed.onprem is not None
    observed = observed.model_copy(
        update={"onprem": observed.onprem.model_copy(update={"power_state": "poweredOff"})}
    )
    report = single_report(observed)
    [found] = report.disagreements
    assert "unplannedFailover job job-fo-web-01 Succeeded" in found.text
    assert "vCenter says web-01 is poweredOff now" in found.text
    text = render_markdown(report)
    assert "**WARNING** 1 disagreement" in text
    assert "poweredOff" in text
    assert "Disagreement:" in render_html(report)


def test_azure_vm_still_there_after_a_successful_commit_is_a_disagreement() -> None:
    status = completed_status()
    observed = agreeing(status, "web-01-item").model_copy(
        update={
            "azure": AzureVmState(
                resource_group="rg-recovery", name="web-01", exists=True, power_state="running"
            )
        }
    )
    [found] = reconcile_view(machine_view(status), observed)
    assert found.about == "Azure VM"
    assert "failoverCommit job job-commit-web-01 Succeeded" in found.text
    assert "rg-recovery/web-01 still exists (running)" in found.text


def test_azure_vm_running_after_failover_before_commit_warns_of_two_copies() -> None:
    status = completed_status()
    status = status.model_copy(
        update={
            "phase": Phase.AWAITING_APPROVAL,
            "operations": status.operations[:1],
            "approval": None,
            "history": status.history[:5],
        }
    )
    observed = agreeing(status, "web-01-item").model_copy(
        update={
            "azure": AzureVmState(
                resource_group="rg-recovery", name="web-01", exists=True, power_state="running"
            )
        }
    )
    [found] = reconcile_view(machine_view(status, execution="running"), observed)
    assert "both copies may be running" in found.text
    gone = observed.model_copy(
        update={"azure": AzureVmState(resource_group="rg-recovery", name="web-01", exists=False)}
    )
    [found] = reconcile_view(machine_view(status, execution="running"), gone)
    assert "no commit was sent" in found.text and "no longer exists" in found.text


def test_job_missing_or_changed_in_the_vault_is_a_disagreement() -> None:
    status = completed_status()
    observed = agreeing(status, "web-01-item").model_copy(
        update={
            "jobs": [
                AsrJob(job_id="job-fo-web-01", found=False),
                AsrJob(job_id="job-commit-web-01", found=True, state="Failed"),
                AsrJob(job_id="job-rp-web-01", found=True, state="Succeeded"),
            ]
        }
    )
    found = reconcile_view(machine_view(status), observed)
    texts = [d.text for d in found]
    assert any("job-fo-web-01" in t and "no such job" in t for t in texts)
    assert any("job-commit-web-01" in t and "Failed now" in t for t in texts)
    # The commit that ASR now calls Failed is no claim that the Azure VM should be gone, and the
    # failover job that vanished is no claim that the VM should run: nothing more is concluded.
    assert len(found) == 2


def test_a_side_that_could_not_be_read_is_no_evidence() -> None:
    status = completed_status()
    observed = Observation(
        item_name="web-01-item",
        read_at=at(900),
        asr_error="ASR could not be read (ServiceRequestError); check FAILBACK_AZURE_ENDPOINT",
        onprem_error="vCenter could not be read; check FAILBACK_VCENTER_HOST",
        azure_error="Azure could not be read",
    )
    assert reconcile_view(machine_view(status), observed) == []
    text = render_markdown(single_report(observed))
    assert "could not read: vCenter could not be read" in text
    assert "Not fully checked" in text and "FAILBACK\\_VCENTER\\_HOST" in text


def test_nothing_to_reconcile_before_the_failover() -> None:
    status = completed_status().model_copy(
        update={"phase": Phase.VERIFYING, "operations": [], "verification": None, "approval": None}
    )
    observed = agreeing(status, "web-01-item").model_copy(
        update={
            "onprem": OnPremVmState(vm_name="web-01", found=True, power_state="poweredOff"),
            "azure": AzureVmState(
                resource_group="rg-recovery", name="web-01", exists=True, power_state="running"
            ),
        }
    )
    assert reconcile_view(machine_view(status, execution="running"), observed) == []


# --- the timeline ----------------------------------------------------------------------------


def test_phase_segments_merge_repeats_and_end_running_phases_now() -> None:
    history = [
        PlanPhaseChange(phase="failing-over", at=at(0), note="boot group 1"),
        PlanPhaseChange(phase="failing-over", at=at(10), note="boot group 2"),
        PlanPhaseChange(phase="awaiting-approval", at=at(20)),
    ]
    segments = phase_segments(history, at(50))
    assert [(s.phase, s.start, s.end) for s in segments] == [
        ("failing-over", at(0), at(20)),
        ("awaiting-approval", at(20), at(50)),
    ]
    ended = phase_segments([*history, PlanPhaseChange(phase="failed", at=at(30))], at(99))
    assert ended[-1].start == ended[-1].end == at(30)


@pytest.mark.parametrize("span", [0, 3, 90, 5000, 3 * 86400])
def test_timeline_svg_parses_at_any_span(span: float) -> None:
    rows = [
        TimelineRow(
            label="web-01",
            segments=phase_segments([PhaseChange(phase=Phase.STARTING, at=at(0))], at(span)),
        )
    ]
    root = ET.fromstring(timeline_svg(rows, "t"))
    assert root.get("width") == "880"
    assert len([r for r in root.iter(f"{SVG_NS}rect") if r.find(f"{SVG_NS}title") is not None])


def test_timeline_svg_without_phases_says_so() -> None:
    root = ET.fromstring(timeline_svg([], "nothing"))
    assert any("no phase" in (t.text or "") for t in root.iter(f"{SVG_NS}text"))
