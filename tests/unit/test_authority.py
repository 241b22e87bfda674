"""R28-R31 (domain/authority.py): an attestation counts only as the desk signed it, for this
failback and decision, before it expires; approvers are held to the names, groups, four-eyes and
distinctness the policy gives."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from domain.authority import (
    Attestation,
    DecisionPolicy,
    VerifiedIdentity,
    approver_refusal,
    attestation_refusal,
    signed_message,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
POLICY = DecisionPolicy(require_identity=True, desk_keys={"desk1": PUBLIC})
ALICE = VerifiedIdentity(object_id="oid-alice", name="alice@contoso.com", groups=["g-approvers"])
BOB = VerifiedIdentity(object_id="oid-bob", name="bob@contoso.com")


def signed(identity: VerifiedIdentity = ALICE, **changes: object) -> Attestation:
    unsigned = Attestation(
        workflow_id="failback-vault-web-01",
        decision="approve",
        identity=identity,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        key_id="desk1",
        signature="",
    ).model_copy(update=changes)
    signature = base64.b64encode(KEY.sign(signed_message(unsigned))).decode()
    return unsigned.model_copy(update={"signature": signature})


def refusal(attestation: Attestation | None, policy: DecisionPolicy = POLICY) -> str | None:
    return attestation_refusal(policy, attestation, "failback-vault-web-01", "approve", NOW)


def test_r28_a_signed_attestation_for_this_failback_and_decision_counts() -> None:
    assert refusal(signed()) is None


def test_r28_refuses_what_the_desk_did_not_sign_for_this_decision() -> None:
    assert "bare signal" in (refusal(None) or "")
    assert refusal(None, DecisionPolicy()) is None  # identities not required
    assert "not signed" in (refusal(signed(key_id="other")) or "")
    forged = signed().model_copy(update={"identity": BOB})
    assert "not signed" in (refusal(forged) or "")
    assert "not a approve of" in (refusal(signed(workflow_id="failback-vault-db-01")) or "")
    assert "for a undo" in (refusal(signed(decision="undo")) or "")
    expired = signed(expires_at=NOW - timedelta(seconds=1))
    assert "expired" in (refusal(expired) or "")
    assert all(r.startswith("R28") for r in (refusal(None), refusal(forged), refusal(expired)))


@given(
    field=st.sampled_from(["workflow_id", "comment", "name", "object_id"]),
    text=st.text(min_size=1, max_size=20),
)
def test_r28_any_change_to_a_signed_attestation_breaks_it(field: str, text: str) -> None:
    original = signed()
    if field in ("name", "object_id"):
        identity = original.identity.model_copy(update={field: getattr(ALICE, field) + text})
        changed = original.model_copy(update={"identity": identity})
    else:
        changed = original.model_copy(update={field: getattr(original, field) + text})
    assert refusal(changed) is not None


def test_r29_names_object_ids_and_groups_allow_others_do_not() -> None:
    by_name = DecisionPolicy(approvers=["ALICE@contoso.com"])
    by_oid = DecisionPolicy(approvers=["oid-alice"])
    by_group = DecisionPolicy(approver_groups=["g-approvers"])
    for policy in (by_name, by_oid, by_group):
        assert approver_refusal(policy, ALICE, None, []) is None
        assert (approver_refusal(policy, BOB, None, []) or "").startswith("R29")
    assert approver_refusal(DecisionPolicy(), BOB, None, []) is None  # nobody named: anyone
    narrowed = by_group.model_copy(update={"failback_approvers": ["bob@contoso.com"]})
    # The failback's own list narrows the settings': alice is in the group but not named.
    assert "started with" in (approver_refusal(narrowed, ALICE, None, []) or "")


def test_r30_four_eyes_and_r31_distinct_approvers() -> None:
    four_eyes = DecisionPolicy(four_eyes=True)
    assert (approver_refusal(four_eyes, ALICE, ALICE, []) or "").startswith("R30")
    assert approver_refusal(four_eyes, BOB, ALICE, []) is None
    assert approver_refusal(DecisionPolicy(), ALICE, ALICE, []) is None  # four-eyes off
    two = DecisionPolicy(approvers_required=2)
    assert (approver_refusal(two, ALICE, None, [ALICE]) or "").startswith("R31")
    assert approver_refusal(two, BOB, None, [ALICE]) is None


@given(
    names=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3, unique=True),
    groups=st.lists(st.sampled_from(["g1", "g2"]), max_size=2, unique=True),
    who=st.sampled_from(["a", "b", "c", "d"]),
    member_of=st.lists(st.sampled_from(["g1", "g2", "g3"]), max_size=3, unique=True),
)
def test_r29_allowed_exactly_when_named_or_in_a_named_group(
    names: list[str], groups: list[str], who: str, member_of: list[str]
) -> None:
    policy = DecisionPolicy(approvers=names, approver_groups=groups)
    identity = VerifiedIdentity(object_id=f"oid-{who}", name=who, groups=member_of)
    allowed = not (names or groups) or who in names or bool(set(groups) & set(member_of))
    assert (approver_refusal(policy, identity, None, []) is None) == allowed
