"""The recorded-answer transport: the real SDK reads Microsoft's recorded bodies through it."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from tests.wire.replay import EXAMPLES_VAULT, RecordedArm, example, spec_examples


class _Token:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("recorded", 2**31)


def sdk_client(arm: RecordedArm) -> SiteRecoveryManagementClient:
    return SiteRecoveryManagementClient(
        _Token(),  # type: ignore[arg-type]
        EXAMPLES_VAULT.subscription,
        transport=RequestsTransport(session=arm.session(), session_owner=False),
        retry_total=0,
    )


def test_the_sdk_reads_the_recorded_item_points_job_and_plan() -> None:
    arm = RecordedArm(spec_examples())
    client = sdk_client(arm)
    vault = EXAMPLES_VAULT
    p = example("ReplicationProtectedItems_Get")["parameters"]
    item = client.replication_protected_items.get(
        vault.resource_group,
        vault.name,
        p["fabricName"],
        p["protectionContainerName"],
        p["replicatedProtectedItemName"],
    )
    assert item.properties.provider_specific_details.instance_type == "HyperVReplicaAzure"
    points = list(
        client.recovery_points.list_by_replication_protected_items(
            vault.resource_group,
            vault.name,
            p["fabricName"],
            p["protectionContainerName"],
            p["replicatedProtectedItemName"],
        )
    )
    assert points and all(point.properties.recovery_point_time for point in points)
    job = client.replication_jobs.get(
        vault.resource_group, vault.name, "58776d0b-3141-48b2-a377-9ad863eb160d"
    )
    assert job.properties.target_object_name == "RPtest1"
    assert arm.unanswered == []


def test_a_request_nothing_recorded_is_a_404_and_is_kept() -> None:
    arm = RecordedArm(spec_examples())
    client = sdk_client(arm)
    try:
        client.replication_jobs.get(EXAMPLES_VAULT.resource_group, EXAMPLES_VAULT.name, "nope")
    except Exception as err:
        assert "NotRecorded" in str(err)
    assert len(arm.unanswered) == 1
