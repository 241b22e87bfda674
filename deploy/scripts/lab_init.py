"""One-shot set-up of the lab stand-ins for `docker compose --profile lab` (service lab-init).

Run in the worker image with the lab volume at OUT (default /lab); writes there:

- scenario.json: the scenario the ASR simulator serves (a bundled name such as `single-vm`, or a
  path to a scenario file);
- vcsim-inventory.json: the vcsim harness's inventory for that scenario;
- tls/: the lab CA and a server certificate for the simulator, valid for `localhost`,
  `127.0.0.1` and the simulator's service name (`asr-sim`), so the worker can verify it by name;
- secrets/token-secret, secrets/vcenter-password: made once (mode 0600) and kept, so that services
  still running keep matching credentials when this runs again;
- worker.env: the worker's FAILBACK_* settings for the lab, secrets included (mode 0600), which
  the worker reads through FAILBACK_SETTINGS_FILE (see deploy/lab.env).

Nothing here is a production secret: the lab makes its own and keeps them in its volume.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

from lab import certs, vcenter
from lab.manager import LAB_VCENTER_USER, lab_settings
from lab.scenario import Scenario, ScenarioError, default_scenario_path, load_scenario

# The compose service names and ports the stand-ins listen on (docker-compose.yml).
ASR_HOST = "asr-sim"
ASR_PORT = 8443
VCSIM_HOST = "vcsim"
VCSIM_PORT = 8989

# Set by the compose environment of the worker, which wins over this file anyway.
_COMPOSE_OWNED = (
    "FAILBACK_TEMPORAL_ADDRESS",
    "FAILBACK_TEMPORAL_NAMESPACE",
    "FAILBACK_TASK_QUEUE",
    "FAILBACK_TEMPORAL_UI_URL",
)


def resolve_scenario(name_or_path: str) -> Path:
    """A bundled scenario's name (`single-vm`) or a path to a scenario file."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    bundled = default_scenario_path().parent / f"{name_or_path}.json"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in default_scenario_path().parent.glob("*.json"))
    raise ScenarioError(
        f"no scenario {name_or_path!r}: give a file path or one of {', '.join(names)}"
    )


def _write(path: Path, text: str, mode: int) -> None:
    # Atomic: a service reading the file must see the old or the new content, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _kept_secret(path: Path, nbytes: int) -> str:
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(nbytes)
    _write(path, value + "\n", 0o600)
    return value


def _dotenv(settings: dict[str, str]) -> str:
    lines = []
    for key, value in settings.items():
        if "'" in value or "\n" in value:
            raise ValueError(f"{key}: a value with a quote or a newline cannot go into worker.env")
        lines.append(f"{key}='{value}'\n")
    return "".join(lines)


def worker_settings(
    scenario: Scenario, tls: certs.LabTls, token_secret: str, vcenter_password: str
) -> dict[str, str]:
    endpoint = vcenter.VcsimEndpoint(
        url=f"https://{VCSIM_HOST}:{VCSIM_PORT}/sdk",
        host=VCSIM_HOST,
        port=VCSIM_PORT,
        username=LAB_VCENTER_USER,
        password=vcenter_password,
    )
    settings = lab_settings(
        scenario,
        temporal_port=0,
        ui_port=0,
        asr_url=f"https://{ASR_HOST}:{ASR_PORT}",
        ca_bundle=tls.ca_cert,
        token_secret=token_secret,
        endpoint=endpoint,
    )
    for key in _COMPOSE_OWNED:
        settings.pop(key, None)
    return settings


def init_lab(scenario_arg: str, out: Path) -> dict[str, str]:
    """Write everything the lab services need into `out`; return the worker's settings."""
    scenario_path = resolve_scenario(scenario_arg)
    scenario = load_scenario(scenario_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "secrets").mkdir(mode=0o700, exist_ok=True)

    _write(out / "scenario.json", scenario_path.read_text(), 0o644)
    inventory = vcenter.inventory_from_scenario(scenario)
    _write(out / "vcsim-inventory.json", json.dumps(inventory, indent=2) + "\n", 0o644)

    # make_lab_tls issues the server certificate for certs.SERVER_DNS_NAMES; the simulator is
    # reached by its service name here, so that name goes into the certificate too.
    if ASR_HOST not in certs.SERVER_DNS_NAMES:
        certs.SERVER_DNS_NAMES = (*certs.SERVER_DNS_NAMES, ASR_HOST)  # type: ignore[assignment]
    tls = certs.make_lab_tls(out / "tls")

    token_secret = _kept_secret(out / "secrets" / "token-secret", 24)
    vcenter_password = _kept_secret(out / "secrets" / "vcenter-password", 12)
    settings = worker_settings(scenario, tls, token_secret, vcenter_password)
    _write(out / "worker.env", _dotenv(settings), 0o600)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab_init.py", description="Prepare the lab volume for the compose lab profile."
    )
    parser.add_argument(
        "--scenario",
        default=os.environ.get("LAB_SCENARIO", "single-vm"),
        help="a bundled scenario's name or a scenario file (default: $LAB_SCENARIO or single-vm)",
    )
    parser.add_argument("--out", type=Path, default=Path("/lab"), help="the lab volume")
    args = parser.parse_args(argv)
    try:
        settings = init_lab(args.scenario, args.out)
    except ScenarioError as err:
        print(f"lab-init: {err}", file=sys.stderr)
        return 2
    print(
        f"lab-init: scenario {args.scenario}, vault {settings['FAILBACK_AZURE_VAULT']}, "
        f"simulator https://{ASR_HOST}:{ASR_PORT}, vCenter {VCSIM_HOST}:{VCSIM_PORT}; "
        f"worker settings in {args.out / 'worker.env'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
