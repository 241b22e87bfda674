"""One activity reads both sides of a verification; a side that fails is an unreadable state."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import CancelledError
from temporalio.testing import ActivityEnvironment

from activities.verification import HYPERV_READS_AT_ONCE, VerificationActivities
from domain.models import (
    Architecture,
    AzureVmRef,
    AzureVmState,
    FailoverInput,
    FailoverThenReadInput,
    OnPremVmQuery,
    OnPremVmState,
    OperationResult,
    PlanFailoverInput,
    PlanFailoverThenRead,
    PlanFailoverThenReadInput,
    ProtectedItemRef,
    VaultRef,
    VerificationReadInput,
)

QUERY = VerificationReadInput(
    onprem=OnPremVmQuery(vm_name="web-01"), azure=AzureVmRef(resource_group="rg", name="web-01")
)


class Side:
    def __init__(self, answer: Any = None, error: BaseException | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, 0

    def read(self, _: Any) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


def activities(
    onprem: Side, azure: Side, failover: Callable[[FailoverInput], Any] | None = None
) -> VerificationActivities:
    vcenter, compute, asr = type("V", (), {})(), type("C", (), {})(), type("A", (), {})()
    vcenter.read_vm = onprem.read  # type: ignore[attr-defined]
    compute.read_vm = azure.read  # type: ignore[attr-defined]
    asr.fail_over = failover  # type: ignore[attr-defined]
    return VerificationActivities(asr, compute, vcenter)  # type: ignore[arg-type]


ON = OnPremVmState(vm_name="web-01", found=True, power_state="poweredOn")
OFF = AzureVmState(resource_group="rg", name="web-01", exists=True, power_state="deallocated")


def test_both_sides_are_read_in_one_call() -> None:
    onprem, azure = Side(ON), Side(OFF)
    read = ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)
    assert (read.onprem, read.azure) == (ON, OFF)
    assert onprem.calls == azure.calls == 1


def test_an_unreadable_vcenter_is_a_failed_check_and_azure_is_still_read() -> None:
    onprem, azure = Side(error=ConnectionError("vcsim: connection refused")), Side(OFF)
    read = ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)
    assert not read.onprem.found
    assert read.onprem.power_state == "ConnectionError: vcsim: connection refused"
    assert read.azure == OFF


def test_an_unreadable_azure_vm_is_not_taken_for_a_stopped_one() -> None:
    onprem, azure = Side(ON), Side(error=TimeoutError("read timed out"))
    read = ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)
    assert read.onprem == ON
    assert read.azure.exists
    assert read.azure.power_state == "unreadable (TimeoutError: read timed out)"


def test_cancellation_is_not_swallowed() -> None:
    onprem, azure = Side(error=CancelledError("cancelled")), Side(OFF)
    with pytest.raises(CancelledError):
        ActivityEnvironment().run(activities(onprem, azure).read_verification_state, QUERY)


FAILOVER = FailoverInput(
    vault=VaultRef(resource_group="rg", vault="vault"),
    item=ProtectedItemRef(fabric="f", container="c", name="web-01-item"),
    not_before=datetime(2026, 11, 30, tzinfo=UTC),
    poll_interval_seconds=1,
    recovery_point_type="LatestTime",
)
JOB = OperationResult(
    operation="unplannedFailover",
    job_id="job-1",
    state="Succeeded",
    started_at=None,
    ended_at=None,
    resumed=False,
)


async def test_the_failover_then_reads_both_sides_once_its_job_has_ended() -> None:
    order: list[str] = []
    onprem, azure = Side(ON), Side(OFF)

    async def fail_over(params: FailoverInput) -> OperationResult:
        assert params == FAILOVER
        order.append("failover")
        assert onprem.calls == azure.calls == 0, "read before the job ended"
        return JOB

    done = await ActivityEnvironment().run(
        activities(onprem, azure, fail_over).fail_over_then_read,
        FailoverThenReadInput(failover=FAILOVER, verification=QUERY),
    )
    assert order == ["failover"]
    assert done.operation == JOB
    assert (done.state.onprem, done.state.azure) == (ON, OFF)
    assert onprem.calls == azure.calls == 1


async def test_an_unreadable_side_after_the_failover_does_not_fail_the_failover() -> None:
    onprem, azure = Side(error=ConnectionError("vcsim: connection refused")), Side(OFF)

    async def fail_over(_: FailoverInput) -> OperationResult:
        return JOB

    done = await ActivityEnvironment().run(
        activities(onprem, azure, fail_over).fail_over_then_read,
        FailoverThenReadInput(failover=FAILOVER, verification=QUERY),
    )
    assert done.operation == JOB
    assert not done.state.onprem.found
    assert "connection refused" in (done.state.onprem.power_state or "")


async def test_a_failed_failover_reads_nothing() -> None:
    onprem, azure = Side(ON), Side(OFF)

    async def fail_over(_: FailoverInput) -> OperationResult:
        raise RuntimeError("ASR job failed: 8038")

    with pytest.raises(RuntimeError, match="8038"):
        await ActivityEnvironment().run(
            activities(onprem, azure, fail_over).fail_over_then_read,
            FailoverThenReadInput(failover=FAILOVER, verification=QUERY),
        )
    assert onprem.calls == azure.calls == 0


async def test_a_slow_read_after_the_failover_beats_the_jobs_name() -> None:
    """A retry resumes the job named in the last heartbeat: the beats during the read must name
    it as the failover's own beats do, not overwrite it with nothing."""

    class SlowSide(Side):
        def read(self, query: Any) -> Any:
            time.sleep(0.5)
            return super().read(query)

    async def fail_over(_: FailoverInput) -> OperationResult:
        return JOB

    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, heartbeat_timeout=timedelta(seconds=0.4)
    )
    beats: list[tuple[Any, ...]] = []
    environment.on_heartbeat = lambda *details: beats.append(details)
    done = await environment.run(
        activities(SlowSide(ON), Side(OFF), fail_over).fail_over_then_read,
        FailoverThenReadInput(failover=FAILOVER, verification=QUERY),
    )
    assert done.state.onprem == ON
    assert beats and all(details == ("job-1",) for details in beats), beats


