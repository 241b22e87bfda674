"""The lab's token source: an azure-core TokenCredential backed by the ASR simulator.

Production uses azure-identity; the lab has no Entra ID, so the simulator issues opaque bearer
tokens to whoever knows the lab secret. Going through a real TokenCredential keeps the SDK's
authentication policy (and its "no bearer tokens over HTTP" rule) in the path under test.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError

TOKEN_PATH = "/_lab/token"


class LabTokenCredential:
    """Fetches a bearer token from `{endpoint}/_lab/token`, cached until shortly before expiry.

    Thread-safe: the SDK's LRO pollers call `get_token` from their own threads.
    """

    def __init__(
        self,
        endpoint: str,
        secret: str,
        ca_bundle: str | None,
        *,
        refresh_margin_seconds: int = 300,
        timeout_seconds: float = 10.0,
        client_id: str | None = None,
    ) -> None:
        if not endpoint.lower().startswith("https://"):
            # The secret would travel in clear text.
            raise ValueError(f"the lab token endpoint must use https://, got {endpoint!r}")
        self._url = endpoint.rstrip("/") + TOKEN_PATH
        self._secret = secret
        # The principal the tokens are for (ARM's budgets are per principal); none: the lab's.
        self._client_id = client_id
        self._ssl_context = ssl.create_default_context(cafile=ca_bundle)
        self._refresh_margin = refresh_margin_seconds
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._cached: AccessTokenInfo | None = None

    def __repr__(self) -> str:
        return f"LabTokenCredential(url={self._url!r})"

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        info = self._token()
        return AccessToken(info.token, info.expires_on)

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        return self._token()

    def close(self) -> None:
        with self._lock:
            self._cached = None

    def __enter__(self) -> LabTokenCredential:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _token(self) -> AccessTokenInfo:
        with self._lock:
            cached = self._cached
            if cached is not None and cached.expires_on - self._refresh_margin > time.time():
                return cached
            fresh = self._fetch()
            self._cached = fresh
            return fresh

    def _fetch(self) -> AccessTokenInfo:
        request = urllib.request.Request(
            self._url,
            data=json.dumps(
                {"client_secret": self._secret}
                | ({"client_id": self._client_id} if self._client_id else {})
            ).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self._timeout, context=self._ssl_context
            ) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise ClientAuthenticationError(
                message=f"the lab token endpoint {self._url} refused the secret "
                f"(HTTP {err.code}): {detail}"
            ) from err
        except (urllib.error.URLError, OSError) as err:
            raise ClientAuthenticationError(
                message=f"cannot reach the lab token endpoint {self._url}: {err}"
            ) from err
        except json.JSONDecodeError as err:
            raise ClientAuthenticationError(
                message=f"the lab token endpoint {self._url} did not answer with JSON"
            ) from err
        try:
            token = str(payload["access_token"])
            expires_on = int(payload["expires_on"])
        except (KeyError, TypeError, ValueError) as err:
            raise ClientAuthenticationError(
                message=f"the lab token endpoint {self._url} answered without "
                "access_token/expires_on"
            ) from err
        return AccessTokenInfo(
            token, expires_on, refresh_on=max(int(time.time()), expires_on - self._refresh_margin)
        )


def from_settings(settings: Any) -> LabTokenCredential:
    """The worker's credential plugin "lab" (pyproject's failback.azure_credentials entry)."""
    settings.require("azure_lab_token_secret")
    return LabTokenCredential(
        settings.azure_endpoint,
        settings.azure_lab_token_secret.get_secret_value(),
        settings.azure_ca_bundle,
        client_id=settings.azure_lab_client_id,
    )


class LabSignIn:
    """A lab user's sign-in at the lab's identity provider (lab/identity.py): the token a
    person's `az login` would give, for the user named by FAILBACK_LAB_IDENTITY."""

    def __init__(self, endpoint: str, secret: str, user: str, ca_bundle: str | None) -> None:
        from lab.identity import LAB_TENANT

        self._url = f"{endpoint.rstrip('/')}/{LAB_TENANT}/oauth2/v2.0/token"
        self._secret = secret
        self._user = user
        self._ssl_context = ssl.create_default_context(cafile=ca_bundle)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        form = urllib.parse.urlencode(
            {
                "grant_type": "password",
                "username": self._user,
                "password": self._secret,
                "scope": " ".join(scopes),
            }
        ).encode()
        request = urllib.request.Request(self._url, data=form, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl_context) as reply:
                payload = json.loads(reply.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("error_description", detail)
            raise ClientAuthenticationError(
                message=f"the lab's sign-in refused {self._user}: {detail}"
            ) from err
        except (urllib.error.URLError, OSError) as err:
            raise ClientAuthenticationError(
                message=f"cannot reach the lab's sign-in at {self._url}: {err}"
            ) from err
        return AccessToken(str(payload["access_token"]), int(payload["expires_on"]))


def identity_from_settings(settings: Any) -> LabSignIn:
    """The CLI's sign-in plugin "lab" (pyproject's failback.identity_credentials entry)."""
    settings.require("azure_lab_token_secret", "lab_identity")
    return LabSignIn(
        settings.azure_endpoint,
        settings.azure_lab_token_secret.get_secret_value(),
        settings.lab_identity,
        settings.azure_ca_bundle,
    )
