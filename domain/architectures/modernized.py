"""Modernized VMware/physical (replication appliance): InMageRcm, then InMageRcmFailback.

Forward replication to Azure is InMageRcm. The reprotect toward on-premises (the appliance's
reprotect agent, a datastore it reaches, a log storage account, the failback policy) switches the
same item to InMageRcmFailback and commits a still-pending failover to Azure on the way. The
failback is a planned failover (crash- or application-consistent), which can be undone
(failoverCancel) until it is committed; the reprotect back to Azure switches the item to
InMageRcm again. States and allowed operations are those of Microsoft's recorded runs
(reference: asr-modernized-hyperv.md §2.2, recordings/modernized-*.json); where no recording shows
a state, the rule says so.
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
from domain.readiness_modernized import assess_modernized

TO_AZURE = "InMageRcm"
TO_ONPREM = "InMageRcmFailback"
# Both reprotects are one job scenario (recorded).
REPROTECT_SCENARIOS = frozenset({"SwitchReplicationGroupProtection"})
# After the planned failover, before commit or cancel (recorded).
FAILED_BACK = "CommitPendingStatesBegin"


def _replicating_back(item: ItemView) -> bool:
    return item.instance_type == TO_ONPREM and item.protection_state == "Protected"


def _failed_back(item: ItemView) -> bool:
    # Recorded: CommitPendingStatesBegin. After the commit (no recording) the item is neither
    # replicating back nor awaiting a commit. An InMageRcm item is not taken for failed back:
    # it also shows Protected before any failover (as classic's InMageAzureV2 does).
    return item.instance_type == TO_ONPREM and item.protection_state not in (
        "",
        "Protected",
        "InitialReplicationInProgress",
    )


def _committed(item: ItemView) -> bool:
    # UNVERIFIED: no recording shows the InMageRcmFailback state after its commit; it is taken
    # as done once the failover no longer offers Commit (nor a cancel).
    if _protected_to_azure(item):
        return True
    return (
        _failed_back(item)
        and "Commit" not in item.allowed_operations
        and "CancelFailover" not in item.allowed_operations
    )


def _cancelled(item: ItemView) -> bool:
    # The undo resumes replication toward on-premises (ASR's documentation).
    return _replicating_back(item)


def _protected_to_azure(item: ItemView) -> bool:
    return item.instance_type == TO_AZURE and item.protection_state == "Protected"


def _machine_state(item: ItemView) -> MachineState:
    if _replicating_back(item):
        return "replicating-back"
    if item.instance_type == TO_AZURE and "SwitchProtection" in item.allowed_operations:
        return "needs-reprotect"
    return "other"


MODERNIZED = Architecture(
    name=ArchitectureName.MODERNIZED,
    title="modernized VMware/physical",
    providers=frozenset({TO_AZURE, TO_ONPREM}),
    to_azure_provider=TO_AZURE,
    reprotects_before_failback=True,
    failover=AsrOperation.PLANNED_FAILOVER,
    can_undo=True,
    operations=(
        OperationRule(
            AsrOperation.REPROTECT_TO_ONPREM,
            # Recorded: the reprotect's token in modernized is SwitchProtection.
            allowed_operations=frozenset({"SwitchProtection"}),
            job_scenarios=REPROTECT_SCENARIOS,
            already_done=lambda item: item.instance_type == TO_ONPREM,
        ),
        OperationRule(
            AsrOperation.PLANNED_FAILOVER,
            allowed_operations=frozenset({"PlannedFailover"}),
            job_scenarios=frozenset({"PlannedFailover"}),
            already_done=_failed_back,
        ),
        OperationRule(
            AsrOperation.FAILOVER_COMMIT,
            allowed_operations=frozenset({"Commit"}),
            job_scenarios=frozenset({"CommitFailover"}),
            already_done=_committed,
        ),
        OperationRule(
            AsrOperation.FAILOVER_CANCEL,
            allowed_operations=frozenset({"CancelFailover"}),
            job_scenarios=frozenset({"CancelFailover"}),
            already_done=_cancelled,
        ),
        OperationRule(
            AsrOperation.REPROTECT_TO_AZURE,
            allowed_operations=frozenset({"SwitchProtection"}),
            job_scenarios=REPROTECT_SCENARIOS,
            already_done=_protected_to_azure,
        ),
    ),
    machine_state=_machine_state,
    replicating_back=_replicating_back,
    protected_to_azure=_protected_to_azure,
    assess=assess_modernized,
    rules=("R5", "R7", "R12", "R13", "R14", "R18", "R19", "R20", "R21", "R22"),
)
