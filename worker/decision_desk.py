"""The decision desk: where a person's sign-in becomes a signed statement of who they are.

The CLI sends `POST /attest` with the person's Entra ID access token (`Authorization: Bearer`)
and what they decide (`{"workflow_id", "decision", "comment"}`). The desk validates the token
(its signature against the identity provider's published keys, the audience, the issuer, the
expiry), and answers with an attestation (domain/authority.py) signed with the worker's Ed25519
key. The CLI puts that attestation, never the token, into the signal it sends; the workflow
checks the signature with the public keys it read from the worker at its start (R28). So the
token stays between the CLI and the worker, and the history holds only the verified identity.

Served by `failback worker` when FAILBACK_DECISION_DESK_PORT is set (HTTPS when
FAILBACK_DECISION_DESK_TLS_CERT/_KEY are).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.authority import Attestation, Decision, VerifiedIdentity, signed_message
from worker.settings import Settings, SettingsError

DECISIONS: tuple[str, ...] = get_args(Decision)


def signing_keys(settings: Settings) -> list[tuple[str, Ed25519PrivateKey]]:
    """KEYID=BASE64 pairs of FAILBACK_DECISION_SIGNING_KEYS; the first one signs."""
    if settings.decision_signing_keys is None:
        return []
    keys = []
    for entry in settings.decision_signing_keys.get_secret_value().split(","):
        key_id, sep, seed = entry.strip().partition("=")
        try:
            raw = base64.b64decode(seed.strip(), validate=True)
            if not sep or not key_id or len(raw) != 32:
                raise ValueError
            keys.append((key_id.strip(), Ed25519PrivateKey.from_private_bytes(raw)))
        except (ValueError, binascii.Error) as err:
            raise SettingsError(
                "FAILBACK_DECISION_SIGNING_KEYS: each entry is KEYID=BASE64 of 32 random bytes "
                "(e.g. desk1=$(head -c32 /dev/urandom | base64))"
            ) from err
    return keys


def public_keys(settings: Settings) -> dict[str, str]:
    """Key id -> the raw Ed25519 public key, base64: what a workflow verifies with."""
    return {
        key_id: base64.b64encode(
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ).decode()
        for key_id, key in signing_keys(settings)
    }


class TokenRefused(Exception):
    """The token is not one the desk takes; the message says why, never the token."""


@dataclass(frozen=True)
class TokenVerifier:
    """An Entra ID (or the lab's) access token, validated as Microsoft's documentation asks:
    RS256 signature by a key of the issuer's JWKS (chosen by `kid`), `aud`, `iss`, `exp`/`nbf`."""

    issuer: str
    audience: str
    jwks_url: str
    ca_bundle: str | None = None

    def identity(self, token: str) -> VerifiedIdentity:
        import jwt

        try:
            key = self._jwks().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "oid"]},
                leeway=60,
            )
        except jwt.PyJWKClientError as err:
            raise TokenRefused(f"the identity provider's keys could not be read ({err})") from err
        except jwt.InvalidTokenError as err:
            raise TokenRefused(f"the sign-in token is not valid: {err}") from err
        name = claims.get("preferred_username") or claims.get("upn") or claims.get("unique_name")
        if not name:
            raise TokenRefused("the token names no user (no preferred_username or upn claim)")
        return VerifiedIdentity(
            object_id=str(claims["oid"]),
            name=str(name),
            display_name=str(claims.get("name") or ""),
            tenant_id=str(claims.get("tid") or ""),
            groups=[str(g) for g in claims.get("groups") or []],
        )

    def _jwks(self) -> Any:
        import jwt

        context = ssl.create_default_context(cafile=self.ca_bundle)
        return _jwks_clients.setdefault(
            (self.jwks_url, self.ca_bundle), jwt.PyJWKClient(self.jwks_url, ssl_context=context)
        )


# One JWKS client per URL: it caches the keys (and fetches again for a `kid` it lacks).
_jwks_clients: dict[tuple[str, str | None], Any] = {}


@dataclass(frozen=True)
class Desk:
    verifier: TokenVerifier
    key_id: str
    key: Ed25519PrivateKey
    valid_for: timedelta

    def attest(self, token: str, workflow_id: str, decision: Decision, comment: str) -> Attestation:
        identity = self.verifier.identity(token)
        now = datetime.now(UTC).replace(microsecond=0)
        unsigned = Attestation(
            workflow_id=workflow_id,
            decision=decision,
            comment=comment,
            identity=identity,
            issued_at=now,
            expires_at=now + self.valid_for,
            key_id=self.key_id,
            signature="",
        )
        signature = self.key.sign(signed_message(unsigned))
        return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})


def desk_from_settings(settings: Settings) -> Desk:
    keys = signing_keys(settings)
    missing = [
        name
        for name, value in (
            ("FAILBACK_DECISION_SIGNING_KEYS", keys),
            ("FAILBACK_IDENTITY_ISSUER", settings.identity_issuer),
            ("FAILBACK_IDENTITY_AUDIENCE", settings.identity_audience),
        )
        if not value
    ]
    if missing:
        raise SettingsError(f"the decision desk needs {', '.join(missing)}")
    assert settings.identity_issuer is not None and settings.identity_audience is not None
    issuer = settings.identity_issuer.rstrip("/")
    jwks = settings.identity_jwks_url or _entra_jwks(issuer)
    key_id, key = keys[0]
    return Desk(
        TokenVerifier(issuer, settings.identity_audience, jwks, settings.identity_ca_bundle),
        key_id,
        key,
        timedelta(seconds=settings.decision_desk_attestation_seconds),
    )


def _entra_jwks(issuer: str) -> str:
    """Entra ID's v2.0 keys: https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys."""
    return issuer.removesuffix("/v2.0") + "/discovery/v2.0/keys"


DESK_KEY = web.AppKey("desk", Desk)


def desk_app(desk: Desk) -> web.Application:
    app = web.Application()
    app[DESK_KEY] = desk
    app.router.add_post("/attest", _attest)
    return app


async def _attest(request: web.Request) -> web.Response:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _refused(401, "sign in first: the request has no bearer token")
    try:
        body = await request.json()
    except ValueError:
        return _refused(400, "the body is not JSON")
    workflow_id, decision = body.get("workflow_id"), body.get("decision")
    if not isinstance(workflow_id, str) or not workflow_id.strip():
        return _refused(400, "workflow_id is missing")
    if decision not in DECISIONS:
        return _refused(400, f"decision must be one of {', '.join(DECISIONS)}")
    comment = str(body.get("comment") or "")
    desk = request.app[DESK_KEY]
    try:
        attestation = await asyncio.to_thread(
            desk.attest, token.strip(), workflow_id, decision, comment
        )
    except TokenRefused as err:
        return _refused(401, str(err))
    return web.json_response(attestation.model_dump(mode="json"))


def _refused(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def start_desk(settings: Settings) -> web.AppRunner | None:
    """The desk on FAILBACK_DECISION_DESK_PORT, if set; None otherwise."""
    if settings.decision_desk_port is None:
        return None
    desk = desk_from_settings(settings)
    context = None
    if settings.decision_desk_tls_cert and settings.decision_desk_tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.decision_desk_tls_cert, settings.decision_desk_tls_key)
    runner = web.AppRunner(desk_app(desk), access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, settings.decision_desk_host, settings.decision_desk_port, ssl_context=context
    )
    await site.start()
    return runner
