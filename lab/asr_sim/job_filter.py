"""ASR's job query (`GET {V}/replicationJobs?$filter=...`), as Azure PowerShell sends it.

Get-AzRecoveryServicesAsrJob fills a JobQueryParameter and turns it into `$filter` with
`Utilities.ToQueryString`: every set property as `Name eq 'value'`, a list property as
`( Name eq 'a' or Name eq 'b' )`, all joined by ` and `; times in .NET's round-trip "o" format.
The lab answers StartTime (jobs started at or after), EndTime (started at or before) and
JobStatus (the job's state; a value may list several, comma-separated). Any other property is
refused with a 400 naming it, so that a client relying on it finds out here. Pure code.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
_FRACTION = re.compile(r"(\.\d{6})\d+")
SUPPORTED = ("StartTime", "EndTime", "JobStatus")


@dataclass(frozen=True)
class JobQuery:
    started_from: dt.datetime | None = None
    started_to: dt.datetime | None = None
    states: frozenset[str] | None = None

    def matches(self, start_time: dt.datetime, state: str) -> bool:
        if self.started_from is not None and start_time < self.started_from:
            return False
        if self.started_to is not None and start_time > self.started_to:
            return False
        return self.states is None or state.lower() in self.states


def parse_job_filter(text: str) -> JobQuery:
    """The query of a `$filter`; ValueError with what is wrong and the supported form."""
    values: dict[str, list[str]] = {}
    for part in _AND.split(text.strip()):
        inner = part.strip()
        if inner.startswith("(") and inner.endswith(")"):
            inner = inner[1:-1]
        for clause in _OR.split(inner):
            match = _CLAUSE.fullmatch(clause)
            if match is None:
                raise ValueError(
                    f"$filter '{text}' is not a job query: expected clauses like "
                    "\"StartTime eq '2026-01-01T00:00:00.0000000Z'\" joined by 'and'"
                )
            name = next((s for s in SUPPORTED if s.lower() == match.group(1).lower()), None)
            if name is None:
                raise ValueError(
                    f"$filter property '{match.group(1)}' is not supported by the lab; it "
                    f"supports {', '.join(SUPPORTED)}"
                )
            values.setdefault(name, []).append(match.group(2).replace("''", "'"))
    states = [s.strip().lower() for value in values.get("JobStatus", []) for s in value.split(",")]
    return JobQuery(
        started_from=_time(text, values.get("StartTime")),
        started_to=_time(text, values.get("EndTime")),
        states=frozenset(s for s in states if s) or None,
    )


def _time(text: str, values: list[str] | None) -> dt.datetime | None:
    if not values:
        return None
    value = _FRACTION.sub(r"\1", values[-1].strip()).replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"$filter '{text}': '{values[-1]}' is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
