"""Readiness: rules R1-R17 (the failback article's, and the wire's) as pure functions over a
snapshot of ASR and vCenter. No I/O, no Temporal: the activities gather the snapshot, this decides.

Every finding names its rule, its machine, a severity, what was found and what to do; all are
reported at once, and any blocking finding stops the failback before anything is sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["blocking", "warning"]
Location = Literal["original", "alternate"]
# ready-to-fail-back: Hyper-V, failed over and committed in Azure, offering Failback (it has no
# replication back before its failover).
MachineState = Literal["replicating-back", "needs-reprotect", "ready-to-fail-back", "other"]


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True)


class DatastoreFacts(_Facts):
    name: str
    type: str
    hosts: list[str] = Field(default_factory=list)
    free_space_bytes: int = 0


class HostFacts(_Facts):
    name: str
    managed_by_vcenter: bool = True


class OnPremVmFacts(_Facts):
    name: str
    host: str | None
    datastores: list[str] = Field(default_factory=list)
    disk_kinds: list[str] = Field(default_factory=list, description="vmdk, rdm or vsan")
    snapshot_count: int = 0


class MasterTargetFacts(_Facts):
    id: str
    name: str
    os_type: str | None
    datastores: list[str] = Field(
        default_factory=list, description="What ASR says the MT can write to"
    )
    retention_volumes: list[str] = Field(default_factory=list)
    healthy: bool = True


class VCenterFacts(_Facts):
    name: str
    connected: bool
    discovered_hosts: list[str] = Field(default_factory=list)


class ConfigServerFacts(_Facts):
    name: str
    reachable: bool
    last_heartbeat: datetime | None = None
    problem: str | None = None


class ApplianceFacts(_Facts):
    """A modernized replication appliance, as the fabric lists its reprotect agent."""

    id: str
    name: str
    healthy: bool
    last_heartbeat: datetime | None = None
    datastores: list[str] = Field(default_factory=list, description="What it can reach")
    attached_disks: int = 0


class HyperVProviderFacts(_Facts):
    """A Hyper-V host (or VMM server) registered with the vault: its recovery services provider."""

    id: str
    name: str = Field(description="The host's name (the provider's friendlyName)")
    connected: bool
    last_heartbeat: datetime | None = None
    fabric_type: str = Field(default="HyperVSite", description="HyperVSite, or VMM")


class HyperVVmFacts(_Facts):
    name: str
    state: str = Field(description="Hyper-V's VMState: Off, Running, Saved, ...")
    checkpoints: int = 0
    switches: list[str] = Field(default_factory=list)


class HyperVHostFacts(_Facts):
    """What a Hyper-V host (or VMM server) says of itself, read over WinRM."""

    name: str
    reachable: bool
    problem: str | None = None
    switches: list[str] = Field(default_factory=list)
    vms: list[HyperVVmFacts] = Field(default_factory=list)


class MachineFacts(_Facts):
    item_name: str
    vm_name: str
    os_type: str | None
    os_version: str | None = None
    discovery_type: str = "vCenter"
    replication_group: str | None = None
    state: MachineState
    protection_state: str | None = None
    replication_health: str | None = None
    recovery_point_count: int = 0
    known_to_configuration_server: bool = True
    master_target_id: str | None = Field(
        default=None, description="The MT it replicates back through, once reprotected"
    )
    disk_count: int = 0
    log_storage_account_id: str | None = Field(
        default=None, description="Modernized: the storage account replication to Azure used"
    )
    hyperv_provider_id: str | None = Field(
        default=None, description="Hyper-V: the provider of the host (or VMM server) it came from"
    )
    switches: list[str] = Field(
        default_factory=list, description="Hyper-V: the virtual switches of its adapters"
    )
    managed_disks: bool | None = Field(
        default=None, description="Hyper-V: replicated to managed disks (its failback is disputed)"
    )


class ReadinessSnapshot(_Facts):
    configuration_server: ConfigServerFacts
    master_targets: list[MasterTargetFacts]
    vcenters: list[VCenterFacts]
    hosts: list[HostFacts]
    datastores: list[DatastoreFacts]
    vms: list[OnPremVmFacts]
    machines: list[MachineFacts]


class OnPremFacts(_Facts):
    """The on-premises part of a readiness snapshot: vCenter's, or the Hyper-V hosts'."""

    hosts: list[HostFacts] = Field(default_factory=list)
    datastores: list[DatastoreFacts] = Field(default_factory=list)
    vms: list[OnPremVmFacts] = Field(default_factory=list)
    hyperv_hosts: list[HyperVHostFacts] = Field(default_factory=list)


class AsrFacts(_Facts):
    """ASR's part of a readiness snapshot."""

    configuration_server: ConfigServerFacts
    master_targets: list[MasterTargetFacts]
    vcenters: list[VCenterFacts]
    undiscovered_hosts: list[str] = Field(
        default_factory=list, description="ESXi hosts ASR names as not discovered"
    )
    machines: list[MachineFacts]
    failback_policy_id: str | None = None
    azure_process_servers: list[str] = Field(
        default_factory=list, description="The process servers that can be the one in Azure"
    )
    run_as_account_id: str | None = None
    architecture: Literal["classic", "modernized", "hyperv"] = "classic"
    appliances: list[ApplianceFacts] = Field(
        default_factory=list, description="Modernized: the replication appliances"
    )
    log_storage_account_id: str | None = Field(
        default=None, description="Modernized: the setting's log storage account, if any"
    )
    read_at: datetime | None = Field(default=None, description="When ASR was read")
    listed_points_kept_on: str | None = Field(
        default=None,
        description=(
            "The task queue of the one worker that keeps the recovery points this read listed, "
            "for the point selection to take instead of listing them again; None if none kept"
        ),
    )
    hyperv_providers: list[HyperVProviderFacts] = Field(
        default_factory=list, description="Hyper-V: the hosts (or VMM servers) of the vault"
    )


