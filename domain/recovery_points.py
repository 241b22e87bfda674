"""Recovery point selection for a plan: pure, no I/O, no Temporal (DESIGN.md, the heart of it).

- `latest`: every machine fails back to its own newest point, replication group members too.
- `app-consistent`: a standalone machine to its newest application-consistent point; a
  replication group to its newest application-consistent multi-VM sync point common to all
  members, the same point in time on every member.
Every problem is reported at once; nothing is chosen when one blocks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from domain.models import (
    Architecture,
    GroupChoice,
    MachineChoice,
    MachinePoints,
    PlanPointChoice,
    PointPolicy,
    PointRequest,
    RecoveryPoint,
)

__all__ = [
    "GroupChoice",
    "MachineChoice",
    "MachinePoints",
    "PlanPointChoice",
    "PointPolicy",
    "RecoveryPointSelectionError",
    "choose_recovery_points",
    "how_to_ask",
    "selectable_points",
]


class RecoveryPointSelectionError(ValueError):
    """Every reason the plan cannot fail back with this policy, each naming its machines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def _newest(points: Iterable[RecoveryPoint]) -> RecoveryPoint | None:
    return max(points, key=lambda p: (p.time, p.id), default=None)


def selectable_points(points: Sequence[RecoveryPoint]) -> list[RecoveryPoint]:
    """The points a policy can choose or report: the newest, and every application-consistent
    one (group members need them all to find a common one). A day of 5-minute crash-consistent
    points of a 100-machine plan is ~8 MB, beyond Temporal's 2 MB payload limit; these are ~25
    a machine. Newest first."""
    newest = _newest(points)
    kept = [p for p in points if p.app_consistent or p is newest]
    return sorted(kept, key=lambda p: (p.time, p.id), reverse=True)


# RP-ASK: how each architecture's failover names `latest` and `app-consistent` to ASR.
POINT_NAMES: dict[str, tuple[PointRequest, PointRequest]] = {
    # Azure PowerShell's InMage failover: the newest processed point, the newest tagged one.
    "classic": ("LatestTime", "LatestTag"),
    # The modernized planned failover takes a kind of point, never an id (recorded):
    # crash-consistent (recommended) is made at the failover itself, after the Azure VM is shut
    # down; application-consistent is the newest such point.
    "modernized": ("CrashConsistent", "ApplicationConsistent"),
    # A Hyper-V failback takes no point: it synchronizes the Azure VM's own disks.
    "hyperv": ("AzureVmDisks", "AzureVmDisks"),
}


def how_to_ask(policy: PointPolicy, architecture: Architecture = "classic") -> PointRequest:
    """RP-ASK: name the point to ASR the way Microsoft's own client does. Azure PowerShell's
    InMage failover sends only LatestTime or LatestTag, for an item and for a recovery plan; the
    API also lists Custom (one point by id), which no public client sends for InMage. LatestTime
    is the newest processed point and LatestTag the newest application-consistent one; a
    replication group fails over through its recovery plan (FO-PLAN, domain/decisions.py), where
    LatestTag is the group's newest common multi-VM sync point. So `latest` and
    `app-consistent` mean exactly what ASR takes when it fails over, group or not."""
    latest, tagged = POINT_NAMES[architecture]
    return latest if policy == "latest" else tagged


def _choice(
    machine: MachinePoints,
    chosen: RecoveryPoint,
    latest: RecoveryPoint,
    policy: PointPolicy,
    architecture: Architecture = "classic",
) -> MachineChoice:
    return MachineChoice(
        item_name=machine.item_name,
        replication_group=machine.replication_group,
        chosen=chosen,
        latest=latest,
        data_loss_window_seconds=max(0.0, (latest.time - chosen.time).total_seconds()),
        asked_as=how_to_ask(policy, architecture),
    )


