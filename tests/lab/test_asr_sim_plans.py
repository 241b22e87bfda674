"""Recovery plans, replication groups and recovery point histories, through the real SDK client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from lab.scenario import JobTimings, Scenario, ScenarioError, load_scenario
from tests.lab.conftest import SimLab, StartLab

SCENARIOS = Path(__file__).resolve().parents[2] / "lab" / "scenarios"


def plan_scenario(wire: dict[str, Any] | None = None, **extra_plans: list[list[str]]) -> Scenario:
    """lab/scenarios/recovery-plan.json with quick jobs, plus `extra_plans` (name: boot groups)
    and `wire` switches."""
    data = json.loads((SCENARIOS / "recovery-plan.json").read_text())
    data["azure"]["wire"] = {**data["azure"].get("wire", {}), **(wire or {})}
    for name, groups in extra_plans.items():
        data["azure"]["recovery_plans"].append({"name": name, "boot_groups": groups})
    data["azure"]["jobs"] = JobTimings(
        failover_seconds=0.4, commit_seconds=0.2, reprotect_seconds=0.2
    ).model_dump()
    return Scenario.model_validate(data)


class PlanLab(SimLab):
    def items(self, odata_filter: str | None = None) -> list[Any]:
        a = self.scenario.azure
        return list(
            self.asr.replication_protected_items.list(
                a.resource_group, a.vault, filter=odata_filter
            )
        )

    def points(self, item: str) -> list[Any]:
        a = self.scenario.azure
        return list(
            self.asr.recovery_points.list_by_replication_protected_items(
                a.resource_group, a.vault, a.fabric, a.protection_container, item
            )
        )

    def failover(self, item: str, point_id: str) -> Any:
        a = self.scenario.azure
        return self.asr.replication_protected_items.begin_unplanned_failover(
            a.resource_group,
            a.vault,
            a.fabric,
            a.protection_container,
            item,
            {
                "properties": {
                    "failoverDirection": "PrimaryToRecovery",
                    "sourceSiteOperations": "NotRequired",
                    "providerSpecificDetails": {
                        "instanceType": "InMage",
                        "recoveryPointType": "Custom",
                        "recoveryPointId": point_id,
                    },
                }
            },
        )


@pytest.fixture
def plan_lab(start_lab: StartLab) -> PlanLab:
    lab = start_lab(plan_scenario(**{"plan-web": [["web-01-item", "web-02-item"]]}), kind=PlanLab)
    assert isinstance(lab, PlanLab)
    return lab


def _error(err: HttpResponseError) -> tuple[str, str]:
    assert err.error is not None, f"no ARM error body in {err!r}"
    return str(err.error.code), str(err.error.message)


def _app_points(points: list[Any]) -> list[Any]:
    return [p for p in points if p.properties.recovery_point_type == "ApplicationConsistent"]


def _sync(point: Any) -> str:
    return str(point.properties.provider_specific_details["isMultiVmSyncPoint"])


# -- plans ---------------------------------------------------------------------------------------


def test_plans_list_and_get_with_boot_groups_in_order(plan_lab: PlanLab) -> None:
    a = plan_lab.scenario.azure
    plans = list(plan_lab.asr.replication_recovery_plans.list(a.resource_group, a.vault))
    assert [p.name for p in plans] == ["plan-erp", "plan-web"]

    plan = plan_lab.asr.replication_recovery_plans.get(a.resource_group, a.vault, "PLAN-ERP")
    assert plan.name == "plan-erp"
    assert plan.id.endswith("/replicationRecoveryPlans/plan-erp")
    props = plan.properties
    assert props.friendly_name == "plan-erp"
    assert props.primary_fabric_id.endswith(f"/replicationFabrics/{a.fabric}")
    assert props.recovery_fabric_id == "Microsoft Azure"
    assert props.failover_deployment_model == "ResourceManager"
    assert props.replication_providers == ["InMage"]
    assert props.allowed_operations == ["UnplannedFailover"]
    assert props.current_scenario.scenario_name == "None"
    assert [g.group_type for g in props.groups] == ["Shutdown", "Failover", "Boot", "Boot", "Boot"]
    assert all(g.replication_protected_items == [] for g in props.groups[:2])

    items = {i.name: i for i in plan_lab.items()}
    boot = [
        [rpi.id.rsplit("/", 1)[-1] for rpi in g.replication_protected_items]
        for g in props.groups[2:]
    ]
    assert boot == [
        ["db-01-item", "db-02-item"],
        ["app-01-item", "app-02-item", "cache-01-item"],
        ["web-01-item", "web-02-item"],
    ]
    for group in props.groups[2:]:
        for rpi in group.replication_protected_items:
            item = items[rpi.id.rsplit("/", 1)[-1]]
            assert rpi.id == item.id
            assert rpi.virtual_machine_id == item.properties.provider_specific_details.vm_id

    with pytest.raises(ResourceNotFoundError) as missing:
        plan_lab.asr.replication_recovery_plans.get(a.resource_group, a.vault, "plan-nowhere")
    assert "plan-nowhere" in _error(missing.value)[1]


def test_protected_items_filter_by_recovery_plan(plan_lab: PlanLab) -> None:
    assert len(plan_lab.items()) == 7
    assert len(plan_lab.items("RecoveryPlanName eq 'plan-erp'")) == 7
    web = plan_lab.items("RecoveryPlanName eq 'plan-web'")
    assert [i.name for i in web] == ["web-01-item", "web-02-item"]
    assert [i.properties.friendly_name for i in web] == ["web-01", "web-02"]

    with pytest.raises(ResourceNotFoundError) as unknown:
        plan_lab.items("RecoveryPlanName eq 'plan-nowhere'")
    assert "plan-nowhere" in _error(unknown.value)[1]
    with pytest.raises(HttpResponseError) as unsupported:
        plan_lab.items("SourceFabricName eq 'x'")
    assert unsupported.value.status_code == 400
    assert _error(unsupported.value)[0] == "NotSupportedByLab"
    filtered = [
        e
        for e in plan_lab.journal()
        if e["query"].get("$filter") and "$skiptoken" not in e["query"]
    ]
    assert filtered[1]["query"]["$filter"] == "RecoveryPlanName eq 'plan-web'"


def test_items_show_their_replication_group(plan_lab: PlanLab) -> None:
    details = {i.name: i.properties.provider_specific_details for i in plan_lab.items()}
    assert details["db-01-item"].multi_vm_group_name == "rg-db"
    assert details["db-02-item"].multi_vm_group_name == "rg-db"
    assert details["db-01-item"].multi_vm_group_id == details["db-02-item"].multi_vm_group_id
    assert details["app-01-item"].multi_vm_group_name == "rg-app"
    assert details["app-01-item"].multi_vm_group_id != details["db-01-item"].multi_vm_group_id
    assert details["db-01-item"].multi_vm_sync_status == "Enabled"
    # A VM alone: in the group ASR made for it, name = id = a GUID of its own (LIKELY, row 3).
    alone = ("cache-01-item", "web-01-item", "web-02-item")
    for standalone in alone:
        group = details[standalone]
        assert group.multi_vm_group_name == group.multi_vm_group_id
        assert len(group.multi_vm_group_name) == 36
        assert group.multi_vm_sync_status == "Disabled"
    assert len({details[s].multi_vm_group_id for s in alone}) == len(alone)


def test_group_members_share_sync_point_times_and_the_laggard_lacks_the_newest(
    plan_lab: PlanLab,
) -> None:
    db1, db2 = plan_lab.points("db-01-item"), plan_lab.points("db-02-item")
    for points in (db1, db2):
        assert all(_sync(p) == "true" for p in _app_points(points))
        assert all(_sync(p) == "false" for p in points if p not in _app_points(points))
    db1_app = {p.properties.recovery_point_time: p for p in _app_points(db1)}
    db2_app = {p.properties.recovery_point_time: p for p in _app_points(db2)}
    common = sorted(set(db1_app) & set(db2_app), reverse=True)
    # db-02 lags 65 min: every sync point it has (within db-01's retention window, which ends
    # 65 min later), db-01 has too, plus newer ones.
    assert {t for t in db2_app if t >= min(db1_app)} <= set(db1_app)
    assert common[0] == max(db2_app) < max(db1_app)
    assert db1_app[common[0]].name == db2_app[common[0]].name
    assert db1_app[common[0]].id != db2_app[common[0]].id
    assert db1_app[common[0]].id.endswith(f"/db-01-item/recoveryPoints/{db1_app[common[0]].name}")

    # app-02: no application-consistent point for 2 h, crash-consistent ones go on.
    app2 = plan_lab.points("app-02-item")
    assert max(p.properties.recovery_point_time for p in _app_points(app2)) < min(
        p.properties.recovery_point_time for p in app2[:20]
    )
    assert all(_sync(p) == "false" for p in plan_lab.points("cache-01-item"))


def test_a_group_member_fails_over_only_with_its_plan(plan_lab: PlanLab) -> None:
    """Audit row 2 (LIKELY, the default switch): an item failover of a member of a replication
    group a person made is refused, in ASR's refusal shape; the client never sends one."""
    own = _app_points(plan_lab.points("db-01-item"))[0]
    with pytest.raises(HttpResponseError) as refused:
        plan_lab.failover("db-01-item", own.id)
    assert refused.value.status_code == 400
    _, message = _error(refused.value)
    assert "rg-db" in message and "on its own" in message
    assert plan_lab.state()["jobs"] == []


