"""Walk a JSON document against the ASR SDK 2.0.0 models: the schema real ASR's bodies follow.

The SDK's models are generated from the TypeSpec behind ASR's published API (2025-08-01), so a key
or an enum value they do not know is one real ASR very likely never sends. Discriminated types
(`instanceType`) resolve through each base model's `__mapping__`, as the SDK itself deserialises.

The simulator runs it over every JSON body it answers when FAILBACK_SIM_SCHEMA_CHECK is set (the
test suite sets it), keeping what it finds for `/_lab/schema`; tests/wire runs it over every
scenario and over Microsoft's recorded bodies in lab/asr_wire (which must pass it too, up to the
allow-list, or the walker is wrong).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from azure.mgmt.recoveryservicessiterecovery import models as sdk_models


@dataclasses.dataclass(frozen=True)
class Violation:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _is_model(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, sdk_models._models._Model)


@functools.cache
def _fields(model: type) -> dict[str, Any]:
    """The model's REST names and their resolved type hints."""
    namespace = {**vars(sdk_models), "_models": sdk_models}
    hints = typing.get_type_hints(model, globalns=namespace)
    # The rest-name table is filled in when the first instance is made.
    rest_fields = model()._attr_to_rest_field
    return {field._rest_name: hints.get(attr, Any) for attr, field in rest_fields.items()}


def _concrete(model: type, document: dict[str, Any], path: str) -> tuple[type, Violation | None]:
    """Follow `instanceType` down the discriminator mappings, as the SDK does."""
    while True:
        mapping = model.__dict__.get("__mapping__")
        kind = document.get("instanceType")
        if not mapping or kind is None or mapping.get(kind) in (None, model):
            if mapping and kind is not None and kind not in mapping and model.__subclasses__():
                return model, Violation(path, f"instanceType {kind!r} unknown to {model.__name__}")
            return model, None
        model = mapping[kind]


def _alternatives(hint: Any) -> list[Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(hint) if a is not type(None)]
    if origin is typing.Literal:
        return [hint]
    return [hint]


def walk(document: Any, hint: Any, path: str = "$") -> Iterator[Violation]:
    """Every key and enum value of `document` that the type `hint` does not know."""
    if document is None:
        return
    options = _alternatives(hint)
    models = [o for o in options if _is_model(o)]
    enums = [o for o in options if isinstance(o, type) and issubclass(o, enum.Enum)]
    lists = [o for o in options if typing.get_origin(o) is list]
    dicts = [o for o in options if typing.get_origin(o) is dict]
    if models and isinstance(document, dict):
        yield from _walk_model(document, models[0], path)
    elif lists and isinstance(document, list):
        (item,) = typing.get_args(lists[0])
        for index, element in enumerate(document):
            yield from walk(element, item, f"{path}[{index}]")
    elif dicts and isinstance(document, dict):
        _, value = typing.get_args(dicts[0])
        for key, element in document.items():
            yield from walk(element, value, f"{path}.{key}")
    elif enums and isinstance(document, str):
        known = {member.value for e in enums for member in e}
        if document not in known:
            yield Violation(path, f"{document!r} is not one of {sorted(known)}")


def _walk_model(document: dict[str, Any], model: type, path: str) -> Iterator[Violation]:
    model, unknown_kind = _concrete(model, document, path)
    if unknown_kind is not None:
        yield unknown_kind
        return
    fields = _fields(model)
    for key, value in document.items():
        if key not in fields:
            yield Violation(f"{path}.{key}", f"no such key in {model.__name__}")
            continue
        yield from walk(value, fields[key], f"{path}.{key}")


def model(name: str) -> type:
    return typing.cast(type, getattr(sdk_models, name))


# Keys real ASR sends that the SDK 2.0.0 models lack; each with the recording that shows it.
# The simulator may send these and nothing else outside the models.
KNOWN_EXTRA_KEYS: dict[tuple[str, str], str] = {
    ("ProcessServer", "historicHealth"): "recordings/v2aFailbackReprotect.json (fabric GET)",
    ("InMageRcmDiscoveredProtectedVmDetails", "vCenterFQDN"): "recordings/modernized-*.json",
    ("InMageRcmFailbackDiscoveredProtectedVmDetails", "vCenterFQDN"): "recordings/modernized-*",
    ("InMageRcmProtectedDiskDetails", "targetBlobUri"): "recordings/modernized-*.json",
}
# Discriminator values real ASR sends that the models lack.
KNOWN_EXTRA_KINDS: dict[tuple[str, str], str] = {
    ("TaskTypeDetails", "TaskDetails"): "recordings/modernized-*.json (job tasks' customDetails)",
}

