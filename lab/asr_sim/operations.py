"""The three item operations the lab serves, with their ASR job vocabulary.

Scenario names and the failover task names come from recordings (see asr-rest-notes.md); the
commit and reprotect task names are UNVERIFIED (chosen to read like ASR's, documented in
lab/ASR_SIMULATOR.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Operation(StrEnum):
    UNPLANNED_FAILOVER = "unplannedFailover"
    FAILOVER_COMMIT = "failoverCommit"
    REPROTECT = "reProtect"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    friendly_name: str


@dataclass(frozen=True)
class OperationSpec:
    operation: Operation
    scenario_name: str
    friendly_name: str
    # Names under which the operation may appear in an item's allowedOperations.
    allowed_operation_names: frozenset[str]
    tasks: tuple[TaskSpec, ...]
    # Where an injected job_failure fault strikes unless the fault names a task.
    default_failure_task: str


OPERATIONS: dict[Operation, OperationSpec] = {
    Operation.UNPLANNED_FAILOVER: OperationSpec(
        operation=Operation.UNPLANNED_FAILOVER,
        scenario_name="UnplannedFailover",
        friendly_name="Unplanned failover",
        allowed_operation_names=frozenset({"UnplannedFailover"}),
        tasks=(
            TaskSpec("VmUfoPrerequisitesCheck", "Prerequisites check for unplanned failover"),
            TaskSpec("VmShutdownVmOnPrimary", "Shut down the virtual machine"),
            TaskSpec("VmPrepareForUnPlannedFailover", "Prepare for unplanned failover"),
            TaskSpec("VmFailover", "Fail over to the recovery point"),
            TaskSpec("VmFoStartVmOnSecondary", "Start the replica virtual machine"),
        ),
        default_failure_task="VmFoStartVmOnSecondary",
    ),
    Operation.FAILOVER_COMMIT: OperationSpec(
        operation=Operation.FAILOVER_COMMIT,
        scenario_name="CommitFailover",
        friendly_name="Commit",
        allowed_operation_names=frozenset({"Commit"}),
        tasks=(
            TaskSpec("VmCommitPrerequisitesCheck", "Prerequisites check for commit"),
            TaskSpec("VmDeleteOnPrimary", "Delete the failed-over virtual machine in Azure"),
            TaskSpec("VmCommitFailover", "Commit the failover"),
        ),
        default_failure_task="VmCommitPrerequisitesCheck",
    ),
    Operation.REPROTECT: OperationSpec(
        operation=Operation.REPROTECT,
        # One scenario name for both directions (Azure -> on-premises and back to Azure).
        scenario_name="SwitchReplicationGroupProtection",
        friendly_name="Reprotect",
        # After the failback commit ASR offers "SwitchProtection"; a machine failed over to
        # Azure offers "ReverseReplicate" (the SDK's ReplicationProtectedItemOperation).
        allowed_operation_names=frozenset({"SwitchProtection", "ReverseReplicate"}),
        tasks=(
            TaskSpec("VmReprotectPrerequisitesCheck", "Prerequisites check for reprotect"),
            # Towards on-premises this is also where an alternate location VM is re-created.
            TaskSpec("VmEnableProtection", "Enable replication in the reverse direction"),
            TaskSpec("VmStartInitialReplication", "Start initial replication"),
        ),
        default_failure_task="VmReprotectPrerequisitesCheck",
    ),
}


def task_names(operation: Operation) -> tuple[str, ...]:
    return tuple(task.name for task in OPERATIONS[operation].tasks)
