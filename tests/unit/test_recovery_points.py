"""Recovery point selection over generated histories (Hypothesis) and worked examples."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.models import RecoveryPoint
from domain.recovery_points import (
    MachinePoints,
    PointPolicy,
    RecoveryPointSelectionError,
    choose_recovery_points,
    selectable_points,
)

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def point(machine: str, minutes: int, kind: str = "CrashConsistent", sync: bool = False):
    return RecoveryPoint(
        id=f"{machine}/rp-{minutes}-{kind}",
        name=f"rp-{minutes}-{kind}",
        time=T0 + timedelta(minutes=minutes),
        type=kind,
        multi_vm_sync_point=sync,
    )


@st.composite
def histories(draw) -> list[MachinePoints]:
    count = draw(st.integers(1, 7))
    machines = []
    for index in range(count):
        name = f"vm-{index}"
        group = draw(st.sampled_from([None, "rg-a", "rg-b"]))
        slots = draw(st.lists(st.integers(0, 48), max_size=12, unique=True))
        points = []
        for slot in slots:
            kind = draw(st.sampled_from(["CrashConsistent", "ApplicationConsistent"]))
            sync = kind == "ApplicationConsistent" and group is not None and draw(st.booleans())
            points.append(point(name, slot * 5, kind, sync))
        machines.append(MachinePoints(item_name=name, replication_group=group, points=points))
    return machines


def sync_times(machine: MachinePoints) -> set[datetime]:
    return {p.time for p in machine.points if p.app_consistent and p.multi_vm_sync_point}


@settings(max_examples=300)
@given(histories())
def test_latest_gives_each_machine_its_own_maximum(machines: list[MachinePoints]) -> None:
    if any(not m.points for m in machines):
        with pytest.raises(RecoveryPointSelectionError) as refused:
            choose_recovery_points(machines, "latest")
        empty = [m.item_name for m in machines if not m.points]
        assert all(any(name in p for p in refused.value.problems) for name in empty)
        return
    choice = choose_recovery_points(machines, "latest")
    for machine in machines:
        chosen = choice.for_item(machine.item_name)
        assert chosen.chosen in machine.points
        assert chosen.chosen.time == max(p.time for p in machine.points)
        assert chosen.data_loss_window_seconds == 0


@settings(max_examples=300)
@given(histories())
def test_app_consistent_groups_share_their_newest_common_point(
    machines: list[MachinePoints],
) -> None:
    groups: dict[str, list[MachinePoints]] = defaultdict(list)
    for machine in machines:
        if machine.replication_group:
            groups[machine.replication_group].append(machine)
    try:
        choice = choose_recovery_points(machines, "app-consistent")
    except RecoveryPointSelectionError as refused:
        # A refusal is always justified, and it names the machines or groups concerned.
        reasons = 0
        for machine in machines:
            if not machine.points or (
                not machine.replication_group and not any(p.app_consistent for p in machine.points)
            ):
                reasons += 1
                assert any(machine.item_name in p for p in refused.problems)
        for name, members in groups.items():
            if all(m.points for m in members) and not set.intersection(
                *(sync_times(m) for m in members)
            ):
                reasons += 1
                problem = next(p for p in refused.problems if name in p)
                assert all(m.item_name in problem for m in members)
        assert reasons == len(refused.problems)
        return
    for machine in machines:
        chosen = choice.for_item(machine.item_name)
        assert chosen.chosen in machine.points
        assert chosen.chosen.app_consistent
        assert chosen.latest.time == max(p.time for p in machine.points)
        assert (
            chosen.data_loss_window_seconds
            == (chosen.latest.time - chosen.chosen.time).total_seconds()
        )
        if not machine.replication_group:
            assert chosen.chosen.time == max(p.time for p in machine.points if p.app_consistent)
    for name, members in groups.items():
        times = {choice.for_item(m.item_name).chosen.time for m in members}
        assert len(times) == 1, f"{name} members fail over at different times"
        (when,) = times
        common = set.intersection(*(sync_times(m) for m in members))
        assert when == max(common), "a later common point exists"
        assert all(choice.for_item(m.item_name).chosen.multi_vm_sync_point for m in members)


def test_a_lagging_member_pulls_its_group_back_to_the_common_point() -> None:
    db1 = MachinePoints(
        item_name="db-01",
        replication_group="rg-db",
        points=[
            point("db-01", 0, "ApplicationConsistent", True),
            point("db-01", 60, "ApplicationConsistent", True),
            point("db-01", 65),
        ],
    )
    db2 = MachinePoints(
        item_name="db-02",
        replication_group="rg-db",
        points=[point("db-02", 0, "ApplicationConsistent", True), point("db-02", 30)],
    )
    web = MachinePoints(
        item_name="web-01",
        points=[point("web-01", 60, "ApplicationConsistent"), point("web-01", 70)],
    )
    choice = choose_recovery_points([db1, db2, web], "app-consistent")
    assert choice.for_item("db-01").chosen.time == T0
    assert choice.for_item("db-01").data_loss_window_seconds == 65 * 60
    assert choice.for_item("db-02").chosen.time == T0
    assert choice.for_item("web-01").chosen.time == T0 + timedelta(minutes=60)
    assert choice.groups[0].common_point_time == T0
    latest = choose_recovery_points([db1, db2, web], "latest")
    assert latest.for_item("db-01").chosen.time == T0 + timedelta(minutes=65)
    assert latest.for_item("db-02").chosen.time == T0 + timedelta(minutes=30)


def test_no_common_point_names_the_group_and_its_members() -> None:
    a = MachinePoints(
        item_name="app-01",
        replication_group="rg-app",
        points=[point("app-01", 60, "ApplicationConsistent", True)],
    )
    b = MachinePoints(
        item_name="app-02",
        replication_group="rg-app",
        points=[point("app-02", 0, "ApplicationConsistent", True)],
    )
    with pytest.raises(RecoveryPointSelectionError) as refused:
        choose_recovery_points([a, b], "app-consistent")
    (problem,) = refused.value.problems
    assert "rg-app" in problem and "app-01" in problem and "app-02" in problem
    # The same machines can fail back at their latest points.
    assert choose_recovery_points([a, b], "latest").machines


def _outcome(machines: list[MachinePoints], policy: str) -> object:
    try:
        return choose_recovery_points(machines, policy)  # type: ignore[arg-type]
    except RecoveryPointSelectionError as refused:
        return refused.problems


@settings(max_examples=300)
@given(histories(), st.sampled_from(["latest", "app-consistent"]))
def test_the_selectable_points_choose_what_all_the_points_choose(
    machines: list[MachinePoints], policy: str
) -> None:
    """read_recovery_points sends the plan only the selectable points: no choice, data loss
    window or refusal may differ from the one over every point."""
    trimmed = [m.model_copy(update={"points": selectable_points(m.points)}) for m in machines]
    assert _outcome(trimmed, policy) == _outcome(machines, policy)
    for full, kept in zip(machines, trimmed, strict=True):
        assert all(p.app_consistent for p in kept.points[1:])
        assert len(kept.points) <= 1 + sum(p.app_consistent for p in full.points)


@given(histories(), st.sampled_from(["latest", "app-consistent"]))
def test_a_point_is_named_as_azure_powershell_names_it(
    machines: list[MachinePoints], policy: PointPolicy
) -> None:
    """RP-ASK: LatestTime for `latest`, LatestTag for `app-consistent`, never Custom; what ASR
    takes for them is the very point chosen here (for a group member, through the plan's
    failover: the group's common multi-VM point), as long as no newer one arrives."""
    try:
        choice = choose_recovery_points(machines, policy)
    except RecoveryPointSelectionError:
        return
    for machine in machines:
        chosen = choice.for_item(machine.item_name)
        assert chosen.asked_as == ("LatestTime" if policy == "latest" else "LatestTag")
        if policy == "latest":
            assert chosen.chosen.time == max(p.time for p in machine.points)
        elif machine.replication_group is None:
            tagged = [p for p in machine.points if p.app_consistent]
            assert chosen.chosen.time == max(p.time for p in tagged)
        else:
            group = next(g for g in choice.groups if g.group == machine.replication_group)
            assert chosen.chosen.time == group.common_point_time


@given(histories())
def test_a_group_whose_points_carry_no_flag_leaves_the_common_point_to_asr(
    machines: list[MachinePoints],
) -> None:
    """ASR may not say which points are multi-VM sync points (no providerSpecificDetails, as in
    the spec example): the client cannot compute the group's common point, so it names none and
    lets the plan's failover take it; each member's newest application-consistent point bounds
    it, and a member without any refuses the group."""
    unflagged = [
        m.model_copy(
            update={
                "points": [p.model_copy(update={"multi_vm_sync_point": None}) for p in m.points]
            }
        )
        for m in machines
    ]
    try:
        choice = choose_recovery_points(unflagged, "app-consistent")
    except RecoveryPointSelectionError as refused:
        assert any(not m.points or not any(p.app_consistent for p in m.points) for m in unflagged)
        assert refused.problems
        return
    for group in choice.groups:
        assert group.chosen_by_asr and group.common_point_time is None
    for machine in unflagged:
        chosen = choice.for_item(machine.item_name)
        assert chosen.asked_as == "LatestTag"
        assert chosen.chosen.time == max(p.time for p in machine.points if p.app_consistent)
