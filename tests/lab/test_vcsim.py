"""The lab's vCenter (vcsim harness) and the pyvmomi adapter, against a real harness process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from activities import vsphere_client
from activities.vsphere_client import (
    VmNotFoundError,
    connect,
    disconnect,
    read_vm_states,
)
from lab import vcenter
from lab.localhost import free_port
from lab.scenario import load_scenario
from lab.vcenter import (
    VcsimEndpoint,
    VcsimError,
    build_harness,
    inventory_from_scenario,
    start_vcsim,
    stop_vcsim,
)
from lab.vcenter_client import power_off_vm, power_on_vm

# The classic single-VM scenario these tests were written against (its inventory); the lab's
# default is modernized now.
CLASSIC_SINGLE_VM = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "single-vm.json"
USER = "lab-admin"
PASSWORD = "s3cret-lab"
GIB = 1024**3


@pytest.fixture(scope="module")
def vcsim(vcsim_harness: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcsimEndpoint]:
    run_dir = tmp_path_factory.mktemp("vcsim-run")
    inventory = inventory_from_scenario(load_scenario(CLASSIC_SINGLE_VM))
    process, endpoint = start_vcsim(
        vcsim_harness, inventory, run_dir, free_port(), USER, PASSWORD, run_dir / "vcsim.log"
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


def _inventory(si: vim.ServiceInstance, kind: type, properties: list[str]) -> dict[str, Any]:
    """name -> {property: value} for every entity of a kind, read through the collector."""
    content = si.RetrieveContent()
    assert content.viewManager is not None
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    collector = vmodl.query.PropertyCollector
    try:
        spec = collector.FilterSpec(
            objectSet=[
                collector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        collector.TraversalSpec(
                            name="v", path="view", skip=False, type=vim.view.ContainerView
                        )
                    ],
                )
            ],
            propSet=[collector.PropertySpec(type=kind, pathSet=["name", *properties])],
        )
        result = content.propertyCollector.RetrievePropertiesEx([spec], collector.RetrieveOptions())
        entities: dict[str, Any] = {}
        for obj in result.objects if result else []:
            props = {p.name: p.val for p in obj.propSet}
            entities[props.pop("name")] = {**props, "_ref": obj.obj}
        return entities
    finally:
        view.DestroyView()


def test_inventory_matches_the_scenario_and_nothing_else(si: vim.ServiceInstance) -> None:
    assert set(_inventory(si, vim.Datacenter, [])) == {"DC-Onprem"}

    hosts = _inventory(si, vim.HostSystem, [])
    assert set(hosts) == {"esx-01.corp.local"}

    datastores = _inventory(si, vim.Datastore, ["summary.type", "summary.capacity", "host"])
    assert set(datastores) == {"ds-vmfs-01"}
    ds = datastores["ds-vmfs-01"]
    assert ds["summary.type"] == "VMFS"
    assert ds["summary.capacity"] == 2048 * GIB
    mounted_on = {mount.key._moId for mount in ds["host"]}
    assert mounted_on == {hosts["esx-01.corp.local"]["_ref"]._moId}

    assert set(_inventory(si, vim.VirtualMachine, [])) == {"web-01", "mt-linux-01"}
    states = read_vm_states(si, ["web-01", "mt-linux-01"])
    web, mt = states["web-01"], states["mt-linux-01"]
    assert (web.host, web.datastores) == ("esx-01.corp.local", ["ds-vmfs-01"])
    assert (mt.host, mt.datastores) == ("esx-01.corp.local", ["ds-vmfs-01"])
    assert web.power_state == "poweredOff"
    assert web.tools_running_status == "guestToolsNotRunning"
    assert mt.power_state == "poweredOn"
    assert mt.tools_running_status == "guestToolsRunning"
    assert mt.guest_state == "running"


def test_guest_id_follows_the_os(si: vim.ServiceInstance) -> None:
    vms = _inventory(si, vim.VirtualMachine, ["config.guestId", "guest.guestFamily"])
    assert vms["web-01"]["config.guestId"] == "otherLinux64Guest"
    assert vms["web-01"]["guest.guestFamily"] == "linuxGuest"


def test_wrong_password_is_refused(vcsim: VcsimEndpoint) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        connect(vcsim.host, vcsim.port, vcsim.username, "not-the-password", verify_tls=False)


def test_power_on_brings_the_guest_up(si: vim.ServiceInstance) -> None:
    power_off_vm(si, "web-01")

    state = power_on_vm(si, "web-01")

    assert state.power_state == "poweredOn"
    assert state.tools_running_status == "guestToolsRunning"
    assert state.guest_state == "running"
    assert read_vm_states(si, ["web-01"])["web-01"] == state
    assert power_on_vm(si, "web-01") == state  # already on: no-op


def test_power_off(si: vim.ServiceInstance) -> None:
    power_on_vm(si, "web-01")

    state = power_off_vm(si, "web-01")

    assert state.power_state == "poweredOff"
    assert state.tools_running_status == "guestToolsNotRunning"
    assert state.guest_state == "notRunning"
    assert read_vm_states(si, ["web-01"])["web-01"] == state
    assert power_off_vm(si, "web-01") == state  # already off: no-op


def test_unknown_vm_raises_not_found(si: vim.ServiceInstance) -> None:
    with pytest.raises(VmNotFoundError) as caught:
        power_on_vm(si, "no-such-vm")
    assert caught.value.name == "no-such-vm"
    assert isinstance(caught.value, LookupError)
    with pytest.raises(VmNotFoundError):
        power_off_vm(si, "no-such-vm")


def test_read_vm_states_omits_unknown_names(si: vim.ServiceInstance) -> None:
    states = read_vm_states(si, ["web-01", "no-such-vm"])
    assert set(states) == {"web-01"}
    assert read_vm_states(si, []) == {}


def test_retrieval_follows_continuation_tokens() -> None:
    # vcsim 0.24.2 ignores maxObjects and never pages, so paging is checked against a fake.
    pages = {
        None: SimpleNamespace(objects=["a", "b"], token="t1"),
        "t1": SimpleNamespace(objects=["c"], token="t2"),
        "t2": SimpleNamespace(objects=["d"], token=None),
    }
    calls: list[str] = []

    class FakeCollector:
        def RetrievePropertiesEx(self, specSet: Any, options: Any) -> Any:
            assert options.maxObjects == 2
            calls.append("first")
            return pages[None]

        def ContinueRetrievePropertiesEx(self, token: str) -> Any:
            calls.append(token)
            return pages[token]

    objects = list(vsphere_client._retrieve_all(FakeCollector(), [], page_size=2))
    assert objects == ["a", "b", "c", "d"]
    assert calls == ["first", "t1", "t2"]


def test_build_is_cached(vcsim_harness: Path, vcsim_lab_dir: Path) -> None:
    before = vcsim_harness.stat().st_mtime_ns
    assert build_harness(vcsim_lab_dir) == vcsim_harness
    assert vcsim_harness.stat().st_mtime_ns == before


def test_missing_go_names_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vcenter.shutil, "which", lambda _name: None)
    with pytest.raises(VcsimError, match="apt-get install golang-go golang-github-vmware"):
        build_harness(tmp_path)


def test_harness_failure_reports_the_log(vcsim_harness: Path, tmp_path: Path) -> None:
    inventory = inventory_from_scenario(load_scenario(CLASSIC_SINGLE_VM))
    inventory["hosts"][0]["datastores"] = ["ds-missing"]
    with pytest.raises(VcsimError, match="unknown datastore"):
        start_vcsim(
            vcsim_harness, inventory, tmp_path, free_port(), USER, PASSWORD, tmp_path / "log"
        )
