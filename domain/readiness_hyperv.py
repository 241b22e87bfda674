"""Readiness of the Hyper-V architecture: rules R23-R27 (and R12, R13 as for the others) as pure
functions over ASR's facts and what the Hyper-V hosts say of themselves. No I/O, no Temporal.

Hyper-V fails back without a reprotect toward on-premises: ASR's provider on the host (or the
VMM server) takes the Azure VM's data and writes it into the on-premises VM, or creates that VM
when it no longer exists (asr-modernized-hyperv.md 3.1, 3.3 C). The rules, each with its source:

- R23 The Hyper-V host (or VMM server) is connected to the vault: its provider Connected, with a
  heartbeat in the last 15 minutes ("running and connected to Azure", hyper-v-azure-failback.md).
- R24 Original location: the on-premises VM is off and has no checkpoints ("no snapshots on the
  VM, and ... the on-premises VM is turned off during failback", same page).
- R25 Alternate location (the VM is gone): a target host connected to the vault, with a virtual
  switch of the same name for each of the VM's adapters ("Create a virtual network switch with
  the same name that you had on the original server"); with VMM, VMM places the VM.
- R26 Replicated to managed disks: a warning. Microsoft's documentation says such a failback is
  not supported; an Azure update and a documentation issue say it is (reference 3.1).
- R27 The product can read the host over WinRM: it verifies the VM there, independently of ASR.
Every finding is reported at once; any blocking one stops the failback before anything is sent.
"""

from __future__ import annotations

from datetime import timedelta

from domain.readiness import (
    AsrFacts,
    Finding,
    HyperVHostFacts,
    HyperVProviderFacts,
    Location,
    MachineFacts,
    MachinePlan,
    OnPremFacts,
    ReadinessReport,
    ReprotectChoice,
    Severity,
)

PROVIDER_HEARTBEAT_LIMIT = timedelta(minutes=15)


def assess_hyperv(
    facts: AsrFacts,
    onprem: OnPremFacts,
    master_target_id: str | None = None,
    datastore_name: str | None = None,
    process_server_id: str | None = None,
    retention_drive: str | None = None,
    policy_id: str | None = None,
) -> tuple[ReadinessReport, list[ReprotectChoice]]:
    """What `failback check` reports and the plan acts on, for Hyper-V machines: the same
    signature as the others' (the architecture seam). `master_target_id` names the host (its
    provider id or its name) to create a VM on that no longer exists; the rest does not apply,
    and there is no reprotect toward on-premises to choose for."""
    del datastore_name, process_server_id, retention_drive, policy_id
    providers = {p.id.lower(): p for p in facts.hyperv_providers}
    hosts = {h.name.lower(): h for h in onprem.hyperv_hosts}
    findings: list[Finding] = []
    plans: list[MachinePlan] = []
    for machine in facts.machines:
        source = providers.get((machine.hyperv_provider_id or "").lower())
        findings += _provider_findings(machine, source, facts)
        host = hosts.get(source.name.lower()) if source is not None else None
        if source is not None:
            findings += _host_findings(machine, host, source.name)
        location: Location = (
            "original"
            if host is not None and any(v.name == machine.vm_name for v in host.vms)
            else "alternate"
        )
        target = source
        if location == "original":
            findings += _original_findings(machine, host)
        elif source is None or source.fabric_type != "VMM":
            target = _alternate_target(facts.hyperv_providers, source, master_target_id)
            findings += _alternate_findings(machine, target, hosts, master_target_id, facts)
        findings += _state_findings(machine)
        plans.append(
            MachinePlan(
                item_name=machine.item_name,
                location=location,
                master_target_id=target.id if target is not None else None,
                master_target_host=target.name if target is not None else None,
                datastore=None,
                reprotect_first=False,
            )
        )
    return ReadinessReport(findings=findings, machines=plans, architecture="hyperv"), []


def _finding(
    machine: MachineFacts, rule: str, severity: Severity, found: str, action: str
) -> Finding:
    return Finding(
        rule=rule, item_name=machine.item_name, severity=severity, found=found, action=action
    )


def _provider_findings(
    machine: MachineFacts, provider: HyperVProviderFacts | None, facts: AsrFacts
) -> list[Finding]:
    if provider is None:
        return [
            _finding(
                machine,
                "R23",
                "blocking",
                f"ASR names no Hyper-V host or VMM server for {machine.vm_name} "
                f"(provider {machine.hyperv_provider_id or 'none'})",
                "register the host (or VMM server) with the vault again, then refresh it",
            )
        ]
    stale = (
        provider.last_heartbeat is None
        or facts.read_at is None
        or facts.read_at - provider.last_heartbeat > PROVIDER_HEARTBEAT_LIMIT
    )
    if provider.connected and not stale:
        return []
    heard = (
        f"last heartbeat {provider.last_heartbeat:%Y-%m-%d %H:%M} UTC"
        if provider.last_heartbeat
        else "no heartbeat"
    )
    return [
        _finding(
            machine,
            "R23",
            "blocking",
            f"Hyper-V host {provider.name} is "
            f"{'connected' if provider.connected else 'not connected'} to the vault ({heard})",
            f"start the Azure Site Recovery provider service on {provider.name} and check it "
            "reaches Azure; ASR cannot fail back to a host it does not hear",
        )
    ]


