"""Exactly-once writes: a retried failover finds its own job instead of sending a second one.

These run the real activities, the real Azure SDK and the lab's ASR simulator; the only thing
simulated is Temporal's retry (ActivityEnvironment with the heartbeat of an earlier attempt).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from domain.models import (
    DiscoverMachineInput,
    FailoverInput,
    ItemOperationInput,
    ReprotectToAzureOptions,
    SelectRecoveryPointInput,
    VaultRef,
)
from lab.manager import LabState
from tests.integration.conftest import SECOND_VM, journal, lab_settings, posts
from worker.wiring import build_asr_activities, build_asr_gateway

pytestmark = pytest.mark.integration


def test_a_retried_failover_never_sends_a_second_unplanned_failover(lab: LabState) -> None:
    settings = lab_settings(lab)
    gateway = build_asr_gateway(settings)
    asr = build_asr_activities(settings, gateway=gateway)
    assert settings.azure_resource_group and settings.azure_vault
    vault = VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault)
    environment = ActivityEnvironment()
    machine = environment.run(
        asr.discover_machine,
        DiscoverMachineInput(
            vault=vault,
            vm_name=SECOND_VM,
            recovery_resource_group=str(settings.azure_recovery_resource_group),
            reprotect_to_azure=ReprotectToAzureOptions(
                policy_id=settings.azure_reprotect_policy_id
            ),
        ),
    )
    point = environment.run(
        asr.select_recovery_point, SelectRecoveryPointInput(vault=vault, item=machine.item)
    )
    started = datetime.now(UTC)
    request = FailoverInput(
        vault=vault,
        item=machine.item,
        not_before=started,
        recovery_point_type=point.asked_as,
        poll_interval_seconds=0.5,
    )

    # An attempt sends the failover and dies before its first heartbeat reaches Temporal.
    item = machine.item
    gateway.items.begin_unplanned_failover(
        vault.resource_group,
        vault.vault,
        item.fabric,
        item.container,
        item.name,
        {
            "properties": {
                "failoverDirection": "PrimaryToRecovery",
                "sourceSiteOperations": "NotRequired",
                "providerSpecificDetails": {
                    "instanceType": "InMage",
                    "recoveryPointType": "Custom",
                    "recoveryPointId": point.chosen.id,
                },
            }
        },
    )
    assert len(posts(journal(lab), "unplannedFailover", item.name)) == 1

    # Temporal retries the activity: it finds the job in flight and waits for it.
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    retried = asyncio.run(retry.run(asr.fail_over, request))
    assert retried.resumed and retried.state == "Succeeded" and retried.job_id

    # A retry that carries the job in its heartbeat resumes that very job.
    with_heartbeat = ActivityEnvironment()
    with_heartbeat.info = dataclasses.replace(
        with_heartbeat.info, heartbeat_details=[retried.job_id]
    )
    again = asyncio.run(with_heartbeat.run(asr.fail_over, request))
    assert again.job_id == retried.job_id and again.resumed

    # A retry long after (its job out of sight) reads the item: already failed over.
    later = asyncio.run(
        retry.run(
            asr.fail_over, request.model_copy(update={"not_before": started + timedelta(hours=1)})
        )
    )
    assert later.state == "AlreadyDone" and later.resumed

    entries = posts(journal(lab), "unplannedFailover", item.name)
    assert len(entries) == 1, entries

    # A commit that is not allowed yet... is allowed now, and a second commit after it is not
    # sent either: the item is already committed.
    commit = ItemOperationInput(
        vault=vault, item=item, not_before=datetime.now(UTC), poll_interval_seconds=0.5
    )
    first = asyncio.run(environment.run(asr.commit_failover, commit))
    second = asyncio.run(environment.run(asr.commit_failover, commit))
    assert first.state == "Succeeded" and not first.resumed
    assert second.resumed
    assert len(posts(journal(lab), "failoverCommit", item.name)) == 1
