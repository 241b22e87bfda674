"""The report's reconciliation: what the workflows recorded of a failback, against what ASR,
vCenter and Azure say now. Pure: models in, disagreements out.

Rules, each a function below:
- J1 a recorded job is gone from the vault; J2 ASR says a recorded job ended otherwise.
- V1, V2, V3 after a failover: the on-premises VM exists, is powered on, its guest is up.
- A1 after a commit the Azure VM is gone; A2 after a failover and before the commit it is off;
  A3 before any commit it still exists.
A side that could not be read is no evidence either way.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.decisions import AZURE_VM_OFF_STATES
from domain.models import AzureVmState, MachineStatus, OnPremVmState, OperationResult, Phase
from domain.operations import AsrOperation


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class AsrJob(_Model):
    """An ASR job as the vault shows it now."""

    job_id: str
    found: bool
    state: str | None = None
    scenario: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    errors: list[str] = Field(default_factory=list)


class Observation(_Model):
    """What ASR, vCenter and Azure said about one machine when the report was made. An error
    means that side could not be read: nothing is concluded from it."""

    item_name: str
    read_at: datetime
    jobs: list[AsrJob] = Field(default_factory=list)
    asr_error: str | None = None
    onprem: OnPremVmState | None = None
    onprem_error: str | None = None
    azure: AzureVmState | None = None
    azure_error: str | None = None

    def job(self, job_id: str) -> AsrJob | None:
        return next((j for j in self.jobs if j.job_id == job_id), None)


class Disagreement(_Model):
    vm_name: str
    about: str
    recorded: str = Field(description="What ASR (or the workflow) says happened")
    found: str = Field(description="What the system that should show it says now")

    @property
    def text(self) -> str:
        return f"{self.recorded}, but {self.found}"


DONE_STATES = frozenset({"Succeeded", "AlreadyDone"})
FAILOVER = AsrOperation.UNPLANNED_FAILOVER
COMMIT = AsrOperation.FAILOVER_COMMIT


def _effective_state(op: OperationResult, observation: Observation) -> str:
    """ASR's state of the job now when it could be read, else what the workflow recorded."""
    if op.job_id and observation.asr_error is None:
        job = observation.job(op.job_id)
        if job is not None and job.found and job.state:
            return job.state
    return op.state


def _done(
    status: MachineStatus, observation: Observation, operation: str
) -> OperationResult | None:
    for op in status.operations:
        if op.operation == operation and _effective_state(op, observation) in DONE_STATES:
            return op
    return None


def _job_words(op: OperationResult) -> str:
    if op.job_id:
        return f"ASR's {op.operation} job {op.job_id} {op.state}"
    return f"ASR showed {op.operation} already done"


def reconcile(
    status: MachineStatus | None, vm: str, observation: Observation | None
) -> list[Disagreement]:
    """Where ASR's record of this failback and vCenter's or Azure's present state disagree.

    Each rule compares one claim with the system that should show it: a job the workflow saw
    succeed with the job in the vault, a failover with the VM in vCenter, a commit with the
    Azure VM. A side that could not be read is not evidence either way."""
    if status is None or observation is None:
        return []
    found: list[Disagreement] = []
    if observation.asr_error is None:
        for op in status.operations:
            job = observation.job(op.job_id) if op.job_id else None
            if job is not None:
                found.extend(j1_job_gone(vm, op, job) + j2_job_changed(vm, op, job))
    failover = _done(status, observation, FAILOVER)
    commit = _done(status, observation, COMMIT)
    onprem = observation.onprem if observation.onprem_error is None else None
    azure = observation.azure if observation.azure_error is None else None
    if failover is not None and onprem is not None:
        found.extend(v_onprem_vm(vm, failover, onprem))
    if azure is not None:
        found.extend(a_azure_vm(vm, status, failover, commit, azure))
    return found


def j1_job_gone(vm: str, op: OperationResult, job: AsrJob) -> list[Disagreement]:
    """J1: a job the workflow recorded is no longer in the vault."""
    if job.found:
        return []
    return [
        Disagreement(
            vm_name=vm,
            about=op.operation,
            recorded=f"the workflow recorded {op.operation} job {op.job_id} as {op.state}",
            found="the vault has no such job now",
        )
    ]


def j2_job_changed(vm: str, op: OperationResult, job: AsrJob) -> list[Disagreement]:
    """J2: ASR says a recorded job ended otherwise than the workflow recorded."""
    if not job.found or not job.state or job.state == op.state or op.state == "AlreadyDone":
        return []
    return [
        Disagreement(
            vm_name=vm,
            about=op.operation,
            recorded=f"the workflow recorded {op.operation} job {op.job_id} as {op.state}",
            found=f"ASR says the job is {job.state} now",
        )
    ]


def v_onprem_vm(vm: str, failover: OperationResult, onprem: OnPremVmState) -> list[Disagreement]:
    """After a failover ASR says succeeded: V1 the VM is in vCenter, V2 it is powered on, V3 its
    guest is up."""
    if not onprem.found:
        about, now = "on-premises VM", f"vCenter has no VM named {vm} now"
    elif onprem.power_state != "poweredOn":
        about = "on-premises VM"
        now = f"vCenter says {vm} is {onprem.power_state or 'in no known state'} now"
    elif onprem.tools_running_status != "guestToolsRunning":
        about = "on-premises guest"
        now = (
            f"vCenter says the guest of {vm} is not up now (VMware Tools: "
            f"{onprem.tools_running_status or 'unknown'})"
        )
    else:
        return []
    return [Disagreement(vm_name=vm, about=about, recorded=_job_words(failover), found=now)]


def a_azure_vm(
    vm: str,
    status: MachineStatus,
    failover: OperationResult | None,
    commit: OperationResult | None,
    azure: AzureVmState,
) -> list[Disagreement]:
    """A1: after a commit the Azure VM is gone. A2: after a failover, before the commit, it is
    off (else both copies may run). A3: before any commit it still exists."""
    where = f"{azure.resource_group}/{azure.name}"
    if commit is not None and azure.exists:
        recorded = _job_words(commit)
        now = f"the Azure VM {where} still exists ({azure.power_state or 'power state unknown'})"
    elif (
        commit is None
        and failover is not None
        and azure.exists
        and azure.power_state not in AZURE_VM_OFF_STATES
    ):
        recorded = _job_words(failover) + " (ASR shuts the Azure VM down)"
        now = (
            f"the Azure VM {where} is {azure.power_state or 'in no known state'}: "
            "both copies may be running"
        )
    elif (
        commit is None
        and failover is not None
        and not azure.exists
        and not _entered(status, Phase.COMMITTING)
    ):
        recorded = "no commit was sent (the Azure VM is kept until the commit)"
        now = f"the Azure VM {where} no longer exists"
    else:
        return []
    return [Disagreement(vm_name=vm, about="Azure VM", recorded=recorded, found=now)]


def _entered(status: MachineStatus, phase: Phase) -> bool:
    return any(change.phase == phase for change in status.history)
