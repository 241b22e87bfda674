"""What each architecture sends: its request bodies, in one place (the wire side of the seam in
domain/architectures). The activities pick the dialect by the item's architecture and send what
it builds; nothing else in the code knows an architecture's provider input names.

Classic's bodies are Azure PowerShell's for InMage/InMageAzureV2; modernized's are the ones
Microsoft's recorded runs send (lab/asr_wire/recordings/modernized-*.json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.mgmt.recoveryservicessiterecovery import models as asr_models

from domain.models import (
    Architecture,
    FailoverInput,
    PlanFailoverInput,
    ResolvedReprotectToAzure,
    ResolvedReprotectToOnPrem,
)
from domain.operations import AsrOperation


@dataclass(frozen=True)
class WireDialect:
    # The failback's failover: which operation, the SDK's begin_* method of the protected
    # items that sends it, and its body.
    failover: AsrOperation
    failover_method: str
    failover_body: Callable[[FailoverInput], Any]
    reprotect_to_onprem_body: Callable[[ResolvedReprotectToOnPrem], Any]
    reprotect_to_azure_body: Callable[[ResolvedReprotectToAzure], Any]
    # A recovery plan's failover (FO-PLAN): the SDK's begin_* method of the recovery plans,
    # its body, and the scenario of its job (also the plan's allowedOperations entry).
    plan_failover_method: str
    plan_failover_body: Callable[[PlanFailoverInput], Any]
    plan_failover_scenario: str


def _classic_failover(params: FailoverInput) -> Any:
    return asr_models.UnplannedFailoverInput(
        properties=asr_models.UnplannedFailoverInputProperties(
            failover_direction="PrimaryToRecovery",
            source_site_operations="NotRequired",
            provider_specific_details=asr_models.InMageUnplannedFailoverInput(
                recovery_point_type=params.recovery_point_type,
                recovery_point_id=params.recovery_point_id,
            ),
        )
    )


def _classic_reprotect_to_onprem(options: ResolvedReprotectToOnPrem) -> Any:
    return asr_models.ReverseReplicationInput(
        properties=asr_models.ReverseReplicationInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=asr_models.InMageReprotectInput(
                master_target_id=options.master_target_id,
                process_server_id=options.process_server_id,
                retention_drive=options.retention_drive,
                run_as_account_id=options.run_as_account_id,
                datastore_name=options.datastore_name,
                profile_id=options.profile_id,
                # The Azure VM's temporary disk is not replicated back, as Azure PowerShell
                # always asks (the audit's row 15).
                disk_exclusion_input=asr_models.InMageDiskExclusionInput(
                    volume_options=[
                        asr_models.InMageVolumeExclusionOptions(
                            volume_label="Temporary Storage",
                            only_exclude_if_single_volume="Yes",
                        )
                    ]
                ),
            ),
        )
    )


def _classic_reprotect_to_azure(options: ResolvedReprotectToAzure) -> Any:
    return asr_models.ReverseReplicationInput(
        properties=asr_models.ReverseReplicationInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=asr_models.InMageAzureV2ReprotectInput(
                master_target_id=options.master_target_id,
                process_server_id=options.process_server_id,
                run_as_account_id=options.run_as_account_id,
                policy_id=options.policy_id,
                log_storage_account_id=options.log_storage_account_id,
            ),
        )
    )


def _modernized_failover(params: FailoverInput) -> Any:
    # Recorded: no failoverDirection (Azure PowerShell leaves it out for this provider), and a
    # kind of point, never an id.
    return {
        "properties": {
            "providerSpecificDetails": {
                "instanceType": "InMageRcmFailback",
                "recoveryPointType": params.recovery_point_type,
            }
        }
    }


def _modernized_reprotect_to_onprem(options: ResolvedReprotectToOnPrem) -> Any:
    # Both are required by the input; readiness (R19, R22) chose them or stopped the failback.
    assert options.datastore_name and options.log_storage_account_id, "chosen by readiness"
    return asr_models.ReverseReplicationInput(
        properties=asr_models.ReverseReplicationInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=asr_models.InMageRcmReprotectInput(
                reprotect_agent_id=options.master_target_id,
                datastore_name=options.datastore_name,
                log_storage_account_id=options.log_storage_account_id,
                policy_id=options.profile_id,
            ),
        )
    )


def _modernized_reprotect_to_azure(options: ResolvedReprotectToAzure) -> Any:
    # Recorded without failoverDirection; the SDK model requires one, and Azure PowerShell's
    # -Direction is PrimaryToRecovery.
    return asr_models.ReverseReplicationInput(
        properties=asr_models.ReverseReplicationInputProperties(
            failover_direction="PrimaryToRecovery",
            provider_specific_details=asr_models.InMageRcmFailbackReprotectInput(
                process_server_id=options.process_server_id,
                run_as_account_id=options.run_as_account_id or None,
                policy_id=options.policy_id,
            ),
        )
    )


def _classic_plan_failover(params: PlanFailoverInput) -> Any:
    # As Azure PowerShell sends it for InMage: back to the plan's primary (on-premises) site.
    return asr_models.RecoveryPlanUnplannedFailoverInput(
        properties=asr_models.RecoveryPlanUnplannedFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            source_site_operations="NotRequired",
            provider_specific_details=[
                asr_models.RecoveryPlanInMageFailoverInput(
                    recovery_point_type=params.recovery_point_type
                )
            ],
        )
    )


def _modernized_plan_failover(params: PlanFailoverInput) -> Any:
    # RecoveryPlanPlannedFailoverInput with the InMageRcmFailback input (asr-modernized-hyperv.md
    # 2.4); useMultiVmSyncPoint a string, "True" for a plan holding a replication group.
    return asr_models.RecoveryPlanPlannedFailoverInput(
        properties=asr_models.RecoveryPlanPlannedFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=[
                asr_models.RecoveryPlanInMageRcmFailbackFailoverInput(
                    recovery_point_type=params.recovery_point_type,
                    use_multi_vm_sync_point="True" if params.use_multi_vm_sync_point else "False",
                )
            ],
        )
    )


DIALECTS: dict[Architecture, WireDialect] = {
    "classic": WireDialect(
        failover=AsrOperation.UNPLANNED_FAILOVER,
        failover_method="begin_unplanned_failover",
        failover_body=_classic_failover,
        reprotect_to_onprem_body=_classic_reprotect_to_onprem,
        reprotect_to_azure_body=_classic_reprotect_to_azure,
        plan_failover_method="begin_unplanned_failover",
        plan_failover_body=_classic_plan_failover,
        plan_failover_scenario="UnplannedFailover",
    ),
    "modernized": WireDialect(
        failover=AsrOperation.PLANNED_FAILOVER,
        failover_method="begin_planned_failover",
        failover_body=_modernized_failover,
        reprotect_to_onprem_body=_modernized_reprotect_to_onprem,
        reprotect_to_azure_body=_modernized_reprotect_to_azure,
        plan_failover_method="begin_planned_failover",
        plan_failover_body=_modernized_plan_failover,
        plan_failover_scenario="PlannedFailover",
    ),
}
