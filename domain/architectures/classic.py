"""Classic VMware/physical (configuration server, master target): InMage, InMageAzureV2.

Out of support since March 2026; kept correct, not extended. Forward replication to Azure is
InMageAzureV2; after the reprotect toward on-premises the item is InMage, and after the
failback's commit and the re-protect it is InMageAzureV2 again.
"""

from __future__ import annotations

from domain.architectures.base import (
    Architecture,
    ArchitectureName,
    ItemView,
    OperationRule,
)
from domain.operations import AsrOperation
from domain.readiness import MachineState, assess

TO_AZURE = "InMageAzureV2"
TO_ONPREM = "InMage"


def _failed_back(item: ItemView) -> bool:
    # An item failed over to Azure and not yet reprotected (InMageAzureV2) shows
    # UnplannedFailoverCommitted too: only an InMage item has failed back.
    return item.instance_type == TO_ONPREM and item.protection_state.startswith(
        "UnplannedFailoverCommit"
    )


def _committed(item: ItemView) -> bool:
    # Committed after failback (InMage), or even re-protected to Azure since.
    return (
        item.instance_type == TO_ONPREM and item.protection_state == "UnplannedFailoverCommitted"
    ) or _protected_to_azure(item)


def _protected_to_azure(item: ItemView) -> bool:
    return item.instance_type == TO_AZURE and item.protection_state == "Protected"


def _replicating_back(item: ItemView) -> bool:
    return item.instance_type == TO_ONPREM and item.protection_state == "Protected"


def _machine_state(item: ItemView) -> MachineState:
    if _replicating_back(item):
        return "replicating-back"
    if item.instance_type == TO_AZURE and "ReverseReplicate" in item.allowed_operations:
        return "needs-reprotect"
    return "other"


REPROTECT_SCENARIOS = frozenset({"SwitchReplicationGroupProtection", "Reprotect"})

CLASSIC = Architecture(
    name=ArchitectureName.CLASSIC,
    title="classic VMware/physical",
    providers=frozenset({TO_AZURE, TO_ONPREM}),
    to_azure_provider=TO_AZURE,
    reprotects_before_failback=True,
    failover=AsrOperation.UNPLANNED_FAILOVER,
    can_undo=False,
    operations=(
        OperationRule(
            AsrOperation.REPROTECT_TO_ONPREM,
            allowed_operations=frozenset({"ReverseReplicate"}),
            job_scenarios=REPROTECT_SCENARIOS,
            already_done=lambda item: item.instance_type == TO_ONPREM,
        ),
        OperationRule(
            AsrOperation.UNPLANNED_FAILOVER,
            allowed_operations=frozenset({"UnplannedFailover"}),
            job_scenarios=frozenset({"UnplannedFailover"}),
            already_done=_failed_back,
        ),
        OperationRule(
            AsrOperation.FAILOVER_COMMIT,
            allowed_operations=frozenset({"Commit", "FailoverCommit"}),
            job_scenarios=frozenset({"CommitFailover", "FailoverCommit"}),
            already_done=_committed,
        ),
        OperationRule(
            AsrOperation.REPROTECT_TO_AZURE,
            allowed_operations=frozenset({"SwitchProtection", "ReverseReplicate", "Reprotect"}),
            job_scenarios=REPROTECT_SCENARIOS,
            already_done=_protected_to_azure,
        ),
    ),
    machine_state=_machine_state,
    replicating_back=_replicating_back,
    protected_to_azure=_protected_to_azure,
    assess=assess,
    rules=tuple(f"R{n}" for n in range(1, 18)),
    onprem_vms_named_by_asr=True,
)
