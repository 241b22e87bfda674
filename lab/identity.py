"""The lab's identity provider: Entra ID's token and key endpoints, for named lab users.

Served by the ASR simulator (which already plays Azure) at Entra's paths under a lab tenant:
`POST /{tenant}/oauth2/v2.0/token` and `GET /{tenant}/discovery/v2.0/keys`, with the issuer
`{base}/{tenant}/v2.0`. It issues RS256 access tokens shaped as Entra ID's v2.0 ones (`aud`,
`iss`, `tid`, `oid`, `preferred_username`, `name`, `groups`, `iat`/`nbf`/`exp`, `kid` in the
header), signed with an RSA key the simulator makes when it starts. A token is given for a lab
user to whoever presents the lab's secret (the resource owner password grant, the lab's
simplification of a person's interactive sign-in).
"""

from __future__ import annotations

import base64
import functools
import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LAB_TENANT = "7a3f0c1e-1ab0-4c6e-9d2b-5f1e0c0ffee0"
LAB_AUDIENCE = "api://failback-orchestrator"
LAB_DOMAIN = "lab.failback.test"
APPROVERS_GROUP = "failback-approvers"


@dataclass(frozen=True)
class LabUser:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def upn(self) -> str:
        return f"{self.name}@{LAB_DOMAIN}"

    @property
    def object_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"failback-lab-user/{self.name}"))


# alice, bob and carol approve; dan operates (starts, cuts over) but is no approver.
LAB_USERS = {
    u.name: u
    for u in (
        LabUser("alice", (APPROVERS_GROUP,)),
        LabUser("bob", (APPROVERS_GROUP,)),
        LabUser("carol", (APPROVERS_GROUP,)),
        LabUser("dan"),
    )
}


def _b64url(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class LabIdentityProvider:
    secret: str
    lifetime_seconds: int = 3600
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @functools.cached_property
    def key(self) -> rsa.RSAPrivateKey:
        """Made on first use: a simulator nobody signs in to makes none."""
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.key_id,
                    "n": _b64url(numbers.n),
                    "e": _b64url(numbers.e),
                }
            ]
        }

    def token(self, base: str, user: LabUser, audience: str) -> tuple[str, int]:
        import jwt

        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"{base}/{LAB_TENANT}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "tid": LAB_TENANT,
            "oid": user.object_id,
            "sub": user.object_id,
            "preferred_username": user.upn,
            "name": user.name.capitalize(),
            "groups": list(user.groups),
            "ver": "2.0",
        }
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": self.key_id}), (
            now + self.lifetime_seconds
        )


IDP_KEY = web.AppKey("identity_provider", LabIdentityProvider)


def add_identity_routes(app: web.Application, provider: LabIdentityProvider) -> None:
    app[IDP_KEY] = provider
    app.router.add_post(f"/{LAB_TENANT}/oauth2/v2.0/token", _token)
    app.router.add_get(f"/{LAB_TENANT}/discovery/v2.0/keys", _keys)


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _keys(request: web.Request) -> web.Response:
    return web.json_response(request.app[IDP_KEY].jwks())


async def _token(request: web.Request) -> web.Response:
    form = await request.post()
    provider = request.app[IDP_KEY]
    if str(form.get("grant_type")) != "password":
        return _error(400, "unsupported_grant_type", "the lab takes grant_type=password")
    if not hmac.compare_digest(str(form.get("password", "")).encode(), provider.secret.encode()):
        return _error(401, "invalid_grant", "AADSTS50126: invalid username or password")
    name = str(form.get("username", "")).split("@")[0].lower()
    user = LAB_USERS.get(name)
    if user is None:
        known = ", ".join(sorted(LAB_USERS))
        return _error(
            400, "invalid_grant", f"AADSTS50034: no lab user {name!r} (lab users: {known})"
        )
    scope = str(form.get("scope", ""))
    audience = scope.removesuffix("/.default") if scope.endswith("/.default") else LAB_AUDIENCE
    token, expires_on = provider.token(_base(request), user, audience)
    return web.json_response(
        {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": expires_on - int(time.time()),
            "expires_on": expires_on,
        }
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "error_description": message}, status=status)
