"""Lifecycle steps 1 and 2, shared by the plan and by a machine failed back on its own: every
readiness rule of the machines' architecture, then the reprotect to on-premises of those still
failed over to Azure and the durable wait until they replicate healthily."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.asr import AsrActivities
    from activities.hyperv import HyperVActivities, HyperVFactsQuery
    from activities.vsphere import OnPremFactsQuery, VSphereActivities
    from domain.architectures import architecture_named, assess_readiness
    from domain.models import (
        DiscoveredMachine,
        OperationResult,
        ReadAsrFactsInput,
        ReplicationWaitInput,
        ReplicationWaitResult,
        ReprotectToOnPremInput,
        ReprotectToOnPremOptions,
        ResolvedReprotectToOnPrem,
        Timings,
        VaultRef,
    )
    from domain.readiness import ReadinessReport, ReprotectChoice
    from workflows import versioning
    from workflows.calls import POINTS_TIMEOUT, long_wait, read, write


class Readiness(NamedTuple):
    report: ReadinessReport
    reprotects: list[ReprotectChoice]
    # The worker that keeps the recovery points the read listed (AsrFacts.listed_points_kept_on).
    points_kept_on: str | None


async def check_readiness(
    vault: VaultRef,
    machines: Sequence[DiscoveredMachine],
    recovery_plan: str | None,
    choices: ReprotectToOnPremOptions,
    log_storage_account_id: str | None,
    asr_facts_queue: str | None = None,
) -> Readiness:
    """Both systems read at once, then the architecture's rules (pure). Hyper-V's hosts, and
    classic's master targets, are the ones ASR names, so they are read after it. ASR's facts
    are read on `asr_facts_queue` when named (a plan's: workflows/calls.readiness_task_queue)."""
    architecture = architecture_named(machines[0].architecture) if machines else None
    own_vms = [m.vm_name for m in machines]
    if architecture is not None and architecture.onprem_platform == "hyperv":
        facts = await read(
            AsrActivities.read_asr_facts,
            ReadAsrFactsInput(vault=vault, machines=list(machines), recovery_plan=recovery_plan),
            timeout=POINTS_TIMEOUT,
            task_queue=asr_facts_queue,
        )
        onprem = await read(
            HyperVActivities.read_hyperv_facts,
            HyperVFactsQuery(
                hosts=[p.name for p in facts.hyperv_providers],
                vm_names=own_vms,
                vmm_servers=[p.name for p in facts.hyperv_providers if p.fabric_type == "VMM"],
            ),
        )
        return Readiness(
            *assess_readiness(facts, onprem, **choices.model_dump()), facts.listed_points_kept_on
        )
    read_asr = partial(
        read,
        AsrActivities.read_asr_facts,
        ReadAsrFactsInput(
            vault=vault,
            machines=list(machines),
            recovery_plan=recovery_plan,
            log_storage_account_id=log_storage_account_id,
        ),
        timeout=POINTS_TIMEOUT,
        task_queue=asr_facts_queue,
    )
    own_facts_only = workflow.patched(versioning.ONPREM_FACTS_OF_THE_PLAN)
    if own_facts_only and architecture is not None and architecture.onprem_vms_named_by_asr:
        facts = await read_asr()
        onprem = await read(
            VSphereActivities.read_onprem_facts,
            OnPremFactsQuery(vm_names=own_vms + [mt.name for mt in facts.master_targets]),
        )
    else:
        # Failbacks started before the patch asked for every VM of vCenter.
        query = OnPremFactsQuery(vm_names=own_vms if own_facts_only else None)
        facts, onprem = await asyncio.gather(
            read_asr(), read(VSphereActivities.read_onprem_facts, query)
        )
    return Readiness(
        *assess_readiness(facts, onprem, **choices.model_dump()), facts.listed_points_kept_on
    )


def blocking_text(report: ReadinessReport) -> str:
    blocking = report.blocking
    return f"not ready, nothing was started: {len(blocking)} blocking finding(s): " + "; ".join(
        f"{f.rule} {f.item_name or 'plan'}: {f.found}" for f in blocking
    )


async def reprotect_to_onprem(
    vault: VaultRef,
    machines: Sequence[DiscoveredMachine],
    choices: Sequence[ReprotectChoice],
    timings: Timings,
    waiting: Callable[[], None],
) -> tuple[list[OperationResult], ReplicationWaitResult]:
    """The reprotects at once (each found or sent once), then `waiting()` and the wait for the
    initial replication (one heartbeating activity: the history does not grow with its hours)."""
    by_name = {m.item.name: m for m in machines}
    results = await asyncio.gather(
        *(
            write(
                AsrActivities.reprotect_to_onprem,
                ReprotectToOnPremInput(
                    vault=vault,
                    item=by_name[choice.item_name].item,
                    architecture=by_name[choice.item_name].architecture,
                    vm_name=by_name[choice.item_name].vm_name,
                    not_before=workflow.now(),
                    poll_interval_seconds=timings.job_poll_interval_seconds,
                    options=ResolvedReprotectToOnPrem(**choice.model_dump(exclude={"item_name"})),
                ),
                timings,
            )
            for choice in choices
        )
    )
    waiting()
    replication: ReplicationWaitResult = await long_wait(
        AsrActivities.wait_until_replicating,
        ReplicationWaitInput(
            vault=vault,
            items=[by_name[c.item_name].item for c in choices],
            poll_interval_seconds=timings.replication_poll_interval_seconds,
            timeout_seconds=timings.replication_timeout_seconds,
        ),
        timings.replication_timeout_seconds,
        timings.replication_poll_interval_seconds,
    )
    return list(results), replication
