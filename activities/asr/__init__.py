"""Azure Site Recovery: one gateway (gateway.py), the translation of its answers into domain
facts (translate.py), the reads (reads.py), the writes that are never sent twice
(operations.py), and the activities over them (activities.py)."""

from activities.asr.activities import AsrActivities
from activities.asr.gateway import ASR_API_VERSION, AsrGateway
from activities.asr.operations import AsrWrites, retry_after
from activities.asr.reads import AsrReads

__all__ = ["ASR_API_VERSION", "AsrActivities", "AsrGateway", "AsrReads", "AsrWrites", "retry_after"]