def build_snapshot(asr: AsrFacts, onprem: OnPremFacts) -> ReadinessSnapshot:
    """Merge both views. A host counts as discovered when a connected vCenter entry manages it
    (vCenter-managed hosts) or is it (a standalone ESXi entry), unless ASR says otherwise."""
    entries = {n.lower() for v in asr.vcenters for n in [v.name, *v.discovered_hosts]}
    has_vcenter = any(v.connected for v in asr.vcenters)
    undiscovered = {h.lower() for h in asr.undiscovered_hosts}
    discovered = [
        h.name
        for h in onprem.hosts
        if h.name.lower() not in undiscovered
        and ((h.managed_by_vcenter and has_vcenter) or h.name.lower() in entries)
    ]
    vcenters = [
        v.model_copy(update={"discovered_hosts": discovered if v.connected else []})
        for v in asr.vcenters
    ]
    return ReadinessSnapshot(
        configuration_server=asr.configuration_server,
        master_targets=asr.master_targets,
        vcenters=vcenters,
        hosts=onprem.hosts,
        datastores=onprem.datastores,
        vms=onprem.vms,
        machines=asr.machines,
    )


class Finding(_Facts):
    rule: str
    item_name: str | None
    severity: Severity
    found: str
    action: str


class MachinePlan(_Facts):
    """Where a machine goes back to, and through which master target and datastore."""

    item_name: str
    location: Location
    master_target_id: str | None
    master_target_host: str | None
    datastore: str | None
    reprotect_first: bool = Field(
        description="Still failed over to Azure: reprotected to on-premises before failback"
    )


class ReadinessReport(_Facts):
    findings: list[Finding]
    machines: list[MachinePlan]
    # Which rules made it: how its places read (a master target, an appliance, a Hyper-V host).
    architecture: Literal["classic", "modernized", "hyperv"] = "classic"

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "blocking"]

    @property
    def ready(self) -> bool:
        return not self.blocking


