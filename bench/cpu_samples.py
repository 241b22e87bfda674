"""Who uses the CPU while a bench runs: each lab process's CPU-s, sampled every half second.

Run beside `bench.run` (it waits for the first worker process, then samples for SECONDS):

    python -m bench.cpu_samples 40 samples.json &
    python -m bench.run --sizes 1000 ...
    python -m bench.cpu_samples --show samples.json --from "08:42:02" --seconds 10

`--show` prints, per half second from the bench's "plan(s) started" time (UTC, from its log),
the cores each kind of process kept busy. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

KINDS = ("lab.asr_sim", "-m worker", "temporal server", "vcsim-harness", "bench.run")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def lab_processes() -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for kind in KINDS:
            if kind in command:
                found[int(entry)] = kind
    return found


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def sample(seconds: float, out: Path) -> None:
    while "-m worker" not in lab_processes().values():
        time.sleep(0.2)
    started = time.time()
    rows: list[dict[str, float]] = []
    kinds: dict[int, str] = {}
    while time.time() - started < seconds:
        kinds.update(lab_processes())
        row = {"ts": time.time()}
        for pid, kind in kinds.items():
            used = cpu_seconds(pid)
            if used is not None:
                row[f"{kind}:{pid}"] = used
        rows.append(row)
        time.sleep(0.5)
    out.write_text(json.dumps(rows))


def show(path: Path, start_utc: str, seconds: float) -> None:
    rows = json.loads(path.read_text())
    day = datetime.fromtimestamp(rows[0]["ts"], UTC).date()
    start = datetime.combine(day, datetime.strptime(start_utc, "%H:%M:%S").time(), UTC)
    origin = start.timestamp()
    for before, row in pairwise(rows):
        at = row["ts"] - origin
        if not -1 <= at <= seconds:
            continue
        span = row["ts"] - before["ts"]
        busy = {kind: 0.0 for kind in KINDS}
        for key, used in row.items():
            if ":" in key and key in before:
                busy[key.split(":")[0]] += (used - before[key]) / span
        cells = "  ".join(f"{kind} {cores:4.2f}" for kind, cores in busy.items())
        print(f"{at:5.1f} s  {cells}  all {sum(busy.values()):4.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=float, default=40.0)
    parser.add_argument("out", nargs="?", type=Path, default=Path("cpu-samples.json"))
    parser.add_argument("--show", type=Path, help="print a sample file instead of sampling")
    parser.add_argument("--from", dest="start", help="UTC HH:MM:SS the plans started")
    parser.add_argument("--seconds", dest="span", type=float, default=10.0)
    args = parser.parse_args()
    if args.show:
        show(args.show, args.start, args.span)
    else:
        sample(args.seconds, args.out)


if __name__ == "__main__":
    main()
