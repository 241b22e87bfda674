"""Where a re-protect to Azure goes: which process server, master target and run-as account.

Pure: the ASR gateway's translation gives the configuration server's inventory and the item's
own placement as facts. (The reprotect toward on-premises is chosen by the readiness rules,
`domain.readiness.plan_reprotect_to_onprem`, since it depends on every rule's findings.)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from domain import errors
from domain.errors import FailbackError
from domain.models import ReprotectToAzureOptions, ResolvedReprotectToAzure


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProcessServerFact(_Facts):
    id: str
    healthy: bool


class MasterTargetFact(_Facts):
    id: str
    name: str


class FabricInventory(_Facts):
    """The configuration server's process servers, master targets and run-as accounts."""

    host_name: str | None
    process_servers: list[ProcessServerFact]
    master_targets: list[MasterTargetFact]
    run_as_accounts: list[str]


class ItemPlacement(_Facts):
    """Where an item replicates through now."""

    instance_type: str
    process_server_id: str | None
    master_target_id: str | None
    log_storage_account_id: str | None = None
    # Modernized: the replication policy to Azure it used, and its push-install account.
    forward_policy_id: str | None = None
    run_as_account_id: str | None = None


def choose_reprotect_to_azure(
    options: ReprotectToAzureOptions, inventory: FabricInventory, item: ItemPlacement
) -> ResolvedReprotectToAzure:
    """Fill in what the operator did not choose from the configuration server's inventory.

    The failback used the Azure process server and the on-premises master target; re-protect to
    Azure uses the other ones: the on-premises process server and the configuration server's
    own master target.
    """
    # The on-premises process server is the one forward replication used: still named by an
    # item in Azure (InMageAzureV2); for an item replicating back (InMage), the item names the
    # Azure one, so it is any other healthy one.
    # Otherwise the configuration server's own process server, which carries its master
    # target's id (Azure PowerShell defaults the master target to the process server: "PS and
    # MT are same"), then any other healthy one that is not the one in Azure.
    cs_name = inventory.host_name
    cs_master_targets = {mt.id.lower() for mt in inventory.master_targets if mt.name == cs_name}
    if item.instance_type == "InMageAzureV2" and item.process_server_id:
        onprem_ps: str | None = item.process_server_id
    else:
        healthy = [
            ps.id
            for ps in inventory.process_servers
            if ps.id != item.process_server_id and ps.healthy
        ]
        onprem_ps = _first(
            [ps for ps in healthy if ps.lower() in cs_master_targets]
            + [ps for ps in healthy if ps.lower() not in cs_master_targets]
        )
    process_server_id = options.process_server_id or onprem_ps
    # Re-protect to Azure goes through the configuration server's own master target (the one
    # named after the configuration server), not a failback master target on-premises.
    master_target_id = options.master_target_id or _first(
        [mt.id for mt in inventory.master_targets if cs_name and mt.name == cs_name]
        + [mt.id for mt in inventory.master_targets if mt.id != item.master_target_id]
    )
    run_as_account_id = options.run_as_account_id or _first(inventory.run_as_accounts)
    known_ps = {ps.id for ps in inventory.process_servers}
    problems = []
    if process_server_id is None:
        problems.append("no healthy on-premises process server on the configuration server")
    elif process_server_id not in known_ps:
        problems.append(f"process server {process_server_id} is not on the configuration server")
    if master_target_id is None:
        problems.append("no master target for re-protect to Azure on the configuration server")
    if not options.policy_id:
        problems.append(
            "no replication policy for re-protect to Azure: set FAILBACK_AZURE_REPROTECT_POLICY_ID "
            "or pass --policy"
        )
    if problems or not (process_server_id and master_target_id and options.policy_id):
        raise FailbackError(
            "cannot plan the re-protect to Azure: " + "; ".join(problems),
            errors.CONFIGURATION_INVALID,
        )
    return ResolvedReprotectToAzure(
        process_server_id=process_server_id,
        master_target_id=master_target_id,
        policy_id=options.policy_id,
        run_as_account_id=run_as_account_id or "",
        # Where replication to Azure kept its logs before (Azure PowerShell passes it again).
        log_storage_account_id=options.log_storage_account_id or item.log_storage_account_id,
    )


def _first(values: object) -> str | None:
    return next((str(v) for v in values if v), None)  # type: ignore[attr-defined]


def choose_reprotect_to_azure_modernized(
    options: ReprotectToAzureOptions, inventory: FabricInventory, item: ItemPlacement
) -> ResolvedReprotectToAzure:
    """Modernized: back to Azure through a replication appliance's process server (the one
    that replicated the machine to Azure, while it is healthy, else another healthy one), with
    the replication policy to Azure it used (InMageRcmFailbackReprotectInput: processServerId
    and policyId required, runAsAccountId optional; recorded). No master target."""
    healthy = [ps.id for ps in inventory.process_servers if ps.healthy]
    own = item.process_server_id if item.process_server_id in healthy else None
    process_server_id = options.process_server_id or own or _first(healthy)
    policy_id = options.policy_id or item.forward_policy_id
    problems = []
    if process_server_id is None:
        problems.append("no healthy replication appliance to re-protect to Azure through")
    elif process_server_id not in {ps.id for ps in inventory.process_servers}:
        problems.append(f"process server {process_server_id} is not an appliance of the vault")
    if not policy_id:
        problems.append(
            "no replication policy for re-protect to Azure: set "
            "FAILBACK_AZURE_REPROTECT_POLICY_ID or pass --policy"
        )
    if problems or not (process_server_id and policy_id):
        raise FailbackError(
            "cannot plan the re-protect to Azure: " + "; ".join(problems),
            errors.CONFIGURATION_INVALID,
        )
    return ResolvedReprotectToAzure(
        process_server_id=process_server_id,
        master_target_id="",
        policy_id=policy_id,
        run_as_account_id=options.run_as_account_id or item.run_as_account_id or "",
    )
