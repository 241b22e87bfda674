"""A worker keeps at most SHELLS_PER_HOST WinRM shells open on one host (WinRM allows a user 30
by default), however many reads a plan or a boot group asks for at once; and a host's VMs are
asked in one script each time the command line can hold them."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from activities.hyperv import (
    COMMAND_LINE_LIMIT,
    HOST_SCRIPT,
    SHELLS_PER_HOST,
    HyperVFactsQuery,
    HyperVGateway,
    HyperVReads,
    command_line_length,
)
from lab.hyperv_host.powershell import run_script
from lab.hyperv_host.state import HostState, HyperVHost, HyperVVm


class CountingGateway(HyperVGateway):
    """The real bound around the lab's PowerShell (lab/hyperv_host/powershell.py) in place of
    the WinRM call: counts the shells open per host and keeps each script it ran."""

    def __init__(self, state: HostState | None = None, shells_per_host: int = SHELLS_PER_HOST):
        super().__init__(None, shells_per_host)
        self.state = state or HostState([HyperVHost("hv-01", []), HyperVHost("hv-00", [])], [])
        self.open: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.scripts: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def _run(self, host: str, script: str) -> Any:
        with self.lock:
            self.open[host.lower()] += 1
            self.most[host.lower()] = max(self.most[host.lower()], self.open[host.lower()])
            self.scripts.append((host, script))
        try:
            time.sleep(0.01)
            out, err, code = run_script(script, self.state, host)
            assert code == 0, err
            return json.loads(out.splitlines()[-1])
        finally:
            with self.lock:
                self.open[host.lower()] -= 1


def test_reads_from_many_threads_keep_to_the_hosts_bound() -> None:
    gateway = CountingGateway(shells_per_host=3)
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(lambda i: gateway.run(f"HV-0{i % 2}", HOST_SCRIPT), range(60)))
    assert gateway.most == {"hv-00": 3, "hv-01": 3}


def test_a_hosts_name_in_another_case_is_the_same_host() -> None:
    gateway = CountingGateway(shells_per_host=2)
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: gateway.run("hv-01" if i % 2 else "HV-01", HOST_SCRIPT), range(30)))
    assert gateway.most == {"hv-01": 2}


def _site(vms_on_first: int, name_length: int = 6) -> HostState:
    return HostState(
        [HyperVHost("hv-01", ["vSwitch-Prod"]), HyperVHost("hv-02", [])],
        [
            HyperVVm(
                f"vm-{i:0{name_length - 3}d}",
                "hv-01",
                f"id-{i}",
                switches=["vSwitch-Prod"],
                checkpoints=i % 2,
            )
            for i in range(vms_on_first)
        ],
    )


def test_readiness_reads_a_hosts_vms_in_one_script_in_the_order_asked() -> None:
    gateway = CountingGateway(_site(40))
    names = [f"vm-{i:03d}" for i in range(40)]
    facts = HyperVReads(gateway).read_onprem_facts(
        HyperVFactsQuery(hosts=["hv-01", "hv-02"], vm_names=list(reversed(names)))
    )
    one, two = facts.hyperv_hosts
    assert (one.name, two.name) == ("hv-01", "hv-02")
    assert one.reachable and [vm.name for vm in one.vms] == list(reversed(names))
    assert [(vm.checkpoints, vm.switches) for vm in one.vms[:2]] == [
        (1, ["vSwitch-Prod"]),
        (0, ["vSwitch-Prod"]),
    ]
    assert two.reachable and two.vms == []
    # Each host's listing, and hv-01's 40 VMs in one script.
    assert Counter(host for host, _ in gateway.scripts) == {"hv-01": 2, "hv-02": 1}


def test_a_hosts_vms_are_asked_in_as_many_scripts_as_the_command_line_takes() -> None:
    # 300 VMs of 60-character names: more than one command line of cmd.exe holds.
    state = _site(300, name_length=60)
    names = sorted(state.vms)
    gateway = CountingGateway(state)
    read = HyperVReads(gateway).read_vms([*names, "not-here"], "hv-01")
    assert list(read) == [*names, "not-here"]
    assert all(read[n].found and read[n].power_state == "Off" for n in names)
    assert not read["not-here"].found
    assert len(gateway.scripts) > 1
    assert all(command_line_length(script) <= COMMAND_LINE_LIMIT for _, script in gateway.scripts)
