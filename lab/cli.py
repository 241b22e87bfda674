"""`failback lab ...` and `failback demo`: the lab's commands on the `failback` command line.

The product's CLI does not import the lab: it loads `plugin` through the entry point group
failback.cli_plugins (pyproject.toml), and runs without it when the lab is not installed. The
plugin also names a running lab's settings file, which commands run without settings of their
own use (so `failback status ID` works right after `failback lab up`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from starter.cli import CliPlugin, CommandFailure, friendly_errors


def _lab_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """The lab's refusals (a bad scenario, a lab that cannot start) as one clear line, exit 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from lab.manager import LabError
        from lab.scenario import ScenarioError

        try:
            return func(*args, **kwargs)
        except (LabError, ScenarioError) as err:
            raise CommandFailure(str(err)) from err

    return wrapper


def _say(text: str) -> None:
    click.echo(f"==> {text}", err=True)


@click.group()
def lab() -> None:
    """The local lab: vcsim, the ASR simulator, a Temporal dev server and a worker."""


@lab.command("up")
@click.option("--scenario", type=click.Path(path_type=Path), help="Scenario file (JSON)")
@click.option("--lab-dir", type=click.Path(path_type=Path), help="Where the lab keeps its state")
@click.option("--no-worker", is_flag=True, help="Do not start a worker")
@click.option(
    "--temporal-mtls",
    is_flag=True,
    help="Reach Temporal only through a proxy that requires a client certificate (haproxy)",
)
@click.option(
    "--signed-decisions",
    is_flag=True,
    help="Every decision needs a lab user's sign-in (FAILBACK_LAB_IDENTITY=alice, bob, carol "
    "approve; dan does not), verified by the worker's decision desk",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Worker processes on the one task queue (each keeps 1/N of ARM's budgets)",
)
@click.option(
    "--principal-per-worker",
    is_flag=True,
    help="Each worker signs in as a principal of its own, with ARM's whole budgets "
    "(FAILBACK_AZURE_LAB_CLIENT_ID; AZURE_CLIENT_ID in production)",
)
@_lab_errors
def lab_up_command(
    scenario: Path | None,
    lab_dir: Path | None,
    no_worker: bool,
    temporal_mtls: bool,
    signed_decisions: bool,
    workers: int,
    principal_per_worker: bool,
) -> None:
    """Start the lab and write its settings (see `failback lab env`)."""
    from lab.manager import lab_up

    state = lab_up(
        scenario,
        lab_dir,
        with_worker=not no_worker,
        say=_say,
        temporal_mtls=temporal_mtls,
        signed_decisions=signed_decisions,
        workers=workers,
        principal_per_worker=principal_per_worker,
    )
    click.echo(f"lab is up ({Path(state.scenario).name})")
    click.echo(f"  Temporal Web UI: {state.temporal_ui_url}")
    if temporal_mtls:
        address = state.settings["FAILBACK_TEMPORAL_ADDRESS"]
        click.echo(f"  Temporal (mutual TLS): {address}")
    click.echo(f"  ASR simulator:   {state.asr_url}  (journal: {state.asr_url}/_lab/journal)")
    if state.vcenter_url:
        click.echo(f"  vCenter (vcsim): {state.vcenter_url}")
    for host, url in state.hyperv_endpoints.items():
        click.echo(f"  Hyper-V host {host} (WinRM): {url}")
    click.echo("  settings:        eval $(failback lab env)")


@lab.command("down")
@click.option("--lab-dir", type=click.Path(path_type=Path))
@_lab_errors
def lab_down_command(lab_dir: Path | None) -> None:
    """Stop every lab process."""
    from lab.manager import lab_down

    if not lab_down(lab_dir, say=_say):
        click.echo("no lab was running")


@lab.command("env")
@click.option("--lab-dir", type=click.Path(path_type=Path))
@_lab_errors
def lab_env_command(lab_dir: Path | None) -> None:
    """Print the running lab's settings as `export NAME=value` lines."""
    from lab.manager import env_lines

    click.echo(env_lines(lab_dir), nl=False)


@lab.command("build")
@click.option("--lab-dir", type=click.Path(path_type=Path))
@_lab_errors
def lab_build_command(lab_dir: Path | None) -> None:
    """Build the vcsim harness (skipped when it is up to date)."""
    from lab.manager import default_lab_dir
    from lab.vcenter import build_harness

    path = build_harness((lab_dir or default_lab_dir()).resolve())
    click.echo(f"vcsim harness: {path}")


@lab.command("schema")
def lab_schema_command() -> None:
    """Print the JSON Schema of scenario files."""
    import json

    from lab.scenario import scenario_json_schema

    click.echo(json.dumps(scenario_json_schema(), indent=2, default=str))


@lab.command("validate")
@click.argument("scenario", type=click.Path(path_type=Path))
@_lab_errors
def lab_validate_command(scenario: Path) -> None:
    """Check a scenario file and name every invalid field."""
    from lab.scenario import load_scenario

    loaded = load_scenario(scenario)
    click.echo(f"{scenario}: valid scenario {loaded.name!r}")


@click.command("demo")
@click.option(
    "--scenario",
    help="A scenario file (JSON) or the name of one in lab/scenarios (e.g. hyperv)",
)
@click.option("--lab-dir", type=click.Path(path_type=Path))
@click.option(
    "--data-sync",
    type=click.Choice(["for-synchronization", "for-downtime"]),
    default="for-synchronization",
    show_default=True,
    help="Hyper-V: the data-sync mode (for-downtime: the demo gives the cut-over itself)",
)
@friendly_errors
@_lab_errors
def demo(scenario: str | None, lab_dir: Path | None, data_sync: str) -> None:
    """Run a whole failback in the lab, approve it, and stop the lab."""
    from lab.demo import run_demo
    from lab.scenario import scenario_path_named

    sys.exit(run_demo(scenario_path_named(scenario) if scenario else None, lab_dir, data_sync))


def running_lab_settings() -> Path | None:
    """The settings file of the lab running here (`failback lab up`), if one runs."""
    from lab.manager import ENV_FILE, default_lab_dir

    path = default_lab_dir() / ENV_FILE
    return path if path.exists() else None


plugin = CliPlugin(
    commands=(lab, demo),
    default_settings_file=running_lab_settings,
    no_settings_hint="no lab runs here: start one with `failback lab up`, or set "
    "FAILBACK_TEMPORAL_ADDRESS (`eval $(failback lab env)` for a lab elsewhere)",
)
