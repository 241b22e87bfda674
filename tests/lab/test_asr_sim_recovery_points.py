"""Recovery point generation (pure): grid, lag, gaps, retention, multi-VM sync points."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lab.asr_sim import RecoveryPoint, generate_recovery_points
from lab.scenario import Gap, RecoveryPointHistory, Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "lab" / "scenarios"
START = dt.datetime(2025, 3, 1, 12, 7, 30, tzinfo=dt.UTC)
HOUR = 3600


def _ago(seconds: int, start: dt.datetime = START) -> dt.datetime:
    return start - dt.timedelta(seconds=seconds)


def _app(points: list[RecoveryPoint]) -> list[RecoveryPoint]:
    return [p for p in points if p.type == "ApplicationConsistent"]


def _history(**fields: object) -> RecoveryPointHistory:
    base: dict[str, object] = {
        "crash_consistent_every_seconds": 300,
        "app_consistent_every_seconds": HOUR,
        "retention_seconds": 6 * HOUR,
    }
    return RecoveryPointHistory.model_validate({**base, **fields})


def test_lag_puts_the_newest_point_on_the_grid_at_or_before_start_minus_lag() -> None:
    for lag in (0, 60, 450, 3900):
        points = generate_recovery_points(_history(lag_seconds=lag), START)
        bound = _ago(lag)
        newest = points[0].time
        assert newest <= bound < newest + dt.timedelta(seconds=300), lag
        assert int(newest.timestamp()) % 300 == 0
        assert all(int(p.time.timestamp()) % 300 == 0 for p in points)
        assert all(int(p.time.timestamp()) % HOUR == 0 for p in _app(points))
        # Retention counts back from start - lag.
        assert points[-1].time >= bound - dt.timedelta(seconds=6 * HOUR)
        assert points[-1].time - dt.timedelta(seconds=300) < bound - dt.timedelta(seconds=6 * HOUR)
        assert len({p.name for p in points}) == len(points)


def test_none_means_no_point_at_all() -> None:
    assert generate_recovery_points(_history(none=True), START) == []
    assert generate_recovery_points(_history(none=True), START, in_replication_group=True) == []


def test_a_gap_drops_every_point_inside_it_of_its_types_only() -> None:
    both = _history(gaps=[{"from_seconds_ago": 3 * HOUR, "to_seconds_ago": HOUR}])
    points = generate_recovery_points(both, START)
    assert not [p for p in points if _ago(3 * HOUR) <= p.time <= _ago(HOUR)]
    assert [p for p in points if p.time > _ago(HOUR)]
    assert [p for p in points if p.time < _ago(3 * HOUR)]

    app_only = _history(
        gaps=[
            {"from_seconds_ago": 3 * HOUR, "to_seconds_ago": 0, "types": ["ApplicationConsistent"]}
        ]
    )
    points = generate_recovery_points(app_only, START)
    # The newest application-consistent point is older than the gap; crash-consistent points
    # go on through it, also at the full hours where the app-consistent ones are missing.
    assert _app(points)[0].time < _ago(3 * HOUR)
    assert points[0].time > _ago(300) and points[0].type == "CrashConsistent"
    eleven = dt.datetime(2025, 3, 1, 11, 0, tzinfo=dt.UTC)
    assert [p.type for p in points if p.time == eleven] == ["CrashConsistent"]


def test_gap_edges_are_part_of_the_gap_and_from_must_lie_further_back() -> None:
    # 12:00 is 450 s before START, 11:55 750 s: a gap exactly over [12:00, 11:55] drops both.
    history = _history(gaps=[{"from_seconds_ago": 750, "to_seconds_ago": 450}])
    times = {p.time.strftime("%H:%M") for p in generate_recovery_points(history, START)}
    assert {"12:05", "11:50"} <= times and not {"12:00", "11:55"} & times
    with pytest.raises(ValueError, match="from_seconds_ago"):
        Gap(from_seconds_ago=60, to_seconds_ago=60)
    assert Gap(from_seconds_ago=60, to_seconds_ago=0).types == [
        "CrashConsistent",
        "ApplicationConsistent",
    ]


def test_replication_group_members_share_sync_point_times() -> None:
    # Member B lags 65 min: it lacks the newest sync point(s) member A has.
    a = generate_recovery_points(_history(lag_seconds=60), START, in_replication_group=True)
    b = generate_recovery_points(_history(lag_seconds=3900), START, in_replication_group=True)
    assert all(p.is_multi_vm_sync_point for p in _app(a) + _app(b))
    assert not any(p.is_multi_vm_sync_point for p in a + b if p.type == "CrashConsistent")
    a_times = {p.time: p.name for p in _app(a)}
    b_times = {p.time: p.name for p in _app(b)}
    common = sorted(set(a_times) & set(b_times), reverse=True)
    assert common[0] == _app(b)[0].time < _app(a)[0].time
    # Same time, same name on every member (ids differ by the item path only).
    assert all(a_times[t] == b_times[t] for t in common)
    # Standalone machines get the same times but no sync points.
    alone = generate_recovery_points(_history(lag_seconds=60), START)
    assert [p.time for p in _app(alone)] == list(a_times)
    assert not any(p.is_multi_vm_sync_point for p in alone)


def test_a_history_that_begins_later_starts_with_a_point_at_that_moment() -> None:
    # Initial replication after a reprotect completed 12:01:10; it is now 12:07:30.
    begins = dt.datetime(2025, 3, 1, 12, 1, 10, tzinfo=dt.UTC)
    points = generate_recovery_points(_history(), START, begins_at=begins)
    assert [(p.time.strftime("%H:%M:%S"), p.type) for p in points] == [
        ("12:05:00", "CrashConsistent"),
        ("12:01:10", "CrashConsistent"),
    ]
    # Nothing before it began, whatever the retention; the grid continues as it grows.
    later = generate_recovery_points(_history(), START + dt.timedelta(hours=1), begins_at=begins)
    assert later[-1].time == begins and later[0].time.strftime("%H:%M") == "13:05"
    assert _app(later)[0].time.strftime("%H:%M") == "13:00"
    # Not begun yet, or never (R13): no point.
    assert generate_recovery_points(_history(), begins, begins_at=START) == []
    assert generate_recovery_points(_history(none=True), START, begins_at=begins) == []
    # A lag holds the first point back until the data has arrived.
    lagging = generate_recovery_points(_history(lag_seconds=600), START, begins_at=begins)
    assert lagging == []
    # Retention still applies once the history is long enough.
    old = generate_recovery_points(_history(), START + dt.timedelta(hours=7), begins_at=begins)
    assert old[-1].time > begins


def _items(scenario: Scenario, start: dt.datetime) -> dict[str, list[RecoveryPoint]]:
    return {
        item.name: generate_recovery_points(
            item.recovery_points, start, in_replication_group=item.replication_group is not None
        )
        for item in scenario.azure.items
    }


def _common_app_times(
    points: dict[str, list[RecoveryPoint]], names: list[str]
) -> list[dt.datetime]:
    sets = [{p.time for p in _app(points[name])} for name in names]
    return sorted(set.intersection(*sets), reverse=True)


# Lab starts at several offsets within the hour: the scenarios are interesting at any of them.
STARTS = [
    START.replace(minute=m, second=s) for m, s in ((0, 0), (3, 59), (4, 1), (7, 30), (59, 59))
]


@pytest.mark.parametrize("start", STARTS, ids=lambda s: s.strftime("%H%M%S"))
def test_recovery_plan_scenario_histories_make_latest_common_differ(start: dt.datetime) -> None:
    scenario = load_scenario(SCENARIOS / "recovery-plan.json")
    points = _items(scenario, start)

    # rg-db: db-02 lags 65 min, so the newest common sync point is older than db-01's own.
    db_common = _common_app_times(points, ["db-01-item", "db-02-item"])
    assert db_common[0] == _app(points["db-02-item"])[0].time
    assert db_common[0] < _app(points["db-01-item"])[0].time
    # rg-app: app-02's application-consistent snapshots failed for 2 h; crash points continue.
    app_common = _common_app_times(points, ["app-01-item", "app-02-item"])
    assert app_common[0] == _app(points["app-02-item"])[0].time <= start - dt.timedelta(hours=2)
    assert app_common[0] < _app(points["app-01-item"])[0].time
    assert points["app-02-item"][0].time > start - dt.timedelta(minutes=10)
    # web-02 lags 15 min behind web-01.
    assert points["web-02-item"][0].time <= start - dt.timedelta(minutes=15)
    assert points["web-01-item"][0].time > start - dt.timedelta(minutes=5)
    for name in ("cache-01-item", "web-01-item", "web-02-item"):
        assert not any(p.is_multi_vm_sync_point for p in points[name])


@pytest.mark.parametrize("start", STARTS, ids=lambda s: s.strftime("%H%M%S"))
def test_no_common_point_scenario_has_app_points_but_none_shared(start: dt.datetime) -> None:
    scenario = load_scenario(SCENARIOS / "plan-no-common-point.json")
    points = _items(scenario, start)
    assert _app(points["pair-01-item"]) and _app(points["pair-02-item"])
    assert _common_app_times(points, ["pair-01-item", "pair-02-item"]) == []
    # Crash-consistent (latest) failback still works for both.
    assert points["pair-01-item"][0].time == points["pair-02-item"][0].time