def test_custom_failover_takes_only_a_point_of_the_same_item(start_lab: StartLab) -> None:
    plan_lab = start_lab(plan_scenario(wire={"group_member_failover": "item-too"}), kind=PlanLab)
    assert isinstance(plan_lab, PlanLab)
    db1_app = _app_points(plan_lab.points("db-01-item"))
    db2_newest = _app_points(plan_lab.points("db-02-item"))[0]
    with pytest.raises(HttpResponseError) as refused:
        plan_lab.failover("db-01-item", db2_newest.id)
    assert refused.value.status_code == 400
    code, message = _error(refused.value)
    assert code == "InvalidRequestContent"
    assert "db-02-item" in message and "db-01-item" in message
    assert plan_lab.state()["jobs"] == []

    # The same sync point, as db-01's own recovery point, is accepted.
    own = next(p for p in db1_app if p.name == db2_newest.name)
    done = plan_lab.failover("db-01-item", own.id).result()
    assert done.properties.failover_recovery_point_id == own.id

    posts = [e for e in plan_lab.journal() if e["path"].endswith("/unplannedFailover")]
    assert [e["status"] for e in posts] == [400, 202]
    asked = [e["body"]["properties"]["providerSpecificDetails"]["recoveryPointId"] for e in posts]
    assert asked == [db2_newest.id, own.id]
    state = plan_lab.state()
    (operation,) = state["operations"]
    assert operation["item"] == "db-01-item" and operation["state"] == "Succeeded"
    details = operation["request_body"]["properties"]["providerSpecificDetails"]
    assert details["recoveryPointId"] == own.id
    db1_state = next(i for i in state["items"] if i["name"] == "db-01-item")
    assert db1_state["failover_recovery_point"] == own.name
    assert db1_state["replication_group"] == "rg-db"


