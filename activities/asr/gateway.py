"""The one client of Azure Site Recovery: the SDK and its raw-JSON pipeline, no Temporal.

The activities, the CLI's read commands (preview, check, report) and the bench read and write ASR
through this class; what its answers mean is decided in `translate` and in domain/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller

from activities import arm_json
from domain import errors
from domain.errors import FailbackError
from domain.models import ProtectedItemRef, VaultRef

# The api-version the raw reads ask for: the SDK 2.0.0's own (tests/lab/test_wire_drift.py pins
# both), given here rather than read from the SDK client's private configuration.
ASR_API_VERSION = "2025-08-01"


def odata_string(value: str) -> str:
    """A value inside an OData string literal: a quote is written twice."""
    return value.replace("'", "''")


class AsrGateway:
    """One vault's subscription, through the SDK client the worker's wiring built."""

    def __init__(self, client: Any, subscription_id: str) -> None:
        self.client = client
        self.subscription_id = subscription_id

    # --- items, plans, fabric, policies (SDK models) -----------------------------------------

    def list_items(self, vault: VaultRef, recovery_plan: str | None = None) -> list[Any]:
        query = {}
        if recovery_plan is not None:
            query["filter"] = f"RecoveryPlanName eq '{odata_string(recovery_plan)}'"
        return list(
            self.client.replication_protected_items.list(vault.resource_group, vault.vault, **query)
        )

    def get_item(self, vault: VaultRef, item: ProtectedItemRef) -> Any:
        try:
            return self.client.replication_protected_items.get(
                vault.resource_group, vault.vault, item.fabric, item.container, item.name
            )
        except ResourceNotFoundError as err:
            raise FailbackError(
                f"protected item {item.name} is not in vault {vault.vault} any more",
                errors.MACHINE_NOT_FOUND,
            ) from err

    def get_plan(self, vault: VaultRef, name: str) -> Any:
        return self.client.replication_recovery_plans.get(vault.resource_group, vault.vault, name)

    def plan_names(self, vault: VaultRef) -> list[str]:
        plans = self.client.replication_recovery_plans.list(vault.resource_group, vault.vault)
        return sorted(str(p.name) for p in plans)

    def get_fabric(self, vault: VaultRef, fabric: str) -> Any:
        return self.client.replication_fabrics.get(vault.resource_group, vault.vault, fabric)

    def list_vcenters(self, vault: VaultRef, fabric: str) -> list[Any]:
        return list(
            self.client.replicationv_centers.list_by_replication_fabrics(
                vault.resource_group, vault.vault, fabric
            )
        )

    def list_containers(self, vault: VaultRef, fabric: str) -> list[Any]:
        return list(
            self.client.replication_protection_containers.list_by_replication_fabrics(
                vault.resource_group, vault.vault, fabric
            )
        )

    def list_container_mappings(self, vault: VaultRef, fabric: str, container: str) -> list[Any]:
        return list(
            self.client.replication_protection_container_mappings.list_by_replication_protection_containers(
                vault.resource_group, vault.vault, fabric, container
            )
        )

    def list_policies(self, vault: VaultRef) -> list[Any]:
        return list(self.client.replication_policies.list(vault.resource_group, vault.vault))

    def list_jobs(self, vault: VaultRef) -> list[Any]:
        return list(self.client.replication_jobs.list(vault.resource_group, vault.vault))

    def get_job(self, vault: VaultRef, name: str) -> Any:
        return self.client.replication_jobs.get(vault.resource_group, vault.vault, name)

    def list_providers(self, vault: VaultRef, fabric: str) -> list[Any]:
        """Hyper-V: the hosts (or VMM server) of a site, as recovery services providers."""
        return list(
            self.client.replication_recovery_services_providers.list_by_replication_fabrics(
                vault.resource_group, vault.vault, fabric
            )
        )

    # --- writes -------------------------------------------------------------------------------

    def send(
        self,
        operation: Callable[..., LROPoller[Any]],
        vault: VaultRef,
        item: ProtectedItemRef,
        *body: Any,
        **options: Any,
    ) -> LROPoller[Any]:
        """Start one write on an item: `operation` is one of the SDK's begin_* methods of
        `client.replication_protected_items`, `body` its input if it takes one."""
        ids = (vault.resource_group, vault.vault, item.fabric, item.container, item.name)
        return operation(*ids, *body, **options)

    def send_plan(
        self,
        operation: Callable[..., LROPoller[Any]],
        vault: VaultRef,
        plan: str,
        *body: Any,
        **options: Any,
    ) -> LROPoller[Any]:
        """Start one write on a recovery plan: one of the begin_* methods of `plans`."""
        return operation(vault.resource_group, vault.vault, plan, *body, **options)

    @property
    def plans(self) -> Any:
        """The SDK's recovery plan operations, whose begin_* methods `send_plan` starts."""
        return self.client.replication_recovery_plans

    @property
    def items(self) -> Any:
        """The SDK's protected-item operations, whose begin_* methods `send` starts."""
        return self.client.replication_protected_items

    def resume_job(self, vault: VaultRef, job_name: str, body: Any) -> Any:
        """Resume a suspended job (Hyper-V for-downtime's cut-over); ASR's answer, not awaited:
        the caller watches the job itself."""
        poller = self.client.replication_jobs.begin_resume(
            vault.resource_group, vault.vault, job_name, body, polling=False
        )
        return poller.result()

    # --- raw JSON (lists read at scale, and job polls) ----------------------------------------

    def vault_path(self, vault: VaultRef) -> str:
        return (
            f"/subscriptions/{quote(self.subscription_id, safe='')}/resourceGroups/"
            f"{quote(vault.resource_group, safe='')}/providers/Microsoft.RecoveryServices/"
            f"vaults/{quote(vault.vault, safe='')}"
        )

    def item_path(self, vault: VaultRef, item: ProtectedItemRef) -> str:
        return (
            f"{self.vault_path(vault)}/replicationFabrics/{quote(item.fabric, safe='')}"
            f"/replicationProtectionContainers/{quote(item.container, safe='')}"
            f"/replicationProtectedItems/{quote(item.name, safe='')}"
        )

    def list_json(self, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every page of an ASR list as JSON documents (activities/arm_json.py says why raw)."""
        return [
            document
            for page in arm_json.json_pages(self.client, path, ASR_API_VERSION, query)
            for document in page.get("value") or []
            if isinstance(document, dict)
        ]

    def get_json(self, url: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        """One GET of ASR as JSON, through the client's own pipeline, with the SDK's errors."""
        return arm_json.get_json(self.client, url, ASR_API_VERSION, query)

    def job_document(self, vault: VaultRef, job_name: str) -> dict[str, Any]:
        """The job as ASR's JSON: a poll needs only its state, and decoding the whole `Job`
        model on every poll of hundreds of running jobs was an eighth of the worker's CPU at
        1,000 machines (bench/RESULTS.md)."""
        return self.get_json(f"{self.vault_path(vault)}/replicationJobs/{quote(job_name, safe='')}")

    def recovery_point_documents(
        self, vault: VaultRef, item: ProtectedItemRef
    ) -> list[dict[str, Any]]:
        return self.list_json(f"{self.item_path(vault, item)}/recoveryPoints")
