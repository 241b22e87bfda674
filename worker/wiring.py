"""The one place where clients, credentials, the data converter and the worker meet."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.service import TLSConfig
from temporalio.worker import (
    FixedSizeSlotSupplier,
    PollerBehaviorSimpleMaximum,
    Worker,
    WorkerTuner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.arm_reads import ArmReadBudgetPolicy, ReadPromises
from activities.asr import AsrActivities, AsrGateway, AsrReads, AsrWrites
from activities.azure_vm_rounds import AzureVmRounds
from activities.budget import ReadBudget, TokenBucket
from activities.compute import ComputeActivities, ComputeGateway
from activities.decisions import DecisionActivities, DecisionRules
from activities.hyperv import HyperVActivities, HyperVEndpoints, HyperVGateway, HyperVReads
from activities.liveness import KeepAliveInterceptor
from activities.readiness_intake import ReadinessIntake
from activities.verification import VerificationActivities
from activities.vsphere import VCenterReads, VSphereActivities
from domain import errors
from worker.budget_watch import worker_identity
from worker.settings import CREDENTIAL_PLUGINS, Settings, SettingsError
from workflows.calls import readiness_task_queue
from workflows.machine import MachineFailbackWorkflow
from workflows.plan import PlanFailbackWorkflow


async def connect_temporal(settings: Settings, tracing: bool = False) -> Client:
    """`tracing`: trace workflows and activities (the worker); the CLI does not need it."""
    interceptors: list[Any] = []
    if tracing:
        from worker.telemetry import tracing_interceptors

        interceptors = tracing_interceptors()
    tls, api_key = temporal_tls(settings)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=interceptors,
        tls=tls,
        api_key=api_key,
    )


def temporal_tls(settings: Settings) -> tuple[bool | TLSConfig, str | None]:
    """How to reach a secured Temporal server: TLS with the server's CA and name, mutual TLS
    with this client's certificate, an API key (Temporal Cloud). An API key is never sent in
    clear: it turns TLS on."""
    api_key = _read_secret_file(settings.temporal_api_key_file, "FAILBACK_TEMPORAL_API_KEY_FILE")
    if api_key is None and settings.temporal_api_key is not None:
        api_key = settings.temporal_api_key.get_secret_value().strip() or None
    if (settings.temporal_tls_cert is None) != (settings.temporal_tls_key is None):
        raise SettingsError(
            "mutual TLS to Temporal needs both FAILBACK_TEMPORAL_TLS_CERT and "
            "FAILBACK_TEMPORAL_TLS_KEY (the client's certificate and its private key)"
        )
    files = {
        "FAILBACK_TEMPORAL_TLS_CA": settings.temporal_tls_ca,
        "FAILBACK_TEMPORAL_TLS_CERT": settings.temporal_tls_cert,
        "FAILBACK_TEMPORAL_TLS_KEY": settings.temporal_tls_key,
    }
    read = {name: _read_pem(path, name) for name, path in files.items() if path}
    wanted = settings.temporal_tls or bool(read) or settings.temporal_tls_server_name or api_key
    if not wanted:
        return False, None
    if not read and not settings.temporal_tls_server_name:
        return True, api_key
    return (
        TLSConfig(
            server_root_ca_cert=read.get("FAILBACK_TEMPORAL_TLS_CA"),
            domain=settings.temporal_tls_server_name,
            client_cert=read.get("FAILBACK_TEMPORAL_TLS_CERT"),
            client_private_key=read.get("FAILBACK_TEMPORAL_TLS_KEY"),
        ),
        api_key,
    )


def temporal_connect_hint(settings: Settings, err: BaseException) -> str:
    """What to check when Temporal could not be reached, from the settings and the error (the
    SDK gives a plain RuntimeError whose text is the transport's)."""
    text = str(err)
    tls, api_key = temporal_tls(settings)
    if "H2NotNegotiated" in text:
        return (
            "the address answers TLS but does not offer HTTP/2 (ALPN h2), which Temporal's gRPC "
            "needs: point FAILBACK_TEMPORAL_ADDRESS at the Temporal frontend, or have the TLS "
            "proxy in front of it offer h2"
        )
    if not tls:
        return (
            "check FAILBACK_TEMPORAL_ADDRESS and that the Temporal server is running; if it "
            "requires TLS, set FAILBACK_TEMPORAL_TLS_CA (its CA) or FAILBACK_TEMPORAL_TLS=true, "
            "and for mutual TLS FAILBACK_TEMPORAL_TLS_CERT and FAILBACK_TEMPORAL_TLS_KEY"
        )
    if any(word in text for word in ("UnknownIssuer", "certificate verify", "InvalidCertificate")):
        return (
            "the server's TLS certificate is not trusted: set FAILBACK_TEMPORAL_TLS_CA to the CA "
            "that signed it (and FAILBACK_TEMPORAL_TLS_SERVER_NAME to the name it is for)"
        )
    client_cert = isinstance(tls, TLSConfig) and tls.client_cert is not None
    if not client_cert and not api_key:
        return (
            "the server ended the TLS connection: if it requires mutual TLS, set "
            "FAILBACK_TEMPORAL_TLS_CERT and FAILBACK_TEMPORAL_TLS_KEY to a client certificate "
            "and key its CA trusts (or FAILBACK_TEMPORAL_API_KEY for an API key)"
        )
    return (
        "the server refused the connection over TLS: check that FAILBACK_TEMPORAL_TLS_CERT is "
        "a client certificate the server's CA trusts (not expired), or the API key, and "
        "FAILBACK_TEMPORAL_ADDRESS"
    )


def _read_pem(path: str, setting: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SettingsError(f"{setting}={path}: cannot read it ({err.strerror})") from err
    if b"-----BEGIN " not in data:
        raise SettingsError(f"{setting}={path}: not a PEM file (no -----BEGIN line)")
    return data


def _read_secret_file(path: str | None, setting: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as err:
        raise SettingsError(f"{setting}={path}: cannot read it ({err.strerror})") from err


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models as JSON; encrypted when a payload key is configured."""
    if settings.payload_key is None:
        return pydantic_data_converter
    from worker.codec import EncryptionCodec, parse_key

    codec = EncryptionCodec(
        parse_key(settings.payload_key.get_secret_value()), settings.payload_key_id
    )
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def azure_credential(settings: Settings) -> Any:
    if settings.azure_auth == "default":
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    from importlib.metadata import entry_points

    plugins = {e.name: e for e in entry_points(group=CREDENTIAL_PLUGINS)}
    plugin = plugins.get(settings.azure_auth)
    if plugin is None:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise SettingsError(
            f"FAILBACK_AZURE_AUTH={settings.azure_auth!r} names no credential source; use "
            f"'default' (azure-identity) or one of: {known}"
        )
    return plugin.load()(settings)


def azure_client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "base_url": settings.azure_endpoint,
        "polling_interval": settings.azure_polling_interval,
        # Explicit retries: ride out throttling (429 + Retry-After) and transient 5xx; when they
        # run out, the activity fails and Temporal's retry takes over.
        "retry_total": 6,
        "retry_backoff_factor": 0.8,
        "retry_backoff_max": 60,
    }
    if settings.azure_ca_bundle:
        options["connection_verify"] = settings.azure_ca_bundle
    return options


def azure_transport(settings: Settings) -> Any:
    """azure-core's default keeps 10 connections per host: with hundreds of activities at once,
    every further request would pay a new TLS handshake and drop the connection afterwards."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=settings.activity_slots,
        # Retries belong to the SDK's retry policy, as with azure-core's own adapter.
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    verify: dict[str, Any] = {}
    if settings.azure_ca_bundle:
        verify["connection_verify"] = settings.azure_ca_bundle
    return RequestsTransport(session=session, session_owner=True, **verify)


@dataclasses.dataclass(frozen=True)
class AzureClients:
    """The SDK clients of one subscription, sharing a credential."""

    asr: Any
    compute: Any
    subscription_id: str
    # Both clients' reads go through it (not for the CLI's quick reads).
    read_policy: ArmReadBudgetPolicy | None = None


def azure_clients(settings: Settings, quick: bool = False) -> AzureClients:
    """`quick`: for a one-off read of the CLI (the report), which says that Azure could not be
    read rather than retrying for minutes, on azure-core's own transport."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    settings.require("azure_subscription_id")
    assert settings.azure_subscription_id is not None
    credential = azure_credential(settings)
    options = azure_client_options(settings)
    if quick:
        options.update(retry_total=2, retry_backoff_max=5, connection_timeout=10, read_timeout=30)

    def transport() -> dict[str, Any]:
        return {} if quick else {"transport": azure_transport(settings)}

    subscription = settings.azure_subscription_id
    read_policy = None
    if not quick:
        # One read budget for both clients: ARM counts the principal's reads, whichever API.
        read_policy = ArmReadBudgetPolicy(read_budget(settings), reads_on_their_way(settings))
        options["per_retry_policies"] = [read_policy]
    return AzureClients(
        asr=SiteRecoveryManagementClient(credential, subscription, **transport(), **options),
        compute=ComputeManagementClient(credential, subscription, **transport(), **options),
        subscription_id=subscription,
        read_policy=read_policy,
    )


# The worker's write bucket holds a little less than ARM's: writes reach ARM later than the
# worker takes their tokens, and closer together (at 1,000 machines with the whole write bucket,
# ARM refused one write in 2,010: bench/RESULTS.md, 2026-12-04 evening). Reads: ARM_READ_RESERVE.
ARM_BUCKET_MARGIN = 0.95


# Reads are many and short: a fifth of ARM's read bucket is kept back for the reads on their
# way to ARM, which it has yet to count (activities/arm_reads.ArmReadBudgetPolicy), and as many
# may be on their way at once: 50 for a principal's whole bucket, some 2 s of its refill.
ARM_READ_RESERVE = 0.2


def reads_on_their_way(settings: Settings) -> int:
    """How many of this worker's ARM reads may be on their way at once."""
    return max(1, int(settings.arm_read_burst * settings.arm_budget_share * ARM_READ_RESERVE))


def read_budget(settings: Settings) -> ReadBudget:
    """This worker's share of the principal's ARM read bucket (FAILBACK_ARM_BUDGET_SHARE: with
    N workers on one principal, 1/N each keeps them all inside it), less the reads on their way."""
    share = settings.arm_budget_share
    return ReadBudget(
        capacity=max(1.0, settings.arm_read_burst * share - reads_on_their_way(settings)),
        refill_per_second=settings.arm_reads_per_second * share,
        urgent_share=settings.arm_urgent_read_share,
    )


def build_asr_gateway(settings: Settings, clients: AzureClients | None = None) -> AsrGateway:
    clients = clients or azure_clients(settings)
    return AsrGateway(clients.asr, clients.subscription_id)


def build_compute_gateway(
    settings: Settings, clients: AzureClients | None = None
) -> ComputeGateway:
    clients = clients or azure_clients(settings)
    return ComputeGateway(clients.compute, clients.subscription_id)


def build_asr_reads(settings: Settings) -> AsrReads:
    """ASR's reads for the CLI's preview, check and report: the gateway, no activity."""
    return AsrReads(build_asr_gateway(settings))


def build_asr_activities(
    settings: Settings,
    executor: Executor | None = None,
    gateway: AsrGateway | None = None,
    own_task_queue: str | None = None,
) -> AsrActivities:
    gateway = gateway or build_asr_gateway(settings)
    budget = TokenBucket(
        capacity=max(1.0, settings.arm_write_burst * settings.arm_budget_share * ARM_BUCKET_MARGIN),
        refill_per_second=settings.arm_writes_per_second * settings.arm_budget_share,
    )
    return AsrActivities(AsrReads(gateway, own_task_queue), AsrWrites(gateway, executor, budget))


def build_vcenter_connect(settings: Settings) -> Callable[[], Any]:
    """How to open a vCenter session from the settings (each caller keeps its own)."""
    from activities import vsphere_client

    def connect() -> Any:
        # Asked when vCenter is first read: a worker for Hyper-V machines needs none of it.
        if not (settings.vcenter_host and settings.vcenter_user and settings.vcenter_password):
            raise ApplicationError(
                "the worker has no vCenter settings (FAILBACK_VCENTER_HOST, _USER, _PASSWORD): "
                "it serves Hyper-V only; give it them to fail back VMware machines",
                type=errors.CONFIGURATION_INVALID,
                non_retryable=True,
            )
        return vsphere_client.connect(
            settings.vcenter_host,
            settings.vcenter_port,
            settings.vcenter_user,
            settings.vcenter_password.get_secret_value(),
            verify_tls=settings.vcenter_verify_tls,
        )

    return connect


def build_vcenter_reads(settings: Settings) -> VCenterReads:
    return VCenterReads(
        build_vcenter_connect(settings), standalone_hosts=settings.vcenter_standalone_hosts
    )


def build_vsphere_activities(settings: Settings) -> VSphereActivities:
    return VSphereActivities(build_vcenter_reads(settings))


def build_hyperv_reads(settings: Settings) -> HyperVReads:
    """The Hyper-V hosts over WinRM, with the worker's credentials only; without them a
    Hyper-V read fails with a message that names the settings (VMware needs none of this)."""
    endpoints = None
    if settings.hyperv_username and settings.hyperv_password:
        endpoints = HyperVEndpoints(
            username=settings.hyperv_username,
            password=settings.hyperv_password.get_secret_value(),
            urls=dict(settings.hyperv_endpoints),
            ca_bundle=settings.hyperv_ca_bundle,
            verify_tls=settings.hyperv_verify_tls,
        )
    return HyperVReads(HyperVGateway(endpoints))


@dataclasses.dataclass(frozen=True)
class Activities:
    """Every activity the worker registers, built once from the settings."""

    asr: AsrActivities
    compute: ComputeActivities
    vsphere: VSphereActivities
    verification: VerificationActivities
    hyperv: HyperVActivities
    decisions: DecisionActivities
    # What the worker's readiness reads have yet to read of its ARM read budget.
    read_promises: ReadPromises

    def read_as_budget_allows(self) -> list[Any]:
        """The activities of the readiness task queue (activities/readiness_intake.py)."""
        return [self.asr.read_asr_facts]

    def kept_here(self) -> list[Any]:
        """The activities that take what an earlier one kept on this worker (activities/
        handover.py), offered on the task queue only this worker polls as well."""
        return [self.asr.read_recovery_points]

    def all(self) -> list[Any]:
        return [
            self.decisions.decision_policy,
            self.asr.discover_machine,
            self.asr.discover_recovery_plan,
            self.asr.read_recovery_points,
            self.asr.read_asr_facts,
            self.asr.reprotect_to_onprem,
            self.asr.wait_until_replicating,
            self.asr.select_recovery_point,
            self.asr.check_agent_registered,
            self.compute.read_azure_vm,
            self.asr.fail_over,
            self.asr.fail_over_plan,
            self.asr.commit_failover,
            self.asr.cancel_failover,
            self.asr.resume_failover,
            self.asr.reprotect_to_azure,
            self.vsphere.read_onprem_vm,
            self.vsphere.read_onprem_facts,
            self.verification.read_verification_state,
            self.verification.read_verification_states,
            self.verification.fail_over_then_read,
            self.verification.fail_over_plan_then_read,
            self.hyperv.read_hyperv_facts,
        ]


def build_activities(
    settings: Settings, executor: Executor | None = None, own_task_queue: str | None = None
) -> Activities:
    """The composition root of the worker's activities: one set of Azure clients, one vCenter
    session factory."""
    if not settings.hyperv_username:
        # A worker reads at least one on-premises platform: vCenter unless it has Hyper-V's.
        settings.require("vcenter_host", "vcenter_user", "vcenter_password")
    clients = azure_clients(settings)
    # The worker's clients are never the CLI's quick ones: their reads go through the budget.
    assert clients.read_policy is not None
    gateway = build_asr_gateway(settings, clients)
    compute = build_compute_gateway(settings, clients)
    asr = build_asr_activities(settings, executor, gateway, own_task_queue)
    vcenter = build_vcenter_reads(settings)
    hyperv = build_hyperv_reads(settings)
    verification = VerificationActivities(asr, AzureVmRounds(compute), vcenter, executor, hyperv)
    return Activities(
        asr,
        ComputeActivities(compute),
        VSphereActivities(vcenter),
        verification,
        HyperVActivities(hyperv),
        DecisionActivities(decision_rules(settings)),
        clients.read_policy.promises,
    )


def decision_rules(settings: Settings) -> DecisionRules:
    """R28-R31 as the settings give them; the desk's public keys from its signing keys."""
    from worker.decision_desk import public_keys

    return DecisionRules(
        require_identity=settings.require_identity,
        desk_keys=public_keys(settings),
        approvers=list(settings.approvers),
        approver_groups=list(settings.approver_groups),
        plan_approvers=dict(settings.plan_approvers),
        four_eyes=settings.four_eyes,
        approvers_required=settings.approvers_required,
    )


WORKFLOWS = [MachineFailbackWorkflow, PlanFailbackWorkflow]


def workflow_runner() -> SandboxedWorkflowRunner:
    """The SDK's sandbox with its default restrictions, on purpose.

    Passing every module through (`with_passthrough_all_modules`) would spare the ~14 ms of
    re-importing the workflow module for each workflow started or replayed, but the
    workflow's own `datetime` and `random` would then be the real ones: `datetime.now()` in a
    workflow would no longer be refused (tests/workflows/test_sandbox.py). A history that cannot
    be replayed strands a failback; the guard is worth the milliseconds (bench/RESULTS.md)."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default)


# The activities of the worker's own task queue (`Activities.kept_here`): a plan's point selection
# at a time, a few plans at once at most.
OWN_QUEUE_SLOTS = 4

# Plans' readiness reads a worker takes at once at most, however full its read budget (it takes
# fewer while the budget cannot pay for them: activities/readiness_intake.py).
READINESS_SLOTS = 4


def own_task_queue(settings: Settings) -> str:
    """The task queue only this worker process polls: Temporal's worker-specific task queue,
    unique per process (a restarted worker keeps nothing, so it gets a new one)."""
    return f"{settings.task_queue}@{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass(frozen=True)
class Workers:
    """The worker on the shared task queue, the one on this process's own task queue and the
    one on the readiness task queue; all run over the same activities, so what one activity
    kept another can take, and every ARM read goes through the one read budget."""

    shared: Worker
    own: Worker
    readiness: Worker
    _running: contextlib.AsyncExitStack = dataclasses.field(
        default_factory=contextlib.AsyncExitStack, init=False
    )

    async def __aenter__(self) -> Workers:
        # Each shut down, the last started first, even if another's start or shutdown fails.
        async with contextlib.AsyncExitStack() as starting:
            for worker in (self.shared, self.own, self.readiness):
                await starting.enter_async_context(worker)
            self._running.push_async_exit(starting.pop_all())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._running.aclose()


def readiness_tuner(promises: ReadPromises) -> WorkerTuner:
    """The readiness queue's slots as the read budget allows; no workflow or Nexus task is
    polled there (the worker registers none), but the tuner names a supplier for each."""
    return WorkerTuner.create_composite(
        workflow_supplier=FixedSizeSlotSupplier(1),
        activity_supplier=ReadinessIntake(promises, READINESS_SLOTS),
        local_activity_supplier=FixedSizeSlotSupplier(1),
        nexus_supplier=FixedSizeSlotSupplier(1),
    )


def build_worker(
    client: Client,
    settings: Settings,
    executor: ThreadPoolExecutor,
    own_executor: ThreadPoolExecutor,
    readiness_executor: ThreadPoolExecutor,
) -> Workers:
    """`executor`: the activity threads, `settings.activity_slots` of them; `own_executor`: the
    own task queue's, OWN_QUEUE_SLOTS of them; `readiness_executor`: the readiness queue's,
    READINESS_SLOTS of them."""
    own_queue = own_task_queue(settings)
    activities = build_activities(settings, executor, own_queue)
    identity = worker_identity(settings)
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(),
        activities=activities.all(),
        activity_executor=executor,
        max_concurrent_activities=settings.activity_slots,
        max_cached_workflows=settings.max_cached_workflows,
        interceptors=[KeepAliveInterceptor()],
        identity=identity,
    )
    own = Worker(
        client,
        task_queue=own_queue,
        activities=activities.kept_here(),
        activity_executor=own_executor,
        max_concurrent_activities=OWN_QUEUE_SLOTS,
        interceptors=[KeepAliveInterceptor()],
        identity=identity,
    )
    readiness = readiness_worker(
        client,
        settings.task_queue,
        activities.read_as_budget_allows(),
        activities.read_promises,
        identity,
        readiness_executor,
    )
    return Workers(shared, own, readiness)


def readiness_worker(
    client: Client,
    task_queue: str,
    activities: list[Any],
    promises: ReadPromises,
    identity: str,
    executor: ThreadPoolExecutor | None = None,
) -> Worker:
    """The worker on the readiness queue beside `task_queue`: it asks for a plan's readiness
    only while the read budget can pay for it (`promises`: its reads yet to make)."""
    return Worker(
        client,
        task_queue=readiness_task_queue(task_queue),
        activities=activities,
        activity_executor=executor,
        tuner=readiness_tuner(promises),
        # One poll at a time: each holds a slot, and so a plan's reads, while it waits.
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=1),
        interceptors=[KeepAliveInterceptor()],
        identity=identity,
    )
