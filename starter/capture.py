"""`failback capture`: a read-only, sanitised capture of what the product reads from a real vault.

Only GETs, of what the product reads (items, recovery points, jobs, plans, fabrics, containers,
container mappings, vCenters, policies), each answer written to the output folder after
sanitising: identifiers, names, addresses and free text are replaced by stand-ins of the same
shape (a GUID by a GUID, an address by an address, an ARM id by an ARM id with the same resource
types), consistently within one capture, while keys, enum values, numbers and time formats stay
as ASR sent them. That is what `python -m lab.capture_diff DIR` compares with the simulator.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

# Values ASR uses as words of its own (states, kinds, operations): kept as sent.
KEPT_KEYS = frozenset(
    {
        "instanceType",
        "type",
        "protectionState",
        "replicationHealth",
        "allowedOperations",
        "allowedActions",
        "activeLocation",
        "scenarioName",
        "state",
        "stateDescription",
        "recoveryPointType",
        "isMultiVmSyncPoint",
        "multiVmSyncStatus",
        "health",
        "healthErrorCode",
        "errorCode",
        "errorLevel",
        "errorCategory",
        "errorSource",
        "errorType",
        "discoveryStatus",
        "csServiceStatus",
        "psServiceStatus",
        "versionStatus",
        "osType",
        "protectionStage",
        "vmProtectionState",
        "activeSiteType",
        "pairingStatus",
        "role",
        "fabricType",
        "groupType",
        "failoverDirection",
        "currentScenarioStatus",
        "targetInstanceType",
        "provisioningState",
        "bcdrState",
        "discoveryType",
        "protectedItemType",
        "primaryFabricProvider",
        "replicationProvider",
        "replicationProviders",
        "initialReplicationType",
        "resyncRequired",
        "resyncState",
        "agentVersion",
        "multiVmGroupCreateOption",
        "status",
        "apiVersion",
        "api-version",
    }
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_ARM_ID = re.compile(r"^/(subscriptions|Subscriptions)/", re.I)


class JsonReader(Protocol):
    """GETs of ASR as JSON: the ASR gateway, or the lab's reader of the simulator."""

    def get_json(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]: ...

    def list_json(self, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]: ...


@dataclass
class Sanitiser:
    """Stand-ins of the same shape, the same stand-in for the same value within one capture."""

    _seen: dict[str, str] = field(default_factory=dict)

    def value(self, key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.value(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(key, v) for v in value]
        if not isinstance(value, str) or key in KEPT_KEYS:
            return value
        return self.text(value)

    def text(self, value: str) -> str:
        if not value or _TIME.match(value) or _NUMBER.match(value) or value in ("true", "false"):
            return value
        if _ARM_ID.match(value):
            return self.arm_id(value)
        if value not in self._seen:
            self._seen[value] = self._stand_in(value)
        return self._seen[value]

    def arm_id(self, value: str) -> str:
        path, _, query = value.partition("?")
        segments = path.split("/")
        # /subscriptions/{id}/resourceGroups/{name}/providers/{namespace}/{type}/{name}/...:
        # the types stay, the names are replaced.
        out = []
        for index, segment in enumerate(segments):
            named = index >= 2 and index % 2 == 0 and segments[index - 1] != "providers"
            out.append(self.text(segment) if named and segment else segment)
        return "/".join(out) + (f"?{query}" if query else "")

    def _stand_in(self, value: str) -> str:
        n = len(self._seen) + 1
        if _GUID.match(value):
            return f"00000000-0000-4000-8000-{n:012d}"
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            pass
        else:
            return f"192.0.2.{n % 250 + 1}" if address.version == 4 else f"2001:db8::{n:x}"
        if "." in value and " " not in value and not value.endswith("."):
            return f"host-{n}.example"
        return f"text-{n}"


@dataclass(frozen=True)
class Captured:
    kind: str
    path: str
    body: dict[str, Any]


def capture(
    reader: JsonReader,
    vault_path: str,
    *,
    max_items: int = 20,
    job_days: int = 7,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Captured]:
    """Every answer the product would read, unsanitised; GETs only."""
    captured: list[Captured] = []

    def listing(kind: str, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        documents = reader.list_json(path, query or {})
        captured.append(Captured(kind, path, {"value": documents}))
        return documents

    def one(kind: str, path: str) -> None:
        captured.append(Captured(kind, path, reader.get_json(path, {})))

    for fabric in listing("fabrics", f"{vault_path}/replicationFabrics"):
        fabric_path = str(fabric["id"])
        for container in listing("containers", f"{fabric_path}/replicationProtectionContainers"):
            mappings = f"{container['id']}/replicationProtectionContainerMappings"
            listing("containerMappings", mappings)
        listing("vCenters", f"{fabric_path}/replicationvCenters")
    for item in listing("items", f"{vault_path}/replicationProtectedItems")[:max_items]:
        one("item", str(item["id"]))
        listing("recoveryPoints", f"{item['id']}/recoveryPoints")
    for plan in listing("recoveryPlans", f"{vault_path}/replicationRecoveryPlans"):
        one("recoveryPlan", str(plan["id"]))
    listing("policies", f"{vault_path}/replicationPolicies")
    since = (now() - timedelta(days=job_days)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    listing("jobs", f"{vault_path}/replicationJobs", {"$filter": f"StartTime eq '{since}'"})
    return captured


def write_capture(answers: list[Captured], output: Path) -> int:
    """Sanitise and write each answer as OUTPUT/<kind>/<n>.json; the number written."""
    sanitiser = Sanitiser()
    count = 0
    for count, answer in enumerate(answers, start=1):
        folder = output / answer.kind
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            "kind": answer.kind,
            "path": sanitiser.arm_id(answer.path),
            "body": sanitiser.value("", answer.body),
        }
        (folder / f"{count:04d}.json").write_text(json.dumps(document, indent=2) + "\n")
    return count


def read_capture(folder: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, path, body) of every answer in a capture folder."""
    for file in sorted(folder.glob("*/*.json")):
        document = json.loads(file.read_text())
        yield document["kind"], document["path"], document["body"]
