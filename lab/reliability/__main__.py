"""Run the full reliability matrix in the lab and rewrite RELIABILITY.md with what it measured.

    .venv/bin/python -m lab.reliability [--output RELIABILITY.md] [--only CASE ...]
                                        [--concurrency N]

Starts one lab (vcsim, the ASR simulator, a file-backed Temporal dev server and a worker, as
`failback lab up` does, reusing the vcsim harness in .lab/bin) with a recovery plan of its own
for every case of lab/reliability/cases.py FULL_MATRIX, then runs: the kill -9 and Temporal
restart cases one after the other (they disturb the whole lab), the faults and safety cases
side by side (`--concurrency` at once, 4 by default), and the bad-input CLI checks. Takes
several minutes: a worker killed inside an activity without a heartbeat timeout is only retried
when the activity's start-to-close timeout (2 min) runs out. The table in RELIABILITY.md is
rewritten with the figures of this run, its date and the machine. Exit code 1 when a case did
not hold (known product bugs included), 0 otherwise. `make test` runs a representative subset
(tests/reliability); this is the whole matrix.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from domain.models import Architecture
from lab.reliability.bad_input import (
    BAD_INPUTS,
    BadInputResult,
    run_bad_inputs,
)
from lab.reliability.cases import (
    BASELINE_REPLICATING,
    FULL_MATRIX,
    HYPERV_MATRIX,
    MODERNIZED_MATRIX,
)
from lab.reliability.harness import (
    EXPECTATIONS,
    JOBS,
    ROOT,
    Case,
    CaseResult,
    Lab,
    run_cases,
    start_lab,
)

GROUPS = [
    ("baseline", "Baselines (no fault)"),
    ("crash", "Crashes: kill -9 the worker, a new one starts"),
    ("temporal", "Temporal server restarts (file-backed dev server, same ports and db file)"),
    ("fault", "Faults through the lab"),
    ("safety", "Safety properties"),
    (
        "modernized",
        "Modernized VMware/physical (replication appliance), in a lab of its own: the same "
        "guarantees, and the undo",
    ),
    (
        "hyperv",
        "Hyper-V, in a lab of its own (the WinRM host stand-in): both data-sync modes, the "
        "suspension and the cut-over",
    ),
]

EXPECTED_TEXT = {
    "completed": "completed; per machine exactly 1 accepted unplannedFailover, failoverCommit "
    "and reProtect to Azure (and 1 reProtect to on-premises when the plan reprotects first); "
    "Azure VMs deleted",
    "completed-without-reprotect": "completed with warnings: 1 failover, 1 commit, no reProtect "
    "to Azure (the operator's decision)",
    "stopped": "stopped (workflow failed) with the reason; no failoverCommit sent; Azure VMs "
    "intact (instance view readable through the Compute SDK)",
    "refused": "stopped before anything was sent: no POST at all; Azure VMs intact",
    "cancelled": "cancelled; no failoverCommit sent; Azure VMs intact",
    "commit-failed": "stopped (workflow failed) with the commit job's error; Azure VMs intact",
    "reprotect-retried": "completed: the failed reProtect to Azure tried again within the agent "
    "wait (R16, whatever its code), 2 accepted reProtects, 1 failover and 1 commit; Azure VMs "
    "deleted",
    "undone": "undone before commit: per machine exactly 1 accepted failover (the plan's "
    "plannedFailover) and 1 failoverCancel, no failoverCommit sent; Azure VMs intact",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.reliability", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--only", nargs="*", help="Run only these cases (and no bad input)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    classic = [c for c in FULL_MATRIX if not args.only or c.name in args.only]
    modernized = [c for c in MODERNIZED_MATRIX if not args.only or c.name in args.only]
    hyperv = [c for c in HYPERV_MATRIX if not args.only or c.name in args.only]
    cases = classic + modernized + hyperv
    if args.only and not cases:
        known = [c.name for c in FULL_MATRIX + MODERNIZED_MATRIX + HYPERV_MATRIX]
        parser.error(f"no case named {args.only}; cases: {known}")
    started = time.monotonic()
    started_at = datetime.now(UTC)
    results: dict[str, CaseResult] = {}
    bad: list[BadInputResult] = []
    if classic:
        results, bad = _run_in_lab(classic, not args.only, args.concurrency)
    if modernized:
        # The simulator speaks one architecture per lab: modernized runs in a lab of its own.
        more, _ = _run_in_lab(modernized, False, args.concurrency, "modernized")
        results.update(more)
    if hyperv:
        more, _ = _run_in_lab(hyperv, False, args.concurrency, "hyperv")
        results.update(more)
    took = time.monotonic() - started
    if args.only:
        for result in results.values():
            print(result.report())
        return 0 if all(r.held for r in results.values()) else 1
    args.output.write_text(render(cases, results, bad, started_at, took))
    held = sum(r.held for r in results.values()) + sum(b.held for b in bad)
    total = len(results) + len(bad)
    print(f"{held} of {total} held; {args.output} written ({took / 60:.1f} min)")
    return 0 if held == total else 1


async def _run(
    lab: Lab, cases: Sequence[Case], with_bad_input: bool, concurrency: int, directory: Path
) -> tuple[dict[str, CaseResult], list[BadInputResult]]:
    results = await run_cases(lab, cases, say=print, concurrency=concurrency)
    bad: list[BadInputResult] = []
    if with_bad_input:
        bad = await _bad_input(lab, directory / "bad-input", results)
    return results, bad


def _run_in_lab(
    cases: Sequence[Case],
    with_bad_input: bool,
    concurrency: int,
    architecture: Architecture = "classic",
) -> tuple[dict[str, CaseResult], list[BadInputResult]]:
    with tempfile.TemporaryDirectory(prefix="reliability-") as directory:
        root = Path(directory)
        print(f"starting the {architecture} lab ({len(cases)} plans) in {root}")
        lab = start_lab(root, [c.unit for c in cases], architecture=architecture)

        def stop(signum: int, _frame: object) -> None:
            # Ctrl-C or a TERM: the lab's processes go too, whatever the cases were doing.
            print(f"signal {signum}: stopping the lab", flush=True)
            lab.down()
            os._exit(128 + signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        try:
            return asyncio.run(_run(lab, cases, with_bad_input, concurrency, root))
        finally:
            lab.down()


async def _bad_input(
    lab: Lab, directory: Path, results: dict[str, CaseResult]
) -> list[BadInputResult]:
    settings = lab.settings()
    unit = BASELINE_REPLICATING.unit
    values = {
        "finished": f"failback-plan-{settings.azure_vault}-{unit.plan}",
        "finished_machine": f"failback-{settings.azure_vault}-{unit.vms[0]}",
        "plan": unit.plan,
    }
    by_name = await run_bad_inputs(lab, BAD_INPUTS, directory, values)
    found = [by_name[bad.name] for bad in BAD_INPUTS]
    for result in found:
        print(f"bad input {result.name}: exit {result.exit_code}, {result.violations or 'held'}")
    return found


# --- RELIABILITY.md ----------------------------------------------------------------------------


def _cell(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def render(
    cases: Sequence[Case],
    results: dict[str, CaseResult],
    bad: Sequence[BadInputResult],
    started_at: datetime,
    took: float,
) -> str:
    from lab.reliability.bad_input import BAD_INPUTS as KNOWN

    bugs = {b.name: b.known_bug for b in KNOWN if b.known_bug}
    held = [r for r in results.values() if r.held]
    failed = [r for r in results.values() if not r.held]
    bad_failed = [b for b in bad if not b.held]
    cpu = os.cpu_count()
    lines = [
        "# Reliability",
        "",
        "What was tried against the failback orchestrator, and what held. This file is "
        "generated: `.venv/bin/python -m lab.reliability` runs the full matrix and rewrites "
        "it with the figures it measured. `make test` runs a representative subset of the same "
        "cases (`tests/reliability`).",
        "",
        f"- Run: {started_at:%Y-%m-%d %H:%M} UTC on `{platform.node()}` ({platform.system()} "
        f"{platform.release()}, {platform.machine()}, {cpu} CPUs, Python "
        f"{platform.python_version()}); the whole run took {_minutes(took)}.",
        f"- Result: **{len(held)} of {len(results)} cases held**, "
        f"{len(bad) - len(bad_failed)} of {len(bad)} bad inputs were refused cleanly."
        + (
            " Did not hold: "
            + ", ".join(f"`{r.case}`" for r in failed)
            + (", " if failed and bad_failed else "")
            + ", ".join(f"`{b.name}`" for b in bad_failed)
            + " (see [Did not hold](#did-not-hold))."
            if failed or bad_failed
            else ""
        ),
        "",
        "## How",
        "",
        "Real processes and real SDKs, no mocks: one lab as `failback lab up` starts it "
        "(vcsim, the ASR simulator over HTTPS, a Temporal dev server backed by a database file, "
        "the worker; the modernized cases in a second lab of their own, since the simulator "
        "speaks one architecture per lab), driven through the Temporal client and the "
        "`failback` CLI as an operator would. Every case has a recovery plan with machines of "
        "its own, so the simulator's "
        "journal (`GET /_lab/journal`) says exactly what the case asked of ASR. Plans of two "
        "kinds: *reprotect first* (web: its VM exists, original location; app: its VM is gone, "
        "alternate location, re-created on the master target's host) and *replicating back* "
        "(already reprotected to on-premises). ASR job durations "
        + ", ".join(f"{k.removesuffix('_seconds')} {v} s" for k, v in JOBS.items())
        + "; agents register 3 s after the commit; lab timings (1 s polls, 60 s verification "
        "timeout). A case watches its plan through the status queries, does its one "
        "disruption at its trigger (a short phase is held by a 2 s slow answer of the "
        "simulator, so that the disruption lands inside it), approves as soon as the plan "
        "awaits approval, and checks at the end. A killed worker is replaced at once "
        "(`lab.manager.restart_worker`); a restarted Temporal server comes back on the same "
        "ports with the same database file (`lab.manager.restart_temporal`). Faults come from "
        "the simulator (`POST /_lab/faults`: `http`, `job_failure`, `drop` (close the "
        "connection without an answer, before or after the request is processed), `delay`), "
        "from vcsim (SIGSTOP/SIGCONT), and from scenarios.",
        "",
        "Disruptive cases (kills, restarts, pauses) ran one at a time; the fault and safety cases "
        "ran side by side, up to 4 at once, so their durations include that load.",
        "",
        "What *held* means, per expected outcome:",
        "",
        *(f"- **{name}**: {EXPECTED_TEXT[name]}." for name in EXPECTATIONS),
        "",
        "Accepted writes per machine: accepted (202) `unplannedFailover` / `failoverCommit` / "
        "`reProtect` to Azure, and for reprotect-first plans / `reProtect` to on-premises. "
        "A `drop` after processing counts as accepted: ASR started the job, only the answer "
        "was lost.",
        "",
    ]
    for group, title in GROUPS:
        rows = [results[c.name] for c in cases if c.group == group and c.name in results]
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            "| case | plan | fault / crash point | expected | outcome | accepted writes per "
            "machine | next phase after the disruption | duration | held |",
            "|---|---|---|---|---|---|---:|---:|---|",
        ]
        for r in rows:
            recovery = "" if r.recovery_seconds is None else f"{r.recovery_seconds:.1f} s"
            lines.append(
                f"| `{r.case}` | {_cell(r.scenario)} | {_cell(r.what)} | {r.expected} | "
                f"{_cell(r.outcome, 360)} | {_cell(r.writes_text())} | {recovery} | "
                f"{r.duration:.1f} s | {'yes' if r.held else '**NO**'} |"
            )
        lines.append("")
    if bad:
        lines += [
            "## Bad input (CLI)",
            "",
            "Each through `python -m starter ...` with the lab's settings. Held: a non-zero "
            "exit, an error that names the problem, no Python traceback, no POST in the "
            "journal, no workflow started.",
            "",
            "| input | command | exit | error (last lines) | traceback | POSTs | started | held |",
            "|---|---|---:|---|---|---:|---|---|",
        ]
        for b in bad:
            lines.append(
                f"| {_cell(b.what)} | `{_cell(b.command, 120)}` | {b.exit_code} | "
                f"{_cell(b.message, 200)} | {'yes' if b.traceback else 'no'} | {b.new_posts} | "
                f"{'yes' if b.started else 'no'} | {'yes' if b.held else '**NO**'} |"
            )
        lines.append("")
    if failed or bad_failed:
        lines += ["## Did not hold", ""]
        for r in failed:
            lines.append(f"- `{r.case}` ({_cell(r.what, 400)}): {_cell(r.outcome, 400)}")
            lines += [f"  - {_cell(v, 400)}" for v in r.violations]
            if r.known_bug:
                lines.append(f"  - known product bug: {_cell(r.known_bug, 900)}")
        for b in bad_failed:
            lines.append(f"- bad input `{b.name}` (`{_cell(b.command, 200)}`):")
            lines += [f"  - {_cell(v, 400)}" for v in b.violations]
            if b.name in bugs:
                lines.append(f"  - known product bug: {bugs[b.name]}")
        lines.append("")
    lines += _recovery(cases, results)
    lines += [
        "## Notes per case",
        "",
        "When each disruption happened (plan and machine phases at that moment), how long "
        "until the next phase change, and what else the case recorded.",
        "",
    ]
    for case in cases:
        noted = results.get(case.name)
        if noted is None or not noted.notes:
            continue
        lines.append(f"- `{noted.case}`")
        lines += [f"  - {_cell(n, 500)}" for n in noted.notes]
    lines.append("")
    return "\n".join(lines)


def _recovery(cases: Sequence[Case], results: dict[str, CaseResult]) -> list[str]:
    """How long the failbacks stood still after a kill or a restart, and why the slow ones did."""
    timed = [
        results[c.name]
        for c in cases
        if c.group in ("crash", "temporal")
        and c.name in results
        and results[c.name].recovery_seconds is not None
    ]
    if not timed:
        return []
    slow = [r for r in timed if (r.recovery_seconds or 0) > 60]
    quick = sorted(r.recovery_seconds or 0.0 for r in timed if r not in slow)
    median = quick[len(quick) // 2] if quick else 0.0
    lines = [
        "## Recovery after a crash or a restart",
        "",
        f"Of {len(timed)} disruptions, {len(quick)} were followed by the next phase change "
        f"within {max(quick, default=0):.0f} s (median {median:.0f} s): a killed worker's ASR "
        "write is retried after its 10 s heartbeat timeout and the retry resumes the job it "
        "finds (in the last attempt's heartbeat, or in the item's state), a killed read after "
        "its 20 s heartbeat timeout (the worker heartbeats for reads while they run); a "
        "restarted Temporal "
        "server loses nothing and the worker reconnects by itself.",
    ]
    if slow:
        lines += [
            "",
            f"{len(slow)} took longer: "
            + ", ".join(f"`{r.case}` ({r.recovery_seconds:.0f} s)" for r in slow)
            + ". Each time the worker died inside a short read activity that has no heartbeat "
            "timeout (discover_recovery_plan, read_asr_facts, read_azure_vm / read_onprem_vm "
            "while verifying, check_agent_registered while waiting for the agent, on this or "
            "another machine of the plan): Temporal only retries it when its start-to-close "
            "timeout, READ_TIMEOUT = 2 min, runs out. Nothing is lost or repeated; the failback "
            "just stands still that long. A heartbeat timeout (or a shorter start-to-close "
            "timeout) on those reads would bring it down to seconds.",
        ]
    lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