def choose_recovery_points(
    machines: Sequence[MachinePoints],
    policy: PointPolicy,
    architecture: Architecture = "classic",
) -> PlanPointChoice:
    problems: list[str] = []
    latest_of: dict[str, RecoveryPoint] = {}
    for machine in machines:
        newest = _newest(machine.points)
        if newest is None:
            problems.append(
                f"R13: {machine.item_name} has no recovery point; wait until replication to "
                "on-premises has produced one"
            )
        else:
            latest_of[machine.item_name] = newest

    groups: dict[str, list[MachinePoints]] = defaultdict(list)
    for machine in machines:
        if machine.replication_group:
            groups[machine.replication_group].append(machine)

    chosen: dict[str, MachineChoice] = {}
    group_choices: list[GroupChoice] = []
    if policy == "latest":
        for machine in machines:
            if machine.item_name in latest_of:
                newest = latest_of[machine.item_name]
                chosen[machine.item_name] = _choice(machine, newest, newest, policy, architecture)
        for name, members in sorted(groups.items()):
            group_choices.append(
                GroupChoice(
                    group=name, members=[m.item_name for m in members], common_point_time=None
                )
            )
    else:
        for machine in machines:
            if machine.replication_group or machine.item_name not in latest_of:
                continue
            app_point = _newest(p for p in machine.points if p.app_consistent)
            if app_point is None:
                problems.append(
                    f"{machine.item_name} has no application-consistent recovery point; "
                    "fail back with --recovery-point latest or wait for the next one"
                )
                continue
            chosen[machine.item_name] = _choice(
                machine, app_point, latest_of[machine.item_name], policy, architecture
            )
        for name, members in sorted(groups.items()):
            names = [m.item_name for m in members]
            if any(m not in latest_of for m in names):
                continue
            if not any(p.multi_vm_sync_point is not None for m in members for p in m.points):
                # ASR does not say which points are multi-VM ones: it picks the common one when
                # the plan fails over; each member's newest app-consistent point bounds it.
                picked = _asr_picks_common_point(
                    name, members, latest_of, policy, problems, architecture
                )
                if picked is not None:
                    chosen.update(picked)
                    group_choices.append(
                        GroupChoice(
                            group=name, members=names, common_point_time=None, chosen_by_asr=True
                        )
                    )
                continue
            by_member = [
                {p.time: p for p in m.points if p.app_consistent and p.multi_vm_sync_point}
                for m in members
            ]
            common = set(by_member[0]).intersection(*by_member[1:])
            if not common:
                problems.append(
                    f"replication group {name} has no application-consistent point common to "
                    f"all its members ({', '.join(names)}): it cannot fail back "
                    "app-consistently; use --recovery-point latest or wait for the next "
                    "multi-VM sync point"
                )
                continue
            when = max(common)
            for member, points in zip(members, by_member, strict=True):
                chosen[member.item_name] = _choice(
                    member, points[when], latest_of[member.item_name], policy, architecture
                )
            group_choices.append(GroupChoice(group=name, members=names, common_point_time=when))

    if problems:
        raise RecoveryPointSelectionError(problems)
    return PlanPointChoice(
        policy=policy,
        machines=[chosen[m.item_name] for m in machines],
        groups=group_choices,
    )


def _asr_picks_common_point(
    group: str,
    members: Sequence[MachinePoints],
    latest_of: dict[str, RecoveryPoint],
    policy: PointPolicy,
    problems: list[str],
    architecture: Architecture,
) -> dict[str, MachineChoice] | None:
    """A group whose points carry no multi-VM flag: each member's newest application-consistent
    point is the latest the group's common one can be; a member without any has none."""
    chosen: dict[str, MachineChoice] = {}
    for member in members:
        app_point = _newest(p for p in member.points if p.app_consistent)
        if app_point is None:
            problems.append(
                f"replication group {group}: {member.item_name} has no application-consistent "
                "recovery point, so the group has none in common; use --recovery-point latest "
                "or wait for the next multi-VM sync point"
            )
            return None
        chosen[member.item_name] = _choice(
            member, app_point, latest_of[member.item_name], policy, architecture
        )
    return chosen
