"""The ASR operations a failback sends, by one name each.

The value is what an `OperationResult` records, the status and the report show, and (for the
first three) the REST action ASR is asked for; compare members, never display strings.
"""

from __future__ import annotations

from enum import StrEnum


class AsrOperation(StrEnum):
    UNPLANNED_FAILOVER = "unplannedFailover"
    # The failback of the modernized and Hyper-V architectures.
    PLANNED_FAILOVER = "plannedFailover"
    # Undo before commit (modernized and Hyper-V; classic has none).
    FAILOVER_CANCEL = "failoverCancel"
    FAILOVER_COMMIT = "failoverCommit"
    # Both directions are ASR's reProtect action; ours are told apart by their direction.
    REPROTECT_TO_AZURE = "reProtect"
    REPROTECT_TO_ONPREM = "reProtect to on-premises"
