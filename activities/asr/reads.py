"""What the failback reads of ASR, as domain facts: discovery, readiness facts, recovery points,
the agent's registration, replication health. Plain code over the gateway, no Temporal: the
activities wrap it, and the CLI's preview, check and report call it directly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError

from activities.asr import translate as t
from activities.asr.gateway import AsrGateway
from activities.handover import Handover
from activities.threads import map_in_threads
from domain import errors
from domain.errors import FailbackError
from domain.models import (
    AgentCheckInput,
    AgentRegistration,
    DiscoveredMachine,
    DiscoveredPlan,
    DiscoverMachineInput,
    DiscoverPlanInput,
    ProtectedItemRef,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    RecoveryPoint,
    ReplicationState,
    VaultRef,
)
from domain.readiness import (
    AsrFacts,
    ConfigServerFacts,
    MachineFacts,
    MasterTargetFacts,
    VCenterFacts,
)
from domain.recovery_points import MachinePoints, selectable_points

_T = TypeVar("_T")
_In = TypeVar("_In")
# Reads of a plan's machines in flight at once, per call.
READ_PARALLELISM = 8
# How long after a readiness read ends the point selection may take the recovery points it
# listed instead of listing them again. A plan's selection follows the end of its readiness by
# seconds, but within ARM's read budget the readiness of many plans at once lasts minutes, and
# its first lists are that much older (bench/RESULTS.md, 2026-12-04: counted from each list,
# 30 s then 120 s, 9 in 10 and then every list were read twice under load). The points are for
# R13 and for showing the chosen point: the failover itself names the newest point by kind
# (RP-ASK), and a list a few minutes old lacks a crash-consistent point or two at most (ASR
# makes one every 5 minutes at most); the preview and the status show the chosen point's time.
POINTS_HANDOVER_SECONDS = 120.0
# The providers of a failback replication policy: classic's and modernized's.
FAILBACK_PROVIDERS = frozenset({"InMage", "InMageRcmFailback"})


class AsrReads:
    def __init__(self, gateway: AsrGateway, own_task_queue: str | None = None) -> None:
        """`own_task_queue`: the task queue only this worker polls, named in the readiness
        facts so that the plan's point selection runs where the points it listed are kept."""
        self.gateway = gateway
        self._own_task_queue = own_task_queue
        # The worker-local hand-over (activities/handover.py): the points readiness listed are
        # taken by the point selection moments later on the same worker instead of listed
        # again; on another worker, or later than POINTS_HANDOVER_SECONDS, they are listed anew.
        self._points_read_for_readiness: Handover[list[RecoveryPoint]] = Handover(
            POINTS_HANDOVER_SECONDS
        )

    # --- discovery -----------------------------------------------------------------------------

    def discover_machine(self, params: DiscoverMachineInput) -> DiscoveredMachine:
        vault = params.vault
        items = self.gateway.list_items(vault)
        matches = [
            i
            for i in items
            if params.item_name in (None, i.name)
            and params.vm_name in (None, i.properties.friendly_name)
        ]
        wanted = " and ".join(
            f"{kind} {name!r}"
            for kind, name in (("item", params.item_name), ("VM", params.vm_name))
            if name is not None
        )
        if not matches:
            raise FailbackError(
                f"vault {vault.vault} has no protected {wanted}; known machines (VM / item): "
                f"{_known(items) or 'none'}",
                errors.MACHINE_NOT_FOUND,
            )
        if len(matches) > 1:
            raise FailbackError(
                f"{len(matches)} protected items in vault {vault.vault} have {wanted}; "
                "name the item instead: " + ", ".join(str(m.name) for m in matches),
                errors.MACHINE_NOT_FOUND,
            )
        fabric_name = t.item_ref_from_id(str(matches[0].id)).fabric
        fabric = self.gateway.get_fabric(vault, fabric_name)
        return t.describe_item(
            matches[0],
            fabric,
            params.recovery_resource_group,
            params.azure_vm_name,
            params.reprotect_to_azure,
            self._hyperv_hosts(vault, fabric_name, fabric),
        )

    def _hyperv_hosts(self, vault: VaultRef, fabric_name: str, fabric: Any) -> dict[str, str]:
        """A Hyper-V site's hosts (or VMM server) by provider id; none for another fabric."""
        if not t.is_hyperv_site(fabric):
            return {}
        return t.hyperv_provider_names(self.gateway.list_providers(vault, fabric_name))

    def name_machine(self, vault: VaultRef, name: str) -> tuple[str, str]:
        """(item name, VM name) of the one machine `name` names, read as an item's name first,
        then as a VM's: the CLI's convenience, resolved before anything starts so that a
        failback's input and id never depend on which of the two a person typed."""
        items = self.gateway.list_items(vault)
        by_item = [i for i in items if i.name == name]
        by_vm = [i for i in items if i.properties.friendly_name == name]
        found = by_item or by_vm
        if len(found) == 1:
            return str(found[0].name), str(found[0].properties.friendly_name or found[0].name)
        if found:
            raise FailbackError(
                f"{len(found)} protected items in vault {vault.vault} have VM {name!r}; "
                "name the item instead: " + ", ".join(str(m.name) for m in found),
                errors.MACHINE_NOT_FOUND,
            )
        raise FailbackError(
            f"vault {vault.vault} has no protected item or VM named {name!r}; known machines "
            f"(VM / item): {_known(items) or 'none'}",
            errors.MACHINE_NOT_FOUND,
        )

    def discover_recovery_plan(self, params: DiscoverPlanInput) -> DiscoveredPlan:
        vault = params.vault
        try:
            plan = self.gateway.get_plan(vault, params.recovery_plan)
        except ResourceNotFoundError as err:
            known = self.gateway.plan_names(vault)
            raise FailbackError(
                f"vault {vault.vault} has no recovery plan {params.recovery_plan!r}; "
                f"known plans: {', '.join(known) or 'none'}",
                errors.PLAN_NOT_FOUND,
            ) from err
        items = {str(i.id).lower(): i for i in self.gateway.list_items(vault, params.recovery_plan)}
        fabrics: dict[str, Any] = {}
        hosts: dict[str, dict[str, str]] = {}
        boot_groups: list[list[DiscoveredMachine]] = []
        architectures = set()
        for group in plan.properties.groups or []:
            if t.text(group.group_type) != "Boot":
                continue
            machines = []
            for member in group.replication_protected_items or []:
                item = items.get(str(member.id).lower())
                if item is None:
                    raise FailbackError(
                        f"recovery plan {params.recovery_plan} names {member.id}, which is not a "
                        "protected item of the vault",
                        errors.MACHINE_NOT_FOUND,
                    )
                ref = t.item_ref_from_id(str(item.id))
                if ref.fabric not in fabrics:
                    fabric = self.gateway.get_fabric(vault, ref.fabric)
                    hosts[ref.fabric] = self._hyperv_hosts(vault, ref.fabric, fabric)
                    fabrics[ref.fabric] = fabric
                machine = t.describe_item(
                    item,
                    fabrics[ref.fabric],
                    params.recovery_resource_group,
                    None,
                    params.reprotect_to_azure,
                    hosts[ref.fabric],
                )
                architectures.add(t.architecture_of_item(item, machine.vm_name).title)
                machines.append(machine)
            if machines:
                boot_groups.append(machines)
        if len(architectures) > 1:
            raise FailbackError(
                f"recovery plan {params.recovery_plan} mixes ASR architectures "
                f"({', '.join(sorted(architectures))}); fail its machines back in plans of one "
                "architecture each",
                errors.UNSUPPORTED_ARCHITECTURE,
            )
        return DiscoveredPlan(name=params.recovery_plan, boot_groups=boot_groups)

    # --- readiness facts -----------------------------------------------------------------------

    def read_asr_facts(self, params: ReadAsrFactsInput) -> AsrFacts:
        """ASR's view for the readiness rules: configuration server, master targets, vCenters,
        and each machine's state, OS, health and recovery points."""
        vault = params.vault
        fabric_names = sorted({m.item.fabric for m in params.machines}) or [params.fabric]
        fabric = self.gateway.get_fabric(vault, fabric_names[0])
        custom = getattr(fabric.properties, "custom_details", None)
        cs_name = str(getattr(custom, "host_name", None) or fabric.name)
        master_targets = []
        undiscovered: list[str] = []
        for mt in getattr(custom, "master_target_servers", None) or []:
            if mt.name == cs_name:
                continue  # the configuration server's own: only for re-protect to Azure
            for error in mt.validation_errors or []:
                if error.entity_id and t.says_host_not_discovered(str(error.error_message or "")):
                    undiscovered.append(str(error.entity_id))
            master_targets.append(
                MasterTargetFacts(
                    id=str(mt.id),
                    name=str(mt.name),
                    os_type=mt.os_type,
                    datastores=[str(d.symbolic_name) for d in mt.data_stores or []],
                    retention_volumes=[str(v.volume_name) for v in mt.retention_volumes or []],
                    healthy=not mt.health_errors,
                )
            )
        vcenters = [
            VCenterFacts(
                name=str(v.properties.friendly_name or v.name),
                connected=t.vcenter_connected(v),
                discovered_hosts=[str(x) for x in (v.name, v.properties.ip_address) if x],
            )
            for v in (
                self.gateway.list_vcenters(vault, fabric_names[0])
                if not t.is_hyperv_site(fabric)
                else []
            )
        ]
        items = self._items_of(vault, params.machines, params.recovery_plan)
        read = in_parallel(
            lambda m: self._machine_facts(vault, m, items[m.item.name]), params.machines
        )
        machines = [facts for facts, _ in read]
        # Kept when the whole readiness read is done: its age is then how long ago the plan's
        # readiness ended, which the point selection follows (see POINTS_HANDOVER_SECONDS).
        kept_on: str | None = None
        for machine, (_, listed) in zip(params.machines, read, strict=True):
            if listed is not None:
                self._points_read_for_readiness.keep(points_key(vault, machine.item), listed)
                kept_on = self._own_task_queue
        if t.is_hyperv_site(fabric):
            return AsrFacts(
                architecture="hyperv",
                configuration_server=ConfigServerFacts(name=str(fabric.name), reachable=True),
                master_targets=[],
                vcenters=[],
                machines=machines,
                hyperv_providers=t.hyperv_provider_facts(
                    self.gateway.list_providers(vault, fabric_names[0])
                ),
                read_at=datetime.now(UTC),
                listed_points_kept_on=kept_on,
            )
        policy = self._failback_policy_id(vault, params.machines, fabric_names[0])
        if t.text(getattr(custom, "instance_type", None)) == "InMageRcm":
            return AsrFacts(
                architecture="modernized",
                configuration_server=ConfigServerFacts(name=str(fabric.name), reachable=True),
                master_targets=[],
                vcenters=vcenters,
                machines=machines,
                failback_policy_id=policy,
                appliances=t.appliance_facts(custom),
                log_storage_account_id=params.log_storage_account_id,
                read_at=datetime.now(UTC),
                listed_points_kept_on=kept_on,
            )
        run_as = [a.account_id for a in getattr(custom, "run_as_accounts", None) or []]
        return AsrFacts(
            configuration_server=t.configuration_server_facts(fabric, custom, cs_name),
            master_targets=master_targets,
            vcenters=vcenters,
            undiscovered_hosts=undiscovered,
            machines=machines,
            failback_policy_id=policy,
            azure_process_servers=self._azure_process_servers(list(items.values()), custom),
            run_as_account_id=str(run_as[0]) if run_as else None,
            listed_points_kept_on=kept_on,
        )

    def _items_of(
        self, vault: VaultRef, machines: list[DiscoveredMachine], recovery_plan: str | None
    ) -> dict[str, Any]:
        """Each machine's protected item by name: one list filtered by the recovery plan when
        there is one (100 GETs are 100 reads of ARM's read budget), a GET for any it missed."""
        listed: dict[str, Any] = {}
        if recovery_plan:
            for item in self.gateway.list_items(vault, recovery_plan):
                listed[t.item_ref_from_id(str(item.id)).name.lower()] = item
        missing = [m for m in machines if m.item.name.lower() not in listed]
        for machine, item in zip(
            missing,
            in_parallel(lambda m: self.gateway.get_item(vault, m.item), missing),
            strict=True,
        ):
            listed[machine.item.name.lower()] = item
        return {m.item.name: listed[m.item.name.lower()] for m in machines}

    def _azure_process_servers(self, items: list[Any], custom: Any) -> list[str]:
        """The process servers that can be the one in Azure, failback data's way in: the one an
        item already replicates back through; otherwise every healthy one that is not
        on-premises. On-premises are the one an item replicating to Azure names, and every one
        that is also a master target: the configuration server is itself a process server with
        its master target's id, and a scale-out process server is listed among the master
        targets too (recordings/v2aFailbackReprotect.json). Several left: a person names it."""
        onprem = {str(mt.id).lower() for mt in getattr(custom, "master_target_servers", None) or []}
        for item in items:
            item_details = t.details(item)
            named = getattr(item_details, "process_server_id", None)
            if t.text(getattr(item_details, "instance_type", None)) == "InMageAzureV2":
                onprem.add(str(named).lower())
            elif named:
                return [str(named)]  # already replicating back through it
        servers = getattr(custom, "process_servers", None) or []
        return [
            str(ps.id)
            for ps in servers
            if ps.id and str(ps.id).lower() not in onprem and t.healthy(ps)
        ]

    def _machine_facts(
        self, vault: VaultRef, machine: DiscoveredMachine, item: Any
    ) -> tuple[MachineFacts, list[RecoveryPoint] | None]:
        """The machine's facts, and the recovery points listed to count them (if listed)."""
        item_details = t.details(item)
        kind = t.instance_type(item)
        state = t.architecture_of_item(item, machine.vm_name).machine_state(t.item_view(item))
        os_details = getattr(item_details, "os_details", None)
        os_type = getattr(item_details, "os_type", None) or getattr(os_details, "os_type", None)
        os_version = (
            getattr(item_details, "os_version", None)
            or getattr(os_details, "o_s_version", None)
            or getattr(os_details, "product_type", None)
        )
        health_words = [str(e.error_message or "") for e in item.properties.health_errors or []]
        listed = None
        if state in ("replicating-back", "ready-to-fail-back"):
            listed = self.recovery_points(vault, machine.item)
        facts = MachineFacts(
            item_name=machine.item.name,
            vm_name=machine.vm_name,
            os_type=os_type,
            os_version=os_version,
            discovery_type=t.text(getattr(item_details, "discovery_type", None)) or "vCenter",
            replication_group=machine.replication_group,
            state=state,
            protection_state=t.state(item) or None,
            replication_health=t.text(item.properties.replication_health) or None,
            recovery_point_count=len(listed or []),
            known_to_configuration_server=not any(
                t.says_vm_unknown_to_configuration_server(words) for words in health_words
            ),
            master_target_id=getattr(item_details, "master_target_id", None)
            if kind == "InMage"
            else None,
            disk_count=len(getattr(item_details, "protected_disks", None) or []),
            # Modernized: where replication to Azure keeps its logs (InMageRcm), or where the
            # reprotect toward on-premises put them (InMageRcmFailback).
            log_storage_account_id=getattr(item_details, "storage_account_id", None)
            or getattr(item_details, "log_storage_account_id", None),
            hyperv_provider_id=getattr(item.properties, "recovery_services_provider_id", None)
            if kind == "HyperVReplicaAzure"
            else None,
            switches=[
                str(n.v_m_network_name)
                for n in getattr(item_details, "vm_nics", None) or []
                if getattr(n, "v_m_network_name", None)
            ],
            managed_disks=t.text(getattr(item_details, "use_managed_disks", None)).lower()
            == "true",
        )
        return facts, listed

    def _failback_policy_id(
        self, vault: VaultRef, machines: list[DiscoveredMachine], fabric: str
    ) -> str | None:
        """The failback policy mapped on the machines' protection container, as Azure
        PowerShell takes a reprotect's policy from the container mapping: a vault with several
        configuration servers has a failback policy per container, and the first one in the
        vault may be another server's."""
        containers = sorted({(m.item.fabric, m.item.container) for m in machines}) or [
            (fabric, str(c.name)) for c in self.gateway.list_containers(vault, fabric)
        ]
        failback_policies = {
            str(policy.id).lower(): str(policy.id)
            for policy in self.gateway.list_policies(vault)
            if t.text(
                getattr(
                    getattr(policy.properties, "provider_specific_details", None),
                    "instance_type",
                    None,
                )
            )
            in FAILBACK_PROVIDERS
        }
        for fabric_name, container in containers:
            for mapping in self.gateway.list_container_mappings(vault, fabric_name, container):
                mapped = str(getattr(mapping.properties, "policy_id", None) or "").lower()
                if mapped in failback_policies:
                    return failback_policies[mapped]
        return None

    # --- recovery points, agent, replication ---------------------------------------------------

    def recovery_points(self, vault: VaultRef, item: ProtectedItemRef) -> list[RecoveryPoint]:
        documents = self.gateway.recovery_point_documents(vault, item)
        return [p for p in (t.recovery_point(d) for d in documents) if p is not None]

    def read_recovery_points(self, params: ReadRecoveryPointsInput) -> list[MachinePoints]:
        """Each machine's selectable points: those the readiness check listed moments ago on
        this worker (at most POINTS_HANDOVER_SECONDS), or a fresh list."""

        def points_of(machine: DiscoveredMachine) -> MachinePoints:
            listed = self._points_read_for_readiness.take(points_key(params.vault, machine.item))
            if listed is None:
                listed = self.recovery_points(params.vault, machine.item)
            return MachinePoints(
                item_name=machine.item.name,
                replication_group=machine.replication_group,
                points=selectable_points(listed),
            )

        return in_parallel(points_of, params.machines)

    def check_agent_registered(self, params: AgentCheckInput) -> AgentRegistration:
        item = self.gateway.get_item(params.vault, params.item)
        item_details = t.details(item)
        architecture = t.architecture_of_item(item, params.item.name)
        if t.instance_type(item) == architecture.to_azure_provider:
            # Re-protect to Azure already happened: the agent was there for it.
            return AgentRegistration(
                registered=True,
                last_heartbeat=getattr(item_details, "last_heartbeat", None),
                agent_version=getattr(item_details, "agent_version", None),
            )
        flag = getattr(item_details, "is_agent_registration_successful_after_failover", None)
        if flag is not None:
            # Modernized: ASR says whether the agent registered again after the failback.
            mobility = getattr(item_details, "mobility_agent_details", None)
            return AgentRegistration(
                registered=bool(flag),
                last_heartbeat=getattr(mobility, "last_heartbeat_utc", None),
                agent_version=getattr(mobility, "version", None),
            )
        heartbeat = getattr(item_details, "last_heartbeat", None)
        agent = getattr(item_details, "agent_details", None)
        version = getattr(agent, "agent_version", None) if agent is not None else None
        registered = heartbeat is not None and heartbeat >= params.committed_at
        return AgentRegistration(
            registered=registered, last_heartbeat=heartbeat, agent_version=version
        )

    def replication_state(self, vault: VaultRef, ref: ProtectedItemRef) -> ReplicationState:
        item = self.gateway.get_item(vault, ref)
        architecture = t.architecture_of_item(item, ref.name)
        protected = architecture.replicating_back(t.item_view(item))
        health = t.text(item.properties.replication_health) or None
        points = len(self.recovery_points(vault, ref)) if protected else 0
        item_details = t.details(item)
        return ReplicationState(
            item_name=ref.name,
            protection_state=t.state(item) or None,
            replication_health=health,
            recovery_points=points,
            healthy=protected and health == "Normal" and points > 0,
            progress_percent=getattr(item_details, "initial_replication_progress_percentage", None),
            processed_bytes=getattr(item_details, "initial_replication_processed_bytes", None),
        )


def in_parallel(read: Callable[[_In], _T], inputs: Sequence[_In]) -> list[_T]:
    """Independent reads of a plan's machines, a few at a time, in the inputs' order: one after
    the other, 100 machines' round trips add up to seconds before the first failover."""
    return map_in_threads(read, inputs, READ_PARALLELISM)


def points_key(vault: VaultRef, item: ProtectedItemRef) -> tuple[str, ...]:
    return tuple(
        part.lower()
        for part in (vault.resource_group, vault.vault, item.fabric, item.container, item.name)
    )


def _known(items: list[Any]) -> str:
    """The first 20 machines of a vault, as a person would look them up."""
    names = sorted(f"{i.properties.friendly_name or '-'} / {i.name}" for i in items)
    return ", ".join(names[:20])
