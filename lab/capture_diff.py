"""Compare a capture of a real vault (`failback capture`) with what the simulator serves.

    python -m lab.capture_diff CAPTURE_DIR [--scenario FILE]

The simulator is started in-process on the scenario (the lab's default unless given), read by the
same capture walk as the real vault, sanitised the same way, and both are reduced to their shapes:
for each kind of answer, every key path with the format of its values (a GUID, an ARM id, a time
with its fractional digits, a number as a string, an address, one of ASR's words, free text). Each
difference is printed: a key only one side has, a format that differs, a word only one side uses.
Exit code 0 when they match, 1 when they differ.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from lab.asr_sim import SimulatorConfig, SimulatorThread
from lab.asr_sim.arm import ASR_API_VERSION
from lab.certs import make_lab_tls
from lab.credential import LabTokenCredential
from lab.scenario import Scenario, default_scenario_path, load_scenario
from starter.capture import KEPT_KEYS, Captured, Sanitiser, capture, read_capture

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_IP = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-fA-F:]+:[0-9a-fA-F:]*$")

Shapes = dict[str, dict[str, set[str]]]


def shape(key: str, value: Any) -> str:
    """The format of one value, as the comparison sees it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if not isinstance(value, str):
        return type(value).__name__
    if key in KEPT_KEYS:
        return f"word:{value}"
    if value in ("true", "false", "True", "False"):
        return "bool-string"
    time = _TIME.match(value)
    if time:
        return f"time(.{len(time.group(1) or '')}{time.group(2) or ''})"
    if _GUID.match(value):
        return "guid"
    if _NUMBER.match(value):
        return "number-string"
    if value.lower().startswith("/subscriptions/"):
        return "arm-id"
    if _IP.match(value):
        return "address"
    return "text"


def shapes_of(answers: Iterable[tuple[str, str, dict[str, Any]]]) -> Shapes:
    found: Shapes = defaultdict(lambda: defaultdict(set))
    for kind, _path, body in answers:
        documents = body.get("value", [body]) if isinstance(body, dict) else []
        for document in documents if "value" in body else [body]:
            _walk(found[kind], "$", "", document)
    return found


def _walk(into: dict[str, set[str]], path: str, key: str, value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(into, f"{path}.{k}", k, v)
        return
    if isinstance(value, list):
        for v in value:
            _walk(into, f"{path}[]", key, v)
        return
    into[path].add(shape(key, value))


@dataclass(frozen=True)
class Difference:
    kind: str
    path: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}: {self.text}"


def compare(real: Shapes, simulated: Shapes) -> list[Difference]:
    """What the real vault sends that the simulator does not, and the other way round."""
    differences = []
    for kind in sorted(set(real) | set(simulated)):
        r, s = real.get(kind, {}), simulated.get(kind, {})
        if not r or not s:
            continue  # a kind only one side has answers for says nothing about shapes
        for path in sorted(set(r) | set(s)):
            if path not in s:
                differences.append(
                    Difference(kind, path, f"only in the capture ({_show(r[path])})")
                )
            elif path not in r:
                differences.append(Difference(kind, path, "only in the simulator"))
            else:
                real_only = {x for x in r[path] - s[path] if x != "null"}
                if real_only:
                    differences.append(
                        Difference(
                            kind,
                            path,
                            f"the capture has {_show(real_only)}; the simulator {_show(s[path])}",
                        )
                    )
    return differences


def _show(shapes: set[str]) -> str:
    return ", ".join(sorted(shapes))


class SimulatorReader:
    """GETs of the simulator as JSON, following nextLink: the capture walk's reader."""

    def __init__(self, url: str, token: str, ca: str) -> None:
        self._url, self._ca = url, ca
        self._headers = {"Authorization": f"Bearer {token}"}

    def get_json(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        url = path if path.startswith("https://") else self._url + path
        params = None if query is None else {"api-version": ASR_API_VERSION, **query}
        answer = requests.get(
            url, params=params, headers=self._headers, verify=self._ca, timeout=30
        )
        answer.raise_for_status()
        return dict(answer.json())

    def list_json(self, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        page = self.get_json(path, query or {})
        while True:
            documents.extend(page.get("value") or [])
            if not page.get("nextLink"):
                return documents
            page = self.get_json(page["nextLink"], None)


def simulator_capture(scenario: Scenario) -> list[tuple[str, str, dict[str, Any]]]:
    """The simulator's answers to the capture walk, sanitised as a real capture is."""
    secret = "capture-diff"
    with tempfile.TemporaryDirectory() as folder:
        tls = make_lab_tls(Path(folder))
        sim = SimulatorThread(
            SimulatorConfig(
                scenario=scenario, cert=tls.server_cert, key=tls.server_key, token_secret=secret
            )
        ).start()
        try:
            token = LabTokenCredential(sim.url, secret, str(tls.ca_cert)).get_token("x").token
            reader = SimulatorReader(sim.url, token, str(tls.ca_cert))
            azure = scenario.azure
            vault = (
                f"/subscriptions/{azure.subscription_id}/resourceGroups/{azure.resource_group}"
                f"/providers/Microsoft.RecoveryServices/vaults/{azure.vault}"
            )
            answers = capture(reader, vault)
        finally:
            sim.stop()
    return sanitised(answers)


def sanitised(answers: list[Captured]) -> list[tuple[str, str, dict[str, Any]]]:
    sanitiser = Sanitiser()
    return [(a.kind, sanitiser.arm_id(a.path), sanitiser.value("", a.body)) for a in answers]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.capture_diff", description=__doc__)
    parser.add_argument("capture", type=Path, help="the folder `failback capture` wrote")
    parser.add_argument("--scenario", type=Path, default=None, help="default: the lab's own")
    args = parser.parse_args(argv)
    if not args.capture.is_dir():
        print(f"error: {args.capture} is not a folder written by `failback capture`")
        return 2
    scenario = load_scenario(args.scenario or default_scenario_path())
    differences = compare(
        shapes_of(read_capture(args.capture)), shapes_of(simulator_capture(scenario))
    )
    for difference in differences:
        print(difference)
    print(f"{len(differences)} difference(s) between the capture and the simulator")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
