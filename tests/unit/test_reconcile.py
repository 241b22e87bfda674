"""The reconciliation rules one by one (domain/reconcile.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.models import AzureVmState, OnPremVmState, OperationResult
from domain.operations import AsrOperation
from domain.reconcile import (
    AsrJob,
    Observation,
    a_azure_vm,
    j1_job_gone,
    j2_job_changed,
    reconcile,
    v_onprem_vm,
)
from tests.unit.test_report import completed_status

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
FAILOVER = OperationResult(
    operation=AsrOperation.UNPLANNED_FAILOVER,
    job_id="j-fo",
    state="Succeeded",
    started_at=T0,
    ended_at=T0 + timedelta(minutes=2),
    resumed=False,
)
COMMIT = FAILOVER.model_copy(update={"operation": AsrOperation.FAILOVER_COMMIT, "job_id": "j-c"})
UP = OnPremVmState(
    vm_name="web-01", found=True, power_state="poweredOn", tools_running_status="guestToolsRunning"
)
GONE = AzureVmState(resource_group="rg", name="web-01", exists=False)
RUNNING = AzureVmState(resource_group="rg", name="web-01", exists=True, power_state="running")


def test_j1_a_job_gone_from_the_vault() -> None:
    (found,) = j1_job_gone("web-01", FAILOVER, AsrJob(job_id="j-fo", found=False))
    assert found.found == "the vault has no such job now"
    assert j1_job_gone("web-01", FAILOVER, AsrJob(job_id="j-fo", found=True)) == []


def test_j2_a_job_asr_says_ended_otherwise() -> None:
    failed = AsrJob(job_id="j-fo", found=True, state="Failed")
    (found,) = j2_job_changed("web-01", FAILOVER, failed)
    assert found.found == "ASR says the job is Failed now"
    same = AsrJob(job_id="j-fo", found=True, state="Succeeded")
    assert j2_job_changed("web-01", FAILOVER, same) == []


def test_v1_v2_v3_the_onprem_vm_after_a_failover() -> None:
    assert v_onprem_vm("web-01", FAILOVER, UP) == []
    missing = UP.model_copy(update={"found": False})
    off = UP.model_copy(update={"power_state": "poweredOff"})
    no_guest = UP.model_copy(update={"tools_running_status": "guestToolsNotRunning"})
    assert [d.about for s in (missing, off) for d in v_onprem_vm("web-01", FAILOVER, s)] == [
        "on-premises VM",
        "on-premises VM",
    ]
    (guest,) = v_onprem_vm("web-01", FAILOVER, no_guest)
    assert guest.about == "on-premises guest"


def test_a1_a2_a3_the_azure_vm() -> None:
    status = completed_status()
    (a1,) = a_azure_vm("web-01", status, FAILOVER, COMMIT, RUNNING)
    assert "still exists" in a1.found
    (a2,) = a_azure_vm("web-01", status, FAILOVER, None, RUNNING)
    assert "both copies may be running" in a2.found
    before_commit = status.model_copy(
        update={"history": [h for h in status.history if h.phase != "committing"]}
    )
    (a3,) = a_azure_vm("web-01", before_commit, FAILOVER, None, GONE)
    assert "no longer exists" in a3.found
    assert a_azure_vm("web-01", status, FAILOVER, COMMIT, GONE) == []


@given(st.booleans(), st.booleans(), st.booleans())
def test_a_side_that_cannot_be_read_is_never_evidence(asr: bool, onprem: bool, azure: bool) -> None:
    status = completed_status()
    observation = Observation(
        item_name="web-01",
        read_at=T0 + timedelta(hours=1),
        jobs=[AsrJob(job_id=op.job_id, found=False) for op in status.operations if op.job_id],
        asr_error="unreadable" if asr else None,
        onprem=UP.model_copy(update={"found": False}),
        onprem_error="unreadable" if onprem else None,
        azure=RUNNING,
        azure_error="unreadable" if azure else None,
    )
    abouts = {d.about for d in reconcile(status, "web-01", observation)}
    if asr:
        assert not abouts & {str(op.operation) for op in status.operations}
    if onprem:
        assert "on-premises VM" not in abouts
    if azure:
        assert "Azure VM" not in abouts


def test_nothing_is_reconciled_without_a_status_or_an_observation() -> None:
    assert reconcile(None, "web-01", None) == []
    assert reconcile(completed_status(), "web-01", None) == []