# The free-text fields the client branches on, pinned to the values ASR is known to send: those in
# the recordings and spec examples of lab/asr_wire, plus the documented lists below.
PINNED_FIELDS: dict[tuple[str, str], str] = {
    ("ReplicationProtectedItemProperties", "protectionState"): "protection state",
    ("ReplicationProtectedItemProperties", "replicationHealth"): "replication health",
    ("ReplicationProtectedItemProperties", "allowedOperations"): "allowed operation",
    ("JobProperties", "state"): "job state",
    # A job's scenario is the item's currentScenario while it runs: one set of names for both.
    ("JobProperties", "scenarioName"): "scenario",
    ("RecoveryPointProperties", "recoveryPointType"): "recovery point type",
    ("CurrentScenarioDetails", "scenarioName"): "scenario",
}
DOCUMENTED_VALUES: dict[str, frozenset[str]] = {
    # service.json JobProperties.state and Get-AzRecoveryServicesAsrJob -State.
    "job state": frozenset(
        {"NotStarted", "InProgress", "Succeeded", "Failed", "Cancelled", "Suspended", "Other"}
    ),
    # service.json ProtectionHealth.
    "replication health": frozenset({"None", "Normal", "Warning", "Critical"}),
    # A point's own type: the recordings' CrashConsistent, and ApplicationConsistent from the
    # SDK's InMageRcmFailbackRecoveryPointType and ASR's docs; the request-side RecoveryPointType
    # values (LatestTime, LatestTag, Custom) from service.json.
    "recovery point type": frozenset(
        {"CrashConsistent", "ApplicationConsistent", "LatestTime", "LatestTag", "Custom"}
    ),
}
WIRE = Path(__file__).resolve().parent.parent / "asr_wire"

_COLLECTIONS = {
    "replicationProtectedItems": "ReplicationProtectedItem",
    "recoveryPoints": "RecoveryPoint",
    "replicationJobs": "Job",
    "replicationFabrics": "Fabric",
    "replicationPolicies": "Policy",
    "replicationRecoveryPlans": "RecoveryPlan",
    "replicationvCenters": "VCenter",
    "replicationProtectionContainers": "ProtectionContainer",
    "replicationProtectionContainerMappings": "ProtectionContainerMapping",
    "replicationRecoveryServicesProviders": "RecoveryServicesProvider",
}
_ITEM_OPERATIONS = re.compile(
    r"/(unplannedFailover|plannedFailover|failoverCommit|failoverCancel|reProtect|operationresults/[^/]+)$"
)


def response_model(path: str) -> tuple[str, bool] | None:
    """The SDK model of a GET answer at `path`, and whether it is a list of them."""
    if _ITEM_OPERATIONS.search(path):
        plan = "/replicationRecoveryPlans/" in path
        return ("RecoveryPlan" if plan else "ReplicationProtectedItem", False)
    segments = path.rstrip("/").split("/")
    if segments[-1] in _COLLECTIONS:
        return (_COLLECTIONS[segments[-1]], True)
    if len(segments) >= 2 and segments[-2] in _COLLECTIONS:
        return (_COLLECTIONS[segments[-2]], False)
    return None


def check_body(path: str, body: Any) -> list[Violation]:
    """Everything in an answer at `path` that real ASR is not known to send."""
    kind = response_model(path)
    if kind is None or not isinstance(body, dict):
        return []
    name, many = kind
    documents = body.get("value", []) if many else [body]
    if many:
        extra = set(body) - {"value", "nextLink"}
        found = [Violation(f"$.{key}", "no such key in a list answer") for key in sorted(extra)]
    else:
        found = []
    for index, document in enumerate(documents):
        where = f"$.value[{index}]" if many else "$"
        found.extend(v for v in walk(document, model(name), where) if not _excused(v))
        found.extend(_unpinned(document, model(name), where))
    return found


