"""A worker keeps at most SHELLS_PER_HOST WinRM shells open on one host (WinRM allows a user 30
by default), however many reads a plan or a boot group asks for at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from activities.hyperv import (
    SHELLS_PER_HOST,
    HyperVFactsQuery,
    HyperVGateway,
    HyperVReads,
)


class CountingGateway(HyperVGateway):
    """The real bound around a stand-in for the WinRM call: counts the shells open per host."""

    def __init__(self, shells_per_host: int = SHELLS_PER_HOST) -> None:
        super().__init__(None, shells_per_host)
        self.open: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _run(self, host: str, script: str) -> Any:
        with self.lock:
            self.open[host.lower()] += 1
            self.most[host.lower()] = max(self.most[host.lower()], self.open[host.lower()])
        try:
            time.sleep(0.01)
            if "Get-VMSwitch" in script:  # the host's listing
                return {"vms": [f"vm-{i:02d}" for i in range(40)], "switches": ["vSwitch-Prod"]}
            return {"found": True, "state": "Off", "checkpoints": 0, "switches": ["vSwitch-Prod"]}
        finally:
            with self.lock:
                self.open[host.lower()] -= 1


def test_reads_from_many_threads_keep_to_the_hosts_bound() -> None:
    gateway = CountingGateway(shells_per_host=3)
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(lambda i: gateway.run(f"HV-0{i % 2}", "Get-VM"), range(60)))
    assert gateway.most == {"hv-00": 3, "hv-01": 3}


def test_a_hosts_name_in_another_case_is_the_same_host() -> None:
    gateway = CountingGateway(shells_per_host=2)
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: gateway.run("hv-01" if i % 2 else "HV-01", "Get-VM"), range(30)))
    assert gateway.most == {"hv-01": 2}


def test_readiness_reads_a_plans_vms_a_few_at_once_in_the_order_asked() -> None:
    gateway = CountingGateway()
    names = [f"vm-{i:02d}" for i in range(40)]
    facts = HyperVReads(gateway).read_onprem_facts(
        HyperVFactsQuery(hosts=["hv-01", "hv-02"], vm_names=list(reversed(names)))
    )
    assert [h.name for h in facts.hyperv_hosts] == ["hv-01", "hv-02"]
    for host in facts.hyperv_hosts:
        assert host.reachable and [vm.name for vm in host.vms] == list(reversed(names))
    assert 1 < gateway.most["hv-01"] <= SHELLS_PER_HOST
