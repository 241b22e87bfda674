"""The baseline: a plain sequential failback script, as an admin would write it.

The same SDK calls as the orchestrator (azure-mgmt-recoveryservicessiterecovery for ASR,
azure-mgmt-compute for the Azure VM, pyvmomi for vCenter), one machine after the other, in the
plan's boot group order:

    unplannedFailover (begin_... .result()) -> verify power state (vCenter and Azure)
    -> failoverCommit (begin_... .result()) -> reProtect, and when ASR says the mobility agent
    is not installed yet: sleep, then try again.

The article's advice is to wait 15 minutes before trying the re-protect again. Run for real, that
is 15 minutes per machine; the bench runs it with a scaled clock: the script sleeps
`900 s x clock_scale` (default 1/60: 15 s) instead. That is still longer than the simulated agent
registration (10 s), so the script makes exactly the attempts it would make with the real wait,
and its unscaled time is the measured time minus the scaled sleeps plus 900 s for each of them
(`unscaled_seconds`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as asr_models
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from lab.credential import LabTokenCredential

ARTICLE_WAIT_SECONDS = 900.0
DEFAULT_CLOCK_SCALE = 1 / 60
VERIFY_POLL_SECONDS = 1.0
VERIFY_TIMEOUT_SECONDS = 600.0


@dataclass
class MachineRun:
    item: str
    vm_name: str
    started: float = 0.0
    failed_over: float = 0.0
    verified: float = 0.0
    committed: float = 0.0
    reprotected: float = 0.0
    reprotect_attempts: int = 0
    sleeps: list[float] = field(default_factory=list)


@dataclass
class BaselineRun:
    machines: list[MachineRun]
    started: float
    finished: float
    clock_scale: float
    retry_wait_seconds: float

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def slept(self) -> float:
        return sum(sum(m.sleeps) for m in self.machines)

    @property
    def unscaled_seconds(self) -> float:
        """What the script takes with the article's real 15-minute wait."""
        sleeps = sum(len(m.sleeps) for m in self.machines)
        return self.seconds - self.slept + sleeps * ARTICLE_WAIT_SECONDS

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "slept_seconds": self.slept,
            "unscaled_seconds": self.unscaled_seconds,
            "clock_scale": self.clock_scale,
            "retry_wait_seconds": self.retry_wait_seconds,
            "started": self.started,
            "finished": self.finished,
            "machines": [asdict(m) for m in self.machines],
        }


def _agent_missing(err: HttpResponseError) -> bool:
    code = str(getattr(err.error, "code", "") or "")
    return code == "MobilityAgentNotInstalled" or "agent is not installed" in str(err).lower()


