"""`python -m lab.asr_sim`: serve the ASR simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from lab.asr_sim.server import SimulatorConfig, parse_vcenter_url, start_simulator
from lab.scenario import ScenarioError, load_scenario

log = logging.getLogger("lab.asr_sim")

TOKEN_SECRET_ENV = "ASR_SIM_TOKEN_SECRET"
VCENTER_PASSWORD_ENV = "ASR_SIM_VCENTER_PASSWORD"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.asr_sim",
        description="HTTPS simulator of the Azure Site Recovery ARM API for the failback lab.",
    )
    parser.add_argument("--scenario", required=True, type=Path, help="scenario JSON file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (see ready file)")
    parser.add_argument("--cert", required=True, type=Path, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, type=Path, help="server private key (PEM)")
    parser.add_argument(
        "--token-secret",
        default=os.environ.get(TOKEN_SECRET_ENV),
        help=f"secret that POST /_lab/token accepts (or ${TOKEN_SECRET_ENV})",
    )
    parser.add_argument("--vcenter-url", help="e.g. https://127.0.0.1:8989/sdk; none: no vCenter")
    parser.add_argument("--vcenter-user")
    parser.add_argument(
        "--vcenter-password",
        default=os.environ.get(VCENTER_PASSWORD_ENV),
        help=f"(or ${VCENTER_PASSWORD_ENV})",
    )
    parser.add_argument(
        "--hyperv-url",
        help="the Hyper-V host stand-in's control plane, e.g. https://127.0.0.1:5986; none: "
        "no Hyper-V host",
    )
    parser.add_argument("--ca", type=Path, help="the lab's CA, to trust the Hyper-V stand-in")
    parser.add_argument(
        "--ready-file", type=Path, help="written (JSON: url, host, port, pid) once listening"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def _write_ready_file(path: Path, payload: dict[str, object]) -> None:
    # Written atomically: the lab launcher polls for the file and must never read half of it.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp, path)


async def _serve(config: SimulatorConfig, ready_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = await start_simulator(config)
    try:
        log.info("ASR simulator listening on %s", running.url)
        if ready_file is not None:
            _write_ready_file(
                ready_file,
                {
                    "url": running.url,
                    "host": running.host,
                    "port": running.port,
                    "pid": os.getpid(),
                },
            )
        await stop.wait()
    finally:
        await running.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.token_secret:
        parser.error(f"--token-secret (or ${TOKEN_SECRET_ENV}) is required")
    vcenter = None
    if args.vcenter_url:
        if not args.vcenter_user or not args.vcenter_password:
            parser.error("--vcenter-url needs --vcenter-user and --vcenter-password")
        try:
            vcenter = parse_vcenter_url(args.vcenter_url, args.vcenter_user, args.vcenter_password)
        except ValueError as err:
            parser.error(str(err))
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as err:
        print(err, file=sys.stderr)
        return 2
    config = SimulatorConfig(
        scenario=scenario,
        cert=args.cert,
        key=args.key,
        token_secret=args.token_secret,
        host=args.host,
        port=args.port,
        vcenter=vcenter,
        hyperv_url=args.hyperv_url,
        ca=args.ca,
    )
    asyncio.run(_serve(config, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
