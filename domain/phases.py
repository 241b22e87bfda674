"""The phases of a failback, a machine's and a plan's, and which may follow which.

One place for the names a status, a search attribute, the report and the CLI share; a phase is
never compared as a free string elsewhere.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """A machine's failback."""

    STARTING = "starting"
    DISCOVERING = "discovering"
    # A machine failed back on its own checks and reprotects itself (a plan's machines are
    # checked and reprotected by their plan).
    CHECKING = "checking-readiness"
    REPROTECTING_TO_ONPREM = "reprotecting-to-onprem"
    WAITING_FOR_REPLICATION = "waiting-for-replication"
    FAILING_OVER = "failing-over"
    # Hyper-V for-downtime: the data is synchronized while the Azure VM runs, and ASR has
    # suspended the job; the cut-over (the operator's, or at the time given) resumes it.
    AWAITING_CUTOVER = "synchronized-awaiting-cutover"
    CUTTING_OVER = "cutting-over"
    VERIFYING = "verifying"
    AWAITING_APPROVAL = "awaiting-approval"
    COMMITTING = "committing"
    WAITING_FOR_AGENT = "waiting-for-agent"
    AGENT_STUCK = "agent-stuck"
    REPROTECTING = "reprotecting"
    COMPLETED = "completed"
    COMPLETED_WITHOUT_REPROTECT = "completed-without-reprotect"
    # Modernized: the failback undone before commit (failoverCancel): the Azure VM runs again
    # and replication toward on-premises resumes.
    UNDOING = "undoing"
    UNDONE = "undone"
    FAILED = "failed"


class PlanPhase(StrEnum):
    """A recovery plan's failback."""

    STARTING = "starting"
    DISCOVERING = "discovering"
    CHECKING = "checking-readiness"
    REPROTECTING = "reprotecting-to-onprem"
    WAITING_FOR_REPLICATION = "waiting-for-replication"
    FAILING_OVER = "failing-over"
    AWAITING_APPROVAL = "awaiting-approval"
    FINISHING = "finishing"
    UNDOING = "undoing"
    COMPLETED = "completed"
    UNDONE = "undone"
    FAILED = "failed"


class IllegalTransitionError(RuntimeError):
    pass


# Which phase may follow which. A failback never goes back to an earlier phase: that is what
# stops a retry from failing over or committing twice.
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.DISCOVERING, Phase.FAILED}),
    Phase.DISCOVERING: frozenset({Phase.CHECKING, Phase.FAILING_OVER, Phase.FAILED}),
    Phase.CHECKING: frozenset({Phase.REPROTECTING_TO_ONPREM, Phase.FAILING_OVER, Phase.FAILED}),
    Phase.REPROTECTING_TO_ONPREM: frozenset({Phase.WAITING_FOR_REPLICATION, Phase.FAILED}),
    Phase.WAITING_FOR_REPLICATION: frozenset({Phase.FAILING_OVER, Phase.FAILED}),
    Phase.FAILING_OVER: frozenset(
        {Phase.AWAITING_CUTOVER, Phase.VERIFYING, Phase.UNDOING, Phase.FAILED}
    ),
    Phase.AWAITING_CUTOVER: frozenset({Phase.CUTTING_OVER, Phase.FAILED}),
    Phase.CUTTING_OVER: frozenset({Phase.VERIFYING, Phase.FAILED}),
    Phase.VERIFYING: frozenset({Phase.AWAITING_APPROVAL, Phase.UNDOING, Phase.FAILED}),
    Phase.AWAITING_APPROVAL: frozenset({Phase.COMMITTING, Phase.UNDOING, Phase.FAILED}),
    # Only before the commit: after it, the Azure VM is gone and there is nothing to undo.
    Phase.UNDOING: frozenset({Phase.UNDONE, Phase.FAILED}),
    Phase.UNDONE: frozenset(),
    # Hyper-V has no agent to wait for: the re-protect follows the commit.
    Phase.COMMITTING: frozenset({Phase.WAITING_FOR_AGENT, Phase.REPROTECTING, Phase.FAILED}),
    Phase.WAITING_FOR_AGENT: frozenset({Phase.REPROTECTING, Phase.AGENT_STUCK, Phase.FAILED}),
    Phase.AGENT_STUCK: frozenset(
        {Phase.WAITING_FOR_AGENT, Phase.COMPLETED_WITHOUT_REPROTECT, Phase.FAILED}
    ),
    # A reprotect refused because the agent is not registered after all goes back to waiting.
    Phase.REPROTECTING: frozenset({Phase.COMPLETED, Phase.WAITING_FOR_AGENT, Phase.FAILED}),
    Phase.COMPLETED: frozenset(),
    Phase.COMPLETED_WITHOUT_REPROTECT: frozenset(),
    Phase.FAILED: frozenset(),
}

# The phases a machine's failback ends in (none may follow them).
TERMINAL = frozenset(p for p, nexts in TRANSITIONS.items() if not nexts)
# A plan ends in these; as strings, the terminal phases of either kind (the report draws them).
PLAN_TERMINAL = frozenset({PlanPhase.COMPLETED, PlanPhase.UNDONE, PlanPhase.FAILED})
TERMINAL_NAMES = frozenset(str(p) for p in TERMINAL | PLAN_TERMINAL)

# Phases before the commit: a failure here leaves the Azure copies intact.
BEFORE_COMMIT = frozenset(
    {
        Phase.STARTING,
        Phase.DISCOVERING,
        Phase.CHECKING,
        Phase.REPROTECTING_TO_ONPREM,
        Phase.WAITING_FOR_REPLICATION,
        Phase.FAILING_OVER,
        Phase.AWAITING_CUTOVER,
        Phase.CUTTING_OVER,
        Phase.VERIFYING,
        Phase.AWAITING_APPROVAL,
    }
)


# Until its cut-over begins, a Hyper-V for-downtime failback takes the cut-over (the workflow
# and the CLI's refusal ask the same set).
BEFORE_CUTOVER = frozenset(
    {
        Phase.STARTING,
        Phase.DISCOVERING,
        Phase.CHECKING,
        Phase.FAILING_OVER,
        Phase.AWAITING_CUTOVER,
    }
)


def next_phase(current: Phase, target: Phase) -> Phase:
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(f"a failback cannot go from {current} to {target}")
    return target