def run_baseline(
    settings: dict[str, str],
    machines: list[tuple[str, str]],
    clock_scale: float = DEFAULT_CLOCK_SCALE,
    say: Any = print,
) -> BaselineRun:
    """Fail `machines` ((item name, VM name), in boot group order) back, one after the other."""
    sub = settings["FAILBACK_AZURE_SUBSCRIPTION_ID"]
    rg = settings["FAILBACK_AZURE_RESOURCE_GROUP"]
    vault = settings["FAILBACK_AZURE_VAULT"]
    recovery_rg = settings["FAILBACK_AZURE_RECOVERY_RESOURCE_GROUP"]
    endpoint = settings["FAILBACK_AZURE_ENDPOINT"]
    ca = settings["FAILBACK_AZURE_CA_BUNDLE"]
    # The lab's stand-in for DefaultAzureCredential.
    credential = LabTokenCredential(endpoint, settings["FAILBACK_AZURE_LAB_TOKEN_SECRET"], ca)
    asr = SiteRecoveryManagementClient(credential, sub, base_url=endpoint, connection_verify=ca)
    compute = ComputeManagementClient(credential, sub, base_url=endpoint, connection_verify=ca)
    si = SmartConnect(
        host=settings["FAILBACK_VCENTER_HOST"],
        port=int(settings["FAILBACK_VCENTER_PORT"]),
        user=settings["FAILBACK_VCENTER_USER"],
        pwd=settings["FAILBACK_VCENTER_PASSWORD"],
        disableSslCertValidation=True,
    )
    retry_wait = ARTICLE_WAIT_SECONDS * clock_scale
    started = time.time()
    try:
        # What the admin looks up once: where the items are, and the re-protect settings (the
        # on-premises process server, the configuration server's own master target, the policy).
        items = {i.name: i for i in asr.replication_protected_items.list(rg, vault)}
        first = items[machines[0][0]].id.split("/")
        fabric_name, container = first[first.index("replicationFabrics") + 1], first[-3]
        fabric = asr.replication_fabrics.get(rg, vault, fabric_name)
        custom = fabric.properties.custom_details
        azure_ps = items[machines[0][0]].properties.provider_specific_details.process_server_id
        onprem_ps = next(ps.id for ps in custom.process_servers if ps.id != azure_ps)
        cs_mt = next(mt.id for mt in custom.master_target_servers if mt.name == custom.host_name)
        reprotect_body = asr_models.ReverseReplicationInput(
            properties=asr_models.ReverseReplicationInputProperties(
                failover_direction="RecoveryToPrimary",
                provider_specific_details=asr_models.InMageAzureV2ReprotectInput(
                    master_target_id=cs_mt,
                    process_server_id=onprem_ps,
                    run_as_account_id=custom.run_as_accounts[0].account_id,
                    policy_id=settings["FAILBACK_AZURE_REPROTECT_POLICY_ID"],
                ),
            )
        )
        failover_body = asr_models.UnplannedFailoverInput(
            properties=asr_models.UnplannedFailoverInputProperties(
                failover_direction="PrimaryToRecovery",
                source_site_operations="NotRequired",
                provider_specific_details=asr_models.InMageUnplannedFailoverInput(
                    recovery_point_type="LatestTime"
                ),
            )
        )
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        wanted = {vm for _, vm in machines}
        vms = {}
        for vm in view.view:
            if vm.name in wanted:
                vms[vm.name] = vm
        view.DestroyView()

        runs = []
        for item_name, vm_name in machines:
            run = MachineRun(item=item_name, vm_name=vm_name, started=time.time())
            ids = (rg, vault, fabric_name, container, item_name)
            asr.replication_protected_items.begin_unplanned_failover(*ids, failover_body).result()
            run.failed_over = time.time()
            _verify(vms[vm_name], compute, recovery_rg, vm_name)
            run.verified = time.time()
            asr.replication_protected_items.begin_failover_commit(*ids).result()
            run.committed = time.time()
            while True:
                run.reprotect_attempts += 1
                try:
                    asr.replication_protected_items.begin_reprotect(*ids, reprotect_body).result()
                    break
                except HttpResponseError as err:
                    if not _agent_missing(err):
                        raise
                    # The article: wait (up to 15 minutes) for the agent, then try again.
                    time.sleep(retry_wait)
                    run.sleeps.append(retry_wait)
            run.reprotected = time.time()
            runs.append(run)
            say(
                f"baseline: {vm_name} re-protected after {run.reprotected - run.started:.1f} s "
                f"({run.reprotect_attempts} re-protect attempts)"
            )
    finally:
        Disconnect(si)
    return BaselineRun(
        machines=runs,
        started=started,
        finished=time.time(),
        clock_scale=clock_scale,
        retry_wait_seconds=retry_wait,
    )


def _verify(vm: Any, compute: ComputeManagementClient, recovery_rg: str, name: str) -> None:
    """Poll until the on-premises VM is on with its tools running and the Azure VM is off."""
    deadline = time.time() + VERIFY_TIMEOUT_SECONDS
    while True:
        onprem_up = (
            vm.runtime.powerState == "poweredOn"
            and vm.guest.toolsRunningStatus == "guestToolsRunning"
        )
        view = compute.virtual_machines.instance_view(recovery_rg, name)
        power = [s.code for s in view.statuses or [] if str(s.code).startswith("PowerState/")]
        azure_off = any(p in ("PowerState/deallocated", "PowerState/stopped") for p in power)
        if onprem_up and azure_off:
            return
        if time.time() > deadline:
            raise RuntimeError(f"{name} did not come up on-premises")
        time.sleep(VERIFY_POLL_SECONDS)
