"""Issue 14, point 2: the client's own read paths, fed Microsoft's recorded bodies.

The gateway, the reads and the translation to domain facts run unchanged over the real SDK; a
fake transport (tests/wire/replay.py) answers from lab/asr_wire. Each test says which assumption
of the client a recorded body holds it to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from activities.asr import AsrGateway
from activities.asr import translate as t
from activities.asr.reads import AsrReads
from activities.job_watch import job_document_fact
from domain import errors
from domain.decisions import select_latest_point
from domain.errors import FailbackError
from domain.jobs import JobOutcome, find_own_job, job_outcome
from domain.models import (
    DiscoverMachineInput,
    DiscoverPlanInput,
    ProtectedItemRef,
    ReprotectToAzureOptions,
    VaultRef,
)
from domain.placement import ItemPlacement, choose_reprotect_to_azure
from tests.wire.replay import (
    EXAMPLES_VAULT,
    Answer,
    RecordedArm,
    Vault,
    example,
    recording,
    spec_examples,
    wire_file,
)


class _Token:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("recorded", 2**31)


def _reads(arm: RecordedArm, vault: Vault) -> tuple[AsrReads, VaultRef]:
    client = SiteRecoveryManagementClient(
        _Token(),  # type: ignore[arg-type]
        vault.subscription,
        transport=RequestsTransport(session=arm.session(), session_owner=False),
        retry_total=0,
    )
    ref = VaultRef(resource_group=vault.resource_group, vault=vault.name)
    return AsrReads(AsrGateway(client, vault.subscription)), ref


def _vault_of(name: str) -> Vault:
    first = json.loads(wire_file(f"recordings/{name}.json").read_text())["Entries"][-1]
    parts = first["RequestUri"].split("?")[0].split("/")
    return Vault(parts[2], parts[4], parts[8])


def test_recorded_points_become_the_points_the_failback_chooses_from() -> None:
    arm = RecordedArm(spec_examples())
    reads, vault = _reads(arm, EXAMPLES_VAULT)
    p = example("RecoveryPoints_ListByReplicationProtectedItems")["parameters"]
    item = ProtectedItemRef(
        fabric=p["fabricName"],
        container=p["protectionContainerName"],
        name=p["replicatedProtectedItemName"],
    )
    points = reads.recovery_points(vault, item)
    # The recorded points carry no providerSpecificDetails: ASR does not say whether they are
    # multi-VM sync points, and the client does not pretend to know.
    assert [(pt.type, pt.multi_vm_sync_point) for pt in points] == [
        ("CrashConsistent", None),
        ("CrashConsistent", None),
    ]
    # Seven fractional digits of the recorded times parse; the newest is chosen.
    choice = select_latest_point(points)
    assert choice.chosen.time == max(pt.time for pt in points)
    assert choice.asked_as == "LatestTime"
    assert arm.unanswered == []


def test_a_recorded_failover_job_is_found_by_its_vm_never_by_the_items_arm_name() -> None:
    """J-OWN against a real modernized failover job: targetObjectId is a GUID, the item's ARM
    name appears nowhere in the job; its friendly name, scenario and start time find it."""
    name = "modernized-TestV2ARCMFailback"
    arm = RecordedArm(recording(name))
    reads, vault = _reads(arm, _vault_of(name))
    document = reads.gateway.job_document(vault, "8a30cd0a-523b-4960-b524-e2f0d3836549")
    job = job_document_fact(document)
    started = datetime.fromisoformat(document["properties"]["startTime"][:26] + "+00:00")
    job = job.model_copy(update={"start_time": started})
    assert job_outcome(job) == JobOutcome.RUNNING  # recorded InProgress
    item_name = "vcenter67_50158471-87c2-d4ad-caa2-abe22face6d8"
    assert item_name not in json.dumps(document)
    since = started - timedelta(minutes=5)
    found = find_own_job(
        [job],
        scenarios=frozenset({"PlannedFailover"}),
        vm_name="Rcm-W2K19-152",
        item_name=item_name,
        since=since,
    )
    assert found is not None and found.name == job.name
    by_arm_name_only = find_own_job(
        [job],
        scenarios=frozenset({"PlannedFailover"}),
        vm_name="",
        item_name=item_name,
        since=since,
    )
    assert by_arm_name_only is None
    assert arm.unanswered == []


def test_recorded_job_states_read_as_j_state_says() -> None:
    arm = RecordedArm(spec_examples())
    reads, vault = _reads(arm, EXAMPLES_VAULT)
    jobs = [t.job_fact(job) for job in reads.gateway.list_jobs(vault)]
    assert jobs and all(job_outcome(job) == JobOutcome.SUCCEEDED for job in jobs)
    assert all(job.target_object_id != job.target_object_name for job in jobs)


def _providers_of_cloud1() -> tuple[str, str, Answer]:
    """The spec's providers list, where the client asks for it: under the item's fabric."""
    body = example("ReplicationRecoveryServicesProviders_List")["responses"]["200"]["body"]
    url = f"https://management.azure.com{EXAMPLES_VAULT.path}/replicationFabrics/cloud1/"
    return ("GET", url + "replicationRecoveryServicesProviders", Answer(200, body))


def test_a_hyperv_item_is_discovered_with_its_host_and_its_reverse_replication() -> None:
    """The spec's item is Hyper-V to Azure (issue 16): its architecture, the host it came from
    (its recoveryServicesProviderId among the site's providers), and what the reprotect back to
    Azure will send, all from the recorded bodies."""
    arm = RecordedArm([*spec_examples(), _providers_of_cloud1()])
    reads, vault = _reads(arm, EXAMPLES_VAULT)
    machine = reads.discover_machine(
        DiscoverMachineInput(vault=vault, vm_name="vm1", recovery_resource_group="rg")
    )
    assert machine.architecture == "hyperv"
    assert machine.onprem_host == "CP-B3L40406-12.ntdev.corp.microsoft.com"
    hyperv = machine.reprotect_to_azure.hyperv
    assert hyperv is not None and hyperv.vm_name == "vm1"
    assert not arm.unanswered


def test_a_plan_that_mixes_architectures_is_refused_before_anything_starts() -> None:
    """A recovery plan holding the recorded modernized item and the spec's Hyper-V item."""
    modern = recording("modernized-TestV2ARCMCommit")
    item_url, item_answer = next(
        (url, answer)
        for method, url, answer in modern
        if method == "GET" and "/replicationProtectedItems/" in url and answer.status == 200
    )
    hyperv = example("ReplicationProtectedItems_Get")["responses"]["200"]["body"]
    plan = example("ReplicationRecoveryPlans_Get")["responses"]["200"]["body"]
    members = [{"id": item_answer.body["id"]}, {"id": hyperv["id"]}]
    boot = next(g for g in plan["properties"]["groups"] if g["groupType"] == "Boot")
    boot["replicationProtectedItems"] = members
    plan["properties"]["groups"] = [
        g for g in plan["properties"]["groups"] if g["groupType"] != "Boot" or g is boot
    ]
    base = f"https://management.azure.com{EXAMPLES_VAULT.path}"
    modern_fabric = item_url.split("/replicationProtectionContainers/")[0].rsplit("/", 1)[1]
    fabric_body = next(
        answer.body
        for method, url, answer in modern
        if method == "GET" and url.split("?")[0].endswith(f"/replicationFabrics/{modern_fabric}")
    )
    # Ours first: of several answers to one request, the first is given first.
    arm = RecordedArm(
        [
            ("GET", f"{base}/replicationRecoveryPlans/{plan['name']}", Answer(200, plan)),
            (
                "GET",
                f"{base}/replicationProtectedItems?$filter=RecoveryPlanName eq '{plan['name']}'",
                Answer(200, {"value": [item_answer.body, hyperv]}),
            ),
            ("GET", f"{base}/replicationFabrics/{modern_fabric}", Answer(200, fabric_body)),
            _providers_of_cloud1(),
            *spec_examples(),
        ]
    )
    reads, vault = _reads(arm, EXAMPLES_VAULT)
    with pytest.raises(FailbackError) as refused:
        reads.discover_recovery_plan(
            DiscoverPlanInput(vault=vault, recovery_plan=plan["name"], recovery_resource_group="rg")
        )
    assert refused.value.type == errors.UNSUPPORTED_ARCHITECTURE, str(refused.value)
    assert "mixes ASR architectures" in str(refused.value)
    assert "Hyper-V" in str(refused.value) and "modernized" in str(refused.value)


def test_a_recorded_configuration_server_is_read_as_it_is() -> None:
    """recordings/v2aFailbackReprotect.json: the configuration server is itself a process
    server with its master target's id, and a scale-out process server is a master target
    too; neither is the process server in Azure, and re-protect to Azure goes through the
    configuration server's own."""
    name = "v2aFailbackReprotect"
    arm = RecordedArm(recording(name))
    reads, vault = _reads(arm, _vault_of(name))
    fabric_name = next(
        e["RequestUri"].split("?")[0].rsplit("/", 1)[-1]
        for e in json.loads(wire_file(f"recordings/{name}.json").read_text())["Entries"]
        if "/replicationFabrics/" in e["RequestUri"]
    )
    fabric = reads.gateway.get_fabric(vault, fabric_name)
    custom = fabric.properties.custom_details
    inventory = t.fabric_inventory(fabric)
    assert inventory.host_name == "PwsTestCS"
    assert reads._azure_process_servers([], custom) == []
    resolved = choose_reprotect_to_azure(
        ReprotectToAzureOptions(policy_id="policy"),
        inventory,
        ItemPlacement(instance_type="InMage", process_server_id=None, master_target_id=None),
    )
    cs_mt = next(mt.id for mt in inventory.master_targets if mt.name == "PwsTestCS")
    assert resolved.process_server_id == resolved.master_target_id == cs_mt
    # Datastore sizes are GB strings, retention volumes bytes: both parse.
    assert all(float(d.capacity) > 0 for mt in custom.master_target_servers for d in mt.data_stores)
    facts = t.configuration_server_facts(fabric, custom, inventory.host_name or "")
    # Recorded in 2021: its heartbeat is stale today, which is what R10 must then say.
    assert not facts.reachable and "last heartbeat" in (facts.problem or "")
    assert arm.unanswered == []


def test_a_recorded_vcenter_is_judged_by_health_and_heartbeat_not_by_its_status_word() -> None:
    arm = RecordedArm(spec_examples())
    reads, vault = _reads(arm, EXAMPLES_VAULT)
    p = example("ReplicationvCenters_ListByReplicationFabrics")["parameters"]
    (vcenter,) = reads.gateway.list_vcenters(vault, p["fabricName"])
    assert vcenter.properties.discovery_status == "Pending"
    # The example has no heartbeat and says Pending: not connected (R14 blocks, as it must while
    # discovery has not run). With a fresh heartbeat and no health error, whatever the word is,
    # it is connected; with a stale one, not.
    assert vcenter.properties.last_heartbeat is None and not t.vcenter_connected(vcenter)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    vcenter.properties.last_heartbeat = now - timedelta(minutes=5)
    assert t.vcenter_connected(vcenter, now=now)
    vcenter.properties.last_heartbeat = now - timedelta(hours=2)
    assert not t.vcenter_connected(vcenter, now=now)