def _host_findings(machine: MachineFacts, host: HyperVHostFacts | None, name: str) -> list[Finding]:
    if host is not None and host.reachable:
        return []
    why = host.problem if host is not None and host.problem else "no answer"
    return [
        _finding(
            machine,
            "R27",
            "blocking",
            f"Hyper-V host {name} cannot be read over WinRM ({why}); the VM is verified there",
            f"enable WinRM over HTTPS on {name} (port 5986) and give the worker's account "
            "(FAILBACK_HYPERV_USERNAME) the Hyper-V Administrators role",
        )
    ]


def _original_findings(machine: MachineFacts, host: HyperVHostFacts | None) -> list[Finding]:
    assert host is not None
    vm = next(v for v in host.vms if v.name == machine.vm_name)
    found: list[Finding] = []
    if vm.state != "Off":
        found.append(
            _finding(
                machine,
                "R24",
                "blocking",
                f"{machine.vm_name} is {vm.state} on {host.name}; ASR needs it off during "
                "the failback",
                f"shut {machine.vm_name} down on {host.name} and leave it off until the "
                "failback has started it",
            )
        )
    if vm.checkpoints:
        found.append(
            _finding(
                machine,
                "R24",
                "blocking",
                f"{machine.vm_name} has {vm.checkpoints} checkpoint(s) on {host.name}",
                f"delete them (Remove-VMSnapshot -VMName {machine.vm_name}) before the failback",
            )
        )
    return found


def _alternate_target(
    providers: list[HyperVProviderFacts],
    source: HyperVProviderFacts | None,
    chosen: str | None,
) -> HyperVProviderFacts | None:
    if chosen:
        wanted = chosen.lower()
        return next((p for p in providers if wanted in (p.id.lower(), p.name.lower())), None)
    return source


def _alternate_findings(
    machine: MachineFacts,
    target: HyperVProviderFacts | None,
    hosts: dict[str, HyperVHostFacts],
    chosen: str | None,
    facts: AsrFacts,
) -> list[Finding]:
    if target is None:
        known = ", ".join(p.name for p in facts.hyperv_providers) or "none"
        return [
            _finding(
                machine,
                "R25",
                "blocking",
                f"{machine.vm_name} no longer exists on-premises and "
                + (f"host {chosen!r} is not registered with the vault" if chosen else "no host")
                + f" (hosts: {known})",
                "name a connected Hyper-V host to create it on (--master-target HOST)",
            )
        ]
    found = (
        _provider_findings(machine, target, facts)
        if target.id != machine.hyperv_provider_id
        else []
    )
    host = hosts.get(target.name.lower())
    if host is None or not host.reachable:
        return found + _host_findings(machine, host, target.name)
    missing = [s for s in machine.switches if s not in host.switches]
    if missing:
        found.append(
            _finding(
                machine,
                "R25",
                "blocking",
                f"{machine.vm_name} no longer exists on-premises and host {target.name} has no "
                f"virtual switch named {', '.join(repr(s) for s in missing)} (its adapters')",
                f"create a virtual switch of that name on {target.name}, or choose a host "
                "that has it (--master-target HOST)",
            )
        )
    return found


def _state_findings(machine: MachineFacts) -> list[Finding]:
    found: list[Finding] = []
    if machine.state != "ready-to-fail-back":
        found.append(
            _finding(
                machine,
                "R12",
                "blocking",
                f"{machine.vm_name} is {machine.protection_state or 'in an unknown state'} and "
                "does not offer Failback",
                "complete the failover to Azure and commit it in the vault, then start again",
            )
        )
    elif (machine.replication_health or "").lower() not in ("normal", ""):
        found.append(
            _finding(
                machine,
                "R12",
                "blocking",
                f"replication health of {machine.vm_name} is {machine.replication_health}",
                "resolve the item's health errors in the vault first",
            )
        )
    if machine.recovery_point_count < 1:
        found.append(
            _finding(
                machine,
                "R13",
                "blocking",
                f"{machine.vm_name} has no recovery point",
                "wait for ASR to take one, or check the item's replication in the vault",
            )
        )
    if machine.managed_disks:
        found.append(
            _finding(
                machine,
                "R26",
                "warning",
                f"{machine.vm_name} replicated to managed disks: Microsoft's documentation says "
                "such a failback is not supported, while an Azure update and users report it works",
                "fail one such machine back first; nothing is committed before it is verified "
                "on the host and approved, so the Azure VM stays until then",
            )
        )
    return found
