"""Readiness of the modernized architecture: rules R18-R22 (and R5, R7, R12-R14 as for classic)
as pure functions over ASR's and vCenter's facts. No I/O, no Temporal.

Modernized has no configuration server and no master target: a replication appliance's
reprotect agent takes the failback's data and writes it to a datastore it can reach
(asr-modernized-hyperv.md 2.1). The rules, each with its source:

- R18 A healthy replication appliance with a fresh heartbeat (15 min) to reprotect through.
- R19 The target datastore is accessible by that appliance: for the original location every
  datastore of the VM, for an alternate location the one chosen (a vCenter-managed datastore).
- R20 An appliance takes at most 60 disks; more need another appliance for failback.
- R21 A failback replication policy (InMageRcmFailback) is mapped on the protection container.
- R22 A log storage account for the reprotect (required by InMageRcmReprotectInput): the one
  replication to Azure used, or FAILBACK_AZURE_LOG_STORAGE_ACCOUNT_ID.
Every finding is reported at once; any blocking one stops the failback before anything is sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.readiness import (
    ApplianceFacts,
    AsrFacts,
    Finding,
    Location,
    MachineFacts,
    MachinePlan,
    OnPremFacts,
    OnPremVmFacts,
    ReadinessReport,
    ReprotectChoice,
    Severity,
    vcenter_findings,
)

APPLIANCE_DISK_LIMIT = 60
APPLIANCE_HEARTBEAT_LIMIT = timedelta(minutes=15)


def appliance_usable(appliance: ApplianceFacts, now: datetime | None) -> bool:
    """R18: healthy, with a heartbeat in the last 15 minutes of `now` (when the facts were
    read; None: the heartbeat's age is not judged)."""
    heartbeat = appliance.last_heartbeat
    if not appliance.healthy or heartbeat is None:
        return False
    return now is None or now - heartbeat <= APPLIANCE_HEARTBEAT_LIMIT


def assess_modernized(
    facts: AsrFacts,
    onprem: OnPremFacts,
    master_target_id: str | None = None,
    datastore_name: str | None = None,
    process_server_id: str | None = None,
    retention_drive: str | None = None,
    policy_id: str | None = None,
) -> tuple[ReadinessReport, list[ReprotectChoice]]:
    """What `failback check` reports and the plan acts on, for a modernized plan: the same
    signature as classic's `assess` (the architecture seam). `master_target_id` names the
    appliance; the process server and retention drive of classic do not apply."""
    del process_server_id, retention_drive  # classic's: nothing to choose in modernized
    usable = [a for a in facts.appliances if appliance_usable(a, facts.read_at)]
    findings = vcenter_findings(facts.vcenters, "the appliance")
    appliance = _choose_appliance(usable, master_target_id)
    if appliance is None:
        findings.append(
            Finding(
                rule="R18",
                item_name=None,
                severity="blocking",
                found=(
                    f"replication appliance {master_target_id} is not a healthy appliance of "
                    "the vault"
                    if master_target_id
                    else "no healthy replication appliance with a heartbeat in the last 15 min "
                    f"({', '.join(a.name for a in facts.appliances) or 'none registered'})"
                ),
                action="bring an appliance's services back (or register one) and check again",
            )
        )
    policy = policy_id or facts.failback_policy_id
    if policy is None:
        findings.append(
            Finding(
                rule="R21",
                item_name=None,
                severity="blocking",
                found="no failback replication policy (InMageRcmFailback) is mapped on the "
                "protection container",
                action="create a failback policy and associate it with the container in the vault",
            )
        )
    vms = {vm.name: vm for vm in onprem.vms}
    managed = {d.name for d in onprem.datastores}
    plans: list[MachinePlan] = []
    choices: list[ReprotectChoice] = []
    disks = 0
    for machine in facts.machines:
        location: Location = (
            "alternate"
            if machine.discovery_type.lower() == "physical" or machine.vm_name not in vms
            else "original"
        )
        reprotect = machine.state == "needs-reprotect"
        datastore = _target_datastore(machine, location, vms, appliance, datastore_name)
        plans.append(
            MachinePlan(
                item_name=machine.item_name,
                location=location,
                master_target_id=appliance.id if appliance else None,
                master_target_host=None,
                datastore=datastore,
                reprotect_first=reprotect,
            )
        )
        found = _machine_findings(machine, location, datastore, appliance, vms, managed)
        findings += found
        if reprotect:
            disks += max(1, machine.disk_count)
            log_account = machine.log_storage_account_id or facts.log_storage_account_id
            if log_account is None:
                findings.append(
                    Finding(
                        rule="R22",
                        item_name=machine.item_name,
                        severity="blocking",
                        found=f"no log storage account is known for {machine.vm_name}'s reprotect",
                        action="set FAILBACK_AZURE_LOG_STORAGE_ACCOUNT_ID to a storage account "
                        "in the vault's region",
                    )
                )
            blocked = any(f.severity == "blocking" for f in found)
            if appliance and policy and datastore and log_account and not blocked:
                choices.append(
                    ReprotectChoice(
                        item_name=machine.item_name,
                        master_target_id=appliance.id,
                        process_server_id=appliance.id,
                        retention_drive="",
                        datastore_name=datastore,
                        profile_id=policy,
                        run_as_account_id=None,
                        log_storage_account_id=log_account,
                    )
                )
    if appliance is not None and appliance.attached_disks + disks > APPLIANCE_DISK_LIMIT:
        findings.append(
            Finding(
                rule="R20",
                item_name=None,
                severity="blocking",
                found=f"appliance {appliance.name} has {appliance.attached_disks} disks attached; "
                f"these machines add {disks}, over its limit of {APPLIANCE_DISK_LIMIT}",
                action="fail back through another appliance (name it), or in smaller plans",
            )
        )
    report = ReadinessReport(findings=findings, machines=plans, architecture="modernized")
    return report, choices if report.ready else []


def _choose_appliance(usable: list[ApplianceFacts], preferred: str | None) -> ApplianceFacts | None:
    if preferred:
        return next((a for a in usable if a.id == preferred or a.name == preferred), None)
    # The one with the most room: the fewest disks attached.
    return min(usable, key=lambda a: (a.attached_disks, a.name), default=None)


def _target_datastore(
    machine: MachineFacts,
    location: Location,
    vms: dict[str, OnPremVmFacts],
    appliance: ApplianceFacts | None,
    preferred: str | None,
) -> str | None:
    if location == "original":
        vm = vms.get(machine.vm_name)
        return vm.datastores[0] if vm is not None and vm.datastores else None
    if preferred:
        return preferred
    if appliance is None:
        return None
    return appliance.datastores[0] if appliance.datastores else None


def _machine_findings(
    machine: MachineFacts,
    location: Location,
    datastore: str | None,
    appliance: ApplianceFacts | None,
    vms: dict[str, OnPremVmFacts],
    managed: set[str],
) -> list[Finding]:
    found: list[Finding] = []

    def add(rule: str, severity: Severity, what: str, action: str) -> None:
        found.append(
            Finding(
                rule=rule, item_name=machine.item_name, severity=severity, found=what, action=action
            )
        )

    if machine.state == "replicating-back":
        if (machine.replication_health or "").lower() != "normal":
            add(
                "R12",
                "blocking",
                f"replication back to on-premises is {machine.replication_health or 'unknown'}"
                f" ({machine.protection_state})",
                "resolve the item's replication health errors and wait for health Normal",
            )
        if machine.recovery_point_count == 0:
            add(
                "R13",
                "blocking",
                f"{machine.vm_name} has no recovery point on-premises yet",
                "wait until replication to on-premises has produced one",
            )
        return found
    if machine.state != "needs-reprotect":
        add(
            "R12",
            "blocking",
            f"{machine.vm_name} is {machine.protection_state}: neither replicating back nor "
            "failed over to Azure",
            "bring the item to a failed-over or protected state in the vault",
        )
        return found
    if machine.discovery_type.lower() == "physical":
        add(
            "R7",
            "warning",
            f"{machine.vm_name} is a physical server: it fails back as a VMware VM to an "
            "alternate location",
            "nothing; make sure the datastore has room for it",
        )
    elif location == "alternate":
        add(
            "R5",
            "warning",
            f"{machine.vm_name} does not exist on-premises: it is created on {datastore}, with a "
            "full initial copy",
            "expect a longer reprotect",
        )
    if appliance is None:
        return found
    if location == "original":
        vm = vms.get(machine.vm_name)
        own = vm.datastores if vm is not None else []
        missing = [d for d in own if d not in appliance.datastores]
        if missing:
            add(
                "R19",
                "blocking",
                f"datastore(s) {', '.join(missing)} of {machine.vm_name} are not accessible by "
                f"appliance {appliance.name}",
                "let the appliance's ESXi host mount them, or fail back through an appliance "
                "that reaches them",
            )
    elif datastore is None or datastore not in appliance.datastores or datastore not in managed:
        add(
            "R19",
            "blocking",
            f"no datastore to create {machine.vm_name} on that appliance {appliance.name} "
            f"can access ({datastore or 'none chosen'}; it reaches "
            f"{', '.join(appliance.datastores) or 'none'})",
            "name a vCenter-managed datastore the appliance can access",
        )
    return found
