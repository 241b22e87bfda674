"""The lab's Hyper-V host stand-in speaks WinRM (WS-Management over HTTPS, Basic) as a Windows
host does: the product's gateway reads it through pywinrm, unmodified, with the lab's CA; a
script the stand-in does not run fails as PowerShell fails, and wrong credentials are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError

from activities.hyperv import (
    COMMAND_LINE_LIMIT,
    HostUnreachable,
    HyperVEndpoints,
    HyperVFactsQuery,
    HyperVGateway,
    HyperVReads,
    command_line_length,
    vms_script,
)
from lab.certs import LabTls, make_lab_tls
from lab.hyperv_host.powershell import run_script
from lab.hyperv_host.server import HostConfig, HostStandInThread
from lab.hyperv_host.state import HostState, HyperVHost, HyperVVm

USER, PASSWORD = "CORP\\failback", "s3cret"


@pytest.fixture()
def tls(tmp_path: Path) -> LabTls:
    return make_lab_tls(tmp_path / "tls")


@pytest.fixture()
def site(tls: LabTls) -> Iterator[tuple[HostStandInThread, HostState]]:
    state = HostState(
        [HyperVHost("hv-01.corp.local", ["vSwitch-Prod"]), HyperVHost("hv-02.corp.local", [])],
        [
            HyperVVm(
                "web-01",
                "hv-01.corp.local",
                "7d0c9a3e-0000-4000-8000-000000000001",
                switches=["vSwitch-Prod"],
                checkpoints=1,
                heartbeat_after_seconds=0.5,
            )
        ],
    )
    with HostStandInThread(HostConfig(state, tls.server_cert, tls.server_key, USER, PASSWORD)) as s:
        yield s, state


def reads(stand_in: HostStandInThread, tls: LabTls, password: str = PASSWORD) -> HyperVReads:
    hosts = ("hv-01.corp.local", "hv-02.corp.local")
    endpoints = HyperVEndpoints(
        USER, password, {h: stand_in.url(h) for h in hosts}, ca_bundle=str(tls.ca_cert)
    )
    return HyperVReads(HyperVGateway(endpoints))


def winrm_session(stand_in: HostStandInThread, tls: LabTls) -> winrm.Session:
    """pywinrm's own session to hv-01, with the lab's CA and the right credentials."""
    return winrm.Session(
        stand_in.url("hv-01.corp.local"),
        auth=(USER, PASSWORD),
        transport="basic",
        server_cert_validation="validate",
        ca_trust_path=str(tls.ca_cert),
    )


def test_the_gateway_reads_a_vm_and_its_heartbeat_through_pywinrm(
    site: tuple[HostStandInThread, HostState], tls: LabTls
) -> None:
    stand_in, state = site
    hyperv = reads(stand_in, tls)
    off = hyperv.read_vm("web-01", "hv-01.corp.local")
    assert (off.found, off.power_state, off.heartbeat, off.platform) == (
        True,
        "Off",
        None,
        "hyperv",
    )
    state.start("web-01")
    booting = hyperv.read_vm("web-01", "hv-01.corp.local")
    assert (booting.power_state, booting.heartbeat) == ("Running", "NoContact")
    time.sleep(0.6)
    assert hyperv.read_vm("web-01", "hv-01.corp.local").heartbeat == "OkApplicationsHealthy"
    # The VM is on hv-01 only.
    assert not hyperv.read_vm("web-01", "hv-02.corp.local").found


def test_readiness_facts_of_each_host(
    site: tuple[HostStandInThread, HostState], tls: LabTls
) -> None:
    stand_in, _ = site
    facts = reads(stand_in, tls).read_onprem_facts(
        HyperVFactsQuery(hosts=["hv-01.corp.local", "hv-02.corp.local"], vm_names=["web-01"])
    )
    one, two = facts.hyperv_hosts
    assert one.reachable and one.switches == ["vSwitch-Prod"]
    assert [(v.name, v.state, v.checkpoints) for v in one.vms] == [("web-01", "Off", 1)]
    assert two.reachable and two.vms == [] and two.switches == []


def test_wrong_credentials_and_unknown_commands_fail_as_on_windows(
    site: tuple[HostStandInThread, HostState], tls: LabTls
) -> None:
    stand_in, _ = site
    facts = reads(stand_in, tls, password="wrong").read_onprem_facts(
        HyperVFactsQuery(hosts=["hv-01.corp.local"], vm_names=["web-01"])
    )
    assert not facts.hyperv_hosts[0].reachable
    assert "credentials" in (facts.hyperv_hosts[0].problem or "")
    session = winrm_session(stand_in, tls)
    result = session.run_ps("Stop-Computer -Force")
    assert result.status_code == 1
    assert b"is not recognized as the name of a cmdlet" in result.std_err
    with pytest.raises(InvalidCredentialsError):
        winrm.Session(
            stand_in.url("hv-01.corp.local"),
            auth=(USER, "wrong"),
            transport="basic",
            server_cert_validation="validate",
            ca_trust_path=str(tls.ca_cert),
        ).run_ps("exit 0")
    with pytest.raises(HostUnreachable):
        reads(stand_in, tls).gateway.run("hv-01.corp.local", "Get-Process")


def test_with_vmm_the_vmm_server_is_asked_and_says_which_host_runs_the_vm(
    tls: LabTls,
) -> None:
    """Issue 16 point 4: a site managed by System Center VMM is read through the VMM server
    (VMM's cmdlets find the VM wherever it runs; Hyper-V's Get-VM -ComputerName gives its
    heartbeat); a Hyper-V host has no VMM cmdlets and the VMM server runs no VM of its own."""
    state = HostState(
        [HyperVHost("hv-01.corp.local", ["vSwitch-Prod"]), HyperVHost("hv-02.corp.local", [])],
        [
            HyperVVm(
                "web-01",
                "hv-02.corp.local",
                "7d0c9a3e-0000-4000-8000-000000000002",
                switches=["vSwitch-Prod"],
                checkpoints=2,
                heartbeat_after_seconds=0,
            )
        ],
        vmm="vmm-01.corp.local",
    )
    config = HostConfig(state, tls.server_cert, tls.server_key, USER, PASSWORD)
    with HostStandInThread(config) as stand_in:
        names = ("hv-01.corp.local", "hv-02.corp.local", "vmm-01.corp.local")
        hyperv = HyperVReads(
            HyperVGateway(
                HyperVEndpoints(
                    USER, PASSWORD, {h: stand_in.url(h) for h in names}, ca_bundle=str(tls.ca_cert)
                )
            )
        )
        off = hyperv.read_vm("web-01", "vmm-01.corp.local", vmm=True)
        # VMM's PowerOff is read as Hyper-V's Off; the host is the one VMM names.
        assert (off.found, off.power_state, off.heartbeat, off.host) == (
            True,
            "Off",
            None,
            "hv-02.corp.local",
        )
        state.start("web-01")
        running = hyperv.read_vm("web-01", "vmm-01.corp.local", vmm=True)
        assert (running.power_state, running.heartbeat) == ("Running", "OkApplicationsHealthy")
        assert not hyperv.read_vm("gone-01", "vmm-01.corp.local", vmm=True).found
        # Asked as a Hyper-V host, the VMM server has no VMs; a host has no VMM cmdlets.
        assert not hyperv.read_vm("web-01", "vmm-01.corp.local").found
        with pytest.raises(HostUnreachable, match="Get-SCVirtualMachine"):
            hyperv.read_vm("web-01", "hv-02.corp.local", vmm=True)

        facts = hyperv.read_onprem_facts(
            HyperVFactsQuery(
                hosts=["vmm-01.corp.local"],
                vm_names=["web-01", "gone-01"],
                vmm_servers=["vmm-01.corp.local"],
            )
        )
        (vmm,) = facts.hyperv_hosts
        assert vmm.reachable, vmm.problem
        assert [(v.name, v.state, v.checkpoints, v.switches) for v in vmm.vms] == [
            ("web-01", "Running", 2, ["vSwitch-Prod"])
        ]


def test_a_hosts_vms_are_read_in_one_call_through_pywinrm(
    site: tuple[HostStandInThread, HostState], tls: LabTls
) -> None:
    stand_in, state = site
    hyperv = reads(stand_in, tls)
    read = hyperv.read_vms(["WEB-01", "ghost"], "hv-01.corp.local")
    # Get-VM finds a name whatever its case; the answer keeps the name asked.
    assert (read["WEB-01"].found, read["WEB-01"].power_state) == (True, "Off")
    assert not read["ghost"].found and read["ghost"].host == "hv-01.corp.local"
    state.start("web-01")
    assert hyperv.read_vms(["web-01"], "hv-01.corp.local")["web-01"].power_state == "Running"
    assert not hyperv.read_vms(["web-01"], "hv-02.corp.local")["web-01"].found


def test_a_command_line_past_cmds_limit_fails_as_on_windows(
    site: tuple[HostStandInThread, HostState], tls: LabTls
) -> None:
    stand_in, _ = site
    session = winrm_session(stand_in, tls)
    script = "# " + "x" * 3100 + "\nexit 0"
    assert command_line_length(script) > COMMAND_LINE_LIMIT
    result = session.run_ps(script)
    assert (result.status_code, result.std_err) == (1, b"The command line is too long.\r\n")
    assert session.run_ps("# " + "x" * 3000 + "\nexit 0").status_code == 0


def test_convertto_json_prints_what_is_nested_past_its_depth_as_a_string() -> None:
    """As Windows PowerShell does: a script that forgets -Depth gets each VM's switches (a list
    in a table in a list) as one string, so the product's script names its depth."""
    state = HostState(
        [HyperVHost("hv-01", ["a", "b"])],
        [HyperVVm("web-01", "hv-01", "id-1", switches=["a", "b"])],
    )
    script = vms_script(["web-01"])
    out, _, code = run_script(script, state, "hv-01")
    assert code == 0 and json.loads(out)["vms"][0]["switches"] == ["a", "b"]
    out, _, _ = run_script(script.replace(" -Depth 4", ""), state, "hv-01")
    assert json.loads(out)["vms"][0]["switches"] == "a b"
    out, _, _ = run_script("ConvertTo-Json -Compress -Depth 0 @{ x = @('1', '2') }", state, "hv-01")
    assert json.loads(out) == {"x": "1 2"}
