"""The CLI's reads of the systems a failback touches (preview, check, the report's
observations): through the gateways of ASR, Compute and vCenter, never through activities.
Only reads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from activities.asr import AsrGateway
from activities.compute import ComputeGateway
from activities.hyperv import HyperVFactsQuery
from domain.architectures import assess_readiness
from domain.errors import FailbackError
from domain.models import (
    AzureVmRef,
    AzureVmState,
    OnPremVmState,
    PlanFailbackInput,
    PlanPointChoice,
    ReadAsrFactsInput,
    ReadRecoveryPointsInput,
    VaultRef,
)
from domain.readiness import ReadinessReport
from domain.recovery_points import RecoveryPointSelectionError, choose_recovery_points
from starter.commands import CommandError, read_failback
from starter.report import AsrJob, FailbackReport, MachineView, Observation, build_report
from worker.settings import Settings, SettingsError
from worker.wiring import (
    azure_clients,
    build_asr_gateway,
    build_asr_reads,
    build_compute_gateway,
    build_hyperv_reads,
    build_vcenter_reads,
)


def preview_plan(settings: Settings, params: PlanFailbackInput) -> PlanPointChoice:
    """Read the plan and its points and choose, exactly as the workflow will; only reads."""
    asr = build_asr_reads(settings)
    try:
        plan = asr.discover_recovery_plan(params.discovery())
    except FailbackError as err:
        raise CommandError(str(err)) from err
    points = asr.read_recovery_points(
        ReadRecoveryPointsInput(vault=params.vault, machines=plan.machines)
    )
    try:
        return choose_recovery_points(points, params.recovery_point, plan.machines[0].architecture)
    except RecoveryPointSelectionError as refused:
        raise CommandError(
            "the plan cannot fail back with --recovery-point "
            f"{params.recovery_point}:\n  " + "\n  ".join(refused.problems)
        ) from refused


def confirm_exists(settings: Settings, params: PlanFailbackInput) -> None:
    """Read the plan from the vault (only reads); CommandError if unknown."""
    try:
        build_asr_reads(settings).discover_recovery_plan(params.discovery())
    except FailbackError as err:
        raise CommandError(f"nothing was started: {err}") from err


def name_machine(settings: Settings, name: str) -> tuple[str, str]:
    """(item name, VM name) of the machine `name` names in the vault, either of the two (only
    reads); CommandError if it names none, or several."""
    settings.require("azure_resource_group", "azure_vault")
    assert settings.azure_resource_group and settings.azure_vault
    vault = VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault)
    try:
        return build_asr_reads(settings).name_machine(vault, name)
    except FailbackError as err:
        raise CommandError(f"nothing was started: {err}") from err


def readiness_report(settings: Settings, params: PlanFailbackInput) -> ReadinessReport:
    """Read both systems and apply the architecture's rules, as the plan workflow does."""
    asr = build_asr_reads(settings)
    try:
        plan = asr.discover_recovery_plan(params.discovery())
        facts = asr.read_asr_facts(
            ReadAsrFactsInput(
                vault=params.vault,
                machines=plan.machines,
                recovery_plan=params.recovery_plan,
                log_storage_account_id=params.reprotect_to_azure.log_storage_account_id,
            )
        )
    except FailbackError as err:
        raise CommandError(str(err)) from err
    if facts.architecture == "hyperv":
        onprem = build_hyperv_reads(settings).read_onprem_facts(
            HyperVFactsQuery(
                hosts=[p.name for p in facts.hyperv_providers],
                vm_names=[m.vm_name for m in plan.machines],
            )
        )
    else:
        vcenter = build_vcenter_reads(settings)
        try:
            onprem = vcenter.read_facts()
        finally:
            vcenter.close()
    report, _ = assess_readiness(facts, onprem, **params.reprotect_to_onprem.model_dump())
    return report


VCENTER_SETTINGS = (
    "FAILBACK_VCENTER_HOST, FAILBACK_VCENTER_PORT, FAILBACK_VCENTER_USER and "
    "FAILBACK_VCENTER_PASSWORD"
)
AZURE_SETTINGS = (
    "FAILBACK_AZURE_ENDPOINT, FAILBACK_AZURE_CA_BUNDLE, FAILBACK_AZURE_SUBSCRIPTION_ID and the "
    "Azure credentials"
)


