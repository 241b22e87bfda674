"""Who may decide: pure rules over verified identities. No I/O, no Temporal.

A person's decision (start, approve, undo, cut-over, cancel, agent) reaches a workflow with an
*attestation*: the worker's decision desk checked the person's Entra ID token (signature against
the tenant's published keys, audience, expiry) and signed, with its own Ed25519 key, what it
found: who, for which failback, which decision, until when. The token itself stays between the
CLI and the desk; only the attestation (who, never a credential) enters the history. The
workflow checks the signature against the public keys the worker gave it, so that a signal
typed by hand under any name is refused.

- R28 When the failback requires it, a decision counts only with a valid attestation: signed by
  a key of the worker's desk, for this failback and this decision, and not expired.
- R29 Only an allowed approver may approve the commit: named (user principal name or object id)
  or a member of an allowed group, by the settings for the vault or plan and the failback's own
  input (which can narrow the settings' list, never widen it).
- R30 Four-eyes (opt-in): the identity that started a failback cannot approve its commit.
- R31 A plan can require two (or more) distinct approvers: the commit waits for them all, and a
  second approval by the same identity is refused.
Every refusal changes nothing and is recorded with its reason.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["start", "approve", "undo", "cutover", "cancel", "agent"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class VerifiedIdentity(_Frozen):
    """What the desk read from a validated token: never the token."""

    object_id: str = Field(description="The token's oid: the person's object id in the tenant")
    name: str = Field(description="Their user principal name (preferred_username / upn)")
    display_name: str = ""
    tenant_id: str = ""
    groups: list[str] = Field(default_factory=list, description="Group object ids or names")

    def describe(self) -> str:
        return f"{self.name} (oid {self.object_id})"


class Attestation(_Frozen):
    """The desk's signed statement that `identity` made `decision` on `workflow_id`."""

    workflow_id: str
    decision: Decision
    comment: str = ""
    identity: VerifiedIdentity
    issued_at: datetime
    expires_at: datetime
    key_id: str
    signature: str = Field(description="Ed25519 over signed_message(), base64")


class DecisionPolicy(_Frozen):
    """The rules a failback holds its decisions to, read from the worker's settings at start
    (with the failback's own narrowing)."""

    require_identity: bool = False
    # Desk key id -> Ed25519 public key (raw 32 bytes, base64). Public: safe in history.
    desk_keys: dict[str, str] = Field(default_factory=dict)
    approvers: list[str] = Field(default_factory=list, description="UPNs or object ids; empty: any")
    approver_groups: list[str] = Field(default_factory=list)
    failback_approvers: list[str] = Field(
        default_factory=list,
        description="The failback's own list: an approver must be named here too (narrows)",
    )
    four_eyes: bool = False
    approvers_required: int = Field(default=1, ge=1)


def signed_message(attestation: Attestation) -> bytes:
    """The bytes the desk signs: every field but the signature, in one canonical JSON."""
    body = attestation.model_dump(mode="json", exclude={"signature"})
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signature_valid(attestation: Attestation, public_key: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(base64.b64decode(attestation.signature), signed_message(attestation))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def attestation_refusal(
    policy: DecisionPolicy,
    attestation: Attestation | None,
    workflow_id: str,
    decision: Decision,
    now: datetime,
) -> str | None:
    """R28: why this decision does not count as an authenticated one, or None."""
    if attestation is None:
        if not policy.require_identity:
            return None
        return (
            f"R28: this failback takes a {decision} only from a signed-in person: send it with "
            "`failback` (which signs you in through your Entra ID and the worker's decision "
            "desk), not as a bare signal"
        )
    key = policy.desk_keys.get(attestation.key_id)
    if key is None or not signature_valid(attestation, key):
        return (
            f"R28: the identity on this {decision} is not signed by the worker's decision desk "
            f"(key {attestation.key_id!r}); it was not taken"
        )
    if attestation.workflow_id != workflow_id or attestation.decision != decision:
        return (
            f"R28: the signed identity is for a {attestation.decision} of "
            f"{attestation.workflow_id}, not a {decision} of {workflow_id}"
        )
    if now > attestation.expires_at:
        return (
            f"R28: the signed identity expired at {attestation.expires_at:%H:%M:%S} UTC; send the "
            f"{decision} again"
        )
    return None


def approver_refusal(
    policy: DecisionPolicy,
    identity: VerifiedIdentity | None,
    started_by: VerifiedIdentity | None,
    approved_so_far: list[VerifiedIdentity],
) -> str | None:
    """R29-R31: why `identity` may not approve this commit, or None."""
    if identity is None:
        return None
    if policy.approvers or policy.approver_groups:
        groups = {g.lower() for g in policy.approver_groups}
        by_group = bool(groups & {g.lower() for g in identity.groups})
        if not (_named(identity, policy.approvers) or by_group):
            allowed = ", ".join(
                [*policy.approvers, *(f"group {g}" for g in policy.approver_groups)]
            )
            return (
                f"R29: {identity.describe()} is not an allowed approver of this vault or plan "
                f"(allowed: {allowed}); ask one of them"
            )
    if policy.failback_approvers and not _named(identity, policy.failback_approvers):
        return (
            f"R29: {identity.describe()} is not among the approvers this failback was started "
            f"with ({', '.join(policy.failback_approvers)}); ask one of them"
        )
    if policy.four_eyes and started_by is not None and _same(started_by, identity):
        return (
            f"R30: {identity.name} started this failback and so cannot approve its commit "
            "(four-eyes): another approver must"
        )
    if any(_same(earlier, identity) for earlier in approved_so_far):
        return (
            f"R31: {identity.name} has already approved; the commit needs "
            f"{policy.approvers_required} distinct approvers"
        )
    return None


def _same(one: VerifiedIdentity, other: VerifiedIdentity) -> bool:
    return one.object_id.lower() == other.object_id.lower()


def _named(identity: VerifiedIdentity, names: list[str]) -> bool:
    wanted = {n.lower() for n in names}
    return identity.name.lower() in wanted or identity.object_id.lower() in wanted
