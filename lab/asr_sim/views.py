"""JSON documents as ASR and Compute send them, rendered from the simulator's state.

Field names follow the models of azure-mgmt-recoveryservicessiterecovery 2.0.0 and
azure-mgmt-compute, so the real SDK deserializes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lab.asr_sim import hyperv, modernized
from lab.asr_sim.arm import iso
from lab.asr_sim.operations import Operation
from lab.asr_sim.recovery_points import RecoveryPoint
from lab.asr_sim.state import (
    AGENT_VERSION,
    INITIAL_REPLICATION_DESCRIPTION,
    VCENTER_NOT_CONNECTED_CODE,
    VM_NOT_IN_CS_DATABASE_CODE,
    ItemState,
    Job,
    JobErrorRecord,
    Phase,
    SimulatorState,
    TaskRecord,
    allowed_operations,
    protection_state,
    protection_state_description,
)
from lab.asr_sim.topology import MasterTargetInfo, ProcessServerInfo, VCenterInfo, stable_guid
from lab.scenario import UNREACHABLE_HEARTBEAT_AGE_SECONDS, ProtectedItemSpec, RecoveryPlanSpec

ITEM_TYPE = (
    "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/"
    "replicationProtectedItems"
)
RECOVERY_POINT_TYPE = f"{ITEM_TYPE}/recoveryPoints"
JOB_TYPE = "Microsoft.RecoveryServices/vaults/replicationJobs"
FABRIC_TYPE = "Microsoft.RecoveryServices/vaults/replicationFabrics"
CONTAINER_TYPE = (
    "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers"
)
VCENTER_TYPE = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationvCenters"
POLICY_TYPE = "Microsoft.RecoveryServices/vaults/replicationPolicies"
RECOVERY_PLAN_TYPE = "Microsoft.RecoveryServices/vaults/replicationRecoveryPlans"

# Lab stand-ins (990xx) for health error codes ASR does not publish; see lab/ASR_SIMULATOR.md.
REPLICATION_UNHEALTHY_CODE = "99020"
# Microsoft's troubleshooting docs name 95226 for an unreachable configuration server.
CS_UNREACHABLE_HEALTH_CODE = "95226"
PROCESS_SERVER_UNHEALTHY_CODE = "99021"
MASTER_TARGET_UNHEALTHY_CODE = "99022"
MT_HOST_NOT_DISCOVERED_CODE = "99023"

# What ASR shows in currentScenario when no job runs on the item (seen in recordings).
_IDLE_SCENARIO_START = "1753-01-01T01:01:01Z"


def listing(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {"value": values, "nextLink": None}


# -- protected items ------------------------------------------------------------------------


def _idle_scenario(state: SimulatorState) -> dict[str, Any]:
    return {
        "scenarioName": "None",
        "jobId": state.ids.job("None"),
        "startTime": _IDLE_SCENARIO_START,
    }


def _scenario(state: SimulatorState, job: Job) -> dict[str, Any]:
    return {
        "scenarioName": job.spec.scenario_name,
        "jobId": state.ids.job(job.name),
        "startTime": iso(job.start_time),
    }


def _plan_scenario_status(job: Job | None) -> str:
    if job is None:
        return "None"
    return job.state if job.finished else "InProgress"


def _multi_vm_group(state: SimulatorState, spec: ProtectedItemSpec) -> dict[str, Any]:
    group = spec.replication_group
    if group is None and state.wire.standalone_group == "auto-created":
        # The group ASR makes for a VM protected on its own: name and id the same GUID.
        auto = stable_guid("auto-created-group", spec.name)
        return {"multiVmGroupId": auto, "multiVmGroupName": auto, "multiVmSyncStatus": "Disabled"}
    return {
        "multiVmGroupId": stable_guid("multi-vm-group", group) if group else None,
        "multiVmGroupName": group,
        "multiVmSyncStatus": "Enabled" if group else "Disabled",
    }


def item_resource(state: SimulatorState, item_name: str, now: dt.datetime) -> dict[str, Any]:
    item = state.items[item_name.lower()]
    ids = state.ids
    azure = state.scenario.azure
    spec = item.spec
    job = item.current_job
    current_scenario = _scenario(state, job) if job is not None else _idle_scenario(state)
    # InMageAzureV2 (on-premises -> Azure): before the reprotect to on-premises and after the
    # reprotect back to Azure; InMage (Azure -> on-premises) in between.
    to_azure = item.phase in (Phase.FAILED_OVER_TO_AZURE, Phase.REPLICATING_TO_AZURE)
    if to_azure:
        policy_name = azure.azure_policy_id
        policy_id = (
            item.azure_protection.request.policy_id
            if item.azure_protection is not None
            else ids.policy(policy_name)
        )
    else:
        policy_id = ids.policy(state.failback_policy_name)
        policy_name = state.failback_policy_name
    failover_point = item.failover_point
    properties: dict[str, Any] = {
        "friendlyName": spec.vm_name,
        "protectedItemType": "VMwareVirtualMachine",
        "protectableItemId": f"{ids.container_id}/replicationProtectableItems/{item.vm_id}",
        "recoveryServicesProviderId": (
            f"{ids.fabric_id}/replicationRecoveryServicesProviders/{azure.configuration_server}"
        ),
        "primaryFabricFriendlyName": azure.configuration_server,
        "primaryFabricProvider": "VMware",
        "recoveryFabricFriendlyName": "Microsoft Azure",
        "recoveryFabricId": "Microsoft Azure",
        "primaryProtectionContainerFriendlyName": azure.protection_container,
        "recoveryProtectionContainerFriendlyName": "Microsoft Azure",
        "protectionState": protection_state(item, now),
        "protectionStateDescription": protection_state_description(item, now),
        # UNVERIFIED: the lab reports the on-premises side as "Primary", so the item is in
        # "Recovery" while it runs in Azure and "Primary" once failed back.
        "activeLocation": (
            "Recovery"
            if item.phase in (Phase.FAILED_OVER_TO_AZURE, Phase.REPLICATING_TO_ONPREM)
            else "Primary"
        ),
        "testFailoverState": "None",
        "testFailoverStateDescription": "None",
        "allowedOperations": allowed_operations(item, now),
        "replicationHealth": item.replication_health(now),
        "failoverHealth": "Normal",
        "healthErrors": _item_health_errors(state, item, now),
        "policyId": policy_id,
        "policyFriendlyName": policy_name,
        "lastSuccessfulFailoverTime": iso(item.failover_completed_at),
        "lastSuccessfulTestFailoverTime": None,
        "currentScenario": current_scenario,
        "failoverRecoveryPointId": (
            ids.recovery_point(item.name, failover_point.name) if failover_point else None
        ),
        "providerSpecificDetails": (
            hyperv.item_details(state, item, now)
            if item.architecture == "hyperv"
            else _inmage_azure_v2_details(state, item_name, now)
            if to_azure
            else _inmage_details(state, item_name, now)
        ),
        "recoveryContainerId": "Microsoft Azure",
    }
    if item.architecture == "modernized":
        properties.update(_modernized_item_properties(state, item, now))
    if item.architecture == "hyperv":
        properties.update(hyperv.item_properties(state, item))
        properties["failoverRecoveryPointId"] = None
    return {
        "id": ids.item(item.name),
        "name": item.name,
        "type": ITEM_TYPE,
        "location": azure.location,
        "properties": properties,
    }


def _modernized_item_properties(
    state: SimulatorState, item: ItemState, now: dt.datetime
) -> dict[str, Any]:
    """Where a modernized item reads differently from a classic one (recorded: the appliance's
    provider, the InMageRcmFabric, and while it replicates back the VMware fabric and container
    as its recovery side and an empty protectedItemType)."""
    ids = state.ids
    azure = state.scenario.azure
    back = modernized.provider(item) == modernized.TO_ONPREM
    servers = modernized.appliances(state)
    to_azure_policy = azure.azure_policy_id
    policy = state.failback_policy_name if back else to_azure_policy
    return {
        "protectedItemType": "" if back else "VMwareVirtualMachine",
        "protectableItemId": None,
        "recoveryServicesProviderId": (
            f"{ids.fabric_id}/replicationRecoveryServicesProviders/{servers[0].id}"
            if servers
            else None
        ),
        "primaryFabricFriendlyName": ids.fabric,
        "primaryFabricProvider": "InMageRcmFabric",
        "recoveryFabricFriendlyName": ids.fabric if back else "Microsoft Azure",
        "recoveryFabricId": ids.fabric_id if back else "Microsoft Azure",
        "recoveryProtectionContainerFriendlyName": (
            azure.protection_container if back else "Microsoft Azure"
        ),
        "recoveryContainerId": ids.container_id if back else "Microsoft Azure",
        "policyId": ids.policy(policy),
        "policyFriendlyName": policy,
        "failoverRecoveryPointId": "",
        "providerSpecificDetails": modernized.item_details(state, item, now),
    }


def _inmage_details(state: SimulatorState, item_name: str, now: dt.datetime) -> dict[str, Any]:
    item = state.items[item_name.lower()]
    spec = item.spec
    points = item.visible_recovery_points(now)
    # Start histories were made at lab start; a reprotect's history grows until now.
    rpo_reference = state.started_at if item.onprem_protection is None else now
    protection = item.onprem_protection
    initial = item.initial_replication_running(now)
    if item.phase is Phase.REPLICATING_TO_ONPREM:
        heartbeat: dt.datetime | None = now
        agent_version: str | None = AGENT_VERSION
    elif item.phase is Phase.FAILOVER_COMMIT_PENDING:
        # The Azure VM is shut down: its agent's last heartbeat stays where it stopped.
        heartbeat = item.azure_vm.deallocated_at or item.failover_completed_at
        agent_version = AGENT_VERSION
    elif item.agent_registered(now):
        heartbeat = now
        agent_version = AGENT_VERSION
    else:
        # Failed back and committed, but the booted VM's mobility agent has not registered
        # with the configuration server yet: ASR has no heartbeat and no agent for it.
        heartbeat = None
        agent_version = None
    return {
        "instanceType": "InMage",
        "activeSiteType": "Azure" if item.committed_at is None else "OnPrem",
        "osDetails": {"osType": spec.os_type, "osVhdId": None, "vhdName": None},
        "osVersion": spec.os_version,
        "vmId": item.vm_id,
        "infrastructureVmId": f"vm-{item.vm_id[:8]}",
        "vCenterInfrastructureId": _vcenter_infrastructure_id(state, item),
        "discoveryType": spec.discovery_type,
        "protectionStage": (
            "InitialReplication"
            if initial
            else "Protected"
            if item.phase is Phase.REPLICATING_TO_ONPREM
            else "None"
        ),
        "vmProtectionState": "InitialReplication" if initial else "Protected",
        "vmProtectionStateDescription": (
            INITIAL_REPLICATION_DESCRIPTION if initial else "Protected"
        ),
        "resyncDetails": _resync_details(item, now),
        "rpoInSeconds": (int((rpo_reference - points[0].time).total_seconds()) if points else None),
        "retentionWindowStart": iso(points[-1].time) if points else None,
        "retentionWindowEnd": iso(points[0].time) if points else None,
        "consistencyPoints": {},
        "lastHeartbeat": iso(heartbeat),
        "processServerId": (
            protection.request.process_server_id
            if protection is not None
            else state.scenario.azure.process_server_id
        ),
        "masterTargetId": item.master_target_id,
        **_multi_vm_group(state, spec),
        "agentDetails": (
            {"agentVersion": agent_version, "agentUpdateStatus": "NotRequired"}
            if agent_version is not None
            else None
        ),
        "datastores": state.vm_datastores(item),
        "protectedDisks": [],
        "validationErrors": [],
    }


def _inmage_azure_v2_details(
    state: SimulatorState, item_name: str, now: dt.datetime
) -> dict[str, Any]:
    item = state.items[item_name.lower()]
    spec = item.spec
    protection = item.azure_protection
    failed_over = item.phase is Phase.FAILED_OVER_TO_AZURE
    if protection is not None:
        process_server_id = protection.request.process_server_id
        master_target_id = protection.request.master_target_id
    else:
        # Failed over to Azure: what the original replication to Azure went through.
        process_server_id = state.scenario.azure.onprem_process_server_id
        master_target_id = state.fabric.builtin_master_target.id
    # UNVERIFIED: the vmProtectionState of a machine failed over to Azure and committed.
    vm_state = ("FailedOver", "Failed over to Azure") if failed_over else ("Protected", "Protected")
    return {
        "instanceType": "InMageAzureV2",
        "osType": spec.os_type,
        "osVersion": spec.os_version,
        "osName": spec.os_version,
        "agentVersion": AGENT_VERSION,
        "lastHeartbeat": iso(now),
        "processServerId": process_server_id,
        "masterTargetId": master_target_id,
        "recoveryAzureVMName": spec.azure_vm_name,
        "vmId": item.vm_id,
        "vCenterInfrastructureId": _vcenter_infrastructure_id(state, item),
        "discoveryType": spec.discovery_type,
        **_multi_vm_group(state, spec),
        "vmProtectionState": vm_state[0],
        "vmProtectionStateDescription": vm_state[1],
        "protectionStage": vm_state[0],
        "lastRecoveryPointReceived": None,
        "recoveryAzureResourceGroupId": (
            f"/subscriptions/{state.ids.subscription}/resourceGroups/"
            f"{state.ids.recovery_resource_group}"
        ),
        "recoveryAzureLogStorageAccountId": state.ids.log_storage_account,
        "validationErrors": [],
    }


def _vcenter_infrastructure_id(state: SimulatorState, item: ItemState) -> str | None:
    """The vCenter (or ESXi host) entry the machine was discovered through; none if physical."""
    if item.spec.discovery_type == "Physical":
        return None
    fabric = state.fabric
    try:
        host: str | None = state.scenario.vm(item.spec.vm_name).host
    except KeyError:
        host = None
    entry = fabric.vcenter_for_host(host) or fabric.default_vcenter
    return entry.name if entry is not None else None


def _resync_details(item: ItemState, now: dt.datetime) -> dict[str, Any] | None:
    """Initial replication progress after a reprotect to on-premises (InitialReplicationDetails).

    UNVERIFIED: the type strings; progress grows linearly over the scenario's duration.
    """
    protection = item.onprem_protection
    if protection is None or item.phase is not Phase.REPLICATING_TO_ONPREM:
        return None
    total = (protection.healthy_at - protection.protected_at).total_seconds()
    done = (now - protection.protected_at).total_seconds()
    percent = 100 if total <= 0 else max(0, min(100, int(100 * done / total)))
    return {
        "initialReplicationType": (
            "FullCopy" if protection.request.alternate_location else "DifferentialCopy"
        ),
        "initialReplicationProgressPercentage": str(percent),
    }


def health_error(
    code: str,
    message: str,
    *,
    level: str,
    category: str,
    entity_id: str | None,
    created: dt.datetime,
    possible_causes: str = "",
    recommended_action: str = "",
) -> dict[str, Any]:
    """A HealthError as ASR lists it (healthErrors, healthErrorDetails, validationErrors)."""
    return {
        "errorSource": "ConfigurationServer",
        "errorType": category,
        "errorLevel": level,
        "errorCategory": category,
        "errorCode": code,
        "summaryMessage": message,
        "errorMessage": message,
        "possibleCauses": possible_causes,
        "recommendedAction": recommended_action,
        "creationTimeUtc": iso(created),
        "recoveryProviderErrorMessage": None,
        "entityId": entity_id,
        "errorId": stable_guid("health-error", code, entity_id or ""),
        "customerResolvability": "Allowed",
        "innerHealthErrors": [],
    }


def _item_health_errors(
    state: SimulatorState, item: ItemState, now: dt.datetime
) -> list[dict[str, Any]]:
    spec = item.spec
    errors = []
    if not spec.known_to_configuration_server:
        errors.append(
            health_error(
                VM_NOT_IN_CS_DATABASE_CODE,
                f"The virtual machine '{spec.vm_name}' is not in the database of configuration "
                f"server '{state.fabric.configuration_server}'; it cannot be failed back.",
                level="Error",
                category="Configuration",
                entity_id=spec.vm_name,
                created=state.started_at,
                possible_causes="The configuration server was restored from an older backup "
                "or rebuilt.",
                recommended_action="Restore the configuration server's database or rediscover "
                "the machine.",
            )
        )
    health = item.replication_health(now)
    if health != "Normal" and not item.initial_replication_running(now):
        errors.append(
            health_error(
                REPLICATION_UNHEALTHY_CODE,
                f"Replication of '{spec.vm_name}' is {health}.",
                level="Error" if health == "Critical" else "Warning",
                category="Replication",
                entity_id=spec.vm_name,
                created=state.started_at,
                recommended_action="Resolve the replication problem and wait for health Normal.",
            )
        )
    return errors


def recovery_point_resource(
    state: SimulatorState, item_name: str, point: RecoveryPoint
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "recoveryPointTime": iso(point.time, timespec="seconds"),
        "recoveryPointType": point.type,
    }
    # The API knows no InMage point details; InMageAzureV2's are the only ones with the multi-VM
    # flag (service.json 2025-08-01). What real ASR sends here is UNKNOWN: a variant.
    if state.wire.point_details == "InMageAzureV2" and state.architecture == "classic":
        properties["providerSpecificDetails"] = {
            "instanceType": "InMageAzureV2",
            "isMultiVmSyncPoint": "true" if point.is_multi_vm_sync_point else "false",
        }
    return {
        "id": state.ids.recovery_point(item_name, point.name),
        "name": point.name,
        "type": RECOVERY_POINT_TYPE,
        "properties": properties,
    }


# -- recovery plans ---------------------------------------------------------------------------


def recovery_plan_resource(state: SimulatorState, plan: RecoveryPlanSpec) -> dict[str, Any]:
    """A plan as ASR shows it: a Shutdown and a Failover group (no items), then the Boot groups."""
    ids = state.ids
    azure = state.scenario.azure
    members = [state.items[name.lower()] for group in plan.boot_groups for name in group]
    providers = sorted(
        {
            "InMageAzureV2"
            if item.phase in (Phase.FAILED_OVER_TO_AZURE, Phase.REPLICATING_TO_AZURE)
            else "InMage"
            for item in members
        }
    )
    if state.architecture == "hyperv":
        providers = [hyperv.PROVIDER]  # recorded (hyperv-RPFailback.json)
    # UNVERIFIED: the lab offers a plan the operations every member allows (bar disabling
    # protection, which is an item operation).
    now = state.clock()
    last = state.plan_jobs.get(plan.name.lower())
    allowed = [
        op
        for op in allowed_operations(members[0], now)
        if op != "DisableProtection" and all(op in allowed_operations(m, now) for m in members)
    ]
    if state.architecture == "hyperv" and state.wire.hyperv_plan_operations == "plan-words":
        allowed = hyperv.plan_allowed_operations(allowed)
    planned = last is not None and last.operation is Operation.PLANNED_FAILOVER

    def group(kind: str, names: list[str]) -> dict[str, Any]:
        return {
            "groupType": kind,
            "replicationProtectedItems": [
                {
                    "id": ids.item(state.items[name.lower()].name),
                    "virtualMachineId": state.items[name.lower()].vm_id,
                }
                for name in names
            ],
            "startGroupActions": [],
            "endGroupActions": [],
        }

    return {
        "id": ids.recovery_plan(plan.name),
        "name": plan.name,
        "type": RECOVERY_PLAN_TYPE,
        "location": azure.location,
        "properties": {
            "friendlyName": plan.name,
            "primaryFabricId": ids.fabric_id,
            "primaryFabricFriendlyName": azure.configuration_server,
            "recoveryFabricId": "Microsoft Azure",
            "recoveryFabricFriendlyName": "Microsoft Azure",
            "failoverDeploymentModel": "ResourceManager",
            "replicationProviders": providers,
            "allowedOperations": allowed,
            # Recorded: a plan's planned failover is its lastPlannedFailoverTime.
            "lastPlannedFailoverTime": iso(last.start_time)
            if last is not None and planned
            else None,
            "lastUnplannedFailoverTime": iso(last.start_time)
            if last is not None and not planned
            else None,
            "lastTestFailoverTime": None,
            # Recorded: the plan keeps naming its last job, with that job's status, after it ended.
            "currentScenario": _scenario(state, last)
            if last is not None
            else _idle_scenario(state),
            "currentScenarioStatus": _plan_scenario_status(last),
            "currentScenarioStatusDescription": _state_description(_plan_scenario_status(last)),
            "groups": [
                group("Shutdown", []),
                group("Failover", []),
                *(group("Boot", names) for names in plan.boot_groups),
            ],
            "providerSpecificDetails": [],
        },
    }


# -- jobs -----------------------------------------------------------------------------------


def job_resource(state: SimulatorState, job: Job) -> dict[str, Any]:
    return {
        "id": state.ids.job(job.name),
        "name": job.name,
        "type": JOB_TYPE,
        "location": state.scenario.azure.location,
        "properties": {
            "activityId": job.activity_id,
            "scenarioName": job.spec.scenario_name,
            "friendlyName": f"{job.spec.friendly_name} ({job.target_name})",
            "state": job.state,
            "stateDescription": job.state_description or _state_description(job.state),
            "tasks": [_task(t) for t in job.tasks],
            "errors": [_job_error(e) for e in job.errors],
            "startTime": iso(job.start_time),
            "endTime": iso(job.end_time),
            "allowedActions": [],
            # ASR's own id of the protected entity or plan, a GUID that is not its ARM name
            # (ReplicationJobs_Get example; the V2A PowerShell walkthrough).
            **_job_target(state, job),
        },
    }


def _job_target(state: SimulatorState, job: Job) -> dict[str, Any]:
    if job.item is None:
        assert job.plan is not None
        return {
            "targetObjectId": stable_guid("recovery-plan", job.plan.name),
            "targetObjectName": job.plan.name,
            # As the ReplicationJobs_Get example names a plan's job.
            "targetInstanceType": "RecoveryPlan",
            "customDetails": {"instanceType": "AsrJobDetails", "affectedObjectDetails": {}},
        }
    return {
        "targetObjectId": stable_guid("protected-entity", job.item.name),
        "targetObjectName": job.item.spec.vm_name,
        "targetInstanceType": "ProtectionEntity",
        "customDetails": {
            "instanceType": "AsrJobDetails",
            "affectedObjectDetails": {"ProtectedItemId": state.ids.item(job.item.name)},
        },
    }


def operation_status(state: SimulatorState, job: Job) -> dict[str, Any]:
    status = {"Succeeded": "Succeeded", "Failed": "Failed"}.get(job.state, "InProgress")
    document: dict[str, Any] = {
        "id": state.ids.operation_status(job.name),
        "name": job.name,
        "status": status,
        "startTime": iso(job.start_time),
        "endTime": iso(job.end_time),
    }
    if job.state == "Failed" and job.errors:
        first = job.errors[0]
        document["error"] = {"code": first.code, "message": first.message}
    return document


def _state_description(state: str) -> str:
    return {"Succeeded": "Completed", "InProgress": "InProgress"}.get(state, state)


def _task(task: TaskRecord) -> dict[str, Any]:
    return {
        "taskId": task.task_id,
        "name": task.spec.name,
        "friendlyName": task.spec.friendly_name,
        "state": task.state,
        "stateDescription": _state_description(task.state),
        "startTime": iso(task.start_time),
        "endTime": iso(task.end_time),
        "allowedActions": [],
        "errors": [_job_error(e) for e in task.errors],
    }


def _job_error(error: JobErrorRecord) -> dict[str, Any]:
    return {
        "serviceErrorDetails": {
            "code": error.code,
            "message": error.message,
            "possibleCauses": error.possible_causes,
            "recommendedAction": error.recommended_action,
        },
        "errorLevel": "Error",
        "creationTime": iso(error.time),
        "taskId": error.task_id,
    }


# -- fabric, container, vCenter, policies -----------------------------------------------------


def fabric_resource(state: SimulatorState, now: dt.datetime) -> dict[str, Any]:
    if state.architecture in ("modernized", "hyperv"):
        details = (
            modernized.fabric_details(state, now)
            if state.architecture == "modernized"
            else hyperv.fabric_details(state)
        )
        return {
            "id": state.ids.fabric_id,
            "name": state.ids.fabric,
            "type": FABRIC_TYPE,
            "location": state.scenario.azure.location,
            "properties": {
                "friendlyName": state.ids.fabric,
                "encryptionDetails": {"kekState": "None", "kekCertThumbprint": None},
                "rolloverEncryptionDetails": {"kekState": "None", "kekCertThumbprint": None},
                "internalIdentifier": stable_guid("fabric", state.ids.fabric),
                "bcdrState": "Valid",
                "customDetails": details,
                "healthErrorDetails": [],
                "health": "Normal",
            },
        }
    fabric = state.fabric
    azure = state.scenario.azure
    cs_age = dt.timedelta(seconds=fabric.heartbeat_age_seconds)
    cs_heartbeat = now - cs_age
    errors = []
    if not fabric.reachable:
        errors.append(
            health_error(
                CS_UNREACHABLE_HEALTH_CODE,
                f"The configuration server '{fabric.configuration_server}' has not sent a "
                f"heartbeat since {iso(cs_heartbeat)}.",
                level="Error",
                category="FabricInfrastructure",
                entity_id=fabric.configuration_server,
                created=cs_heartbeat,
                possible_causes="The configuration server is shut down, its services are "
                "stopped, or it cannot reach Azure.",
                recommended_action="Start the configuration server and its services and check "
                "its connection to Azure.",
            )
        )

    def heartbeat(age_seconds: float) -> str | None:
        # Components report through the configuration server: nothing newer than its own
        # heartbeat reaches Azure while it is down.
        return iso(now - max(cs_age, dt.timedelta(seconds=age_seconds)))

    return {
        "id": state.ids.fabric_id,
        "name": state.ids.fabric,
        "type": FABRIC_TYPE,
        "location": azure.location,
        "properties": {
            "friendlyName": fabric.configuration_server,
            "internalIdentifier": state.ids.fabric,
            "bcdrState": "Valid",
            "health": "Normal" if fabric.reachable else "Critical",
            "healthErrorDetails": errors,
            "customDetails": {
                "instanceType": "VMware",
                "hostName": fabric.configuration_server,
                "ipAddress": fabric.builtin_master_target.ip_address,
                "agentVersion": AGENT_VERSION,
                "lastHeartbeat": iso(cs_heartbeat),
                "csServiceStatus": "Running" if fabric.reachable else "Stopped",
                "versionStatus": "Supported",
                "processServerCount": str(len(fabric.process_servers)),
                "protectedServers": str(len(azure.items)),
                "processServers": [
                    _process_server(state, ps, heartbeat(ps.heartbeat_age_seconds))
                    for ps in fabric.process_servers
                ],
                "masterTargetServers": [
                    _master_target(state, mt, heartbeat(mt.heartbeat_age_seconds))
                    for mt in fabric.master_targets
                ],
                "runAsAccounts": [
                    {"accountId": a.account_id, "accountName": a.account_name}
                    for a in fabric.run_as_accounts
                ],
            },
        },
    }


def _process_server(
    state: SimulatorState, ps: ProcessServerInfo, last_heartbeat: str | None
) -> dict[str, Any]:
    errors = []
    if ps.health != "Normal":
        errors.append(
            health_error(
                PROCESS_SERVER_UNHEALTHY_CODE,
                f"Process server '{ps.friendly_name}' is {ps.health}.",
                level="Error" if ps.health == "Critical" else "Warning",
                category="FabricInfrastructure",
                entity_id=ps.id,
                created=state.started_at,
                recommended_action="Check the process server's services, disk space and "
                "network connection.",
            )
        )
    return {
        "id": ps.id,
        "friendlyName": ps.friendly_name,
        "ipAddress": ps.ip_address,
        "osType": "Windows",
        "agentVersion": AGENT_VERSION,
        "lastHeartbeat": last_heartbeat,
        "versionStatus": "Supported",
        "health": ps.health,
        "psServiceStatus": "Running",
        "healthErrors": errors,
    }


def _master_target(
    state: SimulatorState, mt: MasterTargetInfo, last_heartbeat: str | None
) -> dict[str, Any]:
    gib = 1024**3
    health_errors = []
    if mt.health != "Normal":
        health_errors.append(
            health_error(
                MASTER_TARGET_UNHEALTHY_CODE,
                f"Master target '{mt.name}' is {mt.health}.",
                level="Error" if mt.health == "Critical" else "Warning",
                category="FabricInfrastructure",
                entity_id=mt.id,
                created=state.started_at,
                recommended_action="Check the master target's services and retention volume.",
            )
        )
    validation_errors = []
    if not mt.host_discovered:
        validation_errors.append(
            health_error(
                MT_HOST_NOT_DISCOVERED_CODE,
                f"The ESXi host '{mt.host}' of master target '{mt.name}' is not discovered by "
                f"the configuration server: no datastores are known for it.",
                level="Error",
                category="Configuration",
                # The undiscovered host, so that a caller can name it.
                entity_id=mt.host,
                created=state.started_at,
                recommended_action="Add the ESXi host (or its vCenter) to the configuration "
                "server and wait for discovery.",
            )
        )
    return {
        "id": mt.id,
        "name": mt.name,
        "ipAddress": mt.ip_address,
        "osType": mt.os_type,
        "agentVersion": AGENT_VERSION,
        "lastHeartbeat": last_heartbeat,
        "versionStatus": "Supported",
        "retentionVolumes": [
            {
                "volumeName": volume.volume_name,
                "capacityInBytes": volume.capacity_gb * gib,
                "freeSpaceInBytes": volume.free_gb * gib,
                "thresholdPercentage": None,  # as recorded (v2aFailbackReprotect.json)
            }
            for volume in mt.retention_volumes
        ],
        "dataStores": [
            {
                "symbolicName": ds.name,
                # As recorded (v2aFailbackReprotect.json): a VMFS-style uuid, and sizes in GB
                # as decimal strings ("439.5", "154.11").
                "uuid": _vmfs_uuid(ds.name),
                "capacity": _gigabytes(ds.capacity_gb),
                "freeSpace": _gigabytes(ds.capacity_gb / 2),
                "type": ds.type,
            }
            for ds in mt.datastores
        ],
        "diskCount": 1,
        "healthErrors": health_errors,
        "validationErrors": validation_errors,
    }


def _gigabytes(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _vmfs_uuid(name: str) -> str:
    digits = stable_guid("datastore", name).replace("-", "")
    return f"{digits[:8]}-{digits[8:16]}-{digits[16:20]}-{digits[20:32]}"


def container_resource(state: SimulatorState) -> dict[str, Any]:
    azure = state.scenario.azure
    return {
        "id": state.ids.container_id,
        "name": state.ids.container,
        "type": CONTAINER_TYPE,
        "location": azure.location,
        "properties": {
            "fabricFriendlyName": azure.configuration_server,
            "friendlyName": azure.protection_container,
            "fabricType": "VMware",
            "protectedItemCount": len(azure.items),
            "pairingStatus": "Paired",
            "role": "Primary",
        },
    }


def vcenter_resource(
    state: SimulatorState, vcenter: VCenterInfo, now: dt.datetime
) -> dict[str, Any]:
    fabric = state.fabric
    # Discovery runs on the configuration server: its own outage freezes the heartbeat too.
    age = fabric.heartbeat_age_seconds
    if not vcenter.connected:
        age = max(age, UNREACHABLE_HEARTBEAT_AGE_SECONDS)
    last_heartbeat = now - dt.timedelta(seconds=age)
    errors = []
    if not vcenter.connected:
        errors.append(
            health_error(
                VCENTER_NOT_CONNECTED_CODE,
                f"The configuration server cannot connect to vCenter '{vcenter.friendly_name}' "
                f"({vcenter.name}); discovery and disk operations on its hosts fail.",
                level="Error",
                category="FabricInfrastructure",
                entity_id=vcenter.name,
                created=last_heartbeat,
                possible_causes="vCenter is down or unreachable from the configuration server, "
                "or the discovery account's credentials are wrong.",
                recommended_action="Fix the connection or the account on the configuration "
                "server, then refresh the vCenter in the vault.",
            )
        )
    return {
        "id": state.ids.vcenter(vcenter.name),
        "name": vcenter.name,
        "type": VCENTER_TYPE,
        "location": state.scenario.azure.location,
        "properties": {
            "friendlyName": vcenter.friendly_name,
            "internalId": vcenter.name,
            "lastHeartbeat": iso(last_heartbeat),
            # UNKNOWN: ASR's example shows "Pending" (while discovery runs); the healthy word is
            # a variant (azure.wire.vcenter_discovery_status).
            "discoveryStatus": (
                state.wire.vcenter_discovery_status if vcenter.connected else "Disconnected"
            ),
            "processServerId": state.scenario.azure.onprem_process_server_id,
            "ipAddress": vcenter.ip_address,
            "infrastructureId": vcenter.name,
            "port": str(vcenter.port),
            "runAsAccountId": "1",
            "fabricArmResourceName": state.ids.fabric,
            "healthErrors": errors,
        },
    }


def policy_resources(state: SimulatorState) -> list[dict[str, Any]]:
    if state.architecture == "modernized":
        return _modernized_policies(state)
    to_azure = state.scenario.azure.azure_policy_id
    failback = state.failback_policy_name
    # The failback policy's values are fixed by ASR (notes: RPO 15 min, 24 h, app-consistent
    # every 60 min).
    others = [
        _failback_policy(state, name) for name in state.scenario.azure.other_failback_policies
    ]
    return [
        *others,
        {
            "id": state.ids.policy(to_azure),
            "name": to_azure,
            "type": POLICY_TYPE,
            "properties": {
                "friendlyName": to_azure,
                "providerSpecificDetails": {
                    "instanceType": "InMageAzureV2",
                    "crashConsistentFrequencyInMinutes": 5,
                    "recoveryPointThresholdInMinutes": 15,
                    "recoveryPointHistory": 1440,
                    "appConsistentFrequencyInMinutes": 60,
                    "multiVmSyncStatus": "Enabled",
                },
            },
        },
        _failback_policy(state, failback),
    ]


def _modernized_policies(state: SimulatorState) -> list[dict[str, Any]]:
    """The forward InMageRcm policy and the InMageRcmFailback one, with the recorded fields."""
    to_azure = state.scenario.azure.azure_policy_id

    def policy(name: str, details: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": state.ids.policy(name),
            "name": name,
            "type": POLICY_TYPE,
            "properties": {"friendlyName": name, "providerSpecificDetails": details},
        }

    return [
        *(
            policy(
                name,
                {
                    "instanceType": "InMageRcmFailback",
                    "appConsistentFrequencyInMinutes": 60,
                    "crashConsistentFrequencyInMinutes": 5,
                },
            )
            for name in state.scenario.azure.other_failback_policies
        ),
        policy(
            to_azure,
            {
                "instanceType": "InMageRcm",
                "recoveryPointHistoryInMinutes": 1440,
                "appConsistentFrequencyInMinutes": 60,
                "crashConsistentFrequencyInMinutes": 5,
                "enableMultiVmSync": "True",
            },
        ),
        policy(
            state.failback_policy_name,
            {
                "instanceType": "InMageRcmFailback",
                "appConsistentFrequencyInMinutes": 60,
                "crashConsistentFrequencyInMinutes": 5,
            },
        ),
    ]


def _failback_policy(state: SimulatorState, name: str) -> dict[str, Any]:
    return {
        "id": state.ids.policy(name),
        "name": name,
        "type": POLICY_TYPE,
        "properties": {
            "friendlyName": name,
            "providerSpecificDetails": {
                "instanceType": "InMage",
                "recoveryPointThresholdInMinutes": 15,
                "recoveryPointHistory": 1440,
                "appConsistentFrequencyInMinutes": 60,
                "multiVmSyncStatus": "Enabled",
            },
        },
    }


MAPPING_TYPE = "Microsoft.RecoveryServices/vaults/replicationProtectionContainerMappings"


def container_mapping_resources(state: SimulatorState) -> list[dict[str, Any]]:
    """The container's policy mappings, shaped as the spec example: one for replication to
    Azure, one for the failback policy (a VMware container is paired with both; the failback
    policy is the one a reprotect to on-premises names as profileId)."""
    azure = state.scenario.azure
    mappings = []
    for policy, target in (
        (azure.azure_policy_id, "Microsoft Azure"),
        (state.failback_policy_name, azure.protection_container),
    ):
        name = f"{azure.protection_container}-{policy}"
        mappings.append(
            {
                "id": f"{state.ids.container_id}/replicationProtectionContainerMappings/{name}",
                "name": name,
                "type": MAPPING_TYPE,
                "properties": {
                    "targetProtectionContainerId": target,
                    "targetProtectionContainerFriendlyName": target,
                    "health": "Normal",
                    "healthErrorDetails": [],
                    "policyId": state.ids.policy(policy),
                    "state": "Paired",
                    "sourceProtectionContainerFriendlyName": azure.protection_container,
                    "sourceFabricFriendlyName": azure.configuration_server,
                    "targetFabricFriendlyName": target,
                    "policyFriendlyName": policy,
                },
            }
        )
    return mappings


# -- compute --------------------------------------------------------------------------------


def compute_vm_resource(
    state: SimulatorState, vm_name: str, *, with_instance_view: bool
) -> dict[str, Any]:
    item = state.item_of_azure_vm(vm_name)
    assert item is not None
    vm = item.azure_vm
    properties: dict[str, Any] = {
        "vmId": vm.vm_id,
        "provisioningState": "Succeeded",
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {
            "osDisk": {
                "osType": item.spec.os_type,
                "name": f"{vm.name}-osdisk",
                "createOption": "Attach",
                "caching": "ReadWrite",
                "managedDisk": {"storageAccountType": "Premium_LRS"},
            },
            "dataDisks": [],
        },
        "osProfile": None,
        "networkProfile": {"networkInterfaces": []},
    }
    if with_instance_view:
        properties["instanceView"] = instance_view(state, vm_name)
    return {
        "id": state.ids.compute_vm(vm.name),
        "name": vm.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": state.scenario.azure.location,
        "tags": {"asr-failback-lab": "failed-over"},
        "properties": properties,
    }


def compute_vms_listed(state: SimulatorState) -> list[Any]:
    """The items whose Azure VM Compute's List All shows (a deleted one is gone), in its order."""
    return [item for item in state.items.values() if item.azure_vm.deleted_at is None]


