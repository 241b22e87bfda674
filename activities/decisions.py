"""The worker's decision rules, given to each failback at its start (R28-R31): the public keys of
its decision desk (which signs verified identities, worker/decision_desk.py) and who may approve,
from the worker's settings. A failback keeps them in its history: nothing here is secret."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from temporalio import activity

from domain.authority import DecisionPolicy
from domain.models import VaultRef


class DecisionPolicyQuery(BaseModel):
    vault: VaultRef
    recovery_plan: str | None = None
    failback_approvers: list[str] = Field(default_factory=list)
    approvers_required: int = Field(default=1, ge=1)


@dataclass(frozen=True)
class DecisionRules:
    """From the settings: FAILBACK_REQUIRE_IDENTITY, FAILBACK_APPROVERS, ..."""

    require_identity: bool = False
    desk_keys: dict[str, str] = field(default_factory=dict)
    approvers: list[str] = field(default_factory=list)
    approver_groups: list[str] = field(default_factory=list)
    # Plan name -> the approvers of that plan (instead of the vault's).
    plan_approvers: dict[str, list[str]] = field(default_factory=dict)
    four_eyes: bool = False
    approvers_required: int = 1


class DecisionActivities:
    def __init__(self, rules: DecisionRules) -> None:
        self._rules = rules

    @activity.defn
    async def decision_policy(self, query: DecisionPolicyQuery) -> DecisionPolicy:
        rules = self._rules
        plan_list = rules.plan_approvers.get(query.recovery_plan or "")
        return DecisionPolicy(
            require_identity=rules.require_identity,
            desk_keys=dict(rules.desk_keys),
            approvers=list(plan_list if plan_list is not None else rules.approvers),
            approver_groups=[] if plan_list is not None else list(rules.approver_groups),
            failback_approvers=list(query.failback_approvers),
            four_eyes=rules.four_eyes,
            approvers_required=max(rules.approvers_required, query.approvers_required),
        )
