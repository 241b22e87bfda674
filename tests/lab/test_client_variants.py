"""Issue 14, point 4: the client under every reality variant of the simulator.

Where no recording says how real ASR behaves (lab/ASR_SIMULATOR.md, "Wire truth": UNKNOWN), the
simulator has a switch for each plausible answer (lab/scenario.py WireSpec). Each variant below,
and all of them at once, runs the client's own path through the real SDK: discovery of a plan
(replication groups told from the group ASR creates for a VM alone), readiness facts (vCenter
connected, failback policy from the container's mapping, configuration server), recovery point
choice, a failover as the client names its point, the job found again after a lost answer (its
targetObjectId a GUID), the commit, a re-protect to Azure before the agent registered (whatever
ASR's code), and an unknown plan refused.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.asr import AsrGateway
from activities.asr.activities import AsrActivities
from activities.asr.operations import AsrWrites
from activities.asr.reads import AsrReads
from domain import errors
from domain.errors import FailbackError
from domain.models import (
    AzureVmRef,
    AzureVmState,
    DiscoveredMachine,
    DiscoveredPlan,
    DiscoverPlanInput,
    FailoverInput,
    ItemOperationInput,
    PlanFailoverInput,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    ReprotectToAzureInput,
    ReprotectToAzureOptions,
    ReprotectToOnPremInput,
    ResolvedReprotectToOnPrem,
    VaultRef,
)
from domain.operations import AsrOperation
from domain.recovery_points import choose_recovery_points
from tests.lab.test_asr_sim_reprotect import AsrLab, fast, make_lab, scenario_data

__all__ = ["make_lab"]  # the fixture, used by name below

PLAN = "plan-erp"
GROUP_PLAN = "plan-db"
ALONE = "web-01-item"  # a machine outside any replication group
OTHER_SERVERS_POLICY = "other-cs-failback"
LOG_ACCOUNT = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/logs"

# Each UNKNOWN of the audit, as the switch that makes the simulator answer the other way.
VARIANTS: dict[str, dict[str, Any]] = {
    "as-modelled": {},
    "custom-point-refused": {"custom_recovery_point": "refused"},
    "no-point-details": {"point_details": "none"},
    "vcenter-says-another-word": {"vcenter_discovery_status": "Success"},
    "next-link-without-api-version": {"next_link_api_version": False, "page_size": 2},
    "agent-missing-another-code": {"agent_not_registered_code": "70094"},
    "no-group-for-a-vm-alone": {"standalone_group": "none"},
    "unknown-plan-is-an-empty-list": {"unknown_plan_filter": "empty"},
    "retry-after-30": {"retry_after_seconds": 30},
    "disk-exclusion-required": {"disk_exclusion": "required"},
    "log-storage-account-required": {"log_storage_account": "required"},
    "group-member-fails-over-alone-too": {"group_member_failover": "item-too"},
    # Modernized only (the classic scenario here does not read it): another state name after the
    # failback's commit, which the client must not key on.
    "modernized-committed-state-other": {"modernized_committed_state": "RestoreFinalized"},
    # Modernized only: ASR leaves a failed planned failover for a person to cancel.
    "no-auto-cancel": {"auto_cancel_failed_failover": "no"},
    # Hyper-V only (tests/integration/test_hyperv_failback.py runs a plan under it): a plan's
    # allowedOperations in its items' words.
    "hyperv-plan-in-item-words": {"hyperv_plan_operations": "item-words"},
    # Compute's List All with statusOnly=true lists the VMs without their status, or refuses.
    "vm-status-list-ignored": {"vm_status_list": "ignored"},
    "vm-status-list-refused": {"vm_status_list": "refused"},
}
VARIANTS["every-unknown-at-once"] = {k: v for w in VARIANTS.values() for k, v in w.items()}


def _lab(make_lab: Callable[..., AsrLab], wire: dict[str, Any]) -> AsrLab:
    data = scenario_data("recovery-plan.json")
    data["azure"]["wire"] = {**data["azure"].get("wire", {}), **wire}
    data["azure"]["other_failback_policies"] = [OTHER_SERVERS_POLICY]
    # A plan of the db replication group alone, which fails over whole (FO-PLAN).
    data["azure"]["recovery_plans"].append(
        {"name": GROUP_PLAN, "boot_groups": [["db-01-item", "db-02-item"]]}
    )
    # The agent registers long after the commit: a re-protect before that fails.
    return make_lab(fast(data, agent_registration_delay_seconds=600))


def _discover(reads: AsrReads, vault: VaultRef, to_azure_policy: str) -> DiscoveredPlan:
    return reads.discover_recovery_plan(
        DiscoverPlanInput(
            vault=vault,
            recovery_plan=PLAN,
            recovery_resource_group="rg-r",
            # As FAILBACK_AZURE_LOG_STORAGE_ACCOUNT_ID gives it: these items replicate back
            # already, so ASR no longer shows the account replication to Azure used.
            reprotect_to_azure=ReprotectToAzureOptions(
                policy_id=to_azure_policy, log_storage_account_id=LOG_ACCOUNT
            ),
        )
    )


def _activities(lab: AsrLab) -> tuple[AsrActivities, AsrReads, AsrWrites]:
    gateway = AsrGateway(lab.asr, lab.scenario.azure.subscription_id)
    reads, writes = AsrReads(gateway), AsrWrites(gateway)
    return AsrActivities(reads, writes), reads, writes


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_the_client_does_the_right_thing_under_every_variant(
    make_lab: Callable[..., AsrLab], variant: str
) -> None:
    lab = _lab(make_lab, VARIANTS[variant])
    azure = lab.scenario.azure
    vault = VaultRef(resource_group=azure.resource_group, vault=azure.vault)
    asr, reads, writes = _activities(lab)
    env = ActivityEnvironment()

    # Discovery: a VM alone is in no group, whether ASR made one for it or not.
    to_azure = next(
        str(p.id)
        for p in lab.asr.replication_policies.list(azure.resource_group, azure.vault)
        if p.name == azure.azure_policy_id
    )
    plan = _discover(reads, vault, to_azure)
    groups = {m.item.name: m.replication_group for m in plan.machines}
    assert groups == {i.name: i.replication_group for i in azure.items}

    # Readiness facts as ASR states them.
    facts = reads.read_asr_facts(
        ReadAsrFactsInput(vault=vault, machines=plan.machines, recovery_plan=PLAN)
    )
    assert facts.configuration_server.reachable
    assert facts.vcenters and all(v.connected for v in facts.vcenters)
    assert facts.failback_policy_id is not None
    assert facts.failback_policy_id.endswith("/" + lab.failback_policy_id().rsplit("/", 1)[-1])
    assert all(m.known_to_configuration_server for m in facts.machines)

    # Recovery points: `latest` always; `app-consistent` gives a group one common point, or
    # leaves it to ASR when ASR does not say which points are multi-VM ones.
    points = reads.read_recovery_points(
        ReadRecoveryPointsInput(vault=vault, machines=plan.machines)
    )
    latest = choose_recovery_points(points, "latest")
    assert {c.asked_as for c in latest.machines} == {"LatestTime"}
    app = choose_recovery_points(points, "app-consistent")
    assert {c.asked_as for c in app.machines} == {"LatestTag"}
    for group in app.groups:
        if VARIANTS[variant].get("point_details") == "none":
            assert group.chosen_by_asr and group.common_point_time is None
        else:
            times = {app.for_item(m).chosen.time for m in group.members}
            assert times == {group.common_point_time}

    # A failover of the VM alone, named as Azure PowerShell names it.
    machine = next(m for m in plan.machines if m.item.name == ALONE)
    choice = latest.for_item(ALONE)
    started = dt.datetime.now(dt.UTC)
    failover = FailoverInput(
        vault=vault,
        item=machine.item,
        vm_name=machine.vm_name,
        not_before=started,
        recovery_point_type=choice.asked_as,
        poll_interval_seconds=0.1,
    )
    done = await env.run(asr.fail_over, failover)
    assert done.state == "Succeeded" and done.job_id

    # The verification's Azure side, many machines at once (a list, or a GET each): the VM
    # failed back is off, the others run.
    vms = {i.azure_vm_name: i.name for i in azure.items}
    powers = _azure_reads_together(lab, sorted(vms))
    assert powers == {vm: "deallocated" if item == ALONE else "running" for vm, item in vms.items()}

    # The same job found again after a lost answer: by the VM's name, scenario and time.
    rule = _rule(reads, vault, machine, AsrOperation.UNPLANNED_FAILOVER)
    found = writes._find_own_job(rule, failover)
    assert found is not None and found.name == done.job_id
    assert found.target_object_id.lower() != ALONE.lower()

    commit = ItemOperationInput(
        vault=vault,
        item=machine.item,
        vm_name=machine.vm_name,
        not_before=dt.datetime.now(dt.UTC),
        poll_interval_seconds=0.1,
    )
    assert (await env.run(asr.commit_failover, commit)).state == "Succeeded"

    # Re-protect to Azure before the agent registered: ASR's refusal, whatever its code, is one
    # the workflow waits on and retries (R16), with ASR's own words.
    reprotect = ReprotectToAzureInput(
        vault=vault,
        item=machine.item,
        vm_name=machine.vm_name,
        not_before=dt.datetime.now(dt.UTC),
        poll_interval_seconds=0.1,
        options=machine.reprotect_to_azure,
    )
    with pytest.raises(ApplicationError) as not_yet:
        await env.run(asr.reprotect_to_azure, reprotect)
    assert not_yet.value.type in (errors.AGENT_NOT_REGISTERED, errors.REPROTECT_TO_AZURE_FAILED)
    code = VARIANTS[variant].get("agent_not_registered_code", "99016")
    assert code in str(not_yet.value)

    # A replication group fails over whole, through its plan (FO-PLAN): one job, found again
    # after a lost answer by the plan's name; its members to the point the client expected.
    expected = {c.item_name: c.chosen.time for c in app.machines}
    plan_failover = PlanFailoverInput(
        vault=vault,
        recovery_plan=GROUP_PLAN,
        recovery_point_type="LatestTag",
        not_before=dt.datetime.now(dt.UTC),
        poll_interval_seconds=0.1,
    )
    whole = await env.run(asr.fail_over_plan, plan_failover)
    assert whole.state == "Succeeded" and whole.job_id
    own = writes._find_plan_own_job(plan_failover, "UnplannedFailover")
    assert own is not None and own.name == whole.job_id
    taken = {i["name"]: i["failover_recovery_point"] for i in lab.state()["items"]}
    for member in ("db-01-item", "db-02-item"):
        chosen = next(
            p for m in points if m.item_name == member for p in m.points if p.name == taken[member]
        )
        if VARIANTS[variant].get("point_details") == "none":
            assert chosen.time <= expected[member]
        else:
            assert chosen.time == expected[member]

    # An unknown plan is refused by name, whether ASR answers its filter with 404 or nothing.
    with pytest.raises(FailbackError) as unknown:
        reads.discover_recovery_plan(
            DiscoverPlanInput(
                vault=vault, recovery_plan="no-such-plan", recovery_resource_group="r"
            )
        )
    assert unknown.value.type == errors.PLAN_NOT_FOUND


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_the_reprotect_to_onprem_holds_under_every_variant(
    make_lab: Callable[..., AsrLab], variant: str
) -> None:
    """The reprotect Azure -> on-premises as the client sends it (the temporary disk excluded),
    and the log storage account replication to Azure used, read before it is gone."""
    data = scenario_data("reprotect.json")
    data["azure"]["wire"] = {**data["azure"].get("wire", {}), **VARIANTS[variant]}
    lab = make_lab(fast(data))
    azure = lab.scenario.azure
    vault = VaultRef(resource_group=azure.resource_group, vault=azure.vault)
    asr, reads, _ = _activities(lab)
    plan = reads.discover_recovery_plan(
        DiscoverPlanInput(
            vault=vault,
            recovery_plan="plan-reprotect",
            recovery_resource_group="rg-r",
            reprotect_to_azure=ReprotectToAzureOptions(policy_id="p"),
        )
    )
    machine = plan.machines[0]
    assert (machine.reprotect_to_azure.log_storage_account_id or "").endswith("/asrcachelab01")
    facts = reads.read_asr_facts(
        ReadAsrFactsInput(vault=vault, machines=plan.machines, recovery_plan="plan-reprotect")
    )
    (process_server,) = facts.azure_process_servers
    mt = facts.master_targets[0]
    assert facts.failback_policy_id is not None
    done = await ActivityEnvironment().run(
        asr.reprotect_to_onprem,
        ReprotectToOnPremInput(
            vault=vault,
            item=machine.item,
            vm_name=machine.vm_name,
            not_before=dt.datetime.now(dt.UTC),
            poll_interval_seconds=0.1,
            options=ResolvedReprotectToOnPrem(
                master_target_id=mt.id,
                process_server_id=process_server,
                retention_drive=mt.retention_volumes[0],
                datastore_name=None,
                profile_id=facts.failback_policy_id,
            ),
        ),
    )
    assert done.state == "Succeeded"


def _azure_reads_together(lab: AsrLab, vm_names: list[str]) -> dict[str, str | None]:
    """Each VM's power state read by the verification's rounds, the readers after the first all
    in one round (the first's GET waits for them)."""
    from concurrent.futures import ThreadPoolExecutor

    from activities.azure_vm_rounds import AzureVmRounds
    from activities.compute import ComputeGateway

    azure = lab.scenario.azure
    rounds: AzureVmRounds

    class FirstWaits(ComputeGateway):
        first = True

        def read_vm(self, ref: AzureVmRef) -> AzureVmState:
            if self.first:
                self.first = False
                deadline = time.monotonic() + 10
                while rounds.waiting < len(vm_names) - 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
            return super().read_vm(ref)

    rounds = AzureVmRounds(FirstWaits(lab.compute, azure.subscription_id))
    refs = [AzureVmRef(resource_group=azure.recovery_resource_group, name=n) for n in vm_names]
    with ThreadPoolExecutor(len(refs)) as pool:
        states = list(pool.map(rounds.read_vm, refs))
    switch = lab.scenario.azure.wire.vm_status_list
    assert rounds.use.lists == (0 if switch == "refused" else 1)
    assert (rounds.use.stopped is None) is (switch == "honoured")
    assert rounds.use.answered_by_list == (len(refs) - 1 if switch == "honoured" else 0)
    return {s.name: s.power_state for s in states}


def _rule(
    reads: AsrReads, vault: VaultRef, machine: DiscoveredMachine, operation: AsrOperation
) -> Any:
    from activities.asr import translate as t

    item = reads.gateway.get_item(vault, machine.item)
    return t.architecture_of_item(item, machine.vm_name).operation(operation)


def test_the_variants_cover_every_switch() -> None:
    """A switch added to the simulator without a variant here would go untested."""
    from lab.scenario import WireSpec

    switched = set(VARIANTS["every-unknown-at-once"])
    assert set(WireSpec.model_fields) <= switched, set(WireSpec.model_fields) - switched


def point_lists(lab: AsrLab) -> int:
    """Requests for a page of an item's recovery points in the lab's journal."""
    return sum(1 for e in lab.journal() if e["path"].lower().endswith("/recoverypoints"))


def test_the_points_readiness_listed_serve_the_selection_after_a_long_readiness(
    make_lab: Callable[..., AsrLab],
) -> None:
    """The hand-over counts from the end of the readiness read, which the point selection
    follows: a readiness that lasted longer than the hand-over (its reads queued in ARM's read
    budget) does not make the selection list every point again (bench/RESULTS.md)."""
    from activities.handover import Handover

    lab = _lab(make_lab, {})
    azure = lab.scenario.azure
    vault = VaultRef(resource_group=azure.resource_group, vault=azure.vault)
    _, reads, _ = _activities(lab)
    reads._points_read_for_readiness = Handover(1.0)
    plan = _discover(reads, vault, "p")
    last = plan.machines[-1].item.name
    lab.lab(
        "POST",
        "/_lab/faults",
        {
            "kind": "delay",
            "method": "GET",
            "path_suffix": f"/replicationProtectedItems/{last}/recoveryPoints",
            "seconds": 3.0,
            "count": 1,
        },
    )

    reads.read_asr_facts(ReadAsrFactsInput(vault=vault, machines=plan.machines, recovery_plan=PLAN))
    listed = point_lists(lab)
    assert listed >= len(plan.machines)  # a page or more each (the lab's pages are small)
    points = reads.read_recovery_points(
        ReadRecoveryPointsInput(vault=vault, machines=plan.machines)
    )
    assert all(m.points for m in points)
    assert point_lists(lab) == listed  # the others' lists were 2 s old, the hand-over 1 s
    # Later than the hand-over after the readiness ended: listed afresh.
    reads.read_asr_facts(ReadAsrFactsInput(vault=vault, machines=plan.machines, recovery_plan=PLAN))
    time.sleep(1.2)
    listed = point_lists(lab)
    reads.read_recovery_points(ReadRecoveryPointsInput(vault=vault, machines=plan.machines))
    assert point_lists(lab) > listed


def test_the_readiness_read_names_the_worker_that_keeps_the_points_it_listed(
    make_lab: Callable[..., AsrLab],
) -> None:
    """The worker's own task queue is named only by a worker that has one and kept something;
    the points kept there serve the selection without listing them again."""
    lab = _lab(make_lab, {})
    azure = lab.scenario.azure
    vault = VaultRef(resource_group=azure.resource_group, vault=azure.vault)
    gateway = AsrGateway(lab.asr, azure.subscription_id)
    reads = AsrReads(gateway, own_task_queue="failback@host-1-0a1b2c3d")
    plan = _discover(reads, vault, "p")
    facts = reads.read_asr_facts(
        ReadAsrFactsInput(vault=vault, machines=plan.machines, recovery_plan=PLAN)
    )
    assert facts.listed_points_kept_on == "failback@host-1-0a1b2c3d"
    without_queue = AsrReads(gateway).read_asr_facts(
        ReadAsrFactsInput(vault=vault, machines=plan.machines, recovery_plan=PLAN)
    )
    assert without_queue.listed_points_kept_on is None
    listed = point_lists(lab)
    reads.read_recovery_points(ReadRecoveryPointsInput(vault=vault, machines=plan.machines))
    assert point_lists(lab) == listed
