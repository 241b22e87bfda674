"""Benchmark scenarios, generated in Python: N Linux machines already replicating back to
on-premises (classic: through one Linux master target; modernized: through one replication
appliance, already reprotected with InMageRcm), VMFS datastores, recovery plans of at most 100
items in 7 boot groups, and fixed simulated durations for every ASR job and agent registration.

Every size has 7 boot groups per plan, so that the critical path (7 x the failover) is the same
at every size and the overhead ratio isolates the effect of scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.models import Architecture
from lab.scenario import MAX_BOOT_GROUPS, MAX_PLAN_ITEMS, Scenario, ThrottlingSpec


@dataclass(frozen=True)
class Durations:
    """The simulated durations of the bench, in seconds."""

    # A real failover back to VMware takes many minutes (shut the Azure VM down, final sync,
    # power on); 30 s keeps the run short while the 1 s polls stay a small part of it.
    # `python -m bench.run --failover-seconds 5` reruns the earlier, poll-dominated setting.
    failover: float = 30.0
    commit: float = 2.0
    reprotect: float = 2.0
    agent_registration: float = 10.0


DURATIONS = Durations()
HOSTS = 4
DATASTORES = 2
MASTER_TARGET = "mt-linux-01"
APPLIANCE = "appliance-01"
# One hour of history (12 crash-consistent points and 1 application-consistent point per item):
# the points are irrelevant to the benchmark, and a day's 288 per item would only make every
# read of 1,000 items slower.
RETENTION_SECONDS = 3600
# The bench holds the worker to ARM's own budgets (250 reads, +25/s; 200 writes, +10/s per
# principal), although it polls every second where production polls every 15 s: the lab's other
# uses run them 15 times faster (lab/scenario.py ThrottlingSpec.lab_clock_factor).
ARM_AT_FACE_VALUE: dict[str, Any] = {"lab_clock_factor": 1.0}
# A share of ARM's read bucket for the principal (bench.run --arm-read-share): at 1,000
# machines, 0.25 puts as many reads on each token as 4,000 machines would on a whole bucket.
# The simulator refuses beyond it and the worker keeps to it.
ARM_READ_SHARE = 1.0


def arm_throttling() -> dict[str, Any]:
    if ARM_READ_SHARE == 1.0:
        return dict(ARM_AT_FACE_VALUE)
    arm = ThrottlingSpec()  # ARM's own figures, as the simulator has them
    return {
        **ARM_AT_FACE_VALUE,
        "read_burst": max(1, round(arm.read_burst * ARM_READ_SHARE)),
        "reads_per_second": arm.reads_per_second * ARM_READ_SHARE,
    }


def vm_name(index: int) -> str:
    return f"vm-{index:04d}"


def item_name(index: int) -> str:
    return f"{vm_name(index)}-item"


def plan_name(index: int) -> str:
    return f"plan-{index:02d}"


def split(count: int, parts: int) -> list[int]:
    """`count` as `parts` sizes differing by at most one, larger first (100/7: 15,15,14,...)."""
    base, extra = divmod(count, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def plan_sizes(machines: int, plan_size: int = MAX_PLAN_ITEMS) -> list[int]:
    """Plans of at most `plan_size` items: 1,000 machines are 10 plans of 100."""
    plans = -(-machines // plan_size)
    return split(machines, plans)


def _hyperv_scenario(
    machines: int,
    durations: Durations,
    items: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    hosts: list[str],
) -> dict[str, Any]:
    """Hyper-V: the same machines, failed over to Azure and committed there, their VMs off on
    4 Hyper-V hosts (the lab's WinRM stand-in), no vCenter."""
    switch = "vSwitch-Prod"
    hv_hosts = [h.replace("esx", "hv") for h in hosts]
    for index, item in enumerate(items, start=1):
        item.update(
            state="failed-over-to-azure",
            os_type="Windows",
            os_version="Windows Server 2022",
            hyperv_host=hv_hosts[index % HOSTS],
            hyperv_switches=[switch],
            initial_replication_seconds=durations.reprotect,
        )
        item.pop("agent_registration_delay_seconds", None)
    data = {
        "name": f"bench-{machines}-hyperv",
        "description": f"Benchmark: {machines} Hyper-V VMs in Azure, their VMs off on "
        f"{HOSTS} hosts; {len(plans)} recovery plan(s); jobs: failover {durations.failover:g} s "
        f"per boot group, commit {durations.commit:g} s, reprotect {durations.reprotect:g} s",
        "hyperv": {
            "hosts": [{"name": h, "switches": [switch]} for h in hv_hosts],
            "vms": [
                {"name": vm_name(i), "host": hv_hosts[i % HOSTS], "switches": [switch]}
                for i in range(1, machines + 1)
            ],
        },
        "azure": {
            "architecture": "hyperv",
            "fabric": "hv-site-bench",
            "throttling": arm_throttling(),
            "items": items,
            "jobs": {
                "failover_seconds": durations.failover,
                "commit_seconds": durations.commit,
                "reprotect_seconds": durations.reprotect,
            },
            "recovery_plans": plans,
        },
    }
    Scenario.model_validate(data)
    return data


def bench_scenario(
    machines: int,
    durations: Durations | None = None,
    boot_groups: int = MAX_BOOT_GROUPS,
    plan_size: int = MAX_PLAN_ITEMS,
    architecture: Architecture = "classic",
) -> dict[str, Any]:
    """The scenario as a JSON-ready dict (validated against lab.scenario.Scenario)."""
    durations = durations or DURATIONS
    datastores = [f"ds-vmfs-{d + 1:02d}" for d in range(DATASTORES)]
    hosts = [f"esx-{h + 1:02d}.corp.local" for h in range(HOSTS)]
    # Classic replicates back through a master target VM; modernized through a replication
    # appliance, which the fabric lists (its VM need not be in vCenter).
    vms: list[dict[str, Any]] = []
    if architecture == "classic":
        vms.append(
            {
                "name": MASTER_TARGET,
                "role": "master-target",
                "host": hosts[0],
                "datastore": datastores[0],
                "os_type": "Linux",
                "power_state": "poweredOn",
            }
        )
    items: list[dict[str, Any]] = []
    for i in range(1, machines + 1):
        vms.append(
            {
                "name": vm_name(i),
                "host": hosts[i % HOSTS],
                "datastore": datastores[i % DATASTORES],
                "os_type": "Linux",
                "power_state": "poweredOff",
            }
        )
        items.append(
            {
                "name": item_name(i),
                "vm_name": vm_name(i),
                "azure_vm_name": vm_name(i),
                "os_type": "Linux",
                "os_version": "Ubuntu 22.04",
                "recovery_points": {
                    "crash_consistent_every_seconds": 300,
                    "app_consistent_every_seconds": 3600,
                    "retention_seconds": RETENTION_SECONDS,
                    "lag_seconds": 0,
                },
                "agent_registration_delay_seconds": durations.agent_registration,
            }
        )
    plans = []
    first = 1
    for p, size in enumerate(plan_sizes(machines, plan_size)):
        groups = []
        for group_size in split(size, min(boot_groups, size)):
            groups.append([item_name(i) for i in range(first, first + group_size)])
            first += group_size
        plans.append({"name": plan_name(p + 1), "boot_groups": groups})
    if architecture == "hyperv":
        return _hyperv_scenario(machines, durations, items, plans, hosts)
    through = MASTER_TARGET if architecture == "classic" else f"appliance {APPLIANCE} (modernized)"
    replicates_back_through: dict[str, Any] = (
        {"master_target_vm": MASTER_TARGET}
        if architecture == "classic"
        else {"architecture": "modernized", "appliances": [{"name": APPLIANCE, "host": hosts[0]}]}
    )
    data = {
        "name": f"bench-{machines}" + ("" if architecture == "classic" else "-modernized"),
        "description": (
            f"Benchmark: {machines} Linux VMs replicating back through {through} on VMFS, "
            f"{len(plans)} recovery plan(s) of {boot_groups} boot groups; jobs: failover "
            f"{durations.failover:g} s, commit {durations.commit:g} s, reprotect "
            f"{durations.reprotect:g} s; agents register {durations.agent_registration:g} s "
            "after the commit."
        ),
        "vcenter": {
            "datacenter": "DC-Bench",
            "datastores": [{"name": d, "type": "VMFS", "capacity_gb": 65536} for d in datastores],
            "hosts": [{"name": h, "datastores": datastores} for h in hosts],
            "vms": vms,
        },
        "azure": {
            **replicates_back_through,
            "throttling": arm_throttling(),
            "items": items,
            "jobs": {
                "failover_seconds": durations.failover,
                "commit_seconds": durations.commit,
                "reprotect_seconds": durations.reprotect,
            },
            "recovery_plans": plans,
        },
    }
    Scenario.model_validate(data)
    return data
