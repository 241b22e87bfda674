"""ARM wire conventions shared by the simulator's modules: error bodies, times, api-versions."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

ASR_API_VERSION = "2025-08-01"
# azure-mgmt-compute 39 sends 2026-04-01 for virtual machines; older published versions are
# accepted too so that a pinned older SDK keeps working against the lab.
COMPUTE_API_VERSIONS = frozenset({"2024-07-01", "2024-11-01", "2025-04-01", "2026-04-01"})


class ArmError(Exception):
    """An ARM error answer: `{"error": {"code", "message", "details"}}` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.target = target
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "details": []}
        error["details"] = self.details
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}


def asr_refusal(
    status: int, asr_code: str, message: str, *, possible_causes: str, recommended_action: str
) -> ArmError:
    """A refusal in the shape recorded from ASR (Azure PowerShell issue 4893): a generic
    top-level code, and ASR's own numeric code with its causes and action in `details`."""
    detail = {
        "code": asr_code,
        "message": message,
        "possibleCauses": possible_causes,
        "recommendedAction": recommended_action,
        "clientRequestId": str(uuid.uuid4()),
        "activityId": f"{uuid.uuid4()} ActivityId: {uuid.uuid4()}",
    }
    return ArmError(status, "BadRequest", message, details=[detail])


def bad_request(
    message: str, *, code: str = "InvalidRequestContent", target: str | None = None
) -> ArmError:
    return ArmError(400, code, message, target=target)


def not_found(message: str, *, code: str = "ResourceNotFound") -> ArmError:
    return ArmError(404, code, message)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime | None, *, timespec: str = "milliseconds") -> str | None:
    """ISO 8601 in UTC with a `Z` suffix, the way ARM writes times."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