class _Index:
    def __init__(self, snapshot: ReadinessSnapshot) -> None:
        self.snapshot = snapshot
        self.hosts = {h.name: h for h in snapshot.hosts}
        self.datastores = {d.name: d for d in snapshot.datastores}
        self.vms = {v.name: v for v in snapshot.vms}
        self.mts = {m.id: m for m in snapshot.master_targets}
        self.discovered = {h for v in snapshot.vcenters for h in v.discovered_hosts}

    def mt_host(self, mt: MasterTargetFacts) -> str | None:
        vm = self.vms.get(mt.name)
        return vm.host if vm else None

    def host_sees(self, host: str | None, datastore: str) -> bool:
        ds = self.datastores.get(datastore)
        return host is not None and ds is not None and host in ds.hosts


def _same_os(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and str(a).lower() == str(b).lower()


def is_windows_2008_r2(os_type: str | None, os_version: str | None) -> bool:
    text = f"{os_type or ''} {os_version or ''}".lower()
    return "2008 r2" in text


def decide_location(machine: MachineFacts, index: _Index) -> Location:
    """R1, R5, R7: original when the VM still exists on-premises; never for a physical server."""
    if machine.discovery_type.lower() == "physical":
        return "alternate"
    return "original" if machine.vm_name in index.vms else "alternate"


def choose_master_target(
    machine: MachineFacts, index: _Index, preferred: str | None = None
) -> MasterTargetFacts | None:
    """The MT a machine replicates back through: its own once reprotected, else one of its OS
    (R15) that has no snapshots (R11), is healthy and whose ESXi host is known."""
    if machine.master_target_id and machine.master_target_id in index.mts:
        return index.mts[machine.master_target_id]
    if preferred and preferred in index.mts:
        return index.mts[preferred]
    candidates = [
        mt
        for mt in index.snapshot.master_targets
        if _same_os(mt.os_type, machine.os_type) and mt.healthy
    ]

    def score(mt: MasterTargetFacts) -> tuple[int, int, str]:
        vm = index.vms.get(mt.name)
        snapshots = vm.snapshot_count if vm else 1
        return (snapshots, 0 if index.mt_host(mt) in index.discovered else 1, mt.id)

    return min(candidates, key=score, default=None)


def choose_datastore(
    machine: MachineFacts,
    location: Location,
    mt: MasterTargetFacts | None,
    index: _Index,
    preferred: str | None = None,
) -> str | None:
    if location == "original":
        vm = index.vms.get(machine.vm_name)
        return vm.datastores[0] if vm and vm.datastores else None
    if preferred:
        return preferred
    if mt is None:
        return None
    host = index.mt_host(mt)
    vmfs = [
        index.datastores[name]
        for name in mt.datastores
        if name in index.datastores
        and index.datastores[name].type.upper() == "VMFS"
        and index.host_sees(host, name)
    ]
    best = max(vmfs, key=lambda d: (d.free_space_bytes, d.name), default=None)
    return best.name if best else None


def evaluate_readiness(
    snapshot: ReadinessSnapshot,
    preferred_master_target: str | None = None,
    preferred_datastore: str | None = None,
) -> ReadinessReport:
    index = _Index(snapshot)
    findings: list[Finding] = []
    findings += _global_findings(snapshot)
    plans: list[MachinePlan] = []
    for machine in snapshot.machines:
        location = decide_location(machine, index)
        mt = choose_master_target(machine, index, preferred_master_target)
        datastore = choose_datastore(machine, location, mt, index, preferred_datastore)
        plans.append(
            MachinePlan(
                item_name=machine.item_name,
                location=location,
                master_target_id=mt.id if mt else None,
                master_target_host=index.mt_host(mt) if mt else None,
                datastore=datastore,
                reprotect_first=machine.state == "needs-reprotect",
            )
        )
        findings += _machine_findings(machine, location, mt, datastore, index)
    findings += _group_findings(snapshot.machines, plans)
    return ReadinessReport(findings=findings, machines=plans)


def _global_findings(snapshot: ReadinessSnapshot) -> list[Finding]:
    findings = []
    cs = snapshot.configuration_server
    if not cs.reachable:
        findings.append(
            Finding(
                rule="R10",
                item_name=None,
                severity="blocking",
                found=f"configuration server {cs.name} is not reachable"
                + (f" ({cs.problem})" if cs.problem else ""),
                action="start the configuration server's services and check its network "
                "connection to Azure, then check again",
            )
        )
    if not snapshot.master_targets:
        findings.append(
            Finding(
                rule="R9",
                item_name=None,
                severity="blocking",
                found="no master target is discovered on the configuration server",
                action="install a master target (Windows for Windows VMs, Linux for Linux VMs) "
                "on an ESXi host you fail back to, and register it with the configuration server",
            )
        )
    findings += vcenter_findings(snapshot.vcenters, "the configuration server")
    return findings


def vcenter_findings(vcenters: Iterable[VCenterFacts], reached_from: str) -> list[Finding]:
    """R14: every vCenter ASR does not see connected, through `reached_from`."""
    return [
        Finding(
            rule="R14",
            item_name=None,
            severity="blocking",
            found=f"vCenter {vcenter.name} is not connected in ASR",
            action=f"fix the vCenter account or network on {reached_from} and refresh the "
            "vCenter in the vault; disk detach/attach fails without it",
        )
        for vcenter in vcenters
        if not vcenter.connected
    ]


def _machine_findings(
    machine: MachineFacts,
    location: Location,
    mt: MasterTargetFacts | None,
    datastore: str | None,
    index: _Index,
) -> list[Finding]:
    found: list[Finding] = []
    name = machine.item_name

    def add(rule: str, severity: Severity, what: str, action: str) -> None:
        found.append(
            Finding(rule=rule, item_name=name, severity=severity, found=what, action=action)
        )

    if is_windows_2008_r2(machine.os_type, machine.os_version):
        add(
            "R8",
            "blocking",
            f"{machine.vm_name} runs {machine.os_version}: a Windows Server 2008 R2 SP1 machine "
            "failed over to Azure cannot be failed back",
            "leave it in Azure or rebuild it on-premises; remove it from the plan",
        )
    if not machine.known_to_configuration_server:
        add(
            "R10",
            "blocking",
            f"the configuration server does not know {machine.vm_name} (not in its database)",
            "rediscover the vCenter/ESXi host on the configuration server, then check again",
        )
    if machine.state == "replicating-back":
        if (machine.replication_health or "").lower() != "normal":
            add(
                "R12",
                "blocking",
                f"replication back to on-premises is {machine.replication_health or 'unknown'}"
                f" ({machine.protection_state})",
                "resolve the item's replication health errors in the vault and wait for "
                "health Normal",
            )
        if machine.recovery_point_count == 0:
            add(
                "R13",
                "blocking",
                f"{machine.vm_name} has no recovery point on-premises yet",
                "wait until replication to on-premises has produced a recovery point",
            )
    elif machine.state != "needs-reprotect":
        # A machine still failed over to Azure is reprotected first (MachinePlan says so); R12
        # and R13 are then awaited, not checked.
        add(
            "R12",
            "blocking",
            f"{machine.vm_name} is {machine.protection_state}: neither replicating back nor "
            "failed over to Azure",
            "bring the item to a failed-over or protected state in the vault",
        )

    if machine.discovery_type.lower() == "physical":
        add(
            "R7",
            "warning",
            f"{machine.vm_name} is a physical server: it fails back as a VMware VM (P2A2V) to "
            "an alternate location",
            "nothing; make sure the master target's ESXi host has room for it",
        )
    elif location == "alternate":
        add(
            "R5",
            "warning",
            f"{machine.vm_name} does not exist on-premises: it is re-created on the master "
            f"target's ESXi host, on {datastore or 'a VMFS datastore'}, with a full initial copy",
            "expect a longer reprotect; restore the original VM first for a delta-only failback",
        )

    if mt is None:
        if index.snapshot.master_targets:
            add(
                "R15",
                "blocking",
                f"no healthy {machine.os_type or ''} master target for {machine.vm_name}",
                f"install a {machine.os_type or 'matching'} master target: Windows VMs need a "
                "Windows MT, Linux VMs a Linux MT",
            )
        return found
    if not _same_os(mt.os_type, machine.os_type):
        add(
            "R15",
            "blocking",
            f"{machine.vm_name} is {machine.os_type} but master target {mt.name} is {mt.os_type}",
            f"use a {machine.os_type} master target",
        )
    mt_vm = index.vms.get(mt.name)
    mt_host = mt_vm.host if mt_vm else None
    if mt_vm is None:
        add(
            "R9",
            "blocking",
            f"master target {mt.name} is not a VM in vCenter, so its ESXi host is unknown",
            "discover the master target's ESXi host in vCenter and the configuration server",
        )
    elif mt_vm.snapshot_count:
        add(
            "R11",
            "blocking",
            f"master target {mt.name} has {mt_vm.snapshot_count} snapshot(s)",
            f"delete the snapshots of {mt.name} (consolidate its disks), then check again",
        )

    vm = index.vms.get(machine.vm_name)
    if location == "original" and vm is not None:
        unreachable = [ds for ds in vm.datastores if not index.host_sees(mt_host, ds)]
        host = index.hosts.get(vm.host or "")
        managed = host.managed_by_vcenter if host else True
        if unreachable:
            add(
                "R2" if managed else "R3",
                "blocking",
                f"master target {mt.name}'s host {mt_host} cannot access "
                f"{', '.join(unreachable)}, where {machine.vm_name} keeps its disks",
                f"mount {', '.join(unreachable)} on {mt_host}, or use a master target on a "
                f"host that sees {'them' if len(unreachable) > 1 else 'it'}",
            )
        special = sorted({k for k in vm.disk_kinds if k in ("rdm", "vsan")})
        if special:
            add(
                "R4",
                "warning",
                f"{machine.vm_name} has {' and '.join(k.upper() for k in special)} disks: "
                "original location works only because they exist and are connected to the VM",
                "do not detach or delete those disks before the failback",
            )
    needs_discovery = (
        location == "original" and vm is not None and not managed_host(vm, index)
    ) or (machine.discovery_type.lower() == "physical")
    if needs_discovery and mt_host is not None and mt_host not in index.discovered:
        add(
            "R3",
            "blocking",
            f"master target {mt.name}'s ESXi host {mt_host} is not discovered by the "
            "configuration server",
            f"add {mt_host} on the configuration server (vCenter/ESXi discovery) before reprotect",
        )
    if location == "alternate":
        ds = index.datastores.get(datastore or "")
        if datastore is None:
            add(
                "R6",
                "blocking",
                f"no VMFS datastore is reachable from master target {mt.name}'s host {mt_host}",
                "alternate location needs a VMFS datastore on the master target's ESXi host",
            )
        elif ds is not None and ds.type.upper() != "VMFS":
            add(
                "R6",
                "blocking",
                f"datastore {datastore} is {ds.type}: alternate location recovery needs VMFS "
                "(vSAN and RDM are refused)",
                "choose a VMFS datastore on the master target's host",
            )
    return found


def managed_host(vm: OnPremVmFacts, index: _Index) -> bool:
    host = index.hosts.get(vm.host or "")
    return host.managed_by_vcenter if host else True


def _group_findings(machines: Iterable[MachineFacts], plans: list[MachinePlan]) -> list[Finding]:
    by_item = {p.item_name: p for p in plans}
    groups: dict[str, list[MachineFacts]] = defaultdict(list)
    for machine in machines:
        if machine.replication_group:
            groups[machine.replication_group].append(machine)
    findings = []
    for group, members in sorted(groups.items()):
        names = ", ".join(m.item_name for m in members)
        systems = {(m.os_type or "").lower() for m in members}
        if len(systems) > 1:
            findings.append(
                Finding(
                    rule="R15",
                    item_name=None,
                    severity="blocking",
                    found=f"replication group {group} mixes operating systems ({names})",
                    action="a replication group fails back through one master target of one OS: "
                    "split the group",
                )
            )
        targets = {by_item[m.item_name].master_target_id for m in members}
        if len(targets) > 1:
            findings.append(
                Finding(
                    rule="R15",
                    item_name=None,
                    severity="blocking",
                    found=f"replication group {group} uses several master targets ({names})",
                    action="reprotect all members of the group through the same master target",
                )
            )
    return findings


class ReprotectChoice(_Facts):
    item_name: str
    master_target_id: str
    process_server_id: str
    retention_drive: str
    datastore_name: str | None
    profile_id: str
    run_as_account_id: str | None
    log_storage_account_id: str | None = None


def plan_reprotect_to_onprem(
    report: ReadinessReport,
    facts: AsrFacts,
    process_server_id: str | None = None,
    retention_drive: str | None = None,
    policy_id: str | None = None,
) -> tuple[list[ReprotectChoice], list[Finding]]:
    """Step 2 for every machine still failed over to Azure: master target by OS, process server
    in Azure, retention drive, datastore and failback policy; each gap is a blocking finding."""
    mts = {mt.id: mt for mt in facts.master_targets}
    choices: list[ReprotectChoice] = []
    findings: list[Finding] = []
    candidates = facts.azure_process_servers
    process_server = process_server_id or (candidates[0] if len(candidates) == 1 else None)
    profile = policy_id or facts.failback_policy_id
    for plan in report.machines:
        if not plan.reprotect_first:
            continue
        problems = []
        mt = mts.get(plan.master_target_id or "")
        drive = retention_drive or (
            mt.retention_volumes[0] if mt and mt.retention_volumes else None
        )
        if mt is None:
            problems.append("no master target")
        if drive is None:
            problems.append("no retention volume on the master target")
        if process_server is None and len(candidates) > 1:
            problems.append(
                f"{len(candidates)} process servers could be the one in Azure "
                f"({', '.join(candidates)}): name it with FAILBACK_AZURE_PROCESS_SERVER_ID"
            )
        elif process_server is None:
            problems.append("no process server in Azure")
        if profile is None:
            problems.append(
                "no failback replication policy mapped on the protection container (associate "
                "the configuration server's failback policy with it in the vault)"
            )
        if plan.location == "alternate" and plan.datastore is None:
            problems.append("no datastore to re-create the VM on")
        if problems:
            findings.append(
                Finding(
                    rule="R9",
                    item_name=plan.item_name,
                    severity="blocking",
                    found="cannot plan the reprotect to on-premises: " + "; ".join(problems),
                    action="set up what is missing on the configuration server or in the vault, "
                    "or pass it explicitly",
                )
            )
            continue
        assert mt is not None and drive is not None and process_server and profile
        choices.append(
            ReprotectChoice(
                item_name=plan.item_name,
                master_target_id=mt.id,
                process_server_id=process_server,
                retention_drive=drive,
                datastore_name=plan.datastore,
                profile_id=profile,
                run_as_account_id=facts.run_as_account_id,
            )
        )
    return choices, findings


def assess(
    facts: AsrFacts,
    onprem: OnPremFacts,
    master_target_id: str | None = None,
    datastore_name: str | None = None,
    process_server_id: str | None = None,
    retention_drive: str | None = None,
    policy_id: str | None = None,
) -> tuple[ReadinessReport, list[ReprotectChoice]]:
    """Everything `failback check` reports and the plan workflow acts on, in one place."""
    report = evaluate_readiness(build_snapshot(facts, onprem), master_target_id, datastore_name)
    choices, gaps = plan_reprotect_to_onprem(
        report, facts, process_server_id, retention_drive, policy_id
    )
    return report.model_copy(update={"findings": report.findings + gaps}), choices


def group_member_alone(
    item_name: str, vm_name: str, replication_group: str | None
) -> Finding | None:
    """R17: a member of a replication group a person made fails back only with its whole group,
    through the group's recovery plan (FO-PLAN, domain/decisions.py): ASR takes the group's
    common multi-VM point only there, and Azure PowerShell refuses to fail a member over alone."""
    if not replication_group:
        return None
    return Finding(
        rule="R17",
        item_name=item_name,
        severity="blocking",
        found=f"{vm_name} is a member of replication group {replication_group}, which fails over "
        "only as a whole, through its recovery plan",
        action="put every member of the group in one recovery plan and fail it back with "
        "`failback start --recovery-plan PLAN`",
    )
