"""FO-PLAN: which plans fail over through the recovery plan's own failover (one ASR job) and
which machine by machine, boot group by boot group (domain/decisions.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.decisions import fails_over_as_plan, hyperv_fails_over_as_plan
from domain.models import (
    Architecture,
    AzureVmRef,
    DataSync,
    DiscoveredMachine,
    ProtectedItemRef,
    ResolvedReprotectToAzure,
)
from domain.readiness import Location, MachinePlan


def machine(
    index: int, architecture: Architecture = "hyperv", group: str | None = None
) -> DiscoveredMachine:
    name = f"vm-{index:03d}"
    return DiscoveredMachine(
        item=ProtectedItemRef(fabric="site", container="cloud", name=f"{name}-item"),
        vm_name=name,
        onprem_host="hv-01.corp.local" if architecture == "hyperv" else None,
        architecture=architecture,
        replication_group=group,
        os_type="Windows",
        protection_state="UnplannedFailoverCommitted",
        allowed_operations=["PlannedFailover"],
        azure_vm=AzureVmRef(resource_group="rg", name=name),
        reprotect_to_azure=ResolvedReprotectToAzure(),
    )


def placed(m: DiscoveredMachine, location: Location = "original") -> MachinePlan:
    return MachinePlan(
        item_name=m.item.name,
        location=location,
        master_target_id=None,
        master_target_host=m.onprem_host,
        datastore=None,
        reprotect_first=False,
    )


def test_a_hyperv_plan_for_synchronization_to_its_own_vms_fails_over_whole() -> None:
    machines = [machine(i) for i in range(3)]
    assert hyperv_fails_over_as_plan(machines, "for-synchronization", [placed(m) for m in machines])
    # The rule that came before it does not say so: without the patch, machine by machine.
    assert not fails_over_as_plan(machines)


def test_for_downtime_fails_over_machine_by_machine() -> None:
    """What a plan's job does at its suspension was never recorded: each machine's own job is
    suspended and resumed at the cut-over."""
    machines = [machine(i) for i in range(3)]
    assert not hyperv_fails_over_as_plan(machines, "for-downtime", [placed(m) for m in machines])


def test_one_vm_created_at_an_alternate_location_keeps_the_plan_machine_by_machine() -> None:
    """The plan's input cannot name the host to create it on (reference 3.4)."""
    machines = [machine(i) for i in range(3)]
    placements = [placed(machines[0]), placed(machines[1], "alternate"), placed(machines[2])]
    assert not hyperv_fails_over_as_plan(machines, "for-synchronization", placements)


def test_a_machine_without_a_placement_or_of_another_architecture_is_not_decided_for() -> None:
    machines = [machine(i) for i in range(2)]
    assert not hyperv_fails_over_as_plan(machines, "for-synchronization", [placed(machines[0])])
    assert not hyperv_fails_over_as_plan(
        machines, "for-synchronization", [placed(machines[0]), None]
    )
    vmware = [machine(0, "modernized"), machine(1, "classic")]
    assert not hyperv_fails_over_as_plan(vmware, "for-synchronization", map(placed, vmware))
    assert not hyperv_fails_over_as_plan([], "for-synchronization", [])


@given(
    st.lists(
        st.tuples(st.sampled_from(["hyperv", "modernized", "classic"]), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["for-synchronization", "for-downtime"]),
)
def test_whole_only_when_every_machine_is_hyperv_at_its_own_vm_for_synchronization(
    shape: list[tuple[Architecture, bool]], data_sync: DataSync
) -> None:
    machines = [machine(i, architecture) for i, (architecture, _) in enumerate(shape)]
    placements = [
        placed(m, "alternate" if elsewhere else "original")
        for m, (_, elsewhere) in zip(machines, shape, strict=True)
    ]
    expected = data_sync == "for-synchronization" and all(
        architecture == "hyperv" and not elsewhere for architecture, elsewhere in shape
    )
    assert hyperv_fails_over_as_plan(machines, data_sync, placements) is expected
