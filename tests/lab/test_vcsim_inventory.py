"""The vCenter side of readiness (lab/scenarios/readiness.json) in a real vcsim harness, read back
through pyvmomi by activities.vsphere_client: standalone hosts, datastore types and host access,
vmdk/vSAN/RDM disks, snapshots, guest OS, and re-creating a VM for alternate location recovery
(lab.vcenter_client, the simulator's writes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from activities import vsphere_client
from activities.vsphere import facts_from_inventory
from activities.vsphere_client import (
    DatastoreNotFoundError,
    HostNotFoundError,
    VCenterInventory,
    VmNotFoundError,
    connect,
    disconnect,
    read_inventory,
    read_vm_states,
)
from lab import vcenter_client
from lab.localhost import free_port
from lab.manager import lab_settings
from lab.scenario import Scenario, ScenarioError, load_scenario
from lab.vcenter import (
    VcsimEndpoint,
    VcsimError,
    inventory_from_scenario,
    start_vcsim,
    stop_vcsim,
)
from lab.vcenter_client import (
    DatastoreNotAccessibleError,
    VmAlreadyExistsError,
    create_vm_on_host,
    power_off_vm,
    power_on_vm,
)
from worker.settings import Settings

SCENARIO_PATH = Path(__file__).parents[2] / "lab" / "scenarios" / "readiness.json"
USER = "lab-admin"
PASSWORD = "s3cret-lab"
GIB = 1024**3
# VMs the tests create are named with this prefix, so read-back checks can leave them out.
CREATED = "recreated-"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO_PATH)


@pytest.fixture(scope="module")
def vcsim(
    vcsim_harness: Path, scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VcsimEndpoint]:
    run_dir = tmp_path_factory.mktemp("vcsim-readiness")
    process, endpoint = start_vcsim(
        vcsim_harness,
        inventory_from_scenario(scenario),
        run_dir,
        free_port(),
        USER,
        PASSWORD,
        run_dir / "vcsim.log",
    )
    try:
        yield endpoint
    finally:
        stop_vcsim(process, timeout=10)


@pytest.fixture(scope="module")
def si(vcsim: VcsimEndpoint) -> Iterator[vim.ServiceInstance]:
    instance = connect(vcsim.host, vcsim.port, vcsim.username, vcsim.password, verify_tls=False)
    try:
        yield instance
    finally:
        disconnect(instance)


@pytest.fixture(scope="module")
def inventory(si: vim.ServiceInstance) -> VCenterInventory:
    return read_inventory(si)


# --- hosts ---------------------------------------------------------------------------------------


def test_hosts_match_the_scenario(scenario: Scenario, inventory: VCenterInventory) -> None:
    assert sorted(h.name for h in inventory.hosts) == sorted(h.name for h in scenario.vcenter.hosts)
    for spec in scenario.vcenter.hosts:
        host = inventory.host(spec.name)
        assert host.connection_state == "connected"
        assert sorted(host.datastores) == sorted(spec.datastores), spec.name


def _standalone_hosts(scenario: Scenario, vcsim: VcsimEndpoint) -> list[str]:
    """The standalone hosts as the lab's settings name them to the worker and the CLI."""
    settings = lab_settings(
        scenario, 7233, 8233, "https://127.0.0.1:1", Path("ca.pem"), "secret", vcsim
    )
    parsed = Settings(vcenter_standalone_hosts=settings["FAILBACK_VCENTER_STANDALONE_HOSTS"])
    return parsed.vcenter_standalone_hosts


def test_esx03_is_a_standalone_host(
    scenario: Scenario, vcsim: VcsimEndpoint, inventory: VCenterInventory
) -> None:
    # vcsim lists every host of the scenario; the lab's settings say which vCenter does not
    # manage, and the readiness facts read from vcsim take that from them.
    facts = facts_from_inventory(inventory, _standalone_hosts(scenario, vcsim))
    managed = {h.name: h.managed_by_vcenter for h in facts.hosts}
    assert managed == {"esx-01": True, "esx-02": True, "esx-03": False}
    assert managed == {h.name: h.managed_by_vcenter for h in scenario.vcenter.hosts}
    # Without the lab's settings (a real vCenter), every host vCenter lists is one it manages.
    assert all(h.managed_by_vcenter for h in facts_from_inventory(inventory).hosts)


# --- datastores ----------------------------------------------------------------------------------