def compute_vm_listed(
    state: SimulatorState, item: Any, *, with_instance_view: bool
) -> dict[str, Any]:
    """One VM as Compute's List All answers it: with statusOnly=true, only the identity and the
    instance view (the shape of its spec's model with the other properties unset)."""
    vm = item.azure_vm
    properties: dict[str, Any] = {"vmId": vm.vm_id}
    if with_instance_view:
        properties["instanceView"] = _instance_view_of(state, item, vm)
    else:
        properties["provisioningState"] = "Succeeded"
    return {
        "id": state.ids.compute_vm(vm.name),
        "name": vm.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": state.scenario.azure.location,
        "properties": properties,
    }


def instance_view(state: SimulatorState, vm_name: str) -> dict[str, Any]:
    item = state.item_of_azure_vm(vm_name)
    assert item is not None
    return _instance_view_of(state, item, item.azure_vm)


def _instance_view_of(state: SimulatorState, item: Any, vm: Any) -> dict[str, Any]:
    running = vm.power_state == "running"
    power_time = vm.deallocated_at if not running else state.started_at
    return {
        "computerName": item.spec.vm_name,
        "osName": item.spec.os_type,
        "osVersion": item.spec.os_version,
        "statuses": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "time": iso(power_time),
            },
            {
                "code": "PowerState/running" if running else "PowerState/deallocated",
                "level": "Info",
                "displayStatus": "VM running" if running else "VM deallocated",
            },
        ],
    }
