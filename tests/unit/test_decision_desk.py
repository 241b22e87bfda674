"""The decision desk validates a token as Entra ID's documentation asks (RS256 against the
issuer's published keys, audience, issuer, expiry) and signs only what it validated; the lab's
identity provider serves Entra's endpoints over HTTPS for it."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from domain.authority import DecisionPolicy, attestation_refusal
from lab.certs import LabTls, make_lab_tls
from lab.identity import (
    LAB_AUDIENCE,
    LAB_TENANT,
    LAB_USERS,
    LabIdentityProvider,
    add_identity_routes,
)
from worker.decision_desk import (
    Desk,
    TokenRefused,
    TokenVerifier,
    desk_from_settings,
    public_keys,
)
from worker.settings import Settings, SettingsError

SEED = base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture()
def tls(tmp_path: Path) -> LabTls:
    return make_lab_tls(tmp_path)


@pytest.fixture()
async def idp(tls: LabTls) -> AsyncIterator[tuple[str, LabIdentityProvider]]:
    import ssl

    provider = LabIdentityProvider("lab-secret")
    app = web.Application()
    add_identity_routes(app, provider)
    server = TestServer(app, host="127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.server_cert, tls.server_key)
    await server.start_server(ssl=context)
    try:
        yield f"https://127.0.0.1:{server.port}", provider
    finally:
        await server.close()


def settings_for(base: str, tls: LabTls) -> Settings:
    return Settings(
        decision_signing_keys=f"desk1={SEED}",  # type: ignore[arg-type]
        identity_issuer=f"{base}/{LAB_TENANT}/v2.0",
        identity_audience=LAB_AUDIENCE,
        identity_ca_bundle=str(tls.ca_cert),
    )


async def test_a_valid_token_becomes_a_signed_attestation_the_workflow_accepts(
    idp: tuple[str, LabIdentityProvider], tls: LabTls
) -> None:
    base, provider = idp
    settings = settings_for(base, tls)
    desk = desk_from_settings(settings)
    token, _ = provider.token(base, LAB_USERS["bob"], LAB_AUDIENCE)
    attestation = await asyncio.to_thread(desk.attest, token, "wf-1", "approve", "checked")
    assert attestation.identity.name == "bob@lab.failback.test"
    assert attestation.identity.groups == ["failback-approvers"]
    assert token not in attestation.model_dump_json()
    policy = DecisionPolicy(require_identity=True, desk_keys=public_keys(settings))
    now = datetime.now(UTC)
    assert attestation_refusal(policy, attestation, "wf-1", "approve", now) is None


async def test_the_desk_refuses_a_token_for_another_audience_issuer_key_or_time(
    idp: tuple[str, LabIdentityProvider], tls: LabTls
) -> None:
    base, provider = idp
    desk = desk_from_settings(settings_for(base, tls))
    user = LAB_USERS["alice"]

    def refused(token: str) -> str:
        with pytest.raises(TokenRefused) as caught:
            desk.attest(token, "wf-1", "approve", "")
        return str(caught.value)

    other_audience, _ = provider.token(base, user, "api://someone-else")
    assert "audience" in (await asyncio.to_thread(refused, other_audience)).lower()
    other_issuer, _ = provider.token("https://login.example.com", user, LAB_AUDIENCE)
    assert "issuer" in (await asyncio.to_thread(refused, other_issuer)).lower()
    # Signed by a key the issuer does not publish, under the published key's id.
    impostor = LabIdentityProvider("x", key_id=provider.key_id)
    forged, _ = impostor.token(base, user, LAB_AUDIENCE)
    assert "signature" in (await asyncio.to_thread(refused, forged)).lower()
    stale = LabIdentityProvider("x", lifetime_seconds=-300, key_id=provider.key_id)
    stale.__dict__["key"] = provider.key
    expired, _ = stale.token(base, user, LAB_AUDIENCE)
    assert "expired" in (await asyncio.to_thread(refused, expired)).lower()
    assert "not valid" in await asyncio.to_thread(refused, "not-a-jwt")


def test_the_desk_needs_its_key_issuer_and_audience() -> None:
    with pytest.raises(SettingsError, match="FAILBACK_DECISION_SIGNING_KEYS"):
        desk_from_settings(Settings(identity_issuer="https://x/v2.0", identity_audience="api://a"))
    with pytest.raises(SettingsError, match="KEYID=BASE64"):
        public_keys(Settings(decision_signing_keys="desk1=short"))  # type: ignore[arg-type]
    verifier = desk_from_settings(
        Settings(
            decision_signing_keys=f"desk1={SEED}",  # type: ignore[arg-type]
            identity_issuer="https://login.microsoftonline.com/tenant-1/v2.0",
            identity_audience="api://failback",
        )
    ).verifier
    # Entra ID's published keys for the tenant, derived from its v2.0 issuer.
    assert verifier.jwks_url == "https://login.microsoftonline.com/tenant-1/discovery/v2.0/keys"
    assert isinstance(verifier, TokenVerifier) and isinstance(Desk, type)
    assert (
        timedelta(seconds=300)
        == desk_from_settings(
            Settings(
                decision_signing_keys=f"desk1={SEED}",  # type: ignore[arg-type]
                identity_issuer="https://i/v2.0",
                identity_audience="api://a",
            )
        ).valid_for
    )