def test_datastores_have_their_type_size_and_hosts(
    scenario: Scenario, inventory: VCenterInventory
) -> None:
    assert sorted(d.name for d in inventory.datastores) == sorted(
        d.name for d in scenario.vcenter.datastores
    )
    for spec in scenario.vcenter.datastores:
        ds = inventory.datastore(spec.name)
        assert ds.type == spec.type
        assert ds.accessible
        assert ds.capacity_bytes == spec.capacity_gb * GIB
        assert 0 < ds.free_space_bytes <= ds.capacity_bytes
        mounted_on = sorted(h.name for h in scenario.vcenter.hosts if spec.name in h.datastores)
        assert sorted(ds.hosts) == mounted_on, spec.name


def test_datastore_access_per_host(inventory: VCenterInventory) -> None:
    access = {ds.name: (ds.type, sorted(ds.hosts)) for ds in inventory.datastores}
    assert access == {
        "ds-vmfs-01": ("VMFS", ["esx-01", "esx-02"]),
        "ds-vsan-01": ("vsan", ["esx-02"]),
        "ds-nfs-01": ("NFS", ["esx-01"]),
        "ds-vmfs-03": ("VMFS", ["esx-03"]),
    }
    hosts = {host.name: sorted(host.datastores) for host in inventory.hosts}
    assert hosts == {
        "esx-01": ["ds-nfs-01", "ds-vmfs-01"],
        "esx-02": ["ds-vmfs-01", "ds-vsan-01"],
        "esx-03": ["ds-vmfs-03"],
    }


# --- VMs -----------------------------------------------------------------------------------------


def test_vms_match_the_scenario(scenario: Scenario, inventory: VCenterInventory) -> None:
    read_back = sorted(vm.name for vm in inventory.vms if not vm.name.startswith(CREATED))
    assert read_back == sorted(vm.name for vm in scenario.vcenter.vms)
    types = {d.name: d.type for d in scenario.vcenter.datastores}
    for spec in scenario.vcenter.vms:
        vm = inventory.vm(spec.name)
        assert vm.host == spec.host, spec.name
        assert vm.power_state == spec.power_state, spec.name
        assert vm.snapshot_count == spec.snapshots, spec.name
        assert vm.guest_full_name == spec.guest_os_version, spec.name
        expected_disks = [
            (
                f"Hard disk {i + 1}",
                "rdm" if disk.kind == "rdm" else "vmdk",
                spec.disk_datastore(disk),
                disk.size_gb,
            )
            for i, disk in enumerate(spec.disks)
        ]
        assert [(d.label, d.kind, d.datastore, d.size_gb) for d in vm.disks] == expected_disks
        # A vSAN disk is a vmdk on a vsan datastore.
        assert [types[d.datastore] == "vsan" for d in vm.disks if d.datastore] == [
            disk.kind == "vsan" for disk in spec.disks
        ], spec.name
        assert sorted(vm.datastores) == sorted(
            {spec.datastore} | {spec.disk_datastore(d) for d in spec.disks}
        )


def test_master_target_snapshots(inventory: VCenterInventory) -> None:
    assert inventory.vm("mt-lnx-01").snapshot_count == 2
    assert inventory.vm("mt-win-01").snapshot_count == 0
    assert inventory.vm("mt-lnx-01").host == "esx-02"
    assert inventory.vm("mt-win-01").host == "esx-01"


def test_rdm_disk_is_read_back(inventory: VCenterInventory) -> None:
    disks = inventory.vm("vm-rdm").disks
    assert [d.kind for d in disks] == ["vmdk", "rdm"]
    rdm = disks[1]
    assert rdm.datastore == "ds-vmfs-01"
    assert rdm.size_gb == 100
    assert rdm.device_name is not None and rdm.device_name.startswith("/vmfs/devices/disks/naa.6")
    assert rdm.lun_uuid
    assert rdm.file_name == "[ds-vmfs-01] vm-rdm/vm-rdm_rdm_1.vmdk"
    assert all(d.kind == "vmdk" for vm in inventory.vms if vm.name != "vm-rdm" for d in vm.disks)


def test_vsan_disk_is_on_the_vsan_datastore(inventory: VCenterInventory) -> None:
    vm = inventory.vm("vm-vsan")
    assert vm.host == "esx-02"
    on_vsan = [d for d in vm.disks if inventory.datastore(d.datastore or "").type == "vsan"]
    assert [(d.kind, d.datastore, d.size_gb) for d in on_vsan] == [("vmdk", "ds-vsan-01", 80)]


def test_windows_2008_r2_sp1_is_readable(inventory: VCenterInventory) -> None:
    vm = inventory.vm("vm-w2k8")
    assert vm.guest_full_name == "Windows Server 2008 R2 SP1"
    assert vm.guest_id == "windows7Server64Guest"
    assert vm.configured_guest_full_name == "Microsoft Windows Server 2008 R2 (64-bit)"
    assert inventory.vm("mt-win-01").guest_id == "windows9Server64Guest"
    assert inventory.vm("vm-ok").guest_id == "otherLinux64Guest"


