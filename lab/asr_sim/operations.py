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
    # Modernized only: the failback, and its undo before commit.
    PLANNED_FAILOVER = "plannedFailover"
    FAILOVER_CANCEL = "failoverCancel"


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


# Modernized VMware/physical: every scenario name, friendly name and task is recorded
# (lab/asr_wire/recordings/modernized-TestV2ARCM{Reprotect,Failback,Commit,CancelFailover}.json).
MODERNIZED_OPERATIONS: dict[Operation, OperationSpec] = {
    Operation.REPROTECT: OperationSpec(
        operation=Operation.REPROTECT,
        scenario_name="SwitchReplicationGroupProtection",
        friendly_name="Reprotect",
        allowed_operation_names=frozenset({"SwitchProtection"}),
        tasks=(
            TaskSpec("SwitchReplicationGroupProtectionPreflightTask", "Prerequisite check"),
            # A failover still pending commit is committed on the way (recorded).
            TaskSpec("VmCommitFailover", "Committing failover"),
            TaskSpec("DiscoverReplicaTask", "Discovering replica virtual machine"),
            TaskSpec("GetSwitchProtectionRequirementsTask", "Getting reprotection requirements"),
            TaskSpec("ProtectReplicaTask", "Reprotecting virtual machine"),
        ),
        default_failure_task="SwitchReplicationGroupProtectionPreflightTask",
    ),
    Operation.PLANNED_FAILOVER: OperationSpec(
        operation=Operation.PLANNED_FAILOVER,
        scenario_name="PlannedFailover",
        friendly_name="Planned failover",
        allowed_operation_names=frozenset({"PlannedFailover"}),
        tasks=(
            TaskSpec("VmPfoPrerequisitesCheck", "Prerequisites check for planned failover"),
            TaskSpec("VmPrepareForFailover", "Start failover"),
            TaskSpec("VmFailover", "Shut down the Azure virtual machine"),
            TaskSpec("VmPrepareProtectedEntitiesTask", "Preparing on-premise virtual machine"),
            TaskSpec("VmFoStartVmOnSecondary", "Starting on-premise virtual machine"),
        ),
        default_failure_task="VmFoStartVmOnSecondary",
    ),
    Operation.FAILOVER_COMMIT: OperationSpec(
        operation=Operation.FAILOVER_COMMIT,
        scenario_name="CommitFailover",
        friendly_name="Commit",
        allowed_operation_names=frozenset({"Commit"}),
        tasks=(
            TaskSpec("VmCommitPrerequisitesCheck", "Prerequisite check"),
            TaskSpec("VmCommit", "Commit"),
        ),
        default_failure_task="VmCommitPrerequisitesCheck",
    ),
    Operation.FAILOVER_CANCEL: OperationSpec(
        operation=Operation.FAILOVER_CANCEL,
        scenario_name="CancelFailover",
        friendly_name="Cancel failover and resume replication",
        allowed_operation_names=frozenset({"CancelFailover"}),
        tasks=(
            TaskSpec(
                "CancelFailoverPreflightChecksTask", "Prerequisites check for cancel failover"
            ),
            TaskSpec("CancelFailoverRecovery", "Cancel failover recovery"),
            TaskSpec("CancelFailoverPrimaryTask", "Cancel failover primary"),
            TaskSpec("StartVmOnPrimary", "Starting the virtual machine"),
        ),
        default_failure_task="CancelFailoverPreflightChecksTask",
    ),
}


# GUESS: Hyper-V's job scenario and task names are not recorded (reference 3.4: the recordings
# poll replicationOperationStatus, not the job); the client accepts classic's names too.
HYPERV_OPERATIONS: dict[Operation, OperationSpec] = {
    Operation.PLANNED_FAILOVER: OperationSpec(
        operation=Operation.PLANNED_FAILOVER,
        scenario_name="PlannedFailover",
        friendly_name="Failback",
        # Recorded: a committed Hyper-V item offers its failback as "Failback".
        allowed_operation_names=frozenset({"Failback"}),
        tasks=(
            TaskSpec("HyperVFailbackPrerequisitesCheck", "Prerequisites check for failback"),
            TaskSpec("HyperVSyncBeforeFailover", "Synchronize data before failover"),
            TaskSpec("HyperVShutdownAzureVm", "Shut down the Azure virtual machine"),
            TaskSpec("HyperVSyncData", "Synchronize data to the on-premises virtual machine"),
            TaskSpec("HyperVStartVmOnPrimary", "Start the on-premises virtual machine"),
        ),
        default_failure_task="HyperVStartVmOnPrimary",
    ),
    Operation.FAILOVER_COMMIT: OperationSpec(
        operation=Operation.FAILOVER_COMMIT,
        scenario_name="CommitFailover",
        friendly_name="Finalize failback",
        allowed_operation_names=frozenset({"FinalizeFailback"}),
        tasks=(
            TaskSpec("HyperVCommitPrerequisitesCheck", "Prerequisite check"),
            TaskSpec("HyperVFinalizeFailback", "Delete the Azure virtual machine"),
        ),
        default_failure_task="HyperVCommitPrerequisitesCheck",
    ),
    Operation.REPROTECT: OperationSpec(
        operation=Operation.REPROTECT,
        # A scenario name seen on the wire (DOCUMENTED_VALUES); which one a Hyper-V reverse
        # replication's job carries is not recorded.
        scenario_name="ReverseReplication",
        friendly_name="Reverse replicate",
        allowed_operation_names=frozenset({"ReverseReplicate"}),
        tasks=(
            TaskSpec("HyperVReprotectPrerequisitesCheck", "Prerequisite check"),
            TaskSpec("HyperVEnableReverseReplication", "Enable replication to Azure"),
        ),
        default_failure_task="HyperVReprotectPrerequisitesCheck",
    ),
}

_BY_ARCHITECTURE = {"modernized": MODERNIZED_OPERATIONS, "hyperv": HYPERV_OPERATIONS}


def operation_spec(architecture: str, operation: Operation) -> OperationSpec:
    """An operation as the architecture's items speak it; KeyError if it has none."""
    return _BY_ARCHITECTURE.get(architecture, OPERATIONS)[operation]


def task_names(operation: Operation, architecture: str = "classic") -> tuple[str, ...]:
    return tuple(task.name for task in operation_spec(architecture, operation).tasks)


def known_task_names(operation: Operation) -> tuple[str, ...]:
    """The operation's tasks in any architecture that has it (what a fault may name)."""
    names: list[str] = []
    for table in (OPERATIONS, MODERNIZED_OPERATIONS, HYPERV_OPERATIONS):
        if operation in table:
            names.extend(t.name for t in table[operation].tasks if t.name not in names)
    return tuple(names)
