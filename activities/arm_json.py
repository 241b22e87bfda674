"""ARM GETs as raw JSON through an SDK client's own pipeline (credentials, retries, the read
budget's policy), with the SDK's errors. The SDK's list operations decode each element into its
model (~0.6 ms each here), which lists read at scale cannot afford: ASR's job and point lists
(activities/asr/gateway.py) and Compute's VM status list (activities/compute.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

# The errors the SDK's generated GET operations raise for these statuses.
GET_ERRORS = {
    304: ResourceNotModifiedError,
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
}


def get_json(
    client: Any, url: str, api_version: str, query: dict[str, str] | None = None
) -> dict[str, Any]:
    """One GET as JSON. The api-version is set whatever the URL carries."""
    params = {**(query or {}), "api-version": api_version}
    response = client.send_request(HttpRequest("GET", url, params=params))
    if response.status_code != 200:
        map_error(status_code=response.status_code, response=response, error_map=GET_ERRORS)
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    document = response.json()
    return document if isinstance(document, dict) else {}


def json_pages(
    client: Any, path: str, api_version: str, query: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every page of an ARM list, following nextLink. A nextLink may or may not carry
    api-version (a reality variant of the lab): as the SDK's own pagers do, it is asked for
    again on every page."""
    url: str | None = path
    params: dict[str, str] = query or {}
    while url:
        page = get_json(client, url, api_version, params)
        yield page
        url, params = page.get("nextLink") or None, {}
