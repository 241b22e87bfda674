"""What the CLI does, as functions the demo and the tests call too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from worker.settings import Settings
from workflows.decisions import approval_refusal
from workflows.machine import MachineFailbackWorkflow, machine_workflow_id
from workflows.models import (
    ApprovalRequest,
    DiscoverPlanInput,
    MachineFailbackInput,
    MachineFailbackResult,
    MachineStatus,
    OperatorDecision,
    Phase,
    PlanFailbackInput,
    PlanFailbackResult,
    PlanPointChoice,
    PlanStatus,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    ReprotectToAzureOptions,
    Timings,
    VaultRef,
)
from workflows.plan import PlanFailbackWorkflow, plan_workflow_id
from workflows.readiness import ReadinessReport, assess
from workflows.recovery_points import RecoveryPointSelectionError, choose_recovery_points


class CommandError(RuntimeError):
    """A refusal the CLI prints as it is, with what to do next, and exits non-zero."""


def timings_from(settings: Settings) -> Timings:
    overrides = {
        "job_poll_interval_seconds": settings.job_poll_seconds,
        "verify_poll_interval_seconds": settings.verify_poll_seconds,
        "verify_timeout_seconds": settings.verify_timeout_seconds,
        "agent_poll_interval_seconds": settings.agent_poll_seconds,
        "agent_wait_timeout_seconds": settings.agent_wait_timeout_seconds,
        "replication_poll_interval_seconds": settings.replication_poll_seconds,
        "replication_timeout_seconds": settings.replication_timeout_seconds,
    }
    return Timings(**{k: v for k, v in overrides.items() if v is not None})


def failback_input(
    settings: Settings,
    machine: str,
    azure_vm_name: str | None = None,
    process_server_id: str | None = None,
    policy_id: str | None = None,
) -> MachineFailbackInput:
    settings.require("azure_resource_group", "azure_vault", "azure_recovery_resource_group")
    assert settings.azure_resource_group and settings.azure_vault
    assert settings.azure_recovery_resource_group
    return MachineFailbackInput(
        vault=VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault),
        machine=machine,
        recovery_resource_group=settings.azure_recovery_resource_group,
        azure_vm_name=azure_vm_name,
        reprotect_to_azure=ReprotectToAzureOptions(
            process_server_id=process_server_id,
            policy_id=policy_id or settings.azure_reprotect_policy_id,
        ),
        timings=timings_from(settings),
    )


async def start_failback(
    client: Client, settings: Settings, params: MachineFailbackInput
) -> WorkflowHandle[MachineFailbackWorkflow, MachineFailbackResult]:
    workflow_id = machine_workflow_id(params.vault.vault, params.machine)
    return await _start_once(
        client, settings, MachineFailbackWorkflow.run, params, workflow_id, params.machine
    )


async def _start_once(
    client: Client, settings: Settings, run: Any, params: Any, workflow_id: str, what: str
) -> Any:
    """One failback per id: a running or completed one is never started a second time (only a
    failed one may be started again)."""
    try:
        return await client.start_workflow(
            run,
            params,
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError as err:
        raise CommandError(
            f"a failback of {what} already exists ({workflow_id}); watch it with "
            f"`failback status {workflow_id}`. A completed failback is not started again."
        ) from err


async def machine_status(client: Client, workflow_id: str) -> MachineStatus:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.query(MachineFailbackWorkflow.status)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no failback with id {workflow_id}; `failback start` prints the id"
            ) from err
        raise


async def approve(client: Client, workflow_id: str, approved_by: str, comment: str) -> str:
    """Refuses unless the failback is awaiting approval; the workflow checks again itself.

    Returns what the approval covers, in words."""
    if not approved_by.strip():
        raise CommandError("--by must name who approves the commit")
    handle = client.get_workflow_handle(workflow_id)
    request = ApprovalRequest(approved_by=approved_by, comment=comment)
    if await workflow_kind(client, workflow_id) == "PlanFailbackWorkflow":
        plan = await plan_status(client, workflow_id)
        if plan.phase != "awaiting-approval":
            raise CommandError(
                f"not approved: the plan is {plan.phase} ({plan.waiting_for}); approve when "
                "every machine is verified and it is awaiting approval"
            )
        await handle.signal(PlanFailbackWorkflow.approve_commit, request)
        names = ", ".join(m.vm_name for m in plan.machines)
        return f"recovery plan {plan.recovery_plan} ({len(plan.machines)} machines: {names})"
    status = await machine_status(client, workflow_id)
    refusal = approval_refusal(status.phase)
    if refusal is not None:
        raise CommandError(f"not approved: {refusal}")
    await handle.signal(MachineFailbackWorkflow.approve_commit, request)
    return status.vm_name or status.machine


async def decide_agent(client: Client, workflow_id: str, decision: OperatorDecision) -> None:
    status = await machine_status(client, workflow_id)
    if status.phase != Phase.AGENT_STUCK:
        raise CommandError(
            f"the failback is {status.phase}, not stuck waiting for the agent; nothing to decide"
        )
    await client.get_workflow_handle(workflow_id).signal(
        MachineFailbackWorkflow.operator_decision,
        decision,
    )


@dataclass
class Closed:
    status: WorkflowExecutionStatus | None


async def execution_state(client: Client, workflow_id: str) -> Closed:
    description = await client.get_workflow_handle(workflow_id).describe()
    return Closed(status=description.status)


def plan_input(
    settings: Settings, plan: str, recovery_point: str, policy_id: str | None = None
) -> PlanFailbackInput:
    single = failback_input(settings, plan, policy_id=policy_id)
    return PlanFailbackInput(
        vault=single.vault,
        recovery_plan=plan,
        recovery_point=recovery_point,  # type: ignore[arg-type]
        recovery_resource_group=single.recovery_resource_group,
        reprotect_to_azure=single.reprotect_to_azure,
        timings=single.timings,
    )


async def start_plan_failback(
    client: Client, settings: Settings, params: PlanFailbackInput
) -> WorkflowHandle[PlanFailbackWorkflow, PlanFailbackResult]:
    workflow_id = plan_workflow_id(params.vault.vault, params.recovery_plan)
    return await _start_once(
        client,
        settings,
        PlanFailbackWorkflow.run,
        params,
        workflow_id,
        f"recovery plan {params.recovery_plan}",
    )


def preview_plan(settings: Settings, params: PlanFailbackInput) -> PlanPointChoice:
    """Read the plan and its points and choose, exactly as the workflow will; only reads."""
    from temporalio.exceptions import ApplicationError

    from worker.wiring import build_asr_activities

    asr = build_asr_activities(settings)
    try:
        plan = asr.discover_recovery_plan(
            DiscoverPlanInput(
                vault=params.vault,
                recovery_plan=params.recovery_plan,
                recovery_resource_group=params.recovery_resource_group,
                reprotect_to_azure=params.reprotect_to_azure,
            )
        )
    except ApplicationError as err:
        raise CommandError(str(err)) from err
    points = asr.read_recovery_points(
        ReadRecoveryPointsInput(vault=params.vault, machines=plan.machines)
    )
    try:
        return choose_recovery_points(points, params.recovery_point)
    except RecoveryPointSelectionError as refused:
        raise CommandError(
            "the plan cannot fail back with --recovery-point "
            f"{params.recovery_point}:\n  " + "\n  ".join(refused.problems)
        ) from refused


def readiness_report(settings: Settings, params: PlanFailbackInput) -> ReadinessReport:
    """Read both systems and apply R1-R15, exactly as the plan workflow does; only reads."""
    from temporalio.exceptions import ApplicationError

    from activities.vsphere import OnPremFactsQuery
    from worker.wiring import build_asr_activities, build_vsphere_activities

    asr = build_asr_activities(settings)
    vsphere = build_vsphere_activities(settings)
    try:
        plan = asr.discover_recovery_plan(
            DiscoverPlanInput(
                vault=params.vault,
                recovery_plan=params.recovery_plan,
                recovery_resource_group=params.recovery_resource_group,
                reprotect_to_azure=params.reprotect_to_azure,
            )
        )
        facts = asr.read_asr_facts(ReadAsrFactsInput(vault=params.vault, machines=plan.machines))
    except ApplicationError as err:
        raise CommandError(str(err)) from err
    onprem = vsphere.read_onprem_facts(OnPremFactsQuery())
    report, _ = assess(facts, onprem, **params.reprotect_to_onprem.model_dump())
    return report


async def workflow_kind(client: Client, workflow_id: str) -> str:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no failback with id {workflow_id}; `failback start` prints the id"
            ) from err
        raise
    return description.workflow_type


async def plan_status(client: Client, workflow_id: str) -> PlanStatus:
    return await client.get_workflow_handle(workflow_id).query(PlanFailbackWorkflow.status)


def web_ui_link(settings: Settings, workflow_id: str) -> str | None:
    if not settings.temporal_ui_url:
        return None
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{workflow_id}"
    )
