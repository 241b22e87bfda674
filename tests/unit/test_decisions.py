"""The pure decisions: recovery point choice, verification, approval, agent wait, phases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.decisions import (
    AgentWaitVerdict,
    NoRecoveryPointError,
    agent_wait_verdict,
    approval_refusal,
    describe_wait,
    evaluate_verification,
    plan_decision_waits,
    refusal_by_phase_alone,
    select_latest_point,
    undo_refusal,
)
from domain.models import AgentWait, AzureVmState, OnPremVmState, RecoveryPoint
from domain.phases import (
    BEFORE_COMMIT,
    BEFORE_CUTOVER,
    TERMINAL,
    TRANSITIONS,
    IllegalTransitionError,
    Phase,
    PlanPhase,
    next_phase,
)

T0 = datetime(2026, 11, 25, tzinfo=UTC)

points = st.lists(
    st.builds(
        RecoveryPoint,
        id=st.uuids().map(str),
        name=st.just("rp"),
        time=st.integers(0, 86_400).map(lambda s: T0 + timedelta(seconds=s)),
        type=st.sampled_from(["CrashConsistent", "ApplicationConsistent"]),
    ),
    max_size=50,
)


@given(points)
def test_latest_is_the_machines_own_newest_point(history: list[RecoveryPoint]) -> None:
    if not history:
        with pytest.raises(NoRecoveryPointError, match="R13"):
            select_latest_point(history)
        return
    choice = select_latest_point(history)
    assert choice.chosen in history
    assert choice.chosen.time == max(p.time for p in history)
    assert choice.latest == choice.chosen
    assert choice.data_loss_window_seconds == 0


def onprem(power: str = "poweredOn", tools: str | None = "guestToolsRunning") -> OnPremVmState:
    return OnPremVmState(
        vm_name="web-01", found=True, power_state=power, tools_running_status=tools
    )


def azure(exists: bool = True, power: str | None = "deallocated") -> AzureVmState:
    return AzureVmState(resource_group="rg", name="web-01", exists=exists, power_state=power)


def test_verification_passes_when_onprem_runs_and_azure_is_off() -> None:
    assert evaluate_verification(onprem(), azure(), T0).passed
    assert evaluate_verification(onprem(), azure(power="stopped"), T0).passed
    assert evaluate_verification(onprem(), azure(exists=False, power=None), T0).passed


@pytest.mark.parametrize(
    ("vm", "az", "expected"),
    [
        (onprem(power="poweredOff"), azure(), "poweredOff, not poweredOn"),
        (onprem(tools="guestToolsNotRunning"), azure(), "guest of web-01 is not up"),
        (onprem(), azure(power="running"), "Azure VM web-01 is running"),
        (OnPremVmState(vm_name="web-01", found=False), azure(), "not found in vCenter"),
    ],
)
def test_verification_names_each_problem(
    vm: OnPremVmState, az: AzureVmState, expected: str
) -> None:
    result = evaluate_verification(vm, az, T0)
    assert not result.passed
    assert any(expected in problem for problem in result.problems)


@given(st.sampled_from(list(Phase)), st.booleans())
def test_a_plans_approval_waits_only_where_the_machine_would_refuse_it_unverified(
    phase: Phase, failed_over_by_plan: bool
) -> None:
    """A waiting approval is judged at awaiting approval, where it is taken; one that does not
    wait is judged where it arrives, so none is ever taken before the machine is verified."""
    waits = plan_decision_waits("approve", phase, failed_over_by_plan)
    refusal = approval_refusal(phase)
    assert waits == (failed_over_by_plan and refusal is not None and "verified" in refusal)
    assert approval_refusal(Phase.AWAITING_APPROVAL) is None
    if not failed_over_by_plan:
        assert not waits


@given(st.sampled_from(list(Phase)), st.booleans())
def test_a_plans_undo_waits_only_before_the_machine_takes_up_its_plans_failover(
    phase: Phase, failed_over_by_plan: bool
) -> None:
    """Only where the machine would say "nothing has failed over yet", wrong for a machine its
    plan's job fails over; it is judged as the machine begins failing over, where it is taken."""
    waits = plan_decision_waits("undo", phase, failed_over_by_plan)
    refusal = undo_refusal(phase, False, True, "modernized")
    assert waits == (
        failed_over_by_plan
        and phase in (Phase.STARTING, Phase.DISCOVERING)
        and refusal is not None
        and "nothing has failed over yet" in refusal
    )
    assert undo_refusal(Phase.FAILING_OVER, False, True, "modernized") is None