async def plan_failover_then_read(
    verification: VerificationActivities,
    queries: dict[str, VerificationReadInput],
    plan: str,
    architecture: Architecture = "classic",
) -> PlanFailoverThenRead:
    return await ActivityEnvironment().run(
        verification.fail_over_plan_then_read,
        PlanFailoverThenReadInput(
            failover=PlanFailoverInput(
                vault=FAILOVER.vault,
                recovery_plan=plan,
                architecture=architecture,
                recovery_point_type="AzureVmDisks" if architecture == "hyperv" else "LatestTime",
                not_before=FAILOVER.not_before,
            ),
            verifications=queries,
        ),
    )


async def test_the_plans_failover_then_reads_every_machine_together() -> None:
    """FO-PLAN: after the plan's job, vCenter's known VMs in one batch (any other VM alone),
    every Azure VM in one call of the rounds; a side that fails is that machine's unreadable
    state, not the activity's failure."""
    calls: list[Any] = []
    names = ["web-01", "web-02", "web-03"]

    class VCenter:
        def read_known_vms(self, vm_names: list[str]) -> dict[str, OnPremVmState]:
            calls.append(("vcenter batch", vm_names))
            return {n: ON.model_copy(update={"vm_name": n}) for n in vm_names if n != "web-03"}

        def read_vm(self, name: str) -> OnPremVmState:
            calls.append(("vcenter alone", name))
            return ON.model_copy(update={"vm_name": name})

    class Rounds:
        def read_vms(self, refs: list[AzureVmRef]) -> list[AzureVmState | BaseException]:
            calls.append(("azure", [r.name for r in refs]))
            return [
                TimeoutError("read timed out")
                if r.name == "web-02"
                else OFF.model_copy(update={"name": r.name})
                for r in refs
            ]

    class Asr:
        async def fail_over_plan(self, params: PlanFailoverInput) -> OperationResult:
            calls.append(("failover", params.recovery_plan))
            return JOB

    verification = VerificationActivities(Asr(), Rounds(), VCenter())  # type: ignore[arg-type]
    queries = {
        f"{n}-item": VerificationReadInput(
            onprem=OnPremVmQuery(vm_name=n), azure=AzureVmRef(resource_group="rg", name=n)
        )
        for n in names
    }
    done = await plan_failover_then_read(verification, queries, "plan-erp")
    assert calls == [
        ("failover", "plan-erp"),
        ("azure", names),
        ("vcenter batch", names),
        ("vcenter alone", "web-03"),
    ]
    assert done.operation == JOB
    assert sorted(done.states) == [f"{n}-item" for n in names]
    assert all(done.states[f"{n}-item"].onprem.vm_name == n for n in names)
    assert done.states["web-01-item"].azure.power_state == "deallocated"
    assert (
        done.states["web-02-item"].azure.power_state == "unreadable (TimeoutError: read timed out)"
    )