def test_a_plan_fails_over_whole_at_its_groups_common_point(plan_lab: PlanLab) -> None:
    """FO-PLAN as Azure PowerShell sends it: one job for the plan, named by the plan; every
    member fails over, a replication group's members to their newest common multi-VM sync point;
    the plan keeps naming its job, Succeeded, as recorded. Other plan operations are refused."""
    a = plan_lab.scenario.azure
    body = {
        "properties": {
            "failoverDirection": "RecoveryToPrimary",
            "sourceSiteOperations": "NotRequired",
            "providerSpecificDetails": [
                {"instanceType": "InMage", "recoveryPointType": "LatestTag"}
            ],
        }
    }
    common = set.intersection(
        *(
            {p.name for p in _app_points(plan_lab.points(name)) if _sync(p) == "true"}
            for name in ("db-01-item", "db-02-item")
        )
    )
    poller = plan_lab.asr.replication_recovery_plans.begin_unplanned_failover(
        a.resource_group, a.vault, "plan-erp", body, polling_interval=0.1
    )
    poller.result()
    state = plan_lab.state()
    (operation,) = state["operations"]
    assert operation["recovery_plan"] == "plan-erp" and operation["state"] == "Succeeded"
    (job,) = state["jobs"]
    assert job["properties"]["targetObjectName"] == "plan-erp"
    assert job["properties"]["targetInstanceType"] == "RecoveryPlan"
    assert job["properties"]["scenarioName"] == "UnplannedFailover"
    items = {i["name"]: i for i in state["items"]}
    members = [n for g in plan_lab.scenario.recovery_plan("plan-erp").boot_groups for n in g]
    assert {items[n]["phase"] for n in members} == {"FailoverCommitPending"}
    points = {items[n]["failover_recovery_point"] for n in ("db-01-item", "db-02-item")}
    assert points == {max(common)}

    plan = plan_lab.asr.replication_recovery_plans.get(a.resource_group, a.vault, "plan-erp")
    assert plan.properties.current_scenario.job_id.endswith(job["name"])
    assert plan.properties.current_scenario_status == "Succeeded"

    with pytest.raises(HttpResponseError) as refused:
        plan_lab.asr.replication_recovery_plans.begin_failover_commit(
            a.resource_group, a.vault, "plan-erp"
        )
    assert refused.value.status_code == 400
    assert _error(refused.value)[0] == "NotSupportedByLab"
    with pytest.raises(ResourceNotFoundError):
        plan_lab.asr.replication_recovery_plans.begin_failover_commit(
            a.resource_group, a.vault, "plan-nowhere"
        )


