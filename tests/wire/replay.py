"""Microsoft's recorded ASR exchanges, answered to a real SDK client (issue 14, point 2).

`RecordedArm` is a `requests` transport adapter: the SDK (and the client's raw-JSON reads, which
share its pipeline) send real HTTP requests through azure-core's RequestsTransport, and the adapter
answers each from the recordings and spec examples of lab/asr_wire, matched by method and path
(case-folded, query ignored except `$filter` and `$skiptoken`). Several recorded answers to one
request are given in their recorded order, the last one repeated. A request nothing recorded
answers gets a 404 in ARM's error shape, and is kept in `unanswered` for the test to assert on.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from requests.adapters import BaseAdapter

from lab.asr_sim.schema import WIRE

SPEC_PATHS: dict[str, str] = {
    "ReplicationProtectedItems_Get": "{fabric}/replicationProtectionContainers/{container}/"
    "replicationProtectedItems/{item}",
    "ReplicationProtectedItems_List": "replicationProtectedItems",
    "RecoveryPoints_ListByReplicationProtectedItems": "{fabric}/replicationProtectionContainers/"
    "{container}/replicationProtectedItems/{item}/recoveryPoints",
    "RecoveryPoints_Get": "{fabric}/replicationProtectionContainers/{container}/"
    "replicationProtectedItems/{item}/recoveryPoints/{point}",
    "ReplicationJobs_Get": "replicationJobs/{job}",
    "ReplicationJobs_List": "replicationJobs",
    "ReplicationRecoveryPlans_Get": "replicationRecoveryPlans/{plan}",
    "ReplicationRecoveryPlans_List": "replicationRecoveryPlans",
    "ReplicationFabrics_Get": "{fabric}",
    "ReplicationFabrics_List": "replicationFabrics",
    "ReplicationPolicies_Get": "replicationPolicies/{policy}",
    "ReplicationPolicies_List": "replicationPolicies",
    "ReplicationvCenters_List": "replicationvCenters",
    "ReplicationvCenters_ListByReplicationFabrics": "{fabric}/replicationvCenters",
    "ReplicationvCenters_Get": "{fabric}/replicationvCenters/{vcenter}",
    "ReplicationProtectionContainerMappings_List": "replicationProtectionContainerMappings",
    "ReplicationProtectionContainerMappings_Get": "{fabric}/replicationProtectionContainers/"
    "{container}/replicationProtectionContainerMappings/{mapping}",
}


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def _key(method: str, url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    kept = "&".join(f"{k}={query[k][0]}" for k in ("$filter", "$skiptoken") if k in query)
    return method.upper(), parts.path.rstrip("/").lower(), kept


class RecordedArm(BaseAdapter):
    def __init__(self, exchanges: Iterable[tuple[str, str, Answer]]) -> None:
        super().__init__()
        self._answers: dict[tuple[str, str, str], deque[Answer]] = defaultdict(deque)
        for method, url, answer in exchanges:
            self._answers[_key(method, url)].append(answer)
        self.unanswered: list[str] = []
        self.asked: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.method is not None and request.url is not None
        self.asked.append(f"{request.method} {request.url}")
        queue = self._answers.get(_key(request.method, request.url))
        if not queue:
            self.unanswered.append(f"{request.method} {request.url}")
            answer = Answer(404, {"error": {"code": "NotRecorded", "message": request.url}})
        else:
            answer = queue.popleft() if len(queue) > 1 else queue[0]
        content = b"" if answer.body is None else json.dumps(answer.body).encode()
        headers = {"Content-Type": "application/json", **answer.headers}
        response = requests.Response()
        response.status_code = answer.status
        response.headers.update(headers)
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(content),
            headers=headers,
            status=answer.status,
            preload_content=False,
            decode_content=False,
            enforce_content_length=False,
        )
        response.url = request.url
        response.request = request
        response.reason = "recorded"
        return response

    def close(self) -> None:
        pass

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("https://", self)
        return session


def recording(name: str) -> list[tuple[str, str, Answer]]:
    """The exchanges of one recorded session, as (method, url, answer)."""
    document = json.loads((WIRE / "recordings" / f"{name}.json").read_text())
    exchanges = []
    for entry in document["Entries"]:
        body = json.loads(entry["ResponseBody"]) if entry["ResponseBody"] else None
        headers = {
            k: v[0] if isinstance(v, list) else v
            for k, v in entry["ResponseHeaders"].items()
            if k.lower() in ("location", "azure-asyncoperation", "retry-after", "x-ms-request-id")
        }
        url = "https://management.azure.com" + entry["RequestUri"]
        exchanges.append(
            (entry["RequestMethod"], url, Answer(int(entry["StatusCode"]), body, headers))
        )
    return exchanges


@dataclass(frozen=True)
class Vault:
    subscription: str
    resource_group: str
    name: str

    @property
    def path(self) -> str:
        return (
            f"/Subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.name}"
        )


EXAMPLES_VAULT = Vault("c183865e-6077-46f2-a3b1-deb0f4f4650a", "resourceGroupPS1", "vault1")


def spec_examples(vault: Vault = EXAMPLES_VAULT) -> list[tuple[str, str, Answer]]:
    """The spec's GET examples, each at the path its parameters name, in `vault`."""
    exchanges = []
    for name, template in SPEC_PATHS.items():
        document = json.loads((WIRE / "spec-examples" / f"{name}.json").read_text())
        p = document["parameters"]
        fabric = p.get("fabricName", "")
        relative = template.format(
            fabric=f"replicationFabrics/{fabric}",
            container=p.get("protectionContainerName", ""),
            item=p.get("replicatedProtectedItemName", ""),
            point=p.get("recoveryPointName", ""),
            job=p.get("jobName", ""),
            plan=p.get("recoveryPlanName", ""),
            policy=p.get("policyName", ""),
            vcenter=p.get("vcenterName", p.get("vCenterName", "")),
            mapping=p.get("mappingName", ""),
        )
        url = f"https://management.azure.com{vault.path}/{relative}"
        answer = document["responses"]["200"]
        exchanges.append(("GET", url, Answer(200, answer.get("body"), answer.get("headers", {}))))
    return exchanges


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((WIRE / "spec-examples" / f"{name}.json").read_text()))


def wire_file(path: str) -> Path:
    return WIRE / path
