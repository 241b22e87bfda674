"""10,000 machines on paper: what a size costs, from the per-machine costs of measured runs.

This 2-core machine runs the Temporal dev server, vcsim, the ASR simulator, the workers and the
bench on the same two cores; 10,000 machines would need about ten times the CPU of a 1,000-machine
run, which it does not have within any useful time. So the figures for 10,000 are computed, not
measured: from the runs at 100 and 1,000 (their per-machine CPU, reads, writes, memory and history
sizes, and how those grew from 100 to 1,000), ARM's documented budgets, and the critical path.
Every figure this prints for 10,000 says so.

    .venv/bin/python -m bench.paper RUN.json [RUN.json ...] [--size 10000] [--plans-together]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ARM's documented buckets per principal (per subscription and region), and the subscription's
# own, shared by every principal: 15 times a principal's.
READ_BURST, READS_PER_SECOND = 250, 25.0
WRITE_BURST, WRITES_PER_SECOND = 200, 10.0
SUBSCRIPTION_MULTIPLIER = 15
# Reads that follow a failover (its job watch, the verification's Azure side): urgent reads,
# while the failover jobs run; the others come before the failover, from the background lane.
AFTER_THE_FAILOVER = frozenset({"GET Azure VM", "GET Azure VM list", "GET job list", "GET job"})
# The share of ARM's read rate the reads before the failovers get: all of it, since nothing is
# urgent then and a full urgent lane's refill goes to background reads (activities/budget.py).
# Runs of the code before that (6a42638) had 0.7: pass --background-share 0.7 for them.
BACKGROUND_SHARE = 1.0
# ASR's cap per recovery plan: a size is plans of this many.
MACHINES_PER_PLAN = 100


@dataclass(frozen=True)
class PerMachine:
    """What one machine cost in a measured run of `size` machines."""

    size: int
    critical_path: float
    ratio: float
    reads_until_approval: float
    # The reads before a plan's failover can be sent (discovery, readiness, recovery points):
    # background reads, on the critical path's front.
    reads_before_failover: float
    writes_until_approval: float
    reads: float
    writes: float
    worker_cpu_until_approval: float
    worker_cpu: float
    temporal_cpu_until_approval: float
    temporal_cpu: float
    worker_rss_mib: float
    plan_history_events: int
    machine_history_events: int
    plan_history_kib: float
    machine_history_kib: float
    approval_to_reprotected: float
    critical_path_after: float
    # CPU-s per machine from the first plan's failover job end to the approval: the machines'
    # verifications, every plan at once (plans fall into step). Worker and Temporal (they run
    # on the orchestrator's cores in production), and with the lab's simulator and vcsim (they
    # share this machine's two). NaN for a run that did not measure it.
    burst_cpu: float = math.nan
    burst_cpu_with_lab: float = math.nan
    # CPU-s per machine the lab's own processes (the ASR simulator, vcsim) spent until the
    # approval: on this machine they share the cores; in production ASR and vCenter are elsewhere.
    lab_cpu_until_approval: float = math.nan

    @classmethod
    def of(cls, figures: dict[str, Any]) -> PerMachine:
        size = int(figures["size"])
        processes = figures["processes"]
        workers = [p for name, p in processes.items() if name.startswith("worker")]
        temporal = processes.get("temporal", {})
        until = figures.get("journal_until_approval", {})
        history_bytes = figures.get("history_bytes", {})
        return cls(
            size=size,
            critical_path=float(figures["critical_path_1"]),
            ratio=float(figures["overhead_ratio"]),
            reads_until_approval=float(until.get("reads_per_machine", math.nan)),
            reads_before_failover=sum(
                share
                for kind, share in until.get("by_kind_per_machine", {}).items()
                if kind.startswith("GET ") and kind not in AFTER_THE_FAILOVER
            ),
            writes_until_approval=float(until.get("writes_per_machine", math.nan)),
            reads=float(figures["journal"]["reads_per_machine"]),
            writes=float(figures["journal"]["writes_per_machine"]),
            worker_cpu_until_approval=sum(
                p.get("cpu_seconds_until_approval", math.nan) for p in workers
            )
            / size,
            worker_cpu=sum(p["cpu_seconds_during_run"] for p in workers) / size,
            temporal_cpu_until_approval=temporal.get("cpu_seconds_until_approval", math.nan) / size,
            temporal_cpu=temporal.get("cpu_seconds_during_run", math.nan) / size,
            worker_rss_mib=sum(p["vmhwm_mib"] for p in workers),
            plan_history_events=max(figures["history_events"]["plan"]),
            machine_history_events=max(figures["history_events"]["machines_sampled"]),
            plan_history_kib=history_bytes.get("plan_max", math.nan) / 1024,
            machine_history_kib=history_bytes.get("machine_sampled_max", math.nan) / 1024,
            approval_to_reprotected=float(figures["approval_to_reprotected"]),
            critical_path_after=float(figures["critical_path_2"]),
            burst_cpu=_burst_cpu(figures, ("worker", "temporal")) / size,
            burst_cpu_with_lab=_burst_cpu(figures, None) / size,
            lab_cpu_until_approval=sum(
                p.get("cpu_seconds_until_approval", math.nan)
                for name, p in processes.items()
                if not name.startswith(("worker", "temporal"))
            )
            / size,
        )


def _burst_cpu(figures: dict[str, Any], names: tuple[str, ...] | None) -> float:
    cpu = figures.get("verification_burst", {}).get("cpu_seconds")
    if not cpu:
        return math.nan
    return float(sum(v for k, v in cpu.items() if names is None or k.startswith(names)))


def budget_seconds(
    requests: float, burst: float, rate: float, principals: int, share: float = 1.0
) -> float:
    """Seconds ARM's buckets alone need to accept `requests` sent by `principals` principals
    (each with its own bucket, all under the subscription's cap), drawing on `share` of each."""
    usable = min(principals, SUBSCRIPTION_MULTIPLIER) * share
    return max(0.0, (requests - burst * usable) / (rate * usable))


def verification_tail(
    burst_cpu: float, size: int, cores: float, read_wait: float, plan_by_plan: bool
) -> float:
    """Seconds of verification CPU still to do when the last plan's job ends. Since 2974c6f the
    reads before the failovers are served plan by plan (activities/arm_reads.ReadTurns): the
    plans' jobs end `read_wait / plans` apart, and each plan's burst (`burst_cpu` a machine)
    overlaps the next only when it lasts longer than that. Before, every plan waited to the end
    of the read bucket's wait and all verified at once."""
    if not plan_by_plan:
        return burst_cpu * size / cores
    plans = max(1, math.ceil(size / MACHINES_PER_PLAN))
    per_plan = burst_cpu * min(size, MACHINES_PER_PLAN) / cores
    apart = read_wait / plans
    return max(per_plan, plans * per_plan - (plans - 1) * apart)


def cpu_floor(large: PerMachine, cores: float, with_lab: bool = True) -> dict[str, float]:
    """The lowest ratio any run like `large` can reach on `cores` cores, whatever its principals:
    the CPU its processes spent until the approval cannot take less than that CPU over the cores.
    A floor from the measured run, not a model: it leaves out every wait (ARM, the jobs), so the
    run itself lands above it."""
    per_machine = large.worker_cpu_until_approval + large.temporal_cpu_until_approval
    if with_lab:
        per_machine += large.lab_cpu_until_approval
    cpu = per_machine * large.size
    seconds = cpu / cores
    return {
        "cpu_seconds_until_approval": cpu,
        "seconds": seconds,
        "ratio": seconds / large.critical_path,
    }


def cpu_for_ratio(large: PerMachine, cores: float, ratio: float) -> float:
    """CPU-s the cores can give before the approval if a run of `large.size` is to reach `ratio`:
    every core busy from the start to the approval."""
    return ratio * large.critical_path * cores


def on_paper(
    large: PerMachine,
    size: int,
    principals: int,
    cores: float,
    background_share: float = BACKGROUND_SHARE,
    with_lab: bool = False,
    plan_by_plan: bool = True,
) -> dict[str, float]:
    """`size` machines from the per-machine costs of the largest measured run, taken as they
    were there (the costs per machine measured at 100 and 1,000 are shown beside them).
    `with_lab`: the lab's simulator and vcsim share the cores (this machine), not production."""
    background = large.reads_before_failover * size
    reads_until = large.reads_until_approval * size
    writes_until = max(large.writes_until_approval * size, size / MACHINES_PER_PLAN)
    writes_after = (large.writes - large.writes_until_approval) * size
    cpu_until = (large.worker_cpu_until_approval + large.temporal_cpu_until_approval) * size
    critical = large.critical_path
    # The reads before the failovers come first, from the background lane: they push the
    # whole critical path back. The write bucket (one plan failover per 100 machines) likewise.
    before = budget_seconds(background, READ_BURST, READS_PER_SECOND, principals, background_share)
    write_wait = budget_seconds(writes_until, WRITE_BURST, WRITES_PER_SECOND, principals)
    cpu_wait = cpu_until / cores
    # After a plan's job ends, its machines verify at once: CPU-bound (bench/RESULTS.md). A run
    # that did not measure it adds nothing here, and the ratio is a lower bound.
    burst = large.burst_cpu_with_lab if with_lab else large.burst_cpu
    tail = 0.0 if math.isnan(burst) else verification_tail(burst, size, cores, before, plan_by_plan)
    to_approval = max(max(before, write_wait) + critical + tail, cpu_wait)
    after_writes = budget_seconds(writes_after, WRITE_BURST, WRITES_PER_SECOND, principals)
    # After the approval the commits and re-protects read too (each finds its job, the agent's
    # registration is an item read, each job's end a GET): as many reads as writes' worth of time.
    reads_after = (large.reads - large.reads_until_approval) * size
    after_reads = budget_seconds(reads_after, READ_BURST, READS_PER_SECOND, principals)
    return {
        "reads_until_approval": reads_until,
        "reads_before_failover": background,
        "read_budget_seconds": before,
        "write_budget_seconds": write_wait,
        "cpu_seconds_until_approval": cpu_until,
        "cpu_bound_seconds": cpu_wait,
        "verification_tail_seconds": tail,
        "critical_path": critical,
        "to_approval": to_approval,
        "ratio": to_approval / critical,
        "after_approval_write_budget_seconds": after_writes,
        "after_approval_read_budget_seconds": after_reads,
        "cores_to_keep_the_critical_path": cpu_until / (critical * 0.8),
    }


def markdown(
    small: PerMachine,
    large: PerMachine,
    size: int,
    cores: float,
    background_share: float = BACKGROUND_SHARE,
    plan_by_plan: bool = True,
) -> str:
    lines = [
        f"Per machine, measured at {small.size:,} and {large.size:,} machines; the figures for "
        f"{size:,} take the per-machine costs at {large.size:,} as they are (**computed, not "
        "measured**):",
        "",
        f"| per machine | {small.size:,} (measured) | {large.size:,} (measured) | growth |",
        "|---|---|---|---|",
    ]

    def row(label: str, name: str, fmt: str) -> None:
        a, b = getattr(small, name), getattr(large, name)
        growth = f"{b / a:.2f} x" if a else "-"
        lines.append(f"| {label} | {a:{fmt}} | {b:{fmt}} | {growth} |")

    row(
        "ARM reads before the failover (discovery, readiness, points)",
        "reads_before_failover",
        ".2f",
    )
    row("ARM reads until the approval", "reads_until_approval", ".2f")
    row("ARM reads, whole failback", "reads", ".2f")
    row("ARM writes, whole failback", "writes", ".2f")
    row("worker CPU-s until the approval", "worker_cpu_until_approval", ".3f")
    row("worker CPU-s, whole failback", "worker_cpu", ".3f")
    row("Temporal CPU-s until the approval", "temporal_cpu_until_approval", ".3f")
    row("Temporal CPU-s, whole failback", "temporal_cpu", ".3f")
    lines += [
        f"| worker memory (all processes, VmHWM) | {small.worker_rss_mib:.0f} MiB | "
        f"{large.worker_rss_mib:.0f} MiB | {large.worker_rss_mib / small.worker_rss_mib:.2f} x |",
        f"| history events: the largest plan; a machine | {small.plan_history_events}; "
        f"{small.machine_history_events} | {large.plan_history_events}; "
        f"{large.machine_history_events} | a plan has at most 100 machines |",
        f"| history size: the largest plan; a machine | {small.plan_history_kib:.0f} KiB; "
        f"{small.machine_history_kib:.0f} KiB | {large.plan_history_kib:.0f} KiB; "
        f"{large.machine_history_kib:.0f} KiB | Temporal warns at 10 MiB |",
        "",
        f"{size:,} machines ({size // MACHINES_PER_PLAN} plans of {MACHINES_PER_PLAN}), "
        f"**computed** (critical path {large.critical_path:.0f} s, as measured):",
        "",
        "| principals (a worker each) | reads before the failovers | their wait in the read "
        f"budget | CPU to the approval: on {cores:g} cores; a core per worker and as many for "
        "Temporal | the verifications after the jobs end (CPU-bound), the same two ways | "
        "start -> approval | **ratio** | approval -> re-protected: ARM's write bucket alone; "
        "its read bucket alone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for principals in (1, 4, 8, 15):
        here = on_paper(large, size, principals, cores, background_share, plan_by_plan=plan_by_plan)
        f = on_paper(
            large, size, principals, 2.0 * principals, background_share, plan_by_plan=plan_by_plan
        )
        lines.append(
            f"| {principals} | {f['reads_before_failover']:,.0f} | "
            f"{f['read_budget_seconds']:,.0f} s | {here['cpu_bound_seconds']:,.0f} s; "
            f"{f['cpu_bound_seconds']:,.0f} s | {here['verification_tail_seconds']:,.0f} s; "
            f"{f['verification_tail_seconds']:,.0f} s | {here['to_approval']:,.0f} s; "
            f"{f['to_approval']:,.0f} s | **{here['ratio']:.2f}; {f['ratio']:.2f}** | "
            f"{f['after_approval_write_budget_seconds']:,.0f} s; "
            f"{f['after_approval_read_budget_seconds']:,.0f} s |"
        )
    f = on_paper(
        large, size, SUBSCRIPTION_MULTIPLIER, cores, background_share, plan_by_plan=plan_by_plan
    )
    check = on_paper(
        large, large.size, 1, cores, background_share, with_lab=True, plan_by_plan=plan_by_plan
    )
    lines += [
        "",
        f"CPU to reach the approval at {size:,}: {f['cpu_seconds_until_approval']:,.0f} CPU-s "
        f"(workers and Temporal); to keep the critical path ({f['critical_path']:.0f} s) that "
        f"is {f['cores_to_keep_the_critical_path']:.1f} cores busy at 80 %. The model against "
        f"its own input: at {large.size:,} with one principal it gives "
        f"{check['to_approval']:.0f} s to the approval (ratio {check['ratio']:.2f}, its "
        f"verification tail {check['verification_tail_seconds']:.0f} s with the lab on the same "
        "cores); the run "
        f"measured ratio {large.ratio:.2f}.",
        "",
        *_floor_lines(large, cores),
    ]
    return "\n".join(lines)


def _floor_lines(large: PerMachine, cores: float, target: float = 1.10) -> list[str]:
    if math.isnan(large.lab_cpu_until_approval):
        return []
    floor = cpu_floor(large, cores)
    orchestrator = cpu_floor(large, cores, with_lab=False)
    room = cpu_for_ratio(large, cores, target)
    short = 1 - room / floor["cpu_seconds_until_approval"]
    return [
        f"**Floor on {cores:g} cores, from the run at {large.size:,} as measured** (not a model): "
        f"its processes spent {floor['cpu_seconds_until_approval']:,.0f} CPU-s until the "
        f"approval (workers and Temporal {orchestrator['cpu_seconds_until_approval']:,.0f}, the "
        f"lab's simulator and vcsim the rest); {cores:g} cores need at least "
        f"{floor['seconds']:,.0f} s for that, so no run of this code reaches a ratio below "
        f"**{floor['ratio']:.2f}** here, whatever its principals (the workers and Temporal alone: "
        f"{orchestrator['ratio']:.2f}). A ratio of {target:.2f} "
        f"({target * large.critical_path:,.0f} s) leaves {room:,.0f} CPU-s with every core busy "
        f"from start to approval: {short:.0%} less CPU than the run spent.",
    ]


def load(paths: list[str], architecture: str | None) -> list[PerMachine]:
    found: dict[int, PerMachine] = {}
    for path in paths:
        report = json.loads(Path(path).read_text())
        for figures in report.get("orchestrated", []):
            if "phase_2" in figures:
                continue
            if architecture and figures.get("architecture") != architecture:
                continue
            if figures.get("arm_read_share", 1.0) != 1.0:
                continue  # an experiment with a smaller read bucket than ARM's
            found[int(figures["size"])] = PerMachine.of(figures)
    return [found[size] for size in sorted(found)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paper", description=__doc__)
    parser.add_argument("runs", nargs="+", help="bench.run result files (JSON)")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--architecture", default="modernized")
    parser.add_argument(
        "--cores", type=float, default=2.0, help="cores for the workers and Temporal"
    )
    parser.add_argument("--background-share", type=float, default=BACKGROUND_SHARE)
    parser.add_argument(
        "--plans-together",
        action="store_true",
        help="runs before 2974c6f: every plan failed over after the whole read wait, together",
    )
    args = parser.parse_args()
    measured = load(args.runs, args.architecture)
    if len(measured) < 2:
        raise SystemExit(
            f"bench.paper needs runs at two sizes of {args.architecture}; found "
            f"{[m.size for m in measured]} in {args.runs}"
        )
    print(
        markdown(
            measured[0],
            measured[-1],
            args.size,
            args.cores,
            args.background_share,
            plan_by_plan=not args.plans_together,
        )
    )


if __name__ == "__main__":
    main()