def test_no_common_point_scenario_through_the_sdk(start_lab: StartLab) -> None:
    lab = start_lab(load_scenario(SCENARIOS / "plan-no-common-point.json"), kind=PlanLab)
    assert isinstance(lab, PlanLab)
    pair = [
        {p.properties.recovery_point_time for p in _app_points(lab.points(name))}
        for name in ("pair-01-item", "pair-02-item")
    ]
    assert pair[0] and pair[1] and not pair[0] & pair[1]
    (plan,) = lab.asr.replication_recovery_plans.list(
        lab.scenario.azure.resource_group, lab.scenario.azure.vault
    )
    assert [len(g.replication_protected_items) for g in plan.properties.groups] == [0, 0, 2, 1]


# -- scenario validation -----------------------------------------------------------------------


def _scenario_data(items: int, boot_groups: list[list[str]]) -> dict[str, Any]:
    return {
        "name": "plans",
        "vcenter": {
            "datastores": [{"name": "ds1"}],
            "hosts": [{"name": "esx1", "datastores": ["ds1"]}],
            "vms": [
                {"name": name, "host": "esx1", "datastore": "ds1"}
                for name in ["mt", *(f"vm-{n:03}" for n in range(items))]
            ],
        },
        "azure": {
            "master_target_vm": "mt",
            "items": [
                {"name": f"item-{n:03}", "vm_name": f"vm-{n:03}", "azure_vm_name": f"vm-{n:03}"}
                for n in range(items)
            ],
            "recovery_plans": [{"name": "plan-a", "boot_groups": boot_groups}],
        },
    }


def _invalid(data: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    return str(err.value)


def test_plan_limits_and_references_are_validated_naming_the_field(tmp_path: Path) -> None:
    names = [f"item-{n:03}" for n in range(101)]

    ok = _scenario_data(100, [names[:50], names[50:100]])
    assert len(Scenario.model_validate(ok).azure.recovery_plans[0].boot_groups) == 2

    eight = _invalid(_scenario_data(8, [[n] for n in names[:8]]), tmp_path)
    assert "azure.recovery_plans[0].boot_groups has 8 boot groups" in eight
    assert "at most 7" in eight

    too_many = _invalid(_scenario_data(101, [names[:50], names[50:101]]), tmp_path)
    assert "azure.recovery_plans[0].boot_groups holds 101 items" in too_many
    assert "at most 100" in too_many

    unknown = _invalid(_scenario_data(2, [[names[0]], [names[1], "ghost"]]), tmp_path)
    assert "azure.recovery_plans[0].boot_groups[1][1] names 'ghost'" in unknown

    twice = _invalid(_scenario_data(2, [[names[0], names[1]], [names[0]]]), tmp_path)
    assert "azure.recovery_plans[0].boot_groups[1][0] names 'item-000' again" in twice
    assert "boot_groups[0][0]" in twice

    empty = _invalid(_scenario_data(2, [[names[0]], []]), tmp_path)
    assert "azure.recovery_plans[0].boot_groups[1] is empty" in empty
    assert "azure.recovery_plans[0].boot_groups is empty" in _invalid(
        _scenario_data(1, []), tmp_path
    )

    same_name = _scenario_data(2, [[names[0]]])
    same_name["azure"]["recovery_plans"].append({"name": "PLAN-A", "boot_groups": [[names[1]]]})
    assert "azure.recovery_plans[1].name 'PLAN-A' is used twice" in _invalid(same_name, tmp_path)


def test_replication_groups_and_gaps_are_validated(tmp_path: Path) -> None:
    data = _scenario_data(3, [["item-000"]])
    items = data["azure"]["items"]
    items[0]["replication_group"] = "rg"
    items[2]["replication_group"] = "rg"
    items[2]["recovery_points"] = {"app_consistent_every_seconds": 1800}
    mismatch = _invalid(data, tmp_path)
    assert "azure.items[2].recovery_points.app_consistent_every_seconds is 1800" in mismatch
    assert "'rg'" in mismatch

    items[2]["recovery_points"] = {"gaps": [{"from_seconds_ago": 60, "to_seconds_ago": 120}]}
    bad_gap = _invalid(data, tmp_path)
    assert "azure.items.2.recovery_points.gaps.0" in bad_gap and "from_seconds_ago" in bad_gap

    items[2]["recovery_points"] = {
        "gaps": [{"from_seconds_ago": 60, "to_seconds_ago": 0, "types": ["Hourly"]}]
    }
    assert "azure.items.2.recovery_points.gaps.0.types.0" in _invalid(data, tmp_path)

    items[2]["recovery_points"] = {"none": True}
    members = Scenario.model_validate(data).replication_group_members("rg")
    assert [m.name for m in members] == ["item-000", "item-002"]
