"""Custom search attributes: what the Temporal Web UI filters failbacks by.

Registered on the server by `failback lab up` (dev server flags) and by docker-compose's
temporal-setup service; see `register_search_attributes` for tests and other servers.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

PHASE = SearchAttributeKey.for_keyword("FailbackPhase")
RECOVERY_PLAN = SearchAttributeKey.for_keyword("RecoveryPlan")
VAULT = SearchAttributeKey.for_keyword("Vault")

ALL = (PHASE, RECOVERY_PLAN, VAULT)