def test_standalone_vm_datastore_is_out_of_reach_of_master_targets(
    scenario: Scenario, vcsim: VcsimEndpoint, inventory: VCenterInventory
) -> None:
    vm = inventory.vm("vm-standalone")
    assert vm.host == "esx-03"
    assert vm.host in _standalone_hosts(scenario, vcsim)
    mt_hosts = {inventory.vm(name).host for name in ("mt-win-01", "mt-lnx-01")}
    assert mt_hosts == {"esx-01", "esx-02"}
    assert vm.datastores == ["ds-vmfs-03"]
    assert not mt_hosts & set(inventory.datastore("ds-vmfs-03").hosts)


def test_tools_follow_power_state(inventory: VCenterInventory) -> None:
    mt = inventory.vm("mt-win-01")
    assert (mt.power_state, mt.tools_status, mt.tools_running_status) == (
        "poweredOn",
        "toolsOk",
        "guestToolsRunning",
    )
    vm = inventory.vm("vm-ok")
    assert (vm.power_state, vm.tools_status) == ("poweredOff", "toolsNotRunning")


def test_inventory_lookups_raise_named_errors(inventory: VCenterInventory) -> None:
    with pytest.raises(HostNotFoundError):
        inventory.host("esx-99")
    with pytest.raises(DatastoreNotFoundError):
        inventory.datastore("ds-missing")
    with pytest.raises(VmNotFoundError):
        inventory.vm("no-such-vm")


