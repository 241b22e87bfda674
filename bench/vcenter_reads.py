"""What readiness's vCenter read costs the worker: the whole inventory against a plan's own VMs.

Starts vcsim with a bench scenario's inventory of N VMs (the lab's harness, built by `make
setup`), then times, in this process, the whole-inventory read (`read_inventory`), the name map
(`vm_refs_by_name`) and the read of 100 named VMs with every host and datastore
(`read_inventory_of`, what a plan's readiness reads):

    .venv/bin/python -m bench.vcenter_reads 1000 [--lab-dir .lab]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from activities import vsphere_client
from bench.scenarios import bench_scenario
from lab import vcenter
from lab.localhost import free_port
from lab.scenario import Scenario

PLAN_SIZE = 100
_T = TypeVar("_T")


def timed(label: str, read: Callable[[], _T], count: Callable[[_T], int]) -> _T:
    wall, cpu = time.perf_counter(), time.process_time()
    result = read()
    print(
        f"{label}: {count(result)} VMs, {time.perf_counter() - wall:.2f} s wall, "
        f"{time.process_time() - cpu:.2f} CPU-s in the reader"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vms", type=int)
    parser.add_argument("--lab-dir", type=Path, default=Path(".lab"))
    args = parser.parse_args()
    scenario = Scenario.model_validate(bench_scenario(args.vms, architecture="modernized"))
    binary = vcenter.build_harness(args.lab_dir)
    with tempfile.TemporaryDirectory() as run_dir:
        run = Path(run_dir)
        process, endpoint = vcenter.start_vcsim(
            binary,
            vcenter.inventory_from_scenario(scenario),
            run,
            free_port(),
            "bench",
            "bench",
            run / "vcsim.log",
        )
        try:
            si = vsphere_client.connect(
                endpoint.host, endpoint.port, endpoint.username, endpoint.password, False
            )
            for _ in range(2):
                timed("whole inventory", lambda: vsphere_client.read_inventory(si), _vms)
            refs = timed("name map", lambda: vsphere_client.vm_refs_by_name(si), len)
            plan = [ref for name in sorted(refs)[:PLAN_SIZE] for ref in refs[name]]
            for _ in range(2):
                timed(
                    f"a plan's {PLAN_SIZE}",
                    lambda: vsphere_client.read_inventory_of(si, plan),
                    _vms,
                )
        finally:
            vcenter.stop_vcsim(process, timeout=10)


def _vms(inventory: vsphere_client.VCenterInventory) -> int:
    return len(inventory.vms)


if __name__ == "__main__":
    main()
