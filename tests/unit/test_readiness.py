"""Readiness rules R1-R15 as pure functions: for each rule, a snapshot where it is violated and
the finding names it, and the healthy snapshot where nothing blocks."""

from __future__ import annotations

from typing import Any

import pytest

from domain.readiness import (
    ConfigServerFacts,
    DatastoreFacts,
    HostFacts,
    MachineFacts,
    MasterTargetFacts,
    OnPremVmFacts,
    ReadinessSnapshot,
    VCenterFacts,
    evaluate_readiness,
)


def healthy(**changes: Any) -> ReadinessSnapshot:
    base = ReadinessSnapshot(
        configuration_server=ConfigServerFacts(name="cs01", reachable=True),
        master_targets=[
            MasterTargetFacts(
                id="mt-lnx",
                name="mt-lnx-01",
                os_type="Linux",
                datastores=["ds-vmfs", "ds-vsan"],
                retention_volumes=["/mnt/retention"],
            ),
            MasterTargetFacts(
                id="mt-win",
                name="mt-win-01",
                os_type="Windows",
                datastores=["ds-vmfs"],
                retention_volumes=["F"],
            ),
        ],
        vcenters=[VCenterFacts(name="vc01", connected=True, discovered_hosts=["esx-01", "esx-02"])],
        hosts=[
            HostFacts(name="esx-01"),
            HostFacts(name="esx-02"),
            HostFacts(name="esx-03", managed_by_vcenter=False),
        ],
        datastores=[
            DatastoreFacts(name="ds-vmfs", type="VMFS", hosts=["esx-01", "esx-02"]),
            DatastoreFacts(name="ds-vsan", type="vsan", hosts=["esx-01"]),
            DatastoreFacts(name="ds-nfs", type="NFS", hosts=["esx-01"]),
            DatastoreFacts(name="ds-local3", type="VMFS", hosts=["esx-03"]),
            DatastoreFacts(name="ds-only2", type="VMFS", hosts=["esx-02"]),
        ],
        vms=[
            OnPremVmFacts(name="mt-lnx-01", host="esx-01", datastores=["ds-vmfs"]),
            OnPremVmFacts(name="mt-win-01", host="esx-02", datastores=["ds-vmfs"]),
            OnPremVmFacts(
                name="web-01", host="esx-01", datastores=["ds-vmfs"], disk_kinds=["vmdk"]
            ),
        ],
        machines=[
            MachineFacts(
                item_name="web-01-item",
                vm_name="web-01",
                os_type="Linux",
                os_version="Ubuntu 22.04",
                state="replicating-back",
                protection_state="Protected",
                replication_health="Normal",
                recovery_point_count=12,
                master_target_id="mt-lnx",
            )
        ],
    )
    return base.model_copy(update=changes)


def machine(**changes: Any) -> MachineFacts:
    return healthy().machines[0].model_copy(update=changes)


def rules(snapshot: ReadinessSnapshot, severity: str = "blocking") -> set[str]:
    return {f.rule for f in evaluate_readiness(snapshot).findings if f.severity == severity}


def test_the_healthy_snapshot_is_ready_at_its_original_location() -> None:
    report = evaluate_readiness(healthy())
    assert report.ready and report.findings == []
    (plan,) = report.machines
    assert plan.location == "original" and plan.master_target_id == "mt-lnx"
    assert plan.datastore == "ds-vmfs" and plan.master_target_host == "esx-01"


def with_vm(vm: OnPremVmFacts, **machine_changes: Any) -> ReadinessSnapshot:
    snapshot = healthy()
    vms = [v for v in snapshot.vms if v.name != "web-01"] + [vm]
    return snapshot.model_copy(update={"vms": vms, "machines": [machine(**machine_changes)]})


