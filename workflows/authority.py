"""The decisions a workflow takes, held to domain/authority.py's rules: shared by the machine and
the plan workflows (deterministic: the checks are pure, the policy is read once at the start)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.decisions import DecisionActivities, DecisionPolicyQuery
    from domain import errors
    from domain.authority import (
        Attestation,
        Decision,
        DecisionPolicy,
        VerifiedIdentity,
        approver_refusal,
        attestation_refusal,
    )
    from domain.models import Decisions, VaultRef
    from workflows.calls import read
    from workflows.versioning import AUTHENTICATED_DECISIONS


@dataclass
class DecisionGate:
    """R28-R31 for one failback: who started it, the policy, who approved so far."""

    workflow_id: str
    policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    started_by: VerifiedIdentity | None = None
    approved_by: list[VerifiedIdentity] = field(default_factory=list)

    async def load(
        self, vault: VaultRef, recovery_plan: str | None, decisions: Decisions, plan_member: bool
    ) -> None:
        """The worker's rules for this vault or plan, narrowed by the failback's own; then R28
        for the start itself: a failback that requires a signed-in starter and has none ends
        here, before anything is sent."""
        if not workflow.patched(AUTHENTICATED_DECISIONS):
            return
        if decisions.policy is not None:
            # A plan's machine: the plan read the policy and checked the start.
            self.policy = decisions.policy
            return
        self.policy = await read(
            DecisionActivities.decision_policy,
            DecisionPolicyQuery(
                vault=vault,
                recovery_plan=recovery_plan,
                failback_approvers=decisions.approvers,
                approvers_required=decisions.approvers_required,
            ),
        )
        if plan_member:
            return
        refusal = attestation_refusal(
            self.policy, decisions.started_by, self.workflow_id, "start", workflow.now()
        )
        if refusal is not None:
            raise ApplicationError(
                f"not started: {refusal}. Nothing was sent to ASR",
                type=errors.NOT_AUTHORIZED,
                non_retryable=True,
            )
        if decisions.started_by is not None:
            self.started_by = decisions.started_by.identity

    def check(
        self,
        attestation: Attestation | None,
        decision: Decision,
        for_workflow: str | None = None,
        typed: str = "",
        received_at: datetime | None = None,
    ) -> tuple[VerifiedIdentity | None, str | None]:
        """(the verified identity or None, why the decision is refused or None). A plan passes
        its own attestation to its machines: `for_workflow` is then the plan's id. A decision
        judged after it waited (`plan_decision_waits`) is judged as of its arrival: a signed
        identity valid then is not refused for having expired while it waited."""
        refusal = attestation_refusal(
            self.policy,
            attestation,
            for_workflow or self.workflow_id,
            decision,
            received_at or workflow.now(),
        )
        if refusal is not None:
            return None, refusal
        identity = attestation.identity if attestation is not None else None
        if decision == "approve" and for_workflow is None:
            refusal = approver_refusal(self.policy, identity, self.started_by, self.approved_by)
            if refusal is None and identity is None and self.already_approved(None, typed):
                refusal = (
                    f"R31: {typed} has already approved; the commit needs "
                    f"{self.policy.approvers_required} distinct approvers"
                )
        return identity, refusal

    # R31 without identities (decisions not authenticated): distinct typed names.
    typed_approvers: list[str] = field(default_factory=list)

    def take_approval(self, identity: VerifiedIdentity | None, typed: str) -> bool:
        """Count an approval that passed check(); True once the commit has all it needs."""
        if identity is not None:
            self.approved_by.append(identity)
        elif typed.lower() not in self.typed_approvers:
            self.typed_approvers.append(typed.lower())
        return self.approvals_missing() == 0

    def already_approved(self, identity: VerifiedIdentity | None, typed: str) -> bool:
        if identity is not None:
            return any(i.object_id == identity.object_id for i in self.approved_by)
        return typed.lower() in self.typed_approvers

    def approvals_missing(self) -> int:
        """R31: how many more distinct approvers the commit waits for."""
        given = len(self.approved_by) + len(self.typed_approvers)
        return max(0, self.policy.approvers_required - given)


def who(identity: VerifiedIdentity | None, typed: str) -> str:
    """The name a decision is recorded under: the verified one when there is one."""
    return identity.name if identity is not None else typed
