"""The reliability harness: real lab processes, real SDKs, no mocks.

Shared by tests/reliability (a representative subset) and `python -m lab.reliability` (the full
matrix, which rewrites RELIABILITY.md). One lab (vcsim, the ASR simulator, a file-backed
Temporal dev server and a worker, as `failback lab up` starts them) serves many cases: each case
has its own *unit*, a recovery plan with its own machines, so that the simulator's journal says
exactly what each case asked of "Azure". A case starts its plan, watches it through the status
queries (and the journal), does its one disruption at its trigger (kill -9 the worker, restart
the Temporal server, pause vCenter, ...) or arms its faults before the start, approves when the
plan awaits approval, and at the end checks what held:

- completed: every machine has exactly one accepted (202) unplannedFailover, failoverCommit and
  reProtect to Azure, at most one reProtect to on-premises, and its Azure VM is deleted;
- stopped: the plan failed, its reason names the cause, and nothing was committed: no
  failoverCommit was sent, every Azure VM still exists;
- completed-without-reprotect: committed once, never re-protected (the operator's decision);
- cancelled: nothing committed, every Azure VM still exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from domain.models import Architecture, MachineStatus, PlanFailbackResult, PlanStatus
from lab import manager
from lab.manager import LabProcess, LabState, lab_down, lab_up, operator_environ
from starter.commands import (
    CommandError,
    approve,
    cut_over,
    plan_input,
    start_plan_failback,
    undo,
)
from worker.settings import Settings
from worker.wiring import connect_temporal
from workflows.machine import MachineFailbackWorkflow, machine_workflow_id
from workflows.plan import PlanFailbackWorkflow, plan_workflow_id

ROOT = Path(__file__).resolve().parents[2]
HOST = "esx-01.corp.local"
DATASTORE = "ds-vmfs-01"
MASTER_TARGET = "mt-linux-01"
APPLIANCE = "appliance-01"
HV_HOST = "hv-01.corp.local"
HV_SWITCH = "vSwitch-Prod"
# ASR job durations: long enough that "inside a job" is a moment one can hit.
JOBS = {"failover_seconds": 3, "commit_seconds": 2, "reprotect_seconds": 2}
QUERY_TIMEOUT = timedelta(seconds=3)

# --- the scenario: independent units, one recovery plan each -----------------------------------

UnitKind = Literal["reprotect", "replicating", "group", "hyperv"]


@dataclass(frozen=True)
class Unit:
    """A recovery plan of its own, with machines of its own.

    reprotect: two machines failed over to Azure and committed there (web: its VM exists
    on-premises, original location; app: its VM is gone, alternate location); the plan
    reprotects both to on-premises first. replicating: `machines` machines already replicating
    back. group: a replication group of two members (db2 lags 65 min, so the group's newest
    common application-consistent point is older than db1's own) and a standalone machine.
    """

    key: str
    kind: UnitKind = "replicating"
    machines: int = 1
    agent_never_registers: bool = False
    unknown_to_cs: bool = False
    # The datastore the operator names for an alternate-location reprotect (None: chosen).
    reprotect_datastore: str | None = None
    # Hyper-V: how the failback's data syncs (for-downtime: the harness gives the cut-over).
    data_sync: str = "for-synchronization"

    @property
    def plan(self) -> str:
        return f"plan-{self.key}"

    @property
    def vms(self) -> tuple[str, ...]:
        if self.kind in ("reprotect", "hyperv"):
            return (f"{self.key}-web", f"{self.key}-app")
        if self.kind == "group":
            return (f"{self.key}-db1", f"{self.key}-db2", f"{self.key}-solo")
        if self.machines == 1:
            return (f"{self.key}-vm",)
        return tuple(f"{self.key}-vm{n}" for n in range(1, self.machines + 1))

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(item_of(vm) for vm in self.vms)

    def describe(self) -> str:
        extra = []
        if self.agent_never_registers:
            extra.append("agents never register")
        if self.unknown_to_cs:
            extra.append(f"{self.vms[0]} unknown to the configuration server")
        if self.reprotect_datastore:
            extra.append(f"reprotect to datastore {self.reprotect_datastore} asked")
        text = {
            "reprotect": "2 VMs in Azure, reprotected first (original + alternate location)",
            "hyperv": "2 Hyper-V VMs in Azure (original + alternate location), " + self.data_sync,
            "replicating": f"{self.machines} VM{'s' if self.machines > 1 else ''} replicating back",
            "group": "replication group of 2 + 1 standalone VM, replicating back",
        }[self.kind]
        return text + (f"; {', '.join(extra)}" if extra else "")


def item_of(vm: str) -> str:
    return f"{vm}-item"


def _points(crash: int, app: int, lag: int = 0) -> dict[str, int]:
    return {
        "crash_consistent_every_seconds": crash,
        "app_consistent_every_seconds": app,
        "retention_seconds": 86400,
        "lag_seconds": lag,
    }


def _unit_items(unit: Unit) -> list[dict[str, Any]]:
    base: dict[str, Any] = {
        "os_type": "Linux",
        "os_version": "Ubuntu 22.04",
        "agent_registration_delay_seconds": 3,
        "agent_never_registers": unit.agent_never_registers,
    }
    items: list[dict[str, Any]] = []
    for index, vm in enumerate(unit.vms):
        item = {**base, "name": item_of(vm), "vm_name": vm, "azure_vm_name": vm}
        if unit.kind == "hyperv":
            item.update(
                state="failed-over-to-azure",
                recovery_points=_points(60, 300),
                hyperv_host=HV_HOST,
                hyperv_switches=[HV_SWITCH],
                initial_replication_seconds=2,
            )
        elif unit.kind == "reprotect":
            item.update(state="failed-over-to-azure", recovery_points=_points(60, 300))
            if index == 0:
                item["initial_replication_seconds"] = 2
            else:
                item.update(full_copy_seconds=4, disk_sizes_gb=[40, 20])
        elif unit.kind == "group":
            lag = (60, 3900, 900)[index]
            item.update(state="replicating-back", recovery_points=_points(300, 3600, lag))
            if index < 2:
                item["replication_group"] = f"rg-{unit.key}"
        else:
            item.update(state="replicating-back", recovery_points=_points(300, 3600, 60))
        if index == 0 and unit.unknown_to_cs:
            item["known_to_configuration_server"] = False
        items.append(item)
    return items


def _unit_vms(unit: Unit) -> list[dict[str, Any]]:
    vms = list(unit.vms)
    if unit.kind == "reprotect":
        vms = vms[:1]  # the app VM is gone on-premises: alternate location
    return [
        {
            "name": vm,
            "host": HOST,
            "datastore": DATASTORE,
            "os_type": "Linux",
            "guest_os_version": "Ubuntu 22.04",
            "power_state": "poweredOff",
        }
        for vm in vms
    ]


def _hyperv_scenario(units: Sequence[Unit], jobs: dict[str, float] | None) -> dict[str, Any]:
    """Hyper-V: one host with the units' web VMs (off); their app VMs are gone (created again
    on the same host by the failback)."""
    return {
        "name": "reliability-hyperv",
        "description": f"One recovery plan per reliability case on Hyper-V host {HV_HOST}.",
        "hyperv": {
            "hosts": [{"name": HV_HOST, "switches": [HV_SWITCH]}],
            "vms": [
                {"name": unit.vms[0], "host": HV_HOST, "switches": [HV_SWITCH]} for unit in units
            ],
        },
        "azure": {
            "architecture": "hyperv",
            "fabric": "hv-site-01",
            "items": [item for unit in units for item in _unit_items(unit)],
            "recovery_plans": [
                {"name": unit.plan, "boot_groups": [list(unit.items)]} for unit in units
            ],
            "jobs": dict(jobs or JOBS),
        },
    }


def build_scenario(
    units: Sequence[Unit],
    jobs: dict[str, float] | None = None,
    architecture: Architecture = "classic",
) -> dict[str, Any]:
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        raise ValueError(f"unit keys must be unique: {keys}")
    if architecture == "hyperv":
        return _hyperv_scenario(units, jobs)
    return {
        "name": "reliability",
        "description": "One recovery plan per reliability case, each with machines of its own; "
        "Linux master target mt-linux-01 on esx-01 (ds-vmfs-01 VMFS, ds-nfs-01 NFS).",
        "vcenter": {
            "datacenter": "DC-Onprem",
            "datastores": [
                {"name": DATASTORE, "type": "VMFS", "capacity_gb": 8192},
                {"name": "ds-nfs-01", "type": "NFS", "capacity_gb": 1024},
            ],
            "hosts": [{"name": HOST, "datastores": [DATASTORE, "ds-nfs-01"]}],
            "vms": [
                {
                    "name": MASTER_TARGET,
                    "role": "master-target",
                    "host": HOST,
                    "datastore": DATASTORE,
                    "os_type": "Linux",
                    "guest_os_version": "Ubuntu 20.04",
                    "power_state": "poweredOn",
                    "snapshots": 0,
                },
                *(vm for unit in units for vm in _unit_vms(unit)),
            ],
        },
        "azure": {
            # The replication appliance runs where the master target would.
            **(
                {
                    "architecture": "modernized",
                    # ds-nfs-01 is in vCenter, but the appliance's reprotect agent cannot reach it.
                    "appliances": [
                        {"name": APPLIANCE, "host": HOST, "accessible_datastores": [DATASTORE]}
                    ],
                }
                if architecture == "modernized"
                else {"master_targets": [{"id": MASTER_TARGET, "name": MASTER_TARGET}]}
            ),
            "items": [item for unit in units for item in _unit_items(unit)],
            "recovery_plans": [
                {"name": unit.plan, "boot_groups": [list(unit.items)]} for unit in units
            ],
            "jobs": dict(jobs or JOBS),
        },
    }


# --- the lab -------------------------------------------------------------------------------------


class Lab:
    """A running lab and what the cases do to it."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.lab_dir = Path(state.lab_dir)
        self._ssl = ssl.create_default_context(cafile=state.settings["FAILBACK_AZURE_CA_BUNDLE"])
        self._journal: list[dict[str, Any]] = []
        self._journal_lock = threading.Lock()
        self._client: Client | None = None
        # How often a case looks at its plan; longer while many cases run side by side.
        self.tick = 0.2

    # settings and clients
    def settings(self, **overrides: float) -> Settings:
        values: dict[str, Any] = {
            k.removeprefix("FAILBACK_").lower(): v for k, v in self.state.settings.items()
        }
        values.update(overrides)
        return Settings(**values)

    async def client(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self.settings())
        return self._client

    def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        lab_env: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """`failback ARGS` as an operator runs it, with the lab's settings (unless `lab_env` is
        False) and `env`, and no other FAILBACK_* variable."""
        environment = operator_environ()
        if lab_env:
            environment.update(self.state.settings)
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "starter", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    # the simulator's control plane
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.state.asr_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, context=self._ssl, timeout=30) as reply:
            raw = reply.read()
        return json.loads(raw) if raw else None

    def journal(self) -> list[dict[str, Any]]:
        """Every ARM request so far (read incrementally: the journal only grows)."""
        with self._journal_lock:
            self._journal.extend(self._request("GET", f"/_lab/journal?since={len(self._journal)}"))
            return list(self._journal)

    def add_fault(self, **fault: Any) -> int:
        return int(self._request("POST", "/_lab/faults", fault)["id"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/_lab/faults"))

    def clear_faults(self) -> None:
        self._request("DELETE", "/_lab/faults")

    def sim_state(self) -> dict[str, Any]:
        return dict(self._request("GET", "/_lab/state"))

    def azure_vm_deleted(self, items: Sequence[str]) -> dict[str, bool]:
        state = {i["name"]: i for i in self.sim_state()["items"]}
        return {item: bool(state[item]["azure_vm"]["deleted"]) for item in items}

    def job_of(self, item: str, operation: str) -> str | None:
        """The name of the newest job of `operation` on `item`, from the simulator's state."""
        ops = [
            o
            for o in self.sim_state()["operations"]
            if o["item"] == item and o["operation"] == operation
        ]
        return ops[-1]["job"] if ops else None

    # the processes
    def process(self, name: str) -> LabProcess:
        state = manager.read_state(self.lab_dir)
        assert state is not None, "the lab is not running"
        self.state = state
        return next(p for p in state.processes if p.name == name)

    def kill_worker(self) -> int:
        worker = self.process("worker")
        os.killpg(worker.pid, signal.SIGKILL)
        return worker.pid

    def restart_worker(self) -> LabProcess:
        return manager.restart_worker(self.lab_dir)

    def restart_temporal(self, kill: bool = False) -> LabProcess:
        return manager.restart_temporal(self.lab_dir, kill=kill)

    def signal_group(self, name: str, sig: signal.Signals) -> None:
        os.killpg(self.process(name).pid, sig)

    def down(self) -> None:
        lab_down(self.lab_dir, say=lambda _: None)


def start_lab(
    root: Path,
    units: Sequence[Unit],
    jobs: dict[str, float] | None = None,
    architecture: Architecture = "classic",
) -> Lab:
    """A lab in ROOT/lab with one plan per unit; reuses the vcsim harness `make` built. The ASR
    simulator speaks one architecture per lab: a modernized matrix runs in a lab of its own."""
    scenario = root / "scenario.json"
    scenario.write_text(json.dumps(build_scenario(units, jobs, architecture), indent=1))
    lab_dir = root / "lab"
    lab_dir.mkdir(parents=True, exist_ok=True)
    shared_bin = ROOT / ".lab" / "bin"
    if shared_bin.exists() and not (lab_dir / "bin").exists():
        (lab_dir / "bin").symlink_to(shared_bin)
    return Lab(lab_up(scenario, lab_dir, say=lambda _: None))


# --- what was asked of ASR --------------------------------------------------------------------


@dataclass
class Writes:
    """Accepted (202) writes of one machine, and how many POSTs got another answer."""

    failover: int = 0
    commit: int = 0
    reprotect_azure: int = 0
    reprotect_onprem: int = 0
    # Modernized: failoverCancel (an undo).
    cancel: int = 0
    # Hyper-V for-downtime: the cut-over's resume of the suspended failover job.
    resume: int = 0
    other_answers: int = 0
    commit_posts: int = 0
    posts: int = 0

    def text(self, with_onprem: bool) -> str:
        counts = [self.failover, self.commit, self.reprotect_azure]
        if with_onprem:
            counts.append(self.reprotect_onprem)
        return "/".join(str(c) for c in counts)


def writes_per_machine(
    entries: Sequence[dict[str, Any]],
    items: Sequence[str],
    plan: str | None = None,
    job_items: dict[str, str] | None = None,
) -> dict[str, Writes]:
    """Each machine's writes; a failover of its recovery plan `plan` (FO-PLAN) counts as one of
    each of its machines, and a job's resume as one of the job's machine (`job_items`)."""
    found = {item: Writes() for item in items}
    for entry in entries:
        if entry["method"] != "POST":
            continue
        parts = entry["path"].rstrip("/").split("/")
        if len(parts) < 3:
            continue
        target, action = parts[-2], parts[-1].lower()
        if action == "resume" and parts[-3] == "replicationJobs":
            own = found.get((job_items or {}).get(target.lower(), ""))
            if own is not None and 200 <= int(entry["status"]) < 300:
                own.resume += 1
            continue
        if plan is not None and parts[-3] == "replicationRecoveryPlans" and target == plan:
            for each in found.values():
                _count(each, entry, action)
            continue
        own = found.get(target)
        if own is not None:
            _count(own, entry, action)
    return found


def _count(writes: Writes, entry: dict[str, Any], action: str) -> None:
    writes.posts += 1
    if action == "failovercommit":
        writes.commit_posts += 1
    if entry["status"] != 202:
        writes.other_answers += 1
        return
    if action in ("unplannedfailover", "plannedfailover"):
        writes.failover += 1
    elif action == "failovercommit":
        writes.commit += 1
    elif action == "failovercancel":
        writes.cancel += 1
    elif action == "reprotect":
        details = (entry["body"] or {}).get("properties", {}).get("providerSpecificDetails", {})
        # Toward Azure: classic InMageAzureV2, modernized InMageRcmFailback (the item's provider
        # while it replicates back, named in the reprotect that switches it to Azure again).
        if details.get("instanceType") in (
            "InMageAzureV2",
            "InMageRcmFailback",
            "HyperVReplicaAzure",
        ):
            writes.reprotect_azure += 1
        else:
            writes.reprotect_onprem += 1


def posts(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["method"] != "GET"]


def accepted(
    entries: Sequence[dict[str, Any]], item: str, action: str, plan: str | None = None
) -> list[dict[str, Any]]:
    """Accepted POSTs of `action` on `item`, or on the recovery plan `plan` (FO-PLAN)."""
    target = f"replicationRecoveryPlans/{plan}" if plan else f"replicationProtectedItems/{item}"
    suffix = f"/{target}/{action}".lower()
    return [
        e
        for e in entries
        if e["method"] == "POST" and e["path"].lower().endswith(suffix) and e["status"] == 202
    ]


# --- watching and driving a plan --------------------------------------------------------------


@dataclass
class Snapshot:
    at: float
    execution: str
    plan: PlanStatus | None
    machines: dict[str, MachineStatus]

    @property
    def running(self) -> bool:
        return self.execution in ("running", "unreachable")

    @property
    def phase(self) -> str:
        return self.plan.phase if self.plan is not None else self.execution

    def machine_phases(self) -> dict[str, str]:
        return {vm: str(status.phase) for vm, status in self.machines.items()}

    def key(self) -> tuple[str, ...]:
        return (self.phase, *sorted(f"{k}={v}" for k, v in self.machine_phases().items()))

    def describe(self) -> str:
        machines = ", ".join(f"{vm} {phase}" for vm, phase in sorted(self.machine_phases().items()))
        return f"plan {self.phase}" + (f" ({machines})" if machines else "")


def _execution(status: WorkflowExecutionStatus | None) -> str:
    return "unknown" if status is None else status.name.lower().replace("_", "-")


@dataclass
class RunEnd:
    execution: str
    outcome: str | None
    error: str | None
    plan: PlanStatus | None
    machine_outcomes: dict[str, str]
    failed_in: str | None


class PlanRun:
    """One plan failback, started and watched through Temporal as the CLI does."""

    def __init__(
        self,
        lab: Lab,
        unit: Unit,
        recovery_point: str = "latest",
        overrides: dict[str, float] | None = None,
    ) -> None:
        self.lab = lab
        self.unit = unit
        self.recovery_point = recovery_point
        self.settings = lab.settings(**(overrides or {}))
        vault = self.settings.azure_vault
        assert vault is not None
        self.workflow_id = plan_workflow_id(vault, unit.plan)
        self.machine_ids = {vm: machine_workflow_id(vault, vm) for vm in unit.vms}
        self.started_at = time.monotonic()
        self.approved = False
        self.auto_approve = True
        # Modernized: undo (`failback undo`) instead of approving, once all are verified.
        self.auto_undo = False
        self.undone = False
        self.cut_over = False
        self.decided: set[str] = set()
        self.notes: list[str] = []
        self.query_failures: list[str] = []
        # Seconds from the disruption to the next phase change of the plan or a machine.
        self.recovery_seconds: float | None = None

    async def start(self) -> None:
        client = await self.lab.client()
        params = plan_input(self.settings, self.unit.plan, self.recovery_point).model_copy(
            update={"data_sync": self.unit.data_sync}
        )
        if self.unit.reprotect_datastore:
            target = params.reprotect_to_onprem.model_copy(
                update={"datastore_name": self.unit.reprotect_datastore}
            )
            params = params.model_copy(update={"reprotect_to_onprem": target})
        self.started_at = time.monotonic()
        await start_plan_failback(client, self.settings, params)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    async def snapshot(self) -> Snapshot:
        client = await self.lab.client()
        handle = client.get_workflow_handle(self.workflow_id)
        try:
            execution = _execution((await handle.describe(rpc_timeout=QUERY_TIMEOUT)).status)
        except (RPCError, RuntimeError):
            execution = "unreachable"
        plan: PlanStatus | None = None
        machines: dict[str, MachineStatus] = {}
        if execution == "running":
            try:
                plan = await handle.query(PlanFailbackWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
            except WorkflowQueryFailedError as err:
                self._query_failed(self.workflow_id, err)
            except (RPCError, RuntimeError):
                pass  # no worker right now, or the server restarts: look again next time
            for vm, workflow_id in self.machine_ids.items():
                child = client.get_workflow_handle(workflow_id)
                try:
                    machines[vm] = await child.query(
                        MachineFailbackWorkflow.status, rpc_timeout=QUERY_TIMEOUT
                    )
                except WorkflowQueryFailedError as err:
                    self._query_failed(workflow_id, err)
                except (RPCError, RuntimeError):
                    pass
        return Snapshot(self.elapsed, execution, plan, machines)

    def _query_failed(self, workflow_id: str, err: WorkflowQueryFailedError) -> None:
        """A query a worker could not answer (it failed replaying the history, say): recorded
        once per workflow; it is a finding, not the harness's problem."""
        text = f"status query of {workflow_id} failed: {err}"
        if text not in self.query_failures:
            self.query_failures.append(text)
            self.notes.append(f"{self.elapsed:.1f} s: {text}")

    async def respond(self, snap: Snapshot) -> None:
        """What the operator does: approve once all are verified; finish a stuck machine."""
        if snap.phase == "awaiting-approval" and self.auto_undo and not self.undone:
            client = await self.lab.client()
            try:
                await undo(client, self.workflow_id, "reliability", "undone by the harness")
                self.undone = True
            except (CommandError, RPCError, RuntimeError) as err:
                self.notes.append(f"undo retried: {err}")
        if (
            snap.phase == "awaiting-approval"
            and self.auto_approve
            and not self.auto_undo
            and not self.approved
        ):
            client = await self.lab.client()
            try:
                await approve(client, self.workflow_id, "reliability", "verified by the harness")
                self.approved = True
            except (CommandError, RPCError, RuntimeError) as err:
                self.notes.append(f"approval retried: {err}")
        if not self.cut_over and any(
            str(s.phase) == "synchronized-awaiting-cutover" for s in snap.machines.values()
        ):
            client = await self.lab.client()
            try:
                await cut_over(client, self.workflow_id, "reliability", "the harness cuts over")
                self.cut_over = True
            except (CommandError, RPCError, RuntimeError) as err:
                self.notes.append(f"cut-over retried: {err}")
        for vm, status in snap.machines.items():
            if str(status.phase) == "agent-stuck" and vm not in self.decided:
                self.decided.add(vm)
                shown = await asyncio.to_thread(
                    self.lab.cli,
                    "agent",
                    self.machine_ids[vm],
                    "--by",
                    "reliability",
                    "--finish-without-reprotect",
                    "--comment",
                    "agent never registered",
                )
                self.notes.append(
                    f"{vm} agent-stuck: `failback agent --finish-without-reprotect` exited "
                    f"{shown.returncode}"
                )

    async def terminate(self, reason: str) -> None:
        client = await self.lab.client()
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(self.workflow_id).terminate(reason=reason)
        for workflow_id in self.machine_ids.values():
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(workflow_id).terminate(reason=reason)

    async def end(self) -> RunEnd:
        client = await self.lab.client()
        handle = client.get_workflow_handle_for(PlanFailbackWorkflow.run, self.workflow_id)
        execution = _execution((await handle.describe()).status)
        if execution == "completed":
            result: PlanFailbackResult = await handle.result()
            return RunEnd(
                execution,
                result.outcome,
                None,
                result.status,
                {m: r.outcome for m, r in result.machines.items()},
                None,
            )
        error: str | None = execution
        plan: PlanStatus | None = None
        try:
            await handle.result()
        except WorkflowFailureError as err:
            cause = err.cause
            error = str(cause.message if isinstance(cause, ApplicationError) else err)
            if isinstance(cause, ApplicationError) and cause.details:
                with contextlib.suppress(ValueError):
                    plan = PlanStatus.model_validate(cause.details[0])
        failed_in = None
        if plan is not None:
            phases = [h.phase for h in plan.history if h.phase != "failed"]
            failed_in = phases[-1] if phases else None
            error = plan.error or error
        return RunEnd(execution, None, error, plan, {}, failed_in)


# --- cases ----------------------------------------------------------------------------------------

Expect = Literal[
    "completed",
    "completed-without-reprotect",
    "stopped",
    "refused",
    "cancelled",
    "commit-failed",
    "reprotect-retried",
    "undone",
]


@dataclass(frozen=True)
class Trigger:
    label: str
    test: Callable[[Snapshot, Sequence[dict[str, Any]], Unit], bool]
    needs_journal: bool = False
    # Asks the lab itself instead (then `test` is not used).
    probe: Callable[[Lab, Unit], bool] | None = None


def at_plan_phase(phase: str) -> Trigger:
    return Trigger(f"plan {phase}", lambda snap, _j, _u: snap.phase == phase)


def at_machine_phase(phase: str) -> Trigger:
    return Trigger(f"machine {phase}", lambda snap, _j, _u: phase in snap.machine_phases().values())


def while_held(suffixes: tuple[Callable[[Unit], str], ...], label: str) -> Trigger:
    """While a request the case's holds delay is held (or once it has been): the simulator
    takes a one-time hold off its list of faults when the request arrives."""

    def probe(lab: Lab, unit: Unit) -> bool:
        held = {(f.get("path_suffix") or "").lower() for f in lab.faults() if f["kind"] == "delay"}
        return any(suffix(unit).lower() not in held for suffix in suffixes)

    return Trigger(label, lambda *_: False, probe=probe)


def in_job(action: str, label: str) -> Trigger:
    """Right after ASR accepted `action` for one of the unit's machines: its job is running."""

    def test(_snap: Snapshot, entries: Sequence[dict[str, Any]], unit: Unit) -> bool:
        return any(accepted(entries, item, action) for item in unit.items) or bool(
            accepted(entries, "", action, plan=unit.plan)
        )

    return Trigger(label, test, needs_journal=True)


@dataclass(frozen=True)
class Action:
    label: str
    do: Callable[[Lab, PlanRun], Awaitable[str]]


async def _kill_and_restart_worker(lab: Lab, run: PlanRun) -> str:
    pid = lab.kill_worker()
    started = time.monotonic()
    worker = await asyncio.to_thread(lab.restart_worker)
    return (
        f"worker {pid} killed, worker {worker.pid} polling {time.monotonic() - started:.1f} s later"
    )


async def _kill_approve_while_down_restart(lab: Lab, run: PlanRun) -> str:
    from domain.models import ApprovalRequest

    pid = lab.kill_worker()
    client = await lab.client()
    await client.get_workflow_handle(run.workflow_id).signal(
        PlanFailbackWorkflow.approve_commit,
        ApprovalRequest(approved_by="reliability", comment="sent while no worker ran"),
    )
    run.approved = True
    await asyncio.sleep(3)
    worker = await asyncio.to_thread(lab.restart_worker)
    return f"worker {pid} killed, approval signalled while none ran, worker {worker.pid} up"


def _restart_temporal(kill: bool) -> Callable[[Lab, PlanRun], Awaitable[str]]:
    async def do(lab: Lab, run: PlanRun) -> str:
        started = time.monotonic()
        process = await asyncio.to_thread(lab.restart_temporal, kill)
        how = "killed (-9)" if kill else "stopped"
        took = time.monotonic() - started
        return f"Temporal {how} and serving again {took:.1f} s later (pid {process.pid})"

    return do


def _pause_vcenter(seconds: float) -> Callable[[Lab, PlanRun], Awaitable[str]]:
    async def do(lab: Lab, run: PlanRun) -> str:
        lab.signal_group("vcsim", signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            lab.signal_group("vcsim", signal.SIGCONT)
        return f"vcsim stopped (SIGSTOP) for {seconds:g} s, then SIGCONT"

    return do


KILL_WORKER = Action("kill -9 worker, restart it", _kill_and_restart_worker)
KILL_APPROVE_RESTART = Action(
    "kill -9 worker, approve while it is down, restart it", _kill_approve_while_down_restart
)
RESTART_TEMPORAL = Action("restart Temporal (same db file)", _restart_temporal(kill=False))
KILL_TEMPORAL = Action("kill -9 Temporal, start it again (same db file)", _restart_temporal(True))


def pause_vcenter(seconds: float) -> Action:
    return Action(f"vCenter unreachable {seconds:g} s (SIGSTOP vcsim)", _pause_vcenter(seconds))


@dataclass
class CaseResult:
    case: str
    group: str
    scenario: str
    what: str
    expected: str
    outcome: str
    writes: dict[str, Writes]
    with_onprem: bool
    duration: float
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    end: RunEnd | None = None
    data: dict[str, Any] = field(default_factory=dict)
    recovery_seconds: float | None = None
    known_bug: str | None = None

    @property
    def held(self) -> bool:
        return not self.violations

    def writes_text(self) -> str:
        """Per machine (named without its case's prefix): failover/commit/reprotect to Azure
        [/reprotect to on-premises] accepted."""
        return ", ".join(
            f"{item.removesuffix('-item').removeprefix(self.case + '-')} {w.text(self.with_onprem)}"
            for item, w in self.writes.items()
        )

    def report(self) -> str:
        lines = [
            f"{self.case}: {self.outcome} in {self.duration:.1f} s; writes {self.writes_text()}",
            *(f"  note: {n}" for n in self.notes),
            *(f"  VIOLATION: {v}" for v in self.violations),
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    what: str
    unit: Unit
    expect: Expect
    reason: str | None = None
    arm: Callable[[Lab, Unit], None] | None = None
    trigger: Trigger | None = None
    action: Action | None = None
    recovery_point: str = "latest"
    overrides: tuple[tuple[str, float], ...] = ()
    timeout: float = 360.0
    custom: Callable[[Lab, Case], Awaitable[CaseResult]] | None = None
    # Touches the whole lab (kills, restarts, pauses): never run beside another case.
    disruptive: bool = False
    # A product bug this case shows, in words (its test is an expected, strict failure).
    known_bug: str | None = None
    # Modernized: `failback undo` once every machine is verified, instead of the approval.
    undo: bool = False


async def drive(
    lab: Lab,
    case: Case,
    run: PlanRun,
    tick: float | None = None,
    on_snapshot: Callable[[Snapshot], Awaitable[None]] | None = None,
) -> RunEnd | None:
    """Watch the run until it ends: act at the trigger, approve, decide for stuck agents.
    Returns None when it did not end in time (it is then terminated)."""
    acted_key: tuple[str, ...] | None = None
    acted_at = 0.0
    progressed = False
    while True:
        snap = await run.snapshot()
        if not snap.running:
            break
        if case.trigger is not None and case.action is not None and acted_key is None:
            trigger = case.trigger
            if trigger.probe is not None:
                fired = trigger.probe(lab, case.unit)
            else:
                entries = lab.journal() if trigger.needs_journal else []
                fired = trigger.test(snap, entries, case.unit)
            if fired:
                where = snap.describe()
                note = await case.action.do(lab, run)
                acted_key, acted_at = snap.key(), time.monotonic()
                run.notes.append(f"{case.action.label} at {where} ({snap.at:.1f} s): {note}")
        elif (
            acted_key is not None
            and not progressed
            and snap.plan is not None
            and snap.key() != acted_key
        ):
            progressed = True
            run.recovery_seconds = time.monotonic() - acted_at
            run.notes.append(
                f"next phase change {run.recovery_seconds:.1f} s after the "
                f"disruption: {snap.describe()}"
            )
        if on_snapshot is not None:
            await on_snapshot(snap)
        await run.respond(snap)
        if run.elapsed > case.timeout:
            run.notes.append(f"still {snap.describe()} after {case.timeout:.0f} s: terminated")
            await run.terminate("reliability harness: timed out")
            return None
        await asyncio.sleep(tick or lab.tick)
    if case.trigger is not None and acted_key is None:
        run.notes.append(f"the trigger ({case.trigger.label}) never fired")
    return await run.end()


async def judge(
    lab: Lab,
    case: Case,
    run: PlanRun,
    end: RunEnd | None,
    extra_violations: Sequence[str] = (),
    data: dict[str, Any] | None = None,
) -> CaseResult:
    unit = case.unit
    job_items = {
        str(o["job"]).lower(): str(o["item"]) for o in lab.sim_state()["operations"] if o["item"]
    }
    writes = writes_per_machine(lab.journal(), unit.items, unit.plan, job_items)
    if unit.data_sync == "for-downtime" and end is not None and end.outcome == "completed":
        extra_violations = [
            *extra_violations,
            *(
                f"{item}: {w.resume} accepted resumes of its failover job, expected 1"
                for item, w in writes.items()
                if w.resume != 1
            ),
        ]
    deleted = lab.azure_vm_deleted(unit.items)
    violations = list(extra_violations) + run.query_failures
    if EXPECTATIONS[case.expect].azure_vm_deleted is False:
        # Through the real Compute SDK, as the workflow reads it: the instance view is there.
        views = await asyncio.to_thread(read_azure_vms, lab, unit)
        violations += [
            f"{vm}: Azure VM instance view unreadable or gone ({state})"
            for vm, state in views.items()
            if not state.startswith("exists")
        ]
        run.notes.append(
            "Azure VMs read through the Compute SDK: "
            + ", ".join(f"{vm} {state}" for vm, state in sorted(views.items()))
        )
    if case.trigger is not None and any("never fired" in n for n in run.notes):
        violations.append(f"the disruption did not happen: {case.trigger.label} was not seen")
    violations += [
        f"the injected fault did not happen: {fault}" for fault in unfired_faults(lab, unit)
    ]
    if end is None:
        violations.append(f"did not end within {case.timeout:.0f} s")
        outcome = "did not end (terminated)"
    else:
        outcome = _outcome_text(end)
        violations += _expectation(case, end, writes, deleted)
    return CaseResult(
        case=case.name,
        group=case.group,
        scenario=unit.describe(),
        what=case.what,
        expected=case.expect,
        outcome=outcome,
        writes=writes,
        with_onprem=unit.kind == "reprotect",
        duration=run.elapsed,
        notes=list(run.notes),
        violations=violations,
        end=end,
        data=data or {},
        recovery_seconds=run.recovery_seconds,
        known_bug=case.known_bug,
    )


def _outcome_text(end: RunEnd) -> str:
    if end.execution == "completed":
        special = {m: o for m, o in end.machine_outcomes.items() if o != "completed"}
        details = ", ".join(f"{m.removesuffix('-item')}: {o}" for m, o in sorted(special.items()))
        return f"{end.outcome}" + (f" ({details})" if details else "")
    if end.execution == "failed":
        return f"stopped in {end.failed_in or '?'}: {end.error}"
    return f"{end.execution}" + (f" in {end.plan.phase}" if end.plan else "")


@dataclass(frozen=True)
class Expectation:
    """What must hold at the end. Counts are accepted (202) POSTs per machine, (min, max)."""

    execution: str
    outcome: str | None
    failover: tuple[int, int]
    commit: tuple[int, int]
    reprotect_azure: tuple[int, int]
    azure_vm_deleted: bool
    # No failoverCommit may even be sent (whatever its answer).
    no_commit_sent: bool = False
    # Nothing at all may be sent for the unit's machines.
    no_write_sent: bool = False
    # Accepted failoverCancel per machine (modernized's undo).
    cancel: tuple[int, int] = (0, 0)


EXPECTATIONS: dict[str, Expectation] = {
    "completed": Expectation("completed", "completed", (1, 1), (1, 1), (1, 1), True),
    "completed-without-reprotect": Expectation(
        "completed", "completed-with-warnings", (1, 1), (1, 1), (0, 0), True
    ),
    # Stopped before the commit: nothing committed, the Azure copies intact.
    "stopped": Expectation("failed", None, (0, 1), (0, 0), (0, 0), False, no_commit_sent=True),
    # Refused before anything was sent.
    "refused": Expectation(
        "failed", None, (0, 0), (0, 0), (0, 0), False, no_commit_sent=True, no_write_sent=True
    ),
    "cancelled": Expectation("canceled", None, (0, 1), (0, 0), (0, 0), False, no_commit_sent=True),
    # The commit job failed in its prerequisite check: nothing deleted in Azure.
    "commit-failed": Expectation("failed", None, (1, 1), (0, 1), (0, 0), False),
    # Committed, then a re-protect to Azure job failed: tried again within the agent wait (R16,
    # whatever ASR's code), and the second one went through.
    "reprotect-retried": Expectation("completed", "completed", (1, 1), (1, 1), (2, 2), True),
    # Modernized: undone before commit; exactly one failoverCancel, no commit, the Azure VMs
    # intact (running again).
    "undone": Expectation(
        "completed", "undone", (1, 1), (0, 0), (0, 0), False, no_commit_sent=True, cancel=(1, 1)
    ),
}


def _within(value: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _bounds(bounds: tuple[int, int]) -> str:
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"


def _expectation(
    case: Case, end: RunEnd, writes: dict[str, Writes], deleted: dict[str, bool]
) -> list[str]:
    problems: list[str] = []
    want = EXPECTATIONS[case.expect]
    if end.execution != want.execution or (want.outcome and end.outcome != want.outcome):
        problems.append(
            f"expected {want.execution}{f' ({want.outcome})' if want.outcome else ''}, got "
            f"{_outcome_text(end)}"
        )
    if case.reason and case.reason not in (end.error or ""):
        problems.append(f"the reason does not say {case.reason!r}: {end.error}")
    for item, w in writes.items():
        for label, value, bounds in (
            ("unplannedFailover", w.failover, want.failover),
            ("failoverCommit", w.commit, want.commit),
            ("reProtect to Azure", w.reprotect_azure, want.reprotect_azure),
            ("failoverCancel", w.cancel, want.cancel),
        ):
            if not _within(value, bounds):
                problems.append(f"{item}: {value} accepted {label}, expected {_bounds(bounds)}")
        onprem = (1, 1) if case.unit.kind == "reprotect" and want.commit[0] else (0, 1)
        if not _within(w.reprotect_onprem, onprem):
            problems.append(
                f"{item}: {w.reprotect_onprem} accepted reProtect to on-premises, expected "
                f"{_bounds(onprem)}"
            )
        if want.no_commit_sent and w.commit_posts:
            problems.append(f"{item}: {w.commit_posts} failoverCommit sent, none expected")
        if want.no_write_sent and (w.posts or w.other_answers):
            problems.append(f"{item}: {w.posts} POSTs sent, none expected")
        if deleted[item] != want.azure_vm_deleted:
            problems.append(
                f"{item}: Azure VM {'deleted' if deleted[item] else 'not deleted'}, expected "
                f"{'deleted' if want.azure_vm_deleted else 'intact'}"
            )
    if case.expect == "completed-without-reprotect":
        for item in writes:
            if end.machine_outcomes.get(item) != "completed-without-reprotect":
                problems.append(f"{item}: outcome {end.machine_outcomes.get(item)}")
    return problems


def read_azure_vms(lab: Lab, unit: Unit) -> dict[str, str]:
    """Each Azure VM of the unit as the worker's Compute gateway (the SDK's instance view) sees
    it."""
    from domain.models import AzureVmRef
    from worker.wiring import build_compute_gateway

    settings = lab.settings()
    assert settings.azure_recovery_resource_group is not None
    compute = build_compute_gateway(settings)
    found = {}
    for vm in unit.vms:
        try:
            state = compute.read_vm(
                AzureVmRef(resource_group=settings.azure_recovery_resource_group, name=vm)
            )
        except Exception as err:  # reported, not raised: this is evidence, not the check
            found[vm] = f"unreadable: {type(err).__name__}"
            continue
        found[vm] = f"exists, {state.power_state}" if state.exists else "gone"
    return found


async def run_case(lab: Lab, case: Case) -> CaseResult:
    if case.custom is not None:
        return await case.custom(lab, case)
    if case.arm is not None:
        case.arm(lab, case.unit)
    run = PlanRun(lab, case.unit, case.recovery_point, dict(case.overrides))
    run.auto_undo = case.undo
    await run.start()
    end = await drive(lab, case, run)
    return await judge(lab, case, run, end)


async def run_cases(
    lab: Lab,
    cases: Sequence[Case],
    say: Callable[[str], None] = lambda _: None,
    concurrency: int = 0,
) -> dict[str, CaseResult]:
    """Disruptive cases one after the other, then the others side by side (at most
    `concurrency` at once; 0: all)."""
    results: dict[str, CaseResult] = {}

    async def one(case: Case) -> None:
        say(f"{case.name}: {case.what}")
        try:
            results[case.name] = await run_case(lab, case)
        except Exception as err:  # a harness failure is a failed case, not a lost matrix
            results[case.name] = _broken(case, err)
        say(results[case.name].report())

    for case in [c for c in cases if c.disruptive]:
        await one(case)
        lab.clear_faults()
    quiet = [c for c in cases if not c.disruptive]
    limit = asyncio.Semaphore(concurrency or max(1, len(quiet)))
    lab.tick = 0.5 if len(quiet) > 1 else 0.2

    async def limited(case: Case) -> None:
        async with limit:
            await one(case)

    try:
        await asyncio.gather(*(limited(c) for c in quiet))
    finally:
        lab.tick = 0.2
    return {c.name: results[c.name] for c in cases}


def _broken(case: Case, err: Exception) -> CaseResult:
    return CaseResult(
        case=case.name,
        group=case.group,
        scenario=case.unit.describe(),
        what=case.what,
        expected=case.expect,
        outcome=f"harness error: {type(err).__name__}: {err}",
        writes={},
        with_onprem=case.unit.kind == "reprotect",
        duration=0.0,
        violations=[f"the case could not be run: {type(err).__name__}: {err}"],
        known_bug=case.known_bug,
    )


def unit_fault(unit: Unit, vm_index: int, action: str, **fault: Any) -> dict[str, Any]:
    """A fault scoped to one machine's POST `action` (item-scoped, so cases never collide)."""
    item = unit.items[vm_index]
    return {
        "method": "POST",
        "path_suffix": f"/replicationProtectedItems/{item}/{action}",
        **fault,
    }


def unfired_faults(lab: Lab, unit: Unit) -> list[str]:
    """The unit's faults still armed at its end: a case whose fault never fired proved nothing."""
    names = {unit.plan.lower(), *(item.lower() for item in unit.items)}
    left = []
    for fault in lab.faults():
        scope = {part.lower() for part in (fault.get("path_suffix") or "").split("/")}
        scope.add((fault.get("item") or "").lower())
        if names & scope:
            where = fault.get("path_suffix") or f"{fault.get('operation')} of {fault.get('item')}"
            left.append(
                f"{fault['kind']} on {where}, {fault['remaining']} of {fault['count']} left"
            )
    return left


def arm(*faults: Callable[[Unit], dict[str, Any]]) -> Callable[[Lab, Unit], None]:
    def do(lab: Lab, unit: Unit) -> None:
        for fault in faults:
            lab.add_fault(**fault(unit))

    return do
