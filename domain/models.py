"""Inputs and results of the failback workflows and activities.

One input model and one result model per workflow and activity; they cross Temporal through
`temporalio.contrib.pydantic`. Nothing here may hold a secret: these values end up in workflow
history, which the Web UI shows to anyone who can read the namespace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.authority import Attestation, DecisionPolicy, VerifiedIdentity
from domain.operations import AsrOperation
from domain.phases import Phase, PlanPhase

# ASR's architectures by the names of domain/architectures (ArchitectureName's values).
Architecture = Literal["classic", "modernized", "hyperv"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Timings(_Model):
    """How often to look and how long to wait. Production defaults; the lab passes seconds."""

    job_poll_interval_seconds: float = Field(default=15.0, gt=0)
    operation_timeout_seconds: float = Field(
        default=4 * 3600.0, gt=0, description="Longest one ASR job may run"
    )
    verify_poll_interval_seconds: float = Field(default=15.0, gt=0)
    verify_timeout_seconds: float = Field(
        default=900.0, gt=0, description="How long the on-premises VM may take to boot"
    )
    agent_poll_interval_seconds: float = Field(default=60.0, gt=0)
    agent_wait_timeout_seconds: float = Field(
        default=1800.0, gt=0, description="After this, the failback is stuck until an operator acts"
    )
    replication_poll_interval_seconds: float = Field(default=60.0, gt=0)
    replication_timeout_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long a reprotect to on-premises may take to become healthy (full copy)",
    )
    machines_start_into_plan_job_seconds: float = Field(
        default=30.0,
        ge=0,
        description="FO-PLAN: how long into the plan's failover job its machines' workflows "
        "start (they then wait for the job's end); a job that ends sooner starts them at its end",
    )


class VaultRef(_Model):
    resource_group: str
    vault: str


class ProtectedItemRef(_Model):
    fabric: str
    container: str
    name: str

    @property
    def label(self) -> str:
        return self.name


class AzureVmRef(_Model):
    resource_group: str
    name: str


class ReprotectToAzureOptions(_Model):
    process_server_id: str | None = Field(
        default=None, description="None: the configuration server's healthy on-premises PS"
    )
    master_target_id: str | None = None
    policy_id: str | None = None
    run_as_account_id: str | None = None
    log_storage_account_id: str | None = Field(
        default=None,
        description="None: the one replication to Azure used before the failback, if ASR "
        "still shows it",
    )


class ReprotectToOnPremOptions(_Model):
    """Choices for the reprotect Azure -> on-premises; None: chosen from what exists."""

    master_target_id: str | None = None
    process_server_id: str | None = None
    datastore_name: str | None = None
    retention_drive: str | None = None
    policy_id: str | None = None


class ApprovalPolicy(_Model):
    reminder_every_seconds: float = Field(
        default=1800.0, gt=0, description="How often to remind, visibly, that approval waits"
    )
    auto_commit_after_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Off by default: commit without a human after this long awaiting approval",
    )
    auto_undo_after_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Off by default (modernized only): undo the failback (failoverCancel) if no "
        "human approved it this long after it was verified; the Azure VM runs again",
    )

    @model_validator(mode="after")
    def _one_automatic_end(self) -> ApprovalPolicy:
        if self.auto_commit_after_seconds is not None and self.auto_undo_after_seconds is not None:
            raise ValueError(
                "choose auto-commit or auto-undo, not both: each decides what happens when "
                "nobody approves"
            )
        return self


class _NamesOneMachine(_Model):
    """A machine named by its ASR protected item's name, by its VM's name, or by both (then they
    must be the same machine's). The CLI fills in both once it has found the item."""

    item_name: str | None = Field(
        default=None, min_length=1, description="The ASR replication protected item's name"
    )
    vm_name: str | None = Field(
        default=None, min_length=1, description="The VM's name (the item's friendly name)"
    )

    @model_validator(mode="after")
    def _named(self) -> _NamesOneMachine:
        if self.item_name is None and self.vm_name is None:
            raise ValueError("name the machine: item_name (the ASR item) or vm_name (the VM)")
        return self

    @property
    def given_name(self) -> str:
        """The name the machine was asked for by, for messages."""
        return self.vm_name or self.item_name or ""


DataSync = Literal["for-synchronization", "for-downtime"]


class CancelRequest(_Model):
    """Who cancels a failback before its commit, and why (recorded before the cancel itself)."""

    cancelled_by: str = Field(min_length=1)
    comment: str = ""
    attestation: Attestation | None = Field(
        default=None, description="Who, as the worker's decision desk verified it (R28)"
    )


class Cancellation(_Model):
    cancelled_by: str
    comment: str = ""
    at: datetime
    identity: VerifiedIdentity | None = None


class CutoverRequest(_Model):
    """Hyper-V for-downtime: go on from the synchronized, suspended failover to the cut-over."""

    cut_over_by: str = Field(min_length=1)
    comment: str = ""
    attestation: Attestation | None = None


class Cutover(_Model):
    cut_over_by: str
    comment: str = ""
    at: datetime
    identity: VerifiedIdentity | None = None


PLAN_COUNTS_ITS_READ = (
    "FO-PLAN: the plan counts its own read at the job's end, when it passes, as this machine's "
    "verification (patch plan-approves-on-its-read): the machine verified on it sends the plan "
    "no `machine_verified` signal"
)


class MachineFailbackInput(_NamesOneMachine):
    """Fail back one replicated machine, named by `item_name`, `vm_name` or both."""

    vault: VaultRef
    recovery_resource_group: str = Field(description="Resource group of the failed-over Azure VM")
    azure_vm_name: str | None = Field(default=None, description="None: the item's friendly name")
    recovery_point: Literal["latest"] = "latest"
    reprotect_to_onprem: ReprotectToOnPremOptions = ReprotectToOnPremOptions()
    reprotect_to_azure: ReprotectToAzureOptions = ReprotectToAzureOptions()
    timings: Timings = Timings()
    approval: ApprovalPolicy = ApprovalPolicy()
    # Set by a plan: the machine as the plan found it and the point the plan chose for it.
    recovery_plan: str | None = None
    discovered: DiscoveredMachine | None = None
    chosen_point: RecoveryPointChoice | None = None
    failed_over_by_plan: OperationResult | None = Field(
        default=None,
        description="The plan's failover job that already failed this machine over (FO-PLAN): "
        "the machine sends no failover of its own and goes on to verify",
    )
    first_read: VerificationRead | None = Field(
        default=None,
        description="FO-PLAN: both sides of this machine as the plan read them when its job "
        "ended; the machine's first verification, instead of a read of its own",
    )
    awaits_plan_job: bool = Field(
        default=False,
        description="FO-PLAN: started while the plan's failover job still runs; the machine "
        "waits for the plan's word that the job ended (a PlanJobEnded signal) before it verifies",
    )
    plan_counts_its_read: bool = Field(
        default=False,
        description=PLAN_COUNTS_ITS_READ,
    )
    # Hyper-V: how the failback's data syncs, and when a for-downtime failback cuts over
    # without waiting for `failback cutover` (a maintenance window); a plan passes its own.
    data_sync: DataSync = "for-synchronization"
    cutover_at: datetime | None = None
    cutover: Cutover | None = Field(
        default=None, description="Set by a plan whose cut-over was given before this started"
    )
    placement: MachinePlan | None = Field(
        default=None, description="Set by a plan: where readiness placed this machine"
    )
    decisions: Decisions = Field(default_factory=lambda: Decisions())

    def discovery(self) -> DiscoverMachineInput:
        """What the discovery of this machine asks of ASR."""
        return DiscoverMachineInput(
            vault=self.vault,
            item_name=self.item_name,
            vm_name=self.vm_name,
            recovery_resource_group=self.recovery_resource_group,
            azure_vm_name=self.azure_vm_name,
            reprotect_to_azure=self.reprotect_to_azure,
        )


# --- activity models -----------------------------------------------------------------------


class DiscoverMachineInput(_NamesOneMachine):
    vault: VaultRef
    recovery_resource_group: str
    azure_vm_name: str | None = None
    reprotect_to_azure: ReprotectToAzureOptions = ReprotectToAzureOptions()


class HyperVReverseReplication(_Model):
    """Hyper-V's reProtect back to Azure (HyperVReplicaAzureReprotectInput), from the item as
    Azure PowerShell fills it (asr-modernized-hyperv.md 3.3 E)."""

    hv_host_vm_id: str | None = Field(default=None, description="The VM's id on its host")
    vm_name: str
    os_type: str | None = None
    vhd_id: str | None = Field(default=None, description="The OS disk's vhdId")
    storage_account_id: str | None = None
    log_storage_account_id: str | None = None


class ResolvedReprotectToAzure(_Model):
    # VMware's (classic and modernized); Hyper-V's is `hyperv`.
    process_server_id: str = ""
    master_target_id: str = ""
    policy_id: str = ""
    run_as_account_id: str = ""
    log_storage_account_id: str | None = None
    hyperv: HyperVReverseReplication | None = None


class DiscoveredMachine(_Model):
    item: ProtectedItemRef
    vm_name: str
    onprem_host: str | None = Field(
        default=None, description="Hyper-V: the host (or VMM server) the VM came from"
    )
    onprem_via_vmm: bool = Field(
        default=False, description="Hyper-V: onprem_host is a VMM server (asked with VMM's cmdlets)"
    )
    architecture: Architecture = Field(
        default="classic", description="ASR's architecture of the item (its provider)"
    )
    replication_group: str | None = None
    os_type: str | None
    protection_state: str | None
    allowed_operations: list[str]
    azure_vm: AzureVmRef
    reprotect_to_azure: ResolvedReprotectToAzure


class DiscoverPlanInput(_Model):
    vault: VaultRef
    recovery_plan: str
    recovery_resource_group: str
    reprotect_to_azure: ReprotectToAzureOptions = ReprotectToAzureOptions()


class DiscoveredPlan(_Model):
    name: str
    boot_groups: list[list[DiscoveredMachine]]

    @property
    def machines(self) -> list[DiscoveredMachine]:
        return [m for group in self.boot_groups for m in group]


class RecoveryPoint(_Model):
    id: str
    name: str
    time: datetime
    type: str
    multi_vm_sync_point: bool | None = Field(
        default=None,
        description="Whether the point is a multi-VM sync point of its replication group; None: "
        "ASR did not say (no providerSpecificDetails on the point)",
    )

    @property
    def app_consistent(self) -> bool:
        return self.type == "ApplicationConsistent"


class SelectRecoveryPointInput(_Model):
    vault: VaultRef
    item: ProtectedItemRef
    policy: Literal["latest"] = "latest"
    architecture: Architecture = "classic"


PointPolicy = Literal["latest", "app-consistent"]
# How a failover names its point to ASR (domain/recovery_points.how_to_ask, RP-ASK).
PointRequest = Literal[
    "LatestTime",
    "LatestTag",
    "Custom",
    "CrashConsistent",
    "ApplicationConsistent",
    # Hyper-V: no point is asked; the failback copies the Azure VM's disks as they are when it
    # shuts down (nothing written in Azure is lost).
    "AzureVmDisks",
]


class MachinePoints(_Model):
    item_name: str
    replication_group: str | None = None
    points: list[RecoveryPoint]


class MachineChoice(_Model):
    item_name: str
    replication_group: str | None
    chosen: RecoveryPoint
    latest: RecoveryPoint
    data_loss_window_seconds: float
    asked_as: PointRequest


class GroupChoice(_Model):
    group: str
    members: list[str]
    common_point_time: datetime | None
    chosen_by_asr: bool = Field(
        default=False,
        description="ASR did not say which points are multi-VM sync points: the group's common "
        "application-consistent point is ASR's to pick when the plan fails over (no later than "
        "each member's `chosen`)",
    )


class PlanPointChoice(_Model):
    policy: PointPolicy
    machines: list[MachineChoice]
    groups: list[GroupChoice]

    def for_item(self, item_name: str) -> MachineChoice:
        for choice in self.machines:
            if choice.item_name == item_name:
                return choice
        raise KeyError(item_name)


class RecoveryPointChoice(_Model):
    chosen: RecoveryPoint
    latest: RecoveryPoint
    data_loss_window_seconds: float
    asked_as: PointRequest = Field(
        description="LatestTime/LatestTag: ASR takes its newest (tagged) point when it fails "
        "over, never older than `chosen`; Custom: exactly `chosen`"
    )


class ReadAsrFactsInput(_Model):
    vault: VaultRef
    machines: list[DiscoveredMachine]
    fabric: str = Field(default="", description="Used when there are no machines")
    recovery_plan: str | None = Field(
        default=None,
        description="The plan the machines belong to: their items are read in one list "
        "filtered by the plan instead of one GET each",
    )
    log_storage_account_id: str | None = Field(
        default=None,
        description="Modernized: the log storage account settings name for a reprotect",
    )


class ReadRecoveryPointsInput(_Model):
    vault: VaultRef
    machines: list[DiscoveredMachine]


class ItemOperationInput(_Model):
    """One ASR write on one protected item, identified so that a retry can find its job."""

    vault: VaultRef
    item: ProtectedItemRef
    architecture: Architecture = Field(
        default="classic", description="Which architecture's request body the write sends"
    )
    vm_name: str = Field(
        default="",
        description="The VM's friendly name: how ASR's jobs name their target (J-OWN)",
    )
    not_before: datetime = Field(
        description="Jobs of this operation that started before this belong to earlier attempts"
    )
    exclude_job_ids: list[str] = Field(default_factory=list)
    poll_interval_seconds: float = 15.0
    after_asr_time: datetime | None = Field(
        default=None,
        description="A time on ASR's own clock (the previous job's end) before which no job of "
        "this operation can be ours; when set, no clock-skew margin is needed",
    )


class HyperVFailback(_Model):
    """Hyper-V's planned failover from Azure: how the data syncs and where the VM comes up."""

    data_sync: DataSync = Field(
        default="for-synchronization",
        description="for-synchronization: the Azure VM shut down at once, a full download; "
        "for-downtime: synchronized while it runs, then ASR suspends the job until the cut-over",
    )
    create_vm_if_not_found: bool = Field(
        default=False, description="Alternate location: ASR creates the VM (CreateVmIfNotFound)"
    )
    provider_id_for_alternate: str | None = Field(
        default=None, description="The target host's provider id (a Hyper-V site without VMM)"
    )


class FailoverInput(ItemOperationInput):
    recovery_point_type: PointRequest
    recovery_point_id: str | None = Field(default=None, description="Only with Custom")
    hyperv: HyperVFailback | None = None
    until_suspended: bool = Field(
        default=False,
        description="Return once ASR suspends the job (Hyper-V for-downtime: synchronized, "
        "waiting for the cut-over) instead of awaiting its end",
    )


class PlanFailoverInput(_Model):
    """The failover of a whole recovery plan (FO-PLAN), identified so that a retry finds its job."""

    vault: VaultRef
    recovery_plan: str
    recovery_point_type: PointRequest
    architecture: Architecture = "classic"
    vm_names: list[str] = Field(
        default_factory=list, description="The plan's machines, as ASR's jobs name them"
    )
    use_multi_vm_sync_point: bool = Field(
        default=False, description="Modernized: the plan holds a replication group"
    )
    data_sync: DataSync = Field(default="for-synchronization", description="Hyper-V")
    create_vm_if_not_found: bool = Field(
        default=False, description="Hyper-V: a member's VM no longer exists on-premises"
    )
    not_before: datetime = Field(
        description="Jobs of this operation that started before this belong to earlier attempts"
    )
    poll_interval_seconds: float = 15.0


class ResumeJobInput(ItemOperationInput):
    """The cut-over of a Hyper-V for-downtime failback: resume ASR's suspended job, once."""

    job_id: str
    comment: str = ""


class ReprotectToAzureInput(ItemOperationInput):
    options: ResolvedReprotectToAzure


class ResolvedReprotectToOnPrem(_Model):
    """Classic: master target, process server in Azure, retention drive. Modernized: the
    appliance's reprotect agent is `master_target_id` (and `process_server_id`), with a log
    storage account; no retention drive."""

    master_target_id: str
    process_server_id: str
    retention_drive: str
    datastore_name: str | None
    profile_id: str
    run_as_account_id: str | None = None
    log_storage_account_id: str | None = None


class ReprotectToOnPremInput(ItemOperationInput):
    options: ResolvedReprotectToOnPrem


class ReplicationWaitInput(_Model):
    vault: VaultRef
    items: list[ProtectedItemRef]
    poll_interval_seconds: float = 60.0
    timeout_seconds: float = 24 * 3600.0


class ReplicationState(_Model):
    item_name: str
    protection_state: str | None
    replication_health: str | None
    recovery_points: int
    healthy: bool
    progress_percent: int | None = Field(
        default=None, description="The reprotect's initial replication, as ASR reports it"
    )
    processed_bytes: int | None = None

    def progress(self) -> str:
        """The initial replication in words: '42% (17.2 GB)', or the item's state."""
        if self.healthy:
            return f"{self.item_name} replicating ({self.recovery_points} points)"
        if self.progress_percent is None:
            return f"{self.item_name} {self.protection_state or 'waiting'}"
        done = f" ({self.processed_bytes / 1e9:.1f} GB)" if self.processed_bytes is not None else ""
        return f"{self.item_name} {self.progress_percent}%{done}"


class ReplicationWaitResult(_Model):
    items: list[ReplicationState]
    waited_seconds: float


class OperationResult(_Model):
    operation: AsrOperation
    job_id: str | None
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    resumed: bool = Field(
        description="True when this attempt found the job already sent and did not send again"
    )


class AgentCheckInput(_Model):
    vault: VaultRef
    item: ProtectedItemRef
    committed_at: datetime


class AgentRegistration(_Model):
    registered: bool
    last_heartbeat: datetime | None
    agent_version: str | None


class OnPremVmQuery(_Model):
    vm_name: str
    platform: Literal["vcenter", "hyperv"] = "vcenter"
    host: str | None = Field(default=None, description="Hyper-V: the host (or VMM server)")
    via_vmm: bool = Field(default=False, description="Hyper-V: `host` is a VMM server")


class OnPremVmState(_Model):
    vm_name: str
    found: bool
    power_state: str | None = None
    tools_running_status: str | None = None
    guest_state: str | None = None
    host: str | None = None
    # Where it was read: vCenter (power state poweredOn, VMware Tools) or a Hyper-V host
    # (VMState Running, the heartbeat integration service).
    platform: Literal["vcenter", "hyperv"] = "vcenter"
    heartbeat: str | None = Field(default=None, description="Hyper-V: VMHeartbeatStatus")

    @classmethod
    def unreadable(
        cls,
        vm_name: str,
        reason: str,
        platform: Literal["vcenter", "hyperv"] = "vcenter",
        host: str | None = None,
    ) -> OnPremVmState:
        """vCenter (or the host) could not be read: a failed check, looked at again next poll."""
        if platform == "hyperv":
            return cls(
                vm_name=vm_name,
                found=True,
                power_state=f"unreadable ({reason})",
                platform=platform,
                host=host,
            )
        return cls(vm_name=vm_name, found=False, power_state=reason)


class AzureVmState(_Model):
    resource_group: str
    name: str
    exists: bool
    power_state: str | None = None

    @classmethod
    def unreadable(cls, ref: AzureVmRef, reason: str) -> AzureVmState:
        """Azure could not be read: not taken for a stopped VM, looked at again next poll."""
        return cls(
            resource_group=ref.resource_group,
            name=ref.name,
            exists=True,
            power_state=f"unreadable ({reason})",
        )


class VerificationReadInput(_Model):
    onprem: OnPremVmQuery
    azure: AzureVmRef


class VerificationRead(_Model):
    """Both sides as one verification sees them; a side that could not be read says why."""

    onprem: OnPremVmState
    azure: AzureVmState


class FailoverThenReadInput(_Model):
    """A failover, and the verification read to make as soon as its job has ended."""

    failover: FailoverInput
    verification: VerificationReadInput

    @property
    def item(self) -> ProtectedItemRef:
        return self.failover.item


class FailoverThenRead(_Model):
    operation: OperationResult
    state: VerificationRead


class PlanFailoverThenReadInput(_Model):
    """A plan's failover (FO-PLAN), and the first verification read of each of its machines
    (by protected item name) to make as soon as its job has ended."""

    failover: PlanFailoverInput
    verifications: dict[str, VerificationReadInput]


class PlanJobEnded(_Model):
    """FO-PLAN: the plan's failover job ended, told to a machine started while it ran."""

    operation: OperationResult
    first_read: VerificationRead | None = Field(
        default=None, description="Both sides of the machine as the plan read them at the job's end"
    )
    plan_counts_its_read: bool = Field(
        default=False,
        description=PLAN_COUNTS_ITS_READ,
    )


class PlanFailoverThenRead(_Model):
    operation: OperationResult
    states: dict[str, VerificationRead] = Field(
        default_factory=dict, description="By protected item name, read after the job ended"
    )


class VerificationReadsInput(_Model):
    """Several machines' verification reads in one activity (by protected item name)."""

    verifications: dict[str, VerificationReadInput]


class VerificationReads(_Model):
    states: dict[str, VerificationRead] = Field(
        default_factory=dict, description="By protected item name"
    )


# --- workflow state and result -------------------------------------------------------------


class ApprovalRequest(_Model):
    approved_by: str = Field(min_length=1)
    comment: str = ""
    on_behalf_of_plan: str | None = Field(
        default=None, description="Set by a plan passing its approval on to its machines"
    )
    attestation: Attestation | None = Field(
        default=None, description="Who, as the worker's decision desk verified it (R28)"
    )


class Approval(_Model):
    approved_by: str
    comment: str
    approved_at: datetime
    identity: VerifiedIdentity | None = Field(
        default=None, description="The verified identity, when decisions are authenticated"
    )


class RejectedApproval(_Model):
    approved_by: str
    received_at: datetime
    phase: Phase
    reason: str


class PhaseChange(_Model):
    phase: Phase
    at: datetime
    note: str = ""


class Verification(_Model):
    passed: bool
    checked_at: datetime
    onprem: OnPremVmState
    azure: AzureVmState
    problems: list[str]


class AgentWait(_Model):
    started_at: datetime
    checks: int
    registered_at: datetime | None = None
    stuck_since: datetime | None = None


class MachineStatus(_Model):
    item_name: str | None = Field(description="None until found, when started by the VM's name")
    vm_name: str | None = Field(description="None until found, when started by the item's name")
    phase: Phase
    waiting_for: str
    item: ProtectedItemRef | None = None
    recovery_point: RecoveryPointChoice | None = None
    operations: list[OperationResult] = Field(default_factory=list)
    verification: Verification | None = None
    approval: Approval | None = None
    approvals: list[Approval] = Field(
        default_factory=list, description="R31: every approval taken, the last one completing"
    )
    approvals_missing: int = Field(default=0, description="R31: approvers still needed")
    rejected_approvals: list[RejectedApproval] = Field(default_factory=list)
    approval_reminders: int = 0
    agent_wait: AgentWait | None = None
    readiness: ReadinessReport | None = Field(
        default=None, description="A machine failed back on its own: its readiness report"
    )
    replication: ReplicationWaitResult | None = None
    undo: Undo | None = None
    rejected_undos: list[RejectedApproval] = Field(default_factory=list)
    architecture: Architecture | None = Field(default=None, description="Once discovered")
    cancellation: Cancellation | None = None
    # Hyper-V: the data-sync mode, the cut-over, and the downtime taken (the Azure VM shut
    # down, to the on-premises VM verified up).
    data_sync: DataSync | None = None
    synchronized_at: datetime | None = None
    cutover: Cutover | None = None
    downtime_seconds: float | None = None
    history: list[PhaseChange] = Field(default_factory=list)
    error: str | None = None


class UndoRequest(_Model):
    """Undo a failback before its commit (modernized: failoverCancel)."""

    undone_by: str = Field(min_length=1)
    comment: str = ""
    # Set by a plan when it passes its undo to its machines.
    on_behalf_of_plan: str | None = None
    attestation: Attestation | None = None


class Undo(_Model):
    undone_by: str
    comment: str = ""
    requested_at: datetime
    identity: VerifiedIdentity | None = None


class MachineFailbackResult(_Model):
    item_name: str | None
    vm_name: str | None
    outcome: Literal["completed", "completed-without-reprotect", "undone", "failed"]
    summary: str
    started_at: datetime
    finished_at: datetime
    status: MachineStatus


class OperatorDecision(_Model):
    """Sent by an operator when the agent never registered."""

    decided_by: str = Field(min_length=1)
    action: Literal["keep-waiting", "finish-without-reprotect"]
    comment: str = ""
    attestation: Attestation | None = None


class MachineVerified(_Model):
    """Sent by a machine's workflow to its plan once the machine is verified on-premises."""

    item_name: str
    verification: Verification


class StandDown(_Model):
    """Sent by a plan to its machines when it stops: end before commit, commit nothing."""

    reason: str


class Decisions(_Model):
    """Who may decide on this failback (domain/authority.py), as the start gave it."""

    started_by: Attestation | None = Field(
        default=None, description="The starter's identity, signed by the worker's desk (R28, R30)"
    )
    approvers: list[str] = Field(
        default_factory=list, description="R29: only these may approve (narrows the settings)"
    )
    approvers_required: int = Field(default=1, ge=1, description="R31: distinct approvers")
    policy: DecisionPolicy | None = Field(
        default=None, description="Set by a plan for its machines: the plan's policy"
    )


class PlanFailbackInput(_Model):
    vault: VaultRef
    recovery_plan: str = Field(min_length=1)
    recovery_point: Literal["latest", "app-consistent"] = "latest"
    recovery_resource_group: str
    reprotect_to_onprem: ReprotectToOnPremOptions = ReprotectToOnPremOptions()
    reprotect_to_azure: ReprotectToAzureOptions = ReprotectToAzureOptions()
    approval: ApprovalPolicy = ApprovalPolicy()
    timings: Timings = Timings()
    # Hyper-V: every machine's data-sync mode, and when a for-downtime plan cuts over without
    # waiting for `failback cutover` (a maintenance window).
    data_sync: DataSync = "for-synchronization"
    cutover_at: datetime | None = None
    decisions: Decisions = Decisions()

    def discovery(self) -> DiscoverPlanInput:
        """What the discovery of this plan asks of ASR."""
        return DiscoverPlanInput(
            vault=self.vault,
            recovery_plan=self.recovery_plan,
            recovery_resource_group=self.recovery_resource_group,
            reprotect_to_azure=self.reprotect_to_azure,
        )


class PlanMachine(_Model):
    item_name: str
    vm_name: str
    boot_group: int
    workflow_id: str
    replication_group: str | None = None


class PlanStatus(_Model):
    recovery_plan: str
    phase: PlanPhase
    cutover: Cutover | None = None
    cancellation: Cancellation | None = None
    waiting_for: str
    machines: list[PlanMachine] = Field(default_factory=list)
    current_boot_group: int | None = None
    boot_groups: int = 0
    verified: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    completed: list[str] = Field(default_factory=list)
    approval: Approval | None = None
    approvals: list[Approval] = Field(
        default_factory=list, description="R31: every approval taken, the last one completing"
    )
    approvals_missing: int = Field(default=0, description="R31: approvers still needed")
    rejected_approvals: list[RejectedApproval] = Field(default_factory=list)
    approval_reminders: int = 0
    recovery_points: PlanPointChoice | None = None
    readiness: ReadinessReport | None = None
    reprotects: list[OperationResult] = Field(default_factory=list)
    failover: OperationResult | None = Field(
        default=None, description="The plan's own failover job, when it failed over whole (FO-PLAN)"
    )
    replication: ReplicationWaitResult | None = Field(
        default=None, description="The reprotect's initial replication, once it was awaited"
    )
    undo: Undo | None = None
    history: list[PlanPhaseChange] = Field(default_factory=list)
    error: str | None = None


class PlanPhaseChange(_Model):
    phase: PlanPhase
    at: datetime
    note: str = ""


class PlanFailbackResult(_Model):
    recovery_plan: str
    outcome: Literal["completed", "completed-with-warnings", "undone"]
    summary: str
    started_at: datetime
    finished_at: datetime
    machines: dict[str, MachineFailbackResult]
    status: PlanStatus


from domain.readiness import MachinePlan, ReadinessReport  # noqa: E402  (it imports nothing of ours)

MachineFailbackInput.model_rebuild()
MachineStatus.model_rebuild()
PlanStatus.model_rebuild()