def _excused(violation: Violation) -> bool:
    for (owner, key), _why in KNOWN_EXTRA_KEYS.items():
        if violation.problem == f"no such key in {owner}" and violation.path.endswith("." + key):
            return True
    for (owner, kind), _why in KNOWN_EXTRA_KINDS.items():
        if violation.problem == f"instanceType {kind!r} unknown to {owner}":
            return True
    return False


def _unpinned(document: Any, model_type: type, path: str) -> Iterator[Violation]:
    for where, owner, key, value in _pinned_values(document, model_type, path):
        what = PINNED_FIELDS[(owner, key)]
        if value not in known_values(what):
            yield Violation(where, f"{what} {value!r} is in no recording, example or document")


def _pinned_values(document: Any, hint: Any, path: str) -> Iterator[tuple[str, str, str, str]]:
    """(path, model, key, value) of every pinned field in `document`."""
    if isinstance(document, list):
        for index, element in enumerate(document):
            yield from _pinned_values(element, hint, f"{path}[{index}]")
        return
    if not isinstance(document, dict):
        return
    models = [o for o in _alternatives(hint) if _is_model(o)]
    containers = [
        typing.get_args(o)[0] for o in _alternatives(hint) if typing.get_origin(o) is list
    ]
    if not models and containers:
        models = [c for c in containers if _is_model(c)]
    if not models:
        return
    concrete, unknown = _concrete(models[0], document, path)
    if unknown is not None:
        return
    fields = _fields(concrete)
    for key, value in document.items():
        if key not in fields:
            continue
        owner = next(
            (m.__name__ for m in concrete.__mro__ if (m.__name__, key) in PINNED_FIELDS), None
        )
        if owner is not None:
            for one in value if isinstance(value, list) else [value]:
                if isinstance(one, str):
                    yield (f"{path}.{key}", owner, key, one)
            continue
        yield from _pinned_values(value, fields[key], f"{path}.{key}")


@functools.cache
def _seen_on_the_wire() -> dict[str, frozenset[str]]:
    seen: dict[str, set[str]] = {}
    for body_path, body in wire_bodies():
        kind = response_model(body_path)
        if kind is None or not isinstance(body, dict):
            continue
        name, many = kind
        for document in body.get("value", []) if many else [body]:
            for _where, owner, key, value in _pinned_values(document, model(name), "$"):
                seen.setdefault(PINNED_FIELDS[(owner, key)], set()).add(value)
    return {what: frozenset(values) for what, values in seen.items()}


def known_values(what: str) -> frozenset[str]:
    return _seen_on_the_wire().get(what, frozenset()) | DOCUMENTED_VALUES.get(what, frozenset())


def wire_bodies() -> Iterator[tuple[str, Any]]:
    """(request path, response body) of every 2xx answer in lab/asr_wire."""
    for recording in sorted((WIRE / "recordings").glob("*.json")):
        for entry in json.loads(recording.read_text())["Entries"]:
            status = int(entry["StatusCode"])
            if 200 <= status < 300 and entry["ResponseBody"]:
                try:
                    body = json.loads(entry["ResponseBody"])
                except ValueError:
                    continue
                yield entry["RequestUri"].split("?")[0], body
    for example in sorted((WIRE / "spec-examples").glob("*.json")):
        document = json.loads(example.read_text())
        path = _example_path(example.name, document["parameters"])
        for status, response in document["responses"].items():
            if 200 <= int(status) < 300 and "body" in response:
                yield path, response["body"]


def _example_path(file_name: str, parameters: dict[str, Any]) -> str:
    """The request path an x-ms-examples file stands for, from its operation's name."""
    group, operation = file_name.removesuffix(".json").split("_", 1)
    collection = group[0].lower() + group[1:]
    collection = {"recoveryPoints": "recoveryPoints"}.get(collection, collection)
    collection = collection.replace("ReplicationvCenters", "replicationvCenters")
    if operation in ("UnplannedFailover", "PlannedFailover", "FailoverCommit", "Reprotect"):
        return f"/x/{collection}/item/{operation[0].lower()}{operation[1:]}".replace(
            "/reprotect", "/reProtect"
        )
    if operation.startswith("List"):
        return f"/x/{collection}"
    return f"/x/{collection}/one"
