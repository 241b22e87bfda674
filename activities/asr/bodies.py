"""What each architecture sends: its request bodies, in one place (the wire side of the seam in
domain/architectures). The activities pick the dialect by the item's architecture and send what
it builds; nothing else in the code knows an architecture's provider input names.

Classic's bodies are Azure PowerShell's for InMage/InMageAzureV2; modernized's and Hyper-V's are
the ones Microsoft's recorded runs send (lab/asr_wire/recordings/modernized-*.json, hyperv-*.json).
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
    # None: the architecture has no reprotect toward on-premises (Hyper-V).
    reprotect_to_onprem_body: Callable[[ResolvedReprotectToOnPrem], Any] | None
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


_DATA_SYNC = {"for-synchronization": "ForSynchronization", "for-downtime": "ForDownTime"}


def _hyperv_failover(params: FailoverInput) -> Any:
    # Recorded (hyperv-PlannedFailover.json): no failoverDirection; the data-sync mode and the VM
    # creation option always named; the target host's provider for an alternate location.
    choice = params.hyperv
    assert choice is not None, "a Hyper-V failover names its data sync"
    details: dict[str, Any] = {
        "instanceType": "HyperVReplicaAzureFailback",
        "dataSyncOption": _DATA_SYNC[choice.data_sync],
        "recoveryVmCreationOption": (
            "CreateVmIfNotFound" if choice.create_vm_if_not_found else "NoAction"
        ),
    }
    if choice.create_vm_if_not_found and choice.provider_id_for_alternate:
        details["providerIdForAlternateRecovery"] = choice.provider_id_for_alternate
    return {"properties": {"providerSpecificDetails": details}}


def _hyperv_reprotect_to_azure(options: ResolvedReprotectToAzure) -> Any:
    # As Azure PowerShell's -HyperVToAzure -Direction PrimaryToRecovery fills it (reference 3.3 E):
    # the VM's id on its host, its OS disk and the storage account it replicated to.
    hyperv = options.hyperv
    assert hyperv is not None, "resolved from the item at discovery"
    return asr_models.ReverseReplicationInput(
        properties=asr_models.ReverseReplicationInputProperties(
            failover_direction="PrimaryToRecovery",
            provider_specific_details=asr_models.HyperVReplicaAzureReprotectInput(
                hv_host_vm_id=hyperv.hv_host_vm_id,
                vm_name=hyperv.vm_name,
                os_type=hyperv.os_type,
                v_hd_id=hyperv.vhd_id,
                storage_account_id=hyperv.storage_account_id,
                log_storage_account_id=hyperv.log_storage_account_id,
            ),
        )
    )


def _hyperv_plan_failover(params: PlanFailoverInput) -> Any:
    # RecoveryPlanHyperVReplicaAzureFailbackInput: both options required, no alternate provider
    # at plan level (reference 3.4); the VMs that are gone are created where ASR decides.
    return asr_models.RecoveryPlanPlannedFailoverInput(
        properties=asr_models.RecoveryPlanPlannedFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=[
                asr_models.RecoveryPlanHyperVReplicaAzureFailbackInput(
                    data_sync_option=_DATA_SYNC[params.data_sync],
                    recovery_vm_creation_option=(
                        "CreateVmIfNotFound" if params.create_vm_if_not_found else "NoAction"
                    ),
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
    "hyperv": WireDialect(
        failover=AsrOperation.PLANNED_FAILOVER,
        failover_method="begin_planned_failover",
        failover_body=_hyperv_failover,
        reprotect_to_onprem_body=None,
        reprotect_to_azure_body=_hyperv_reprotect_to_azure,
        plan_failover_method="begin_planned_failover",
        plan_failover_body=_hyperv_plan_failover,
        plan_failover_scenario="PlannedFailover",
    ),
}