def test_read_inventory_is_one_retrieval(
    si: vim.ServiceInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = vsphere_client._retrieve_all

    def counting(collector: Any, specs: Any, page_size: int | None = None) -> Iterator[Any]:
        calls.append(len(specs))
        return real(collector, specs, page_size)

    monkeypatch.setattr(vsphere_client, "_retrieve_all", counting)
    read_inventory(si)
    assert calls == [1]


def test_a_vm_with_an_rdm_disk_powers_on_and_off(si: vim.ServiceInstance) -> None:
    assert power_on_vm(si, "vm-rdm").tools_running_status == "guestToolsRunning"
    assert power_off_vm(si, "vm-rdm").power_state == "poweredOff"
    assert [d.kind for d in read_inventory(si).vm("vm-rdm").disks] == ["vmdk", "rdm"]


# --- alternate location recovery: re-create a VM on the master target's host --------------------


@pytest.mark.parametrize(
    ("host", "datastore", "os_type"),
    [("esx-01", "ds-vmfs-01", "Windows"), ("esx-02", "ds-vmfs-01", "Linux")],
)
def test_create_vm_on_host(
    si: vim.ServiceInstance, host: str, datastore: str, os_type: str
) -> None:
    name = f"{CREATED}{host}"

    state = create_vm_on_host(si, name, host, datastore, os_type, [40, 10])

    assert (state.name, state.host, state.datastores) == (name, host, [datastore])
    assert state.power_state == "poweredOff"
    vm = read_inventory(si).vm(name)
    assert [(d.kind, d.datastore, d.size_gb) for d in vm.disks] == [
        ("vmdk", datastore, 40),
        ("vmdk", datastore, 10),
    ]
    assert all(d.file_name and d.file_name.startswith(f"[{datastore}] {name}/") for d in vm.disks)
    assert vm.guest_id == vcenter_client.GUEST_IDS[os_type]
    assert vm.snapshot_count == 0
    # Idempotent: a retry finds the VM where it was asked for and creates nothing.
    assert create_vm_on_host(si, name, host, datastore, os_type, [40, 10]) == state
    assert [v.name for v in read_inventory(si).vms].count(name) == 1
    # The failover then boots it.
    assert power_on_vm(si, name).tools_running_status == "guestToolsRunning"


def test_create_vm_refuses_a_vm_that_exists_elsewhere(si: vim.ServiceInstance) -> None:
    with pytest.raises(VmAlreadyExistsError) as caught:
        create_vm_on_host(si, "vm-ok", "esx-02", "ds-vmfs-01", "Linux", [40])
    assert caught.value.host == "esx-01"


def test_create_vm_needs_a_datastore_the_host_mounts(si: vim.ServiceInstance) -> None:
    name = f"{CREATED}unreachable"
    with pytest.raises(DatastoreNotAccessibleError) as caught:
        create_vm_on_host(si, name, "esx-01", "ds-vsan-01", "Linux", [40])
    assert (caught.value.datastore, caught.value.host) == ("ds-vsan-01", "esx-01")
    with pytest.raises(HostNotFoundError):
        create_vm_on_host(si, name, "esx-99", "ds-vmfs-01", "Linux", [40])
    with pytest.raises(DatastoreNotFoundError):
        create_vm_on_host(si, name, "esx-01", "ds-missing", "Linux", [40])
    with pytest.raises(ValueError, match="os_type"):
        create_vm_on_host(si, name, "esx-01", "ds-vmfs-01", "Solaris", [40])
    assert read_vm_states(si, [name]) == {}


# --- the scenario model and the harness refuse impossible disks ----------------------------------


def _write(tmp_path: Path, mutate: Any) -> Path:
    data = json.loads(SCENARIO_PATH.read_text())
    mutate(data)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    return path


def _vm(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(vm for vm in data["vcenter"]["vms"] if vm["name"] == name)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _vm(d, "vm-ok")["disks"].append({"kind": "rdm", "datastore": "ds-nfs-01"}),
            "vms[2].disks[1].kind is 'rdm'",
        ),
        (
            lambda d: _vm(d, "vm-ok")["disks"].append({"kind": "vsan"}),
            "vms[2].disks[1].kind is 'vsan'",
        ),
        (
            lambda d: _vm(d, "vm-vsan")["disks"].append({"datastore": "ds-vsan-01"}),
            "vms[4].disks[2].kind is 'vmdk'",
        ),
        (
            lambda d: _vm(d, "vm-ok")["disks"][0].update(datastore="ds-vmfs-03"),
            "vms[2].disks[0].datastore 'ds-vmfs-03' is not accessible from host 'esx-01'",
        ),
        (
            lambda d: _vm(d, "vm-ok")["disks"][0].update(datastore="ds-nope"),
            "vms[2].disks[0].datastore names 'ds-nope'",
        ),
        (lambda d: _vm(d, "vm-ok")["disks"][0].update(kind="iscsi"), "vcenter.vms.2.disks.0.kind"),
        (lambda d: _vm(d, "vm-ok")["disks"][0].update(size_gb=0), "vcenter.vms.2.disks.0.size_gb"),
        (lambda d: _vm(d, "mt-lnx-01").update(snapshots=-1), "vcenter.vms.1.snapshots"),
        (lambda d: _vm(d, "mt-lnx-01").update(role="mt"), "vcenter.vms.1.role"),
        (
            lambda d: d["vcenter"]["hosts"][2].update(managed_by_vcenter="maybe"),
            "vcenter.hosts.2.managed_by_vcenter",
        ),
        (
            lambda d: d["vcenter"]["vms"].append(dict(_vm(d, "vm-ok"))),
            "vms[16].name 'vm-ok' is used twice",
        ),
    ],
)
def test_invalid_vcenter_fields_are_named(tmp_path: Path, mutate: Any, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_write(tmp_path, mutate))
    assert expected in str(caught.value)


def test_defaults_keep_older_scenarios_working(tmp_path: Path) -> None:
    def strip(data: dict[str, Any]) -> None:
        for host in data["vcenter"]["hosts"]:
            host.pop("managed_by_vcenter", None)
        for vm in data["vcenter"]["vms"]:
            for field in ("disks", "snapshots", "guest_os_version", "role"):
                vm.pop(field, None)

    scenario = load_scenario(_write(tmp_path, strip))
    assert all(h.managed_by_vcenter for h in scenario.vcenter.hosts)
    vm = scenario.vm("vm-standalone")
    assert (vm.snapshots, vm.guest_os_version, vm.role) == (0, None, "vm")
    assert [(d.kind, vm.disk_datastore(d), d.size_gb) for d in vm.disks] == [
        ("vmdk", "ds-vmfs-03", 40)
    ]
    inventory = inventory_from_scenario(scenario)
    assert inventory["vms"][6]["disks"] == [
        {"kind": "vmdk", "datastore": "ds-vmfs-03", "size_gb": 40}
    ]


def test_the_harness_refuses_an_rdm_on_nfs(
    vcsim_harness: Path, scenario: Scenario, tmp_path: Path
) -> None:
    inventory = inventory_from_scenario(scenario)
    inventory["vms"][2]["disks"].append({"kind": "rdm", "datastore": "ds-nfs-01", "size_gb": 10})
    with pytest.raises(VcsimError, match="mapping file needs a VMFS datastore"):
        start_vcsim(
            vcsim_harness, inventory, tmp_path, free_port(), USER, PASSWORD, tmp_path / "log"
        )
