"""Both sides of a verification in one activity: the on-premises VM (in vCenter, or on its
Hyper-V host), the Azure VM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import is_cancelled_exception

from activities.arm_reads import urgent_reads
from activities.asr import AsrActivities
from activities.azure_vm_rounds import AzureVmRounds
from activities.hyperv import READS_AT_ONCE as HYPERV_READS_AT_ONCE
from activities.hyperv import HyperVReads
from activities.liveness import beating, kept_alive
from activities.threads import in_activity_threads, map_in_threads
from activities.vsphere import VCenterReads
from domain.models import (
    AzureVmRef,
    AzureVmState,
    FailoverThenRead,
    FailoverThenReadInput,
    OnPremVmQuery,
    OnPremVmState,
    PlanFailoverThenRead,
    PlanFailoverThenReadInput,
    VerificationRead,
    VerificationReadInput,
    VerificationReads,
    VerificationReadsInput,
)

# A side's state, or a host's states by VM: what a read returns, or its unreadable stand-in.
_State = TypeVar("_State")


class VerificationActivities:
    """One activity instead of one per side: a verification runs for every machine of a boot
    group at once, and each activity costs the server a task, three history events and often a
    workflow task of its own (bench/RESULTS.md).

    A side that cannot be read is a failed check, not a failed activity: the workflow looks
    again at its next verification poll, as it did when each side had its own retries."""

    def __init__(
        self,
        asr: AsrActivities,
        azure: AzureVmRounds,
        vcenter: VCenterReads,
        executor: Executor | None = None,
        hyperv: HyperVReads | None = None,
    ) -> None:
        # `asr` for the fused failover (its write, with every guarantee of `fail_over`); the
        # reads go to Compute (in rounds: activities/azure_vm_rounds.py) and vCenter.
        self._asr = asr
        self._azure_vms = azure
        self._vcenter = vcenter
        self._hyperv = hyperv
        # The worker's activity threads: the reads after a failover are the same blocking SDK
        # calls as a verification read's, and as many run at once.
        self._executor = executor

    @activity.defn
    @kept_alive
    def read_verification_state(self, params: VerificationReadInput) -> VerificationRead:
        return self._read(params)

    @activity.defn
    @kept_alive
    def read_verification_states(self, params: VerificationReadsInput) -> VerificationReads:
        """FO-PLAN: the plan's machines still booting at its job's end, read again together
        (Azure in one round, vCenter in one read, a Hyper-V host in one script)."""
        return VerificationReads(states=self._read_all(params.verifications))

    @activity.defn
    async def fail_over_then_read(self, params: FailoverThenReadInput) -> FailoverThenRead:
        """The failover, and the first verification read as soon as its job has ended.

        A boot group's machines all end their jobs together; a read of its own would be one
        more activity task and workflow task per machine in that burst (bench/RESULTS.md).
        A retry after the job ended resumes the job (nothing is sent again) and reads again."""
        operation = await self._asr.fail_over(params.failover)
        read = asyncio.ensure_future(
            in_activity_threads(self._executor, self._read, params.verification)
        )
        state = await beating(read, [operation.job_id] if operation.job_id else [])
        return FailoverThenRead(operation=operation, state=state)

    @activity.defn
    async def fail_over_plan_then_read(
        self, params: PlanFailoverThenReadInput
    ) -> PlanFailoverThenRead:
        """FO-PLAN: the plan's failover, and every machine's first verification read, together,
        as soon as its job has ended.

        When a plan's job ends, all its machines are on-premises: reads of their own were an
        activity task and a workflow task more per machine in the burst that followed, the one
        that held up the approval at 1,000 machines (bench/RESULTS.md, "2026-12-05"). Here the
        Azure side is one round for the whole plan and vCenter's one read of all its VMs. A
        retry after the job ended resumes the job (nothing is sent again) and reads again."""
        operation = await self._asr.fail_over_plan(params.failover)
        read = asyncio.ensure_future(
            in_activity_threads(self._executor, self._read_all, params.verifications)
        )
        states = await beating(read, [operation.job_id] if operation.job_id else [])
        return PlanFailoverThenRead(operation=operation, states=states)

    def _read_all(self, queries: dict[str, VerificationReadInput]) -> dict[str, VerificationRead]:
        names = list(queries)
        with urgent_reads():
            azure = self._azure_all([queries[n].azure for n in names])
        onprem = self._onprem_all([queries[n].onprem for n in names])
        return {
            name: VerificationRead(onprem=o, azure=a)
            for name, o, a in zip(names, onprem, azure, strict=True)
        }

    def _azure_all(self, refs: list[AzureVmRef]) -> list[AzureVmState]:
        try:
            answers = self._azure_vms.read_vms(refs)
        except Exception as err:
            if is_cancelled_exception(err):
                raise
            answers = [err] * len(refs)
        return [
            _unreadable_after(
                answer,
                partial(AzureVmState.unreadable, ref),
                f"Azure read of {ref.name}",
            )
            if isinstance(answer, BaseException)
            else answer
            for ref, answer in zip(refs, answers, strict=True)
        ]

    def _onprem_all(self, queries: list[OnPremVmQuery]) -> list[OnPremVmState]:
        """vCenter's VMs in one read where it can (a batch costs vCenter and the worker one
        decode, not one each), a Hyper-V host's in one script each (a shell and a PowerShell
        start per VM cost seconds a plan), the hosts a few at once; any other (a VM through VMM,
        or one a batch could not read) as a verification reads it, with its own errors."""
        in_vcenter = [q.vm_name for q in queries if q.platform != "hyperv"]
        together: dict[str, OnPremVmState] = {}
        if in_vcenter:
            try:
                together = self._vcenter.read_known_vms(in_vcenter)
            except Exception as err:
                if is_cancelled_exception(err):
                    raise
                activity.logger.info("vCenter read of %d VMs failed: %s", len(in_vcenter), err)
        by_host: dict[str, list[str]] = {}
        for q in queries:
            if q.platform == "hyperv" and not q.via_vmm and q.host:
                by_host.setdefault(q.host, []).append(q.vm_name)
        hosts = list(by_host.items())
        for answer in map_in_threads(self._hyperv_host, hosts, HYPERV_READS_AT_ONCE):
            together.update(answer)
        apart = [q for q in queries if q.vm_name not in together]
        read_apart = iter(map_in_threads(self._onprem, apart, HYPERV_READS_AT_ONCE))
        return [together[q.vm_name] if q.vm_name in together else next(read_apart) for q in queries]

    def _hyperv_host(self, host_and_names: tuple[str, list[str]]) -> dict[str, OnPremVmState]:
        host, names = host_and_names
        hyperv = self._hyperv
        assert hyperv is not None, "the worker reads Hyper-V hosts"
        return _read_or_unreadable(
            lambda: hyperv.read_vms(names, host),
            lambda reason: {
                name: OnPremVmState.unreadable(name, reason, "hyperv", host) for name in names
            },
            f"Hyper-V read of {len(names)} VMs on {host}",
        )

    def _read(self, params: VerificationReadInput) -> VerificationRead:
        # The on-premises VM is the side still changing (booting): read last, it is as fresh
        # as it can be when the verdict is made. A verification decides what happens next: its
        # ARM reads take the budget's urgent lane.
        with urgent_reads():
            azure = self._azure(params.azure)
        return VerificationRead(onprem=self._onprem(params.onprem), azure=azure)

    def _onprem(self, query: OnPremVmQuery) -> OnPremVmState:
        if query.platform == "hyperv":
            hyperv, host = self._hyperv, query.host or ""
            assert hyperv is not None, "the worker reads Hyper-V hosts"
            return _read_or_unreadable(
                lambda: hyperv.read_vm(query.vm_name, host, query.via_vmm),
                lambda reason: OnPremVmState.unreadable(query.vm_name, reason, "hyperv", host),
                f"Hyper-V read of {query.vm_name} on {host}",
            )
        return _read_or_unreadable(
            lambda: self._vcenter.read_vm(query.vm_name),
            lambda reason: OnPremVmState.unreadable(query.vm_name, reason),
            f"vCenter read of {query.vm_name}",
        )

    def _azure(self, ref: AzureVmRef) -> AzureVmState:
        return _read_or_unreadable(
            lambda: self._azure_vms.read_vm(ref),
            lambda reason: AzureVmState.unreadable(ref, reason),
            f"Azure read of {ref.name}",
        )


def _read_or_unreadable(
    read: Callable[[], _State], unreadable: Callable[[str], _State], what: str
) -> _State:
    try:
        return read()
    except Exception as err:
        return _unreadable_after(err, unreadable, what)


def _unreadable_after(err: BaseException, unreadable: Callable[[str], _State], what: str) -> _State:
    """What a side that failed to read is: an unreadable state (a cancellation is raised)."""
    if is_cancelled_exception(err):
        raise err
    activity.logger.warning("%s failed: %s", what, err)
    return unreadable(_reason(err))


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