def test_approval_is_taken_only_while_awaiting_it() -> None:
    assert approval_refusal(Phase.AWAITING_APPROVAL) is None
    for phase in (Phase.STARTING, Phase.FAILING_OVER, Phase.VERIFYING):
        refusal = approval_refusal(phase)
        assert refusal is not None and "verified" in refusal
    assert "already approved" in (approval_refusal(Phase.COMMITTING) or "")
    assert "nothing will be committed" in (approval_refusal(Phase.FAILED) or "")


@given(st.integers(0, 7200), st.booleans(), st.integers(0, 3))
def test_agent_wait_verdict(elapsed: int, registered: bool, failed: int) -> None:
    """R16: a registered agent is tried; failed re-protects are retried only within the wait."""
    wait = AgentWait(started_at=T0, checks=1)
    verdict = agent_wait_verdict(wait, T0 + timedelta(seconds=elapsed), registered, 1800, failed)
    if registered and (elapsed < 1800 or failed == 0):
        assert verdict == AgentWaitVerdict.REGISTERED
    elif elapsed >= 1800:
        assert verdict == AgentWaitVerdict.STUCK
    else:
        assert verdict == AgentWaitVerdict.KEEP_WAITING


def test_commit_only_follows_approval_and_no_phase_goes_back_to_failover() -> None:
    for phase, nexts in TRANSITIONS.items():
        if Phase.COMMITTING in nexts:
            assert phase == Phase.AWAITING_APPROVAL
        if phase not in BEFORE_COMMIT:
            assert not nexts & {Phase.FAILING_OVER, Phase.VERIFYING, Phase.AWAITING_APPROVAL}
    assert {
        Phase.COMPLETED,
        Phase.COMPLETED_WITHOUT_REPROTECT,
        Phase.UNDONE,
        Phase.FAILED,
    } == TERMINAL
    # An undo only ever comes before the commit, never after it.
    for phase, nexts in TRANSITIONS.items():
        if Phase.UNDOING in nexts:
            assert phase in BEFORE_COMMIT
    with pytest.raises(IllegalTransitionError):
        next_phase(Phase.COMMITTING, Phase.UNDOING)
    with pytest.raises(IllegalTransitionError):
        next_phase(Phase.VERIFYING, Phase.COMMITTING)
    with pytest.raises(IllegalTransitionError):
        next_phase(Phase.COMPLETED, Phase.FAILING_OVER)


def test_every_phase_says_what_it_waits_for() -> None:
    for phase in Phase:
        assert describe_wait(phase, "web-01")
    text = describe_wait(Phase.WAITING_FOR_AGENT, "web-01", 7 * 60 + 5, 1800)
    assert text == "waiting for the mobility agent on web-01 to register: 7 of 30 min"


@given(st.sampled_from(list(Phase)))
def test_a_machines_phase_alone_sends_a_decision_only_where_its_workflow_may_take_it(
    phase: Phase,
) -> None:
    """What the CLI sends on the server's phase when the worker is too busy to answer (the
    most it can know): exactly what the workflow's own rules take in that phase, with the
    unknowns (approval, architecture, data sync) at their most permissive."""
    by_phase = {
        decision: refusal_by_phase_alone(decision, False, phase)
        for decision in ("approve", "undo", "cutover", "agent")
    }
    assert (by_phase["approve"] is None) == (approval_refusal(phase) is None)
    assert (by_phase["undo"] is None) == (undo_refusal(phase, False, True, "modernized") is None)
    assert (by_phase["cutover"] is None) == (phase in BEFORE_CUTOVER)
    assert (by_phase["agent"] is None) == (phase == Phase.AGENT_STUCK)
    for refusal in by_phase.values():
        assert refusal is None or str(phase) in refusal


@given(st.sampled_from(list(PlanPhase)))
def test_a_plans_phase_alone_sends_a_decision_only_where_the_plan_may_take_it(
    phase: PlanPhase,
) -> None:
    before_approval = list(PlanPhase).index(phase) < list(PlanPhase).index(
        PlanPhase.AWAITING_APPROVAL
    )
    assert (refusal_by_phase_alone("approve", True, phase) is None) == (
        phase == PlanPhase.AWAITING_APPROVAL
    )
    assert (refusal_by_phase_alone("undo", True, phase) is None) == (
        phase == PlanPhase.AWAITING_APPROVAL
    )
    assert (refusal_by_phase_alone("cutover", True, phase) is None) == before_approval
    assert refusal_by_phase_alone("agent", True, phase) is not None


@given(st.sampled_from(["approve", "undo", "cutover", "agent"]), st.booleans())
def test_without_a_phase_on_the_server_nothing_is_sent(decision: str, is_plan: bool) -> None:
    for phase in (None, "unknown", ""):
        assert refusal_by_phase_alone(decision, is_plan, phase) is not None
