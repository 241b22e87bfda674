"""The CLI's side of authenticated decisions (domain/authority.py): sign the person in, have the
worker's decision desk verify the token and sign who they are, and hand back that attestation
for the signal. The token goes to the desk only, never into a signal or a workflow's history.

Without FAILBACK_DECISION_DESK_URL the CLI takes `--by NAME` as before (a failback whose worker
requires identities then refuses such a decision, R28, and records the refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from domain.authority import Attestation, Decision
from worker.settings import Settings

IDENTITY_PLUGINS = "failback.identity_credentials"


class SignInError(Exception):
    """One line that says what went wrong with the sign-in or the desk, and what to do."""


def decides_by_sign_in(settings: Settings) -> bool:
    return bool(settings.decision_desk_url)


def who_decides(settings: Settings, by: str | None, what: str) -> str:
    """The name typed with --by, when decisions are not signed in; refused when they are (the
    identity then comes from the sign-in, never from a typed name)."""
    if decides_by_sign_in(settings):
        if by:
            raise SignInError(
                f"--by is not taken here: decisions are signed in (FAILBACK_DECISION_DESK_URL), "
                f"so the {what} is recorded under your verified identity; drop --by"
            )
        return "signed-in"
    if not by or not by.strip():
        raise SignInError(f"--by must name who {what}")
    return by


async def attest(
    settings: Settings, workflow_id: str, decision: Decision, comment: str = ""
) -> Attestation | None:
    """The desk's signed statement of who the signed-in person is, for this decision; None
    when decisions are not signed in."""
    if not decides_by_sign_in(settings):
        return None
    return await asyncio.to_thread(_attest, settings, workflow_id, decision, comment)


def _attest(settings: Settings, workflow_id: str, decision: Decision, comment: str) -> Attestation:
    token = _token(settings)
    assert settings.decision_desk_url is not None
    url = settings.decision_desk_url.rstrip("/") + "/attest"
    body = json.dumps({"workflow_id": workflow_id, "decision": decision, "comment": comment})
    request = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    context = ssl.create_default_context(cafile=settings.decision_desk_ca_bundle)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return Attestation.model_validate_json(reply.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = str(json.loads(detail).get("error") or detail)
        raise SignInError(f"the decision desk refused your sign-in: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        raise SignInError(
            f"cannot reach the decision desk at {settings.decision_desk_url} ({err}): check "
            "FAILBACK_DECISION_DESK_URL, FAILBACK_DECISION_DESK_CA_BUNDLE and that a worker runs "
            "with FAILBACK_DECISION_DESK_PORT"
        ) from err


def _token(settings: Settings) -> str:
    from azure.core.exceptions import ClientAuthenticationError

    scope = settings.identity_scope or (
        f"{settings.identity_audience.rstrip('/')}/.default" if settings.identity_audience else None
    )
    if scope is None:
        raise SignInError(
            "set FAILBACK_IDENTITY_AUDIENCE (the failback app registration's id URI, e.g. "
            "api://failback-orchestrator) or FAILBACK_IDENTITY_SCOPE to sign in"
        )
    try:
        return str(_credential(settings).get_token(scope).token)
    except ClientAuthenticationError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SignInError(
            f"sign-in failed ({first}): sign in with `az login` (or set FAILBACK_IDENTITY_AUTH)"
        ) from err


def _credential(settings: Settings) -> Any:
    if settings.identity_auth == "default":
        from azure.identity import DefaultAzureCredential

        # A person, not the machine: no managed identity stands in for them.
        return DefaultAzureCredential(exclude_managed_identity_credential=True)
    from importlib.metadata import entry_points

    plugins = {e.name: e for e in entry_points(group=IDENTITY_PLUGINS)}
    plugin = plugins.get(settings.identity_auth)
    if plugin is None:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise SignInError(
            f"FAILBACK_IDENTITY_AUTH={settings.identity_auth!r} names no sign-in; use 'default' "
            f"(azure-identity) or one of: {known}"
        )
    return plugin.load()(settings)