@pytest.mark.parametrize(
    ("snapshot", "rule"),
    [
        # R2: vCenter-managed VM on a datastore the MT's host cannot access.
        (with_vm(OnPremVmFacts(name="web-01", host="esx-02", datastores=["ds-only2"])), "R2"),
        # R3: VM on a standalone ESXi host, disks not reachable by the MT's host.
        (with_vm(OnPremVmFacts(name="web-01", host="esx-03", datastores=["ds-local3"])), "R3"),
        # R6: alternate location to a vSAN datastore.
        (
            healthy(
                machines=[
                    machine(vm_name="gone-01", master_target_id=None, state="needs-reprotect")
                ],
                master_targets=[
                    MasterTargetFacts(
                        id="mt-lnx", name="mt-lnx-01", os_type="Linux", datastores=["ds-vsan"]
                    )
                ],
            ),
            "R6",
        ),
        (
            healthy(
                machines=[
                    machine(
                        os_type="Windows",
                        os_version="Windows Server 2008 R2 SP1",
                        master_target_id="mt-win",
                    )
                ]
            ),
            "R8",
        ),
        (healthy(master_targets=[]), "R9"),
        (healthy(configuration_server=ConfigServerFacts(name="cs01", reachable=False)), "R10"),
        (healthy(machines=[machine(known_to_configuration_server=False)]), "R10"),
        (
            with_vm(OnPremVmFacts(name="web-01", host="esx-01", datastores=["ds-vmfs"])).model_copy(
                update={
                    "vms": [
                        OnPremVmFacts(
                            name="mt-lnx-01",
                            host="esx-01",
                            datastores=["ds-vmfs"],
                            snapshot_count=2,
                        ),
                        OnPremVmFacts(name="web-01", host="esx-01", datastores=["ds-vmfs"]),
                    ]
                }
            ),
            "R11",
        ),
        (healthy(machines=[machine(replication_health="Critical")]), "R12"),
        (healthy(machines=[machine(recovery_point_count=0)]), "R13"),
        (
            healthy(
                vcenters=[VCenterFacts(name="vc01", connected=False, discovered_hosts=["esx-01"])]
            ),
            "R14",
        ),
        (healthy(machines=[machine(master_target_id="mt-win")]), "R15"),
    ],
    ids=["R2", "R3", "R6", "R8", "R9", "R10-cs", "R10-vm", "R11", "R12", "R13", "R14", "R15"],
)
def test_each_violated_rule_blocks_and_is_named(snapshot: ReadinessSnapshot, rule: str) -> None:
    report = evaluate_readiness(snapshot)
    assert rule in {f.rule for f in report.blocking}, report.findings
    finding = next(f for f in report.blocking if f.rule == rule)
    assert finding.found and finding.action


def test_r3_needs_the_mt_host_discovered_for_a_standalone_esxi_vm() -> None:
    snapshot = with_vm(OnPremVmFacts(name="web-01", host="esx-03", datastores=["ds-vmfs"]))
    snapshot = snapshot.model_copy(
        update={
            "datastores": [
                DatastoreFacts(name="ds-vmfs", type="VMFS", hosts=["esx-01", "esx-02", "esx-03"])
            ],
            "vcenters": [VCenterFacts(name="vc01", connected=True, discovered_hosts=["esx-02"])],
        }
    )
    finding = next(f for f in evaluate_readiness(snapshot).blocking if f.rule == "R3")
    assert "esx-01" in finding.found and "not discovered" in finding.found
    discovered = snapshot.model_copy(
        update={
            "vcenters": [VCenterFacts(name="vc01", connected=True, discovered_hosts=["esx-01"])]
        }
    )
    assert evaluate_readiness(discovered).ready


def test_r4_rdm_and_vsan_disks_at_the_original_location_are_a_warning() -> None:
    snapshot = with_vm(
        OnPremVmFacts(
            name="web-01",
            host="esx-01",
            datastores=["ds-vmfs", "ds-vsan"],
            disk_kinds=["vmdk", "rdm", "vsan"],
        )
    )
    report = evaluate_readiness(snapshot)
    assert report.ready
    (warning,) = [f for f in report.findings if f.rule == "R4"]
    assert "RDM and VSAN" in warning.found


def test_r5_r7_alternate_location_for_missing_vms_and_physical_servers() -> None:
    gone = healthy(
        machines=[machine(vm_name="gone-01", master_target_id=None, state="needs-reprotect")]
    )
    report = evaluate_readiness(gone)
    assert report.ready, report.blocking
    assert report.machines[0].location == "alternate" and report.machines[0].datastore == "ds-vmfs"
    assert rules(gone, "warning") == {"R5"}
    assert report.machines[0].reprotect_first
    physical = healthy(
        machines=[
            machine(
                vm_name="phys-01",
                discovery_type="Physical",
                master_target_id=None,
                state="needs-reprotect",
            )
        ]
    )
    report = evaluate_readiness(physical)
    assert report.machines[0].location == "alternate"
    assert "R7" in rules(physical, "warning")
    # R1: an existing VM goes back to its original location.
    assert evaluate_readiness(healthy()).machines[0].location == "original"


def test_r15_a_replication_group_uses_one_os_and_one_master_target() -> None:
    members = [
        machine(item_name="a-item", vm_name="web-01", replication_group="rg"),
        machine(
            item_name="b-item",
            vm_name="web-01",
            replication_group="rg",
            os_type="Windows",
            master_target_id="mt-win",
        ),
    ]
    findings = evaluate_readiness(healthy(machines=members)).blocking
    group = [f for f in findings if f.rule == "R15" and f.item_name is None]
    assert any("mixes operating systems" in f.found for f in group)
    assert any("several master targets" in f.found for f in group)


def test_every_problem_is_reported_at_once() -> None:
    snapshot = healthy(
        configuration_server=ConfigServerFacts(name="cs01", reachable=False),
        vcenters=[VCenterFacts(name="vc01", connected=False)],
        machines=[machine(recovery_point_count=0, replication_health="Warning")],
    )
    assert {"R10", "R12", "R13", "R14"} <= rules(snapshot)
