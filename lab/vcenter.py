"""The lab's vCenter: govmomi's simulator (vcsim) run by the Go harness in lab/vcsim/main.go.

The harness is built from source against Debian's govmomi package (no vcsim binary is packaged),
cached by the sha256 of main.go, and started with an inventory derived from the scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.localhost import log_excerpt
from lab.scenario import Scenario

HARNESS_SOURCE: Path = Path(__file__).parent / "vcsim" / "main.go"
GOVMOMI_GOPATH = Path("/usr/share/gocode")
GOVMOMI_SIMULATOR = GOVMOMI_GOPATH / "src" / "github.com" / "vmware" / "govmomi" / "simulator"
INSTALL_HINT = "apt-get install golang-go golang-github-vmware-govmomi-dev"
BINARY_NAME = "vcsim-harness"
READY_TIMEOUT_SECONDS = 30.0
# vcsim builds its inventory before it is ready: ~25 s for 10,000 VMs on this 2-core machine,
# so a large inventory gets this much longer per VM.
READY_SECONDS_PER_VM = 0.005
_LOG_TAIL_LINES = 40


class VcsimError(RuntimeError):
    """The lab's vCenter simulator could not be built or started; the message says why."""


@dataclass
class VcsimEndpoint:
    url: str
    host: str
    port: int
    username: str
    password: str


def _source_digest() -> str:
    return hashlib.sha256(HARNESS_SOURCE.read_bytes()).hexdigest()


def build_harness(lab_dir: Path) -> Path:
    """Build the harness into lab_dir/bin (once per version of main.go) and return its path."""
    bin_dir = lab_dir / "bin"
    binary = bin_dir / BINARY_NAME
    stamp = bin_dir / f"{BINARY_NAME}.sha256"
    digest = _source_digest()
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return binary

    go = shutil.which("go")
    if go is None:
        raise VcsimError(f"the Go toolchain (go) is not on PATH; install it with: {INSTALL_HINT}")
    if not GOVMOMI_SIMULATOR.is_dir():
        raise VcsimError(
            f"the govmomi simulator source is missing ({GOVMOMI_SIMULATOR}); "
            f"install it with: {INSTALL_HINT}"
        )

    bin_dir.mkdir(parents=True, exist_ok=True)
    # Debian ships govmomi as GOPATH source without a go.mod, hence GOPATH mode; the cache goes
    # under the lab dir because HOME may be read-only or absent for service users.
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOVMOMI_GOPATH),
        "GOCACHE": str(lab_dir / "go-build-cache"),
        "GOFLAGS": "",
    }
    # Build to a temporary name so that an interrupted build never leaves a binary the stamp
    # check could mistake for a good one.
    partial = bin_dir / f"{BINARY_NAME}.partial"
    result = subprocess.run(
        [go, "build", "-o", str(partial), str(HARNESS_SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise VcsimError(
            f"building the vcsim harness from {HARNESS_SOURCE} failed "
            f"(go build exit {result.returncode}):\n{result.stderr.strip()}"
        )
    partial.replace(binary)
    stamp.write_text(digest + "\n")
    return binary


def inventory_from_scenario(scenario: Scenario) -> dict[str, Any]:
    """The harness's inventory JSON for the scenario's vCenter."""
    vcenter = scenario.vmware
    return {
        "datacenter": vcenter.datacenter,
        "datastores": [
            {"name": ds.name, "type": ds.type, "capacity_gb": ds.capacity_gb}
            for ds in vcenter.datastores
        ],
        "hosts": [
            {"name": host.name, "datastores": list(host.datastores)} for host in vcenter.hosts
        ],
        "vms": [
            {
                "name": vm.name,
                "host": vm.host,
                "datastore": vm.datastore,
                "os_type": vm.os_type,
                "power_state": vm.power_state,
                "disks": [
                    {
                        "kind": disk.kind,
                        "datastore": vm.disk_datastore(disk),
                        "size_gb": disk.size_gb,
                    }
                    for disk in vm.disks
                ],
                "snapshots": vm.snapshots,
                "guest_os_version": vm.guest_os_version or "",
            }
            for vm in vcenter.vms
        ],
    }


def stop_vcsim(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a harness started by start_vcsim: SIGTERM, then SIGKILL after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def start_vcsim(
    binary: Path,
    inventory: dict[str, Any],
    lab_dir: Path,
    port: int,
    username: str,
    password: str,
    log_path: Path,
) -> tuple[subprocess.Popen[bytes], VcsimEndpoint]:
    """Start the harness in its own session and wait until it has built the inventory.

    The process outlives the caller's process group on purpose (the lab keeps running between
    CLI invocations); the caller owns stopping it.
    """
    lab_dir.mkdir(parents=True, exist_ok=True)
    inventory_path = lab_dir / "vcsim-inventory.json"
    inventory_path.write_text(json.dumps(inventory, indent=2) + "\n")
    ready_file = lab_dir / "vcsim.ready"
    # A ready file left by an earlier run would make a dead harness look ready.
    ready_file.unlink(missing_ok=True)

    host = "127.0.0.1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "-inventory",
                str(inventory_path),
                "-listen",
                f"{host}:{port}",
                "-username",
                username,
                "-password",
                password,
                "-ready-file",
                str(ready_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    ready_within = READY_TIMEOUT_SECONDS + READY_SECONDS_PER_VM * len(inventory.get("vms", []))
    deadline = time.monotonic() + ready_within
    while True:
        if ready_file.is_file():
            url = ready_file.read_text().strip()
            if url:
                return process, VcsimEndpoint(
                    url=url, host=host, port=port, username=username, password=password
                )
        code = process.poll()
        if code is not None:
            raise VcsimError(
                f"vcsim harness exited with code {code} before it was ready; "
                f"log {log_path}:\n{log_excerpt(log_path, _LOG_TAIL_LINES)}"
            )
        if time.monotonic() >= deadline:
            stop_vcsim(process)
            raise VcsimError(
                f"vcsim harness was not ready within {ready_within:.0f} s; "
                f"log {log_path}:\n{log_excerpt(log_path, _LOG_TAIL_LINES)}"
            )
        time.sleep(0.05)
