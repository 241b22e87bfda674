"""Hyper-V to Azure (with or without System Center VMM): HyperVReplicaAzure both ways.

There is no reprotect toward on-premises: an item failed over to Azure and committed there
offers `Failback`, which is a planned failover with the HyperVReplicaAzureFailback input (its
data-sync mode chosen per failback). It ends in `FinalizeRestorePending`; the commit ("finalize
failback") deletes the Azure VM and leaves `RestoreFinalized`, which offers `ReverseReplicate`:
the reProtect with the HyperVReplicaAzure input, after which the item replicates to Azure again.
No mobility agent is involved, so nothing waits for one; the recorded states offer no cancel
after the failback, so it cannot be undone. States and allowed operations are Microsoft's
recorded run's (reference: asr-modernized-hyperv.md §3.2, recordings/hyperv-*.json); the job
scenario names were not recorded (UNVERIFIED, §3.4), so each rule also accepts classic's names.
"""

from __future__ import annotations

from domain.architectures.base import (
    Architecture,
    ArchitectureName,
    ItemView,
    OperationRule,
)
from domain.operations import AsrOperation
from domain.readiness import MachineState
from domain.readiness_hyperv import assess_hyperv

PROVIDER = "HyperVReplicaAzure"
# Recorded, in this order through a failback.
FAILED_OVER_TO_AZURE = "UnplannedFailoverCommitted"
FAILED_BACK = "FinalizeRestorePending"
FINALIZED = "RestoreFinalized"
REPLICATING_TO_AZURE = ("InitialReplicationInProgress", "Protected")


def _ready_to_fail_back(item: ItemView) -> bool:
    return item.instance_type == PROVIDER and "Failback" in item.allowed_operations


def _failed_back(item: ItemView) -> bool:
    return item.instance_type == PROVIDER and item.protection_state in (FAILED_BACK, FINALIZED)


def _committed(item: ItemView) -> bool:
    return item.instance_type == PROVIDER and (
        item.protection_state == FINALIZED or _protected_to_azure(item)
    )


def _protected_to_azure(item: ItemView) -> bool:
    # Also "Protected" before any failover; the failback never runs on such an item (it does not
    # offer Failback), so here it means replicating to Azure again.
    return item.instance_type == PROVIDER and item.protection_state in REPLICATING_TO_AZURE


def _machine_state(item: ItemView) -> MachineState:
    return "ready-to-fail-back" if _ready_to_fail_back(item) else "other"


HYPERV = Architecture(
    name=ArchitectureName.HYPERV,
    title="Hyper-V",
    providers=frozenset({PROVIDER}),
    to_azure_provider=PROVIDER,
    reprotects_before_failback=False,
    failover=AsrOperation.PLANNED_FAILOVER,
    can_undo=False,
    operations=(
        OperationRule(
            AsrOperation.PLANNED_FAILOVER,
            allowed_operations=frozenset({"Failback"}),
            job_scenarios=frozenset({"PlannedFailover", "Failback"}),
            already_done=_failed_back,
        ),
        OperationRule(
            AsrOperation.FAILOVER_COMMIT,
            allowed_operations=frozenset({"FinalizeFailback"}),
            job_scenarios=frozenset({"CommitFailover", "FailoverCommit", "FinalizeFailback"}),
            already_done=_committed,
        ),
        OperationRule(
            AsrOperation.REPROTECT_TO_AZURE,
            allowed_operations=frozenset({"ReverseReplicate"}),
            job_scenarios=frozenset({"ReverseReplication", "Reprotect", "ReverseReplicate"}),
            already_done=_protected_to_azure,
        ),
    ),
    machine_state=_machine_state,
    replicating_back=_ready_to_fail_back,
    protected_to_azure=_protected_to_azure,
    assess=assess_hyperv,
    rules=("R12", "R13", "R23", "R24", "R25", "R26", "R27"),
    onprem_platform="hyperv",
    waits_for_agent=False,
)
