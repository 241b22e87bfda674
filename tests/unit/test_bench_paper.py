"""The arithmetic behind bench/RESULTS.md's 10,000 machines on paper (bench/paper.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench.paper import (
    PerMachine,
    budget_seconds,
    cpu_floor,
    cpu_for_ratio,
    markdown,
    on_paper,
    verification_tail,
)


def test_a_bucket_takes_its_burst_at_once_and_the_rest_at_its_rate() -> None:
    assert budget_seconds(250, 250, 25.0, principals=1) == 0.0
    assert budget_seconds(500, 250, 25.0, principals=1) == pytest.approx(10.0)


def test_principals_add_buckets_up_to_the_subscriptions_cap_of_fifteen() -> None:
    one = budget_seconds(40_000, 250, 25.0, principals=1)
    four = budget_seconds(40_000, 250, 25.0, principals=4)
    assert four == pytest.approx((40_000 - 1_000) / 100.0)
    assert one > four
    assert budget_seconds(40_000, 250, 25.0, principals=40) == budget_seconds(
        40_000, 250, 25.0, principals=15
    )


def test_background_reads_draw_on_their_share_of_the_bucket_only() -> None:
    # 70 % of 250 at once, then 70 % of 25 a second.
    assert budget_seconds(1_175, 250, 25.0, principals=1, share=0.7) == pytest.approx(57.14, 0.01)


def _measured(burst_cpu: float) -> PerMachine:
    return PerMachine(
        size=1_000,
        critical_path=200.0,
        ratio=1.3,
        reads_until_approval=2.0,
        reads_before_failover=0.0,
        writes_until_approval=0.01,
        reads=7.0,
        writes=2.0,
        worker_cpu_until_approval=0.001,
        worker_cpu=0.1,
        temporal_cpu_until_approval=0.001,
        temporal_cpu=0.1,
        worker_rss_mib=400.0,
        plan_history_events=1_000,
        machine_history_events=50,
        plan_history_kib=1_700.0,
        machine_history_kib=17.0,
        approval_to_reprotected=200.0,
        critical_path_after=14.0,
        burst_cpu=burst_cpu,
        burst_cpu_with_lab=burst_cpu * 1.5,
    )


def test_the_verifications_after_the_jobs_end_take_their_cpu_on_the_cores_there_are() -> None:
    # 0.05 CPU-s a machine, 10,000 machines on 4 cores: 125 s after the critical path.
    figures = on_paper(_measured(0.05), 10_000, principals=15, cores=4.0)
    assert figures["verification_tail_seconds"] == pytest.approx(125.0)
    assert figures["to_approval"] == pytest.approx(200.0 + 125.0)
    # On this machine the lab's processes share the cores too.
    here = on_paper(_measured(0.05), 1_000, principals=15, cores=2.0, with_lab=True)
    assert here["verification_tail_seconds"] == pytest.approx(37.5)


def test_a_run_that_did_not_measure_the_tail_adds_none() -> None:
    figures = on_paper(_measured(math.nan), 10_000, principals=15, cores=4.0)
    assert figures["verification_tail_seconds"] == 0.0
    assert figures["to_approval"] == pytest.approx(200.0)


def test_plans_failing_over_one_after_another_verify_apart() -> None:
    # 100 plans whose reads before the failovers take 400 s fail over 4 s apart: a plan's
    # verifications (0.05 CPU-s x 100 machines on 2 cores = 2.5 s) are over before the next's.
    assert verification_tail(0.05, 10_000, 2.0, 400.0, plan_by_plan=True) == pytest.approx(2.5)
    # With 1 s apart the bursts pile up: 100 x 2.5 s of work, 99 s of it done in between.
    assert verification_tail(0.05, 10_000, 2.0, 100.0, plan_by_plan=True) == pytest.approx(151.0)
    # Before plan by plan (runs before 2974c6f), every plan verified at once.
    assert verification_tail(0.05, 10_000, 2.0, 400.0, plan_by_plan=False) == pytest.approx(250.0)


def test_the_cpu_a_run_spent_until_the_approval_is_a_floor_under_its_ratio_on_these_cores() -> None:
    run = dataclasses.replace(
        _measured(0.05),
        size=10_000,
        worker_cpu_until_approval=0.02,
        temporal_cpu_until_approval=0.03,
        lab_cpu_until_approval=0.01,
    )
    # 0.06 CPU-s a machine, 10,000 machines: 600 CPU-s, 300 s on 2 cores, 1.5 x the 200 s path.
    assert cpu_floor(run, cores=2.0) == pytest.approx(
        {"cpu_seconds_until_approval": 600.0, "seconds": 300.0, "ratio": 1.5}
    )
    # The lab is left out where it runs elsewhere (production).
    assert cpu_floor(run, cores=2.0, with_lab=False)["ratio"] == pytest.approx(1.25)
    # 1.10 x 200 s on 2 cores, every core busy: 440 CPU-s.
    assert cpu_for_ratio(run, cores=2.0, ratio=1.10) == pytest.approx(440.0)
    assert "below **1.50** here" in markdown(_measured(0.05), run, 10_000, 2.0)


def test_a_run_without_the_labs_cpu_prints_no_floor() -> None:
    assert "Floor on" not in markdown(_measured(0.05), _measured(0.05), 10_000, 2.0)


def test_the_lab_is_every_process_but_the_workers_and_temporal() -> None:
    figures = {
        "size": 100,
        "critical_path_1": 200.0,
        "overhead_ratio": 1.0,
        "processes": {
            "worker": {"cpu_seconds_during_run": 1.0, "vmhwm_mib": 1.0},
            "worker-2": {"cpu_seconds_during_run": 1.0, "vmhwm_mib": 1.0},
            "temporal": {"cpu_seconds_until_approval": 5.0},
            "asr-simulator": {"cpu_seconds_until_approval": 2.0},
            "vcsim": {"cpu_seconds_until_approval": 1.0},
        },
        "journal": {"reads_per_machine": 1.0, "writes_per_machine": 1.0},
        "history_events": {"plan": [1], "machines_sampled": [1]},
        "approval_to_reprotected": 1.0,
        "critical_path_2": 1.0,
    }
    assert PerMachine.of(figures).lab_cpu_until_approval == pytest.approx(0.03)