def _wire(value: Any) -> str | None:
    """The wire value of a string or an SDK enum (whose str() is 'Class.MEMBER')."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _job_error_text(error: Any) -> str:
    service = getattr(error, "service_error_details", None)
    provider = getattr(error, "provider_error_details", None)
    if service is not None and (service.code or service.message):
        return f"{service.code or ''} {service.message or ''}".strip()
    if provider is not None and (provider.error_code or provider.error_message):
        return f"{provider.error_code or ''} {provider.error_message or ''}".strip()
    return str(error)


def _read_job(asr: AsrGateway, vault: VaultRef, job_id: str) -> AsrJob:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        job = asr.get_job(vault, job_id)
    except ResourceNotFoundError:
        return AsrJob(job_id=job_id, found=False)
    props = job.properties
    return AsrJob(
        job_id=job_id,
        found=True,
        state=_wire(props.state),
        scenario=props.scenario_name,
        started_at=props.start_time,
        ended_at=props.end_time,
        errors=[_job_error_text(e) for e in props.errors or []],
    )


def _azure_vm_ref(settings: Settings, machine: MachineView) -> AzureVmRef:
    """The Azure VM the workflow checked; before verification, the settings' recovery group."""
    status = machine.status
    if status is not None and status.verification is not None:
        azure = status.verification.azure
        return AzureVmRef(resource_group=azure.resource_group, name=azure.name)
    return AzureVmRef(
        resource_group=settings.azure_recovery_resource_group or "", name=machine.vm_name
    )


def _read_vcenter(
    settings: Settings, names: list[str]
) -> tuple[dict[str, OnPremVmState], str | None]:
    try:
        vcenter = build_vcenter_reads(settings)
    except SettingsError as err:
        return {}, str(err)
    try:
        return vcenter.read_vms(names), None
    except Exception as err:  # any failure is "could not read", reported, never a conclusion
        return {}, (
            f"vCenter {settings.vcenter_host}:{settings.vcenter_port} could not be read "
            f"({type(err).__name__}: {err}); check {VCENTER_SETTINGS}"
        )
    finally:
        vcenter.close()


def _azure_reader(settings: Settings) -> tuple[AsrGateway, ComputeGateway, VaultRef] | str:
    """ASR and Compute gateways built as the worker builds them, but quick to give up: a report
    says that Azure could not be read rather than retrying for minutes."""
    try:
        settings.require("azure_subscription_id", "azure_resource_group", "azure_vault")
        assert settings.azure_resource_group and settings.azure_vault
        clients = azure_clients(settings, quick=True)
    except (SettingsError, ValueError) as err:
        return str(err)
    vault = VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault)
    return (
        build_asr_gateway(settings, clients),
        build_compute_gateway(settings, clients),
        vault,
    )


def observe(settings: Settings, machines: Sequence[MachineView]) -> dict[str, Observation]:
    """Read, now, every job a failback recorded from ASR, each VM from vCenter and each Azure VM
    from Compute. Only reads. Keyed by MachineView.item_name; machines not started are skipped."""
    targets = [m for m in machines if m.status is not None]
    if not targets:
        return {}
    read_at = datetime.now(UTC)
    onprem, onprem_error = _read_vcenter(settings, sorted({m.vm_name for m in targets}))
    reader = _azure_reader(settings)
    observations: dict[str, Observation] = {}
    for machine in targets:
        assert machine.status is not None
        jobs: list[AsrJob] = []
        asr_error = azure_error = None
        azure: AzureVmState | None = None
        if isinstance(reader, str):
            asr_error = azure_error = reader
        else:
            asr, compute, vault = reader
            try:
                jobs = [
                    _read_job(asr, vault, op.job_id)
                    for op in machine.status.operations
                    if op.job_id
                ]
            except Exception as err:  # reported as "could not read", never as a disagreement
                asr_error = f"ASR could not be read ({_short(err)}); check {AZURE_SETTINGS}"
            try:
                azure = compute.read_vm(_azure_vm_ref(settings, machine))
            except Exception as err:
                azure_error = f"Azure could not be read ({_short(err)}); check {AZURE_SETTINGS}"
        observations[machine.item_name] = Observation(
            item_name=machine.item_name,
            read_at=read_at,
            jobs=jobs,
            asr_error=asr_error,
            onprem=onprem.get(machine.vm_name),
            onprem_error=onprem_error,
            azure=azure,
            azure_error=azure_error,
        )
    return observations


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


async def failback_report(client: Client, settings: Settings, workflow_id: str) -> FailbackReport:
    """The workflows' record of a failback, reconciled with ASR, vCenter and Azure as they are."""
    view = await read_failback(client, workflow_id)
    observations = await asyncio.to_thread(observe, settings, view.machines)
    return build_report(view, observations, datetime.now(UTC))
