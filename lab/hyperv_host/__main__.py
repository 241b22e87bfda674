"""The lab's Hyper-V host stand-in as its own process:
`python -m lab.hyperv_host --scenario FILE --cert PEM --key PEM --ready-file FILE`.

Each host of the scenario's `hyperv` section gets a WinRM endpoint of its own
(https://127.0.0.1:PORT/wsman); the ready file says which (JSON: ports by host, pid). The
credentials come from the environment ($HYPERV_HOST_USERNAME, $HYPERV_HOST_PASSWORD), never argv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

from lab.hyperv_host.server import HostConfig, start_stand_in
from lab.hyperv_host.state import HostState, HyperVHost, HyperVVm
from lab.scenario import Scenario, ScenarioError, load_scenario

USERNAME_ENV = "HYPERV_HOST_USERNAME"
PASSWORD_ENV = "HYPERV_HOST_PASSWORD"


def state_from_scenario(scenario: Scenario) -> HostState:
    site = scenario.hyperv
    if site is None:
        raise ScenarioError(f"scenario {scenario.name!r} has no hyperv section")
    return HostState(
        [HyperVHost(h.name, list(h.switches)) for h in site.hosts],
        [
            HyperVVm(
                name=vm.name,
                host=vm.host,
                vm_id=next(
                    (
                        # The item's vmId: ASR's id of the VM on its host (recorded).
                        _item_vm_id(item.name)
                        for item in scenario.azure.items
                        if item.vm_name == vm.name
                    ),
                    _item_vm_id(vm.name),
                ),
                state=vm.state,
                switches=list(vm.switches),
                checkpoints=vm.checkpoints,
                heartbeat_after_seconds=vm.heartbeat_after_seconds,
                heartbeat_never=vm.heartbeat_never,
            )
            for vm in site.vms
        ],
        vmm=site.vmm,
    )


def _item_vm_id(name: str) -> str:
    from lab.asr_sim.topology import stable_guid

    return stable_guid("vm", name)


async def _serve(config: HostConfig, ready_file: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = await start_stand_in(config)
    try:
        fd, tmp = tempfile.mkstemp(dir=ready_file.parent, prefix=f".{ready_file.name}.")
        with os.fdopen(fd, "w") as handle:
            json.dump({"ports": running.ports, "pid": os.getpid()}, handle)
        os.replace(tmp, ready_file)
        await stop.wait()
    finally:
        await running.stop()
        ready_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.hyperv_host", description=__doc__)
    parser.add_argument("--scenario", required=True, type=Path)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--ready-file", required=True, type=Path)
    args = parser.parse_args(argv)
    username, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if not username or not password:
        parser.error(f"${USERNAME_ENV} and ${PASSWORD_ENV} are required")
    try:
        state = state_from_scenario(load_scenario(args.scenario))
    except ScenarioError as err:
        print(err, file=sys.stderr)
        return 2
    config = HostConfig(state, args.cert, args.key, username, password)
    asyncio.run(_serve(config, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