async def test_a_plans_hyperv_vms_are_read_in_a_script_per_host_the_hosts_a_few_at_once() -> None:
    """FO-PLAN, Hyper-V: a host's VMs in one read (one WinRM shell, one PowerShell start), up
    to HYPERV_READS_AT_ONCE hosts at once, each answer kept with its machine; a VM through VMM
    is read alone; a host that cannot be reached is the unreadable state of each of its
    machines, and only theirs."""
    names = [f"vm-{i:02d}" for i in range(20)]
    in_flight, most = [0], [0]
    lock = threading.Lock()
    batches: list[tuple[str, list[str]]] = []
    alone: list[str] = []

    class HyperV:
        def read_vms(self, vm_names: list[str], host: str) -> dict[str, OnPremVmState]:
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
                batches.append((host, list(vm_names)))
            try:
                time.sleep(0.05)
                if host == "hv-3":
                    raise ConnectionError("host unreachable")
                return {
                    n: OnPremVmState(
                        vm_name=n, found=True, power_state="Running", host=host, platform="hyperv"
                    )
                    for n in vm_names
                }
            finally:
                with lock:
                    in_flight[0] -= 1

        def read_vm(self, name: str, host: str, vmm: bool = False) -> OnPremVmState:
            assert vmm and host == "vmm-01"
            alone.append(name)
            return OnPremVmState(
                vm_name=name, found=True, power_state="Running", host="hv-9", platform="hyperv"
            )

    class Rounds:
        def read_vms(self, refs: list[AzureVmRef]) -> list[AzureVmState | BaseException]:
            return [OFF.model_copy(update={"name": r.name}) for r in refs]

    class Asr:
        async def fail_over_plan(self, params: PlanFailoverInput) -> OperationResult:
            return JOB

    verification = VerificationActivities(
        Asr(),  # type: ignore[arg-type]
        Rounds(),  # type: ignore[arg-type]
        type("NoVCenter", (), {})(),  # type: ignore[arg-type]
        hyperv=HyperV(),  # type: ignore[arg-type]
    )

    def query(i: int, name: str) -> OnPremVmQuery:
        if i >= 18:
            return OnPremVmQuery(vm_name=name, platform="hyperv", host="vmm-01", via_vmm=True)
        return OnPremVmQuery(vm_name=name, platform="hyperv", host=f"hv-{i % 4}")

    queries = {
        f"{n}-item": VerificationReadInput(
            onprem=query(i, n), azure=AzureVmRef(resource_group="rg", name=n)
        )
        for i, n in enumerate(names)
    }
    done = await plan_failover_then_read(verification, queries, "plan-hyperv", "hyperv")
    assert sorted(batches) == [
        (f"hv-{h}", [n for i, n in enumerate(names[:18]) if i % 4 == h]) for h in range(4)
    ]
    assert 1 < most[0] <= HYPERV_READS_AT_ONCE
    assert alone == ["vm-18", "vm-19"]
    unreachable = "unreadable (ConnectionError: host unreachable)"
    for i, name in enumerate(names):
        onprem = done.states[f"{name}-item"].onprem
        assert onprem.vm_name == name
        if i >= 18:
            assert (onprem.host, onprem.power_state) == ("hv-9", "Running")
        else:
            assert onprem.host == f"hv-{i % 4}"
            assert onprem.power_state == (unreachable if i % 4 == 3 else "Running")
