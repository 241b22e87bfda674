"""The `failback` command line."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from worker.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from domain.models import MachineChoice

T = TypeVar("T")

CLI_PLUGINS = "failback.cli_plugins"
"""Entry point group of the packages that add commands to `failback` (the lab's `failback lab`
and `failback demo` are one): each entry names a CliPlugin. The product imports none of them by
name, and works without any."""


class CommandFailure(click.ClickException):
    """Printed as `failback: <message>` with exit code 2."""

    exit_code = 2

    def format_message(self) -> str:
        return self.message


def _no_settings_file() -> Path | None:
    return None


@dataclass(frozen=True)
class CliPlugin:
    """What an installed package adds to the `failback` command line (see CLI_PLUGINS)."""

    commands: Sequence[click.Command]
    default_settings_file: Callable[[], Path | None] = _no_settings_file
    """A settings file for commands run with no settings given (neither FAILBACK_SETTINGS_FILE
    nor FAILBACK_TEMPORAL_ADDRESS set), such as a running lab's; None when it has none."""
    no_settings_hint: str = ""
    """What else to try, added to "cannot reach Temporal" when no settings were given."""


@functools.cache
def cli_plugins() -> tuple[CliPlugin, ...]:
    """The installed plugins, loaded on first use (never at import)."""
    from importlib.metadata import entry_points

    plugins: list[CliPlugin] = []
    for entry in entry_points(group=CLI_PLUGINS):
        try:
            plugin = entry.load()
        except ImportError as err:
            # Registered but not importable (its dependencies are not installed, say): the
            # product's own commands still work.
            click.echo(f"failback: plugin {entry.name!r} not loaded: {err}", err=True)
            continue
        if not isinstance(plugin, CliPlugin):
            click.echo(f"failback: plugin {entry.name!r} ({entry.value}) is no CliPlugin", err=True)
            continue
        plugins.append(plugin)
    return tuple(plugins)


class _CommandsAndPlugins(click.Group):
    """The product's commands, then those of the installed plugins (a plugin cannot replace a
    product command)."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        found: dict[str, click.Command] = {}
        for plugin in cli_plugins():
            for command in plugin.commands:
                if command.name and command.name not in self.commands:
                    found.setdefault(command.name, command)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._plugin_commands().get(cmd_name)


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Known refusals become one clear line and a non-zero exit instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from temporalio.service import RPCError

        from domain.errors import FailbackError
        from starter.commands import CommandError
        from starter.identity import SignInError

        try:
            return func(*args, **kwargs)
        except (CommandError, SettingsError, FailbackError, SignInError) as err:
            raise CommandFailure(str(err)) from err
        except RPCError as err:
            raise CommandFailure(
                f"Temporal refused the request: {err.message} ({err.status.name}); check "
                "FAILBACK_TEMPORAL_ADDRESS and FAILBACK_TEMPORAL_NAMESPACE"
            ) from err
        except Exception as err:
            words = outage_words(err)
            if words is None:
                raise
            raise CommandFailure(words) from err

    return wrapper


def outage_words(err: BaseException) -> str | None:
    """Another system's refusal or outage, in one line that names it and what to do; None for
    anything else (a bug, which keeps its traceback)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, ClientAuthenticationError):
        return (
            f"Azure sign-in failed ({first}): sign in for azure-identity (az login, a managed "
            "identity, or AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET), or set "
            "FAILBACK_AZURE_AUTH"
        )
    if isinstance(err, ServiceRequestError):
        return (
            f"cannot reach Azure Resource Manager ({first}): check FAILBACK_AZURE_ENDPOINT, "
            "FAILBACK_AZURE_CA_BUNDLE and the network"
        )
    if isinstance(err, HttpResponseError):
        status = err.status_code or 0
        if status == 403:
            return (
                f"Azure denied the request ({first}): the identity needs the Site Recovery "
                "Contributor role on the vault's resource group"
            )
        if status == 404:
            return (
                f"Azure has no such resource ({first}): check FAILBACK_AZURE_SUBSCRIPTION_ID, "
                "FAILBACK_AZURE_RESOURCE_GROUP and FAILBACK_AZURE_VAULT"
            )
        return f"Azure refused the request ({status}): {first}"
    # pyVmomi's faults are classes named like vim.fault.InvalidLogin, under vmodl.MethodFault.
    faults = [c.__name__ for c in type(err).__mro__]
    if "vmodl.MethodFault" in faults:
        message = getattr(err, "msg", None) or faults[0]
        if faults[0].endswith("InvalidLogin"):
            return (
                f"vCenter refused the login ({message}): check FAILBACK_VCENTER_USER and "
                "FAILBACK_VCENTER_PASSWORD"
            )
        return f"vCenter refused the request ({faults[0]}: {message})"
    if isinstance(err, OSError):
        return (
            f"a system did not answer ({first}): check the addresses in the settings "
            "(vCenter, Azure, Temporal) and the network"
        )
    return None


def _no_settings_given() -> bool:
    return not os.environ.get("FAILBACK_SETTINGS_FILE") and not os.environ.get(
        "FAILBACK_TEMPORAL_ADDRESS"
    )


def settings_for_cli() -> Settings:
    """The environment's settings; with none given, a plugin's (the running lab's), if any."""
    if _no_settings_given():
        for plugin in cli_plugins():
            path = plugin.default_settings_file()
            if path is not None:
                os.environ["FAILBACK_SETTINGS_FILE"] = str(path)
                break
    return load_settings()


async def _client(settings: Settings) -> Any:
    from starter.commands import CommandError
    from worker.wiring import connect_temporal, temporal_connect_hint

    try:
        return await connect_temporal(settings)
    except RuntimeError as err:
        # The SDK has no exception type of its own for a failed connect: a plain RuntimeError
        # out of Client.connect is one.
        if _no_settings_given():
            hints = [p.no_settings_hint for p in cli_plugins() if p.no_settings_hint]
            hint = (
                "no FAILBACK_* settings are set and " + "; ".join(hints)
                if hints
                else "no FAILBACK_* settings are set: set FAILBACK_TEMPORAL_ADDRESS, or name a "
                "settings file in FAILBACK_SETTINGS_FILE"
            )
        else:
            hint = temporal_connect_hint(settings, err)
        raise CommandError(
            f"cannot reach Temporal at {settings.temporal_address}: {hint}. ({err})"
        ) from err


def _workflow_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A failback's id as `failback start` printed it: not empty, no spaces or control
    characters (Temporal would take them and answer with an error about something else)."""
    if not value.strip() or any(c.isspace() or not c.isprintable() for c in value):
        raise click.BadParameter(
            f"{value!r} is not a failback id: give the id `failback start` printed "
            "(`failback list` shows them)"
        )
    return value


BY_HELP = (
    "Who {who}: needed, and taken, only when decisions are not signed in "
    "(FAILBACK_DECISION_DESK_URL unset); otherwise your verified sign-in is recorded"
)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=_CommandsAndPlugins)
def cli() -> None:
    """Fail back Azure Site Recovery machines from Azure to on-premises VMware, durably."""


def main() -> None:
    """The `failback` entry point.

    The Temporal client's core runs threads of its own that may still call into Python while
    the interpreter finalizes, which can abort a finished command (seen as `PyGILState_Release`
    fatal errors). So once the command is done and its output flushed, the process ends at once.
    """
    # azure-identity logs every credential it tried before it raises: the one-line error below
    # says what to do, without the wall of text.
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except click.ClickException as err:
        err.show()
        code = err.exit_code
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)


# --- the worker --------------------------------------------------------------------------------


@cli.command("worker")
def worker_command() -> None:
    """Run a worker with the settings from the environment."""
    from worker.main import main as worker_main

    worker_main()


# --- failbacks ---------------------------------------------------------------------------------


@cli.command("start")
@click.argument("machine", required=False)
@click.option("--recovery-plan", help="Fail back a whole ASR recovery plan instead of one machine")
@click.option(
    "--recovery-point",
    type=click.Choice(["latest", "app-consistent"]),
    default="latest",
    show_default=True,
    help="For a plan: which recovery point each machine fails back to",
)
@click.option("--azure-vm", help="Name of the failed-over Azure VM (default: the VM's name)")
@click.option("--process-server", help="Process server id for the re-protect to Azure")
@click.option("--policy", help="Replication policy id for the re-protect to Azure")
@click.option(
    "--master-target",
    help="Where a machine goes back: the master target (classic), the replication appliance "
    "(modernized) or, for a Hyper-V VM that no longer exists, the host to create it on",
)
@click.option("--datastore", help="Datastore for an alternate-location reprotect (VMware)")
@click.option(
    "--data-sync",
    type=click.Choice(["for-synchronization", "for-downtime"]),
    default="for-synchronization",
    show_default=True,
    help="Hyper-V: for-synchronization shuts the Azure VM down at once and downloads its "
    "disks; for-downtime synchronizes while it runs and waits for the cut-over",
)
@click.option(
    "--cutover-at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    help="Hyper-V for-downtime: cut over at this time (a maintenance window, with its UTC "
    "offset, e.g. 2026-12-05T02:00+00:00) unless `failback cutover` comes first",
)
@click.option(
    "--approver",
    "approvers",
    multiple=True,
    help="Only this person (UPN or object id) may approve this failback's commit (R29; "
    "repeat for several). Narrows the settings' approvers, never widens them",
)
@click.option(
    "--approvers-required",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="Distinct approvers the commit waits for (R31); the settings' number if higher",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@friendly_errors
def start_command(
    machine: str | None,
    recovery_plan: str | None,
    recovery_point: str,
    azure_vm: str | None,
    process_server: str | None,
    policy: str | None,
    master_target: str | None,
    datastore: str | None,
    data_sync: str,
    cutover_at: datetime | None,
    approvers: tuple[str, ...],
    approvers_required: int,
    as_json: bool,
) -> None:
    """Start the failback of MACHINE (its VM's or its ASR item's name) or of --recovery-plan;
    prints the id."""
    from domain.models import Decisions
    from starter.commands import (
        CommandError,
        failback_input,
        plan_input,
        start_failback,
        start_plan_failback,
        web_ui_link,
        with_choices,
    )

    if (machine is None) == (recovery_plan is None):
        raise CommandError("name either a MACHINE or a --recovery-plan, not both or neither")
    if machine is not None and recovery_point != "latest":
        raise CommandError(
            "--recovery-point app-consistent applies to a recovery plan; a single machine fails "
            "back to its latest point"
        )
    if cutover_at is not None and data_sync != "for-downtime":
        raise CommandError(
            "--cutover-at applies to --data-sync for-downtime: a for-synchronization failback "
            "shuts the Azure VM down at once, with no cut-over to wait for"
        )
    settings = settings_for_cli()

    from starter.observe import confirm_exists, name_machine

    # Look the machine or plan up first: an unknown name is refused here, with the names the
    # vault knows, instead of a workflow that starts and fails. A machine's input carries both
    # its names, so the failback's id is the same whichever one was typed.
    if recovery_plan is not None:
        plan_params = with_choices(
            plan_input(settings, recovery_plan, recovery_point, policy),
            master_target,
            datastore,
            data_sync,
            cutover_at,
        )
        confirm_exists(settings, plan_params)
    else:
        assert machine is not None
        item_name, vm_name = name_machine(settings, machine)
        single = with_choices(
            failback_input(settings, item_name, vm_name, azure_vm, process_server, policy),
            master_target,
            datastore,
            data_sync,
            cutover_at,
        )

    decisions = Decisions(approvers=list(approvers), approvers_required=approvers_required)

    async def go() -> str:
        client = await _client(settings)
        if recovery_plan is not None:
            params = plan_params.model_copy(update={"decisions": decisions})
            return (await start_plan_failback(client, settings, params)).id
        params_one = single.model_copy(update={"decisions": decisions})
        return (await start_failback(client, settings, params_one)).id

    workflow_id = _run(go())
    if as_json:
        _print_json({"workflow_id": workflow_id, "web_ui": web_ui_link(settings, workflow_id)})
    else:
        click.echo(workflow_id)


@cli.command("preview")
@click.option("--recovery-plan", required=True, help="ASR recovery plan name")
@click.option(
    "--recovery-point",
    type=click.Choice(["latest", "app-consistent"]),
    default="latest",
    show_default=True,
)
@click.option(
    "--data-sync",
    type=click.Choice(["for-synchronization", "for-downtime"]),
    default="for-synchronization",
    show_default=True,
    help="Hyper-V: the data-sync mode to explain",
)
@click.option("--master-target", help="Hyper-V: the host for a VM ASR creates again")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@friendly_errors
def preview_command(
    recovery_plan: str,
    recovery_point: str,
    data_sync: str,
    master_target: str | None,
    as_json: bool,
) -> None:
    """Show the recovery point and data-loss window each machine would get (Hyper-V: the
    data-sync mode and where each VM comes up). Only reads."""
    from starter.commands import plan_input, with_choices
    from starter.observe import preview_plan, readiness_report

    settings = settings_for_cli()
    params = with_choices(
        plan_input(settings, recovery_plan, recovery_point), master_target, None, data_sync
    )
    choice = preview_plan(settings, params)
    if as_json:
        click.echo(choice.model_dump_json(indent=2))
        return
    if any(m.asked_as == "AzureVmDisks" for m in choice.machines):
        _preview_hyperv(recovery_plan, data_sync, readiness_report(settings, params))
        return
    click.echo(f"recovery plan {recovery_plan}, recovery point policy {recovery_point}:")
    for machine in choice.machines:
        tag = f" [{machine.replication_group}]" if machine.replication_group else ""
        click.echo(
            f"  {machine.item_name}{tag}: {machine.chosen.time.isoformat()} "
            f"({machine.chosen.type}), latest {machine.latest.time.isoformat()}, "
            f"data-loss window {_minutes(machine.data_loss_window_seconds)}"
        )
        click.echo(f"      asked as {machine.asked_as}: {_what_asr_takes(machine)}")
    for group in choice.groups:
        common = (
            group.common_point_time.isoformat()
            if group.common_point_time is not None
            else "ASR's to pick (its points do not say which are multi-VM sync points), no "
            "later than each member's shown above"
        )
        click.echo(
            f"  replication group {group.group} ({', '.join(group.members)}): common point {common}"
        )
    if choice.groups:
        click.echo(
            "  the plan holds a replication group, so it fails over whole, in one ASR job that "
            "boots its groups in order (FO-PLAN)"
        )


DATA_SYNC_TEXT = {
    "for-synchronization": (
        "synchronize during the failover (ForSynchronization): ASR shuts each Azure VM down at "
        "once and downloads its disks, no checksums; the machine is down for the whole "
        "download. Best after a month or more in Azure, or when the VM is gone on-premises"
    ),
    "for-downtime": (
        "synchronize before the failover (ForDownTime): ASR copies the changes while the Azure "
        "VM keeps running, then suspends its job; the failback waits there for the cut-over "
        "(`failback cutover ID --by NAME`, or --cutover-at), when ASR shuts the Azure VM down "
        "and sends only the last changes: the machine is down for that part only"
    ),
}


def _preview_hyperv(recovery_plan: str, data_sync: str, report: Any) -> None:
    from domain.decisions import hyperv_plan_fails_over_whole
    from domain.models import DataSync

    click.echo(f"recovery plan {recovery_plan} (Hyper-V), data sync {data_sync}:")
    click.echo(f"  {DATA_SYNC_TEXT[data_sync]}")
    click.echo(
        "  no recovery point is asked: the failback copies each Azure VM's disks as they are "
        "when it shuts down, so nothing written in Azure is lost"
    )
    for machine in report.machines:
        where = (
            f"its VM on {machine.master_target_host}"
            if machine.location == "original"
            else f"created again by ASR on {machine.master_target_host} (CreateVmIfNotFound)"
        )
        click.echo(f"  {machine.item_name}: {machine.location} location, {where}")
    if hyperv_plan_fails_over_whole(cast(DataSync, data_sync), report.machines):
        click.echo(
            "  every VM comes back where it was, for synchronization: the plan fails over "
            "whole, in one ASR job that boots its groups in order (FO-PLAN)"
        )
    elif report.machines:
        click.echo(
            "  the plan fails over machine by machine, boot group by boot group, each group "
            "verified before the next starts (a plan's one job does not take "
            + (
                "for-downtime's cut-over"
                if data_sync == "for-downtime"
                else "a VM to create on another host"
            )
            + ")"
        )
    for finding in report.findings:
        click.echo(
            f"  {finding.severity.upper()} {finding.rule} {finding.item_name or 'plan'}: "
            f"{finding.found}; what to do: {finding.action}"
        )


def _what_asr_takes(machine: MachineChoice) -> str:
    """RP-ASK in words: which point ASR takes for the name the failover gives it."""
    if machine.asked_as == "CrashConsistent":
        return (
            "a crash-consistent point ASR makes at the failover itself, after the Azure VM is "
            "shut down: no data is lost (recommended)"
        )
    if machine.asked_as == "ApplicationConsistent":
        return (
            "ASR's newest application-consistent point when it fails over: what changed since "
            "then is lost"
        )
    if machine.asked_as == "LatestTime":
        return "ASR's newest point when it fails over, this one or a newer one"
    if machine.replication_group:
        return (
            "through the plan's failover, the group's newest common application-consistent "
            "point when it fails over, this one or a newer one"
        )
    if machine.asked_as == "LatestTag":
        return "ASR's newest app-consistent point when it fails over, this one or a newer one"
    return f"point {machine.chosen.id}, by its id"


@cli.command("check")
@click.option("--recovery-plan", required=True, help="ASR recovery plan name")
@click.option("--master-target", help="Master target id for the reprotect to on-premises")
@click.option("--datastore", help="Datastore for an alternate-location reprotect")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@friendly_errors
def check_command(
    recovery_plan: str, master_target: str | None, datastore: str | None, as_json: bool
) -> None:
    """Check the readiness rules of the plan's architecture; exit 1 on a blocking finding."""
    from domain.models import ReprotectToOnPremOptions
    from starter.commands import plan_input
    from starter.observe import readiness_report

    settings = settings_for_cli()
    params = plan_input(settings, recovery_plan, "latest").model_copy(
        update={
            "reprotect_to_onprem": ReprotectToOnPremOptions(
                master_target_id=master_target, datastore_name=datastore
            )
        }
    )
    report = readiness_report(settings, params)
    if as_json:
        data = json.loads(report.model_dump_json())
        data["ready"] = report.ready
        _print_json(data)
    else:
        for machine in report.machines:
            if report.architecture == "hyperv":
                click.echo(
                    f"{machine.item_name}: {machine.location} location, Hyper-V host "
                    f"{machine.master_target_host or '-'}"
                    + (" (ASR creates the VM there)" if machine.location == "alternate" else "")
                )
                continue
            through = "appliance" if report.architecture == "modernized" else "master target"
            click.echo(
                f"{machine.item_name}: {machine.location} location, {through} "
                f"{machine.master_target_id or '-'} on {machine.master_target_host or '-'}, "
                f"datastore {machine.datastore or '-'}"
                + ("; reprotected to on-premises first" if machine.reprotect_first else "")
            )
        for finding in report.findings:
            where = finding.item_name or "plan"
            click.echo(f"{finding.severity.upper():8} {finding.rule:4} {where}: {finding.found}")
            click.echo(f"{'':14}what to do: {finding.action}")
        blocking = len(report.blocking)
        click.echo(
            f"{len(report.findings)} finding(s), {blocking} blocking: "
            + ("not ready" if blocking else "ready")
        )
    if not report.ready:
        sys.exit(1)


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _console() -> Any:
    from rich.console import Console

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    # Piped into a file or a pager without COLUMNS, rich would assume 80 columns and fold the
    # job ids and the plan's table.
    return Console(width=140)


@cli.command("capture")
@click.option(
    "--output", required=True, type=click.Path(path_type=Path), help="Folder to write (new)"
)
@click.option("--max-items", default=20, show_default=True, help="Protected items to read")
@friendly_errors
def capture_command(output: Path, max_items: int) -> None:
    """Read, with GETs only, what the product reads of the vault, sanitised, into a folder
    (for comparing a real vault with the lab's simulator: `python -m lab.capture_diff`)."""
    from domain.models import VaultRef
    from starter.capture import capture, write_capture
    from starter.commands import CommandError
    from worker.wiring import build_asr_gateway

    settings = settings_for_cli()
    settings.require("azure_resource_group", "azure_vault")
    if output.exists() and any(output.iterdir()):
        raise CommandError(f"{output} is not empty: give a new folder, nothing was read")
    assert settings.azure_resource_group and settings.azure_vault
    gateway = build_asr_gateway(settings)
    vault = VaultRef(resource_group=settings.azure_resource_group, vault=settings.azure_vault)
    written = write_capture(
        capture(gateway, gateway.vault_path(vault), max_items=max_items), output
    )
    click.echo(
        f"wrote {written} sanitised answers to {output}: names, ids and addresses are replaced; "
        "read them before you share them"
    )


@cli.command("status")
@click.argument("workflow_id", callback=_workflow_id)
@click.option(
    "--watch",
    is_flag=True,
    help="Redraw every second until the failback ends; Ctrl-C stops watching, not the failback",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@friendly_errors
def status_command(workflow_id: str, watch: bool, as_json: bool) -> None:
    """Show a failback (a machine, or a plan by boot group): phase, what it waits for, recovery
    point and data-loss window, ASR jobs, verification, approval."""
    from starter.commands import CommandError, read_failback
    from starter.live import failback_renderable, view_json
    from starter.live import watch as watch_live

    if watch and as_json:
        raise CommandError("--watch draws a live view and --json prints once: choose one")
    settings = settings_for_cli()
    console = _console()

    if watch:
        stopped_watching = (
            f"stopped watching; the failback goes on (`failback status {workflow_id} "
            "--watch` watches again)"
        )

        async def follow() -> Any:
            # Ctrl-C is the loop's own event, whatever is in flight (a connect, a query): the
            # Temporal client's futures need not answer a cancel for the watch to end at once.
            interrupted = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted.set)

            async def watching() -> Any:
                client = await _client(settings)
                return await watch_live(lambda: read_failback(client, workflow_id), console)

            work = asyncio.ensure_future(watching())
            stop = asyncio.ensure_future(interrupted.wait())
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                # The live view draws its last frame as it unwinds; a query the Temporal
                # client does not let go of is not waited for.
                work.cancel()
                await asyncio.wait({work}, timeout=2.0)
                click.echo(stopped_watching, err=True)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            stop.cancel()
            return work.result()

        try:
            _run(follow())
        except KeyboardInterrupt:
            # Ctrl-C before the watch began.
            click.echo(stopped_watching, err=True)
        return

    async def once() -> Any:
        return await read_failback(await _client(settings), workflow_id)

    view = _run(once())
    if as_json:
        _print_json(view_json(view))
        return
    console.print(failback_renderable(view))


@cli.command("approve")
@click.argument("workflow_id", callback=_workflow_id)
@click.option("--by", "approved_by", help=BY_HELP.format(who="approves the commit"))
@click.option("--comment", default="", help="Why (goes into the audit trail)")
@friendly_errors
def approve_command(workflow_id: str, approved_by: str | None, comment: str) -> None:
    """Approve the commit of a verified failback (the Azure VMs are then deleted)."""
    from starter.commands import approve
    from starter.identity import attest, who_decides

    settings = settings_for_cli()
    by = who_decides(settings, approved_by, "approves the commit")

    async def go() -> tuple[Any, str]:
        client = await _client(settings)
        attestation = await attest(settings, workflow_id, "approve", comment)
        name = attestation.identity.name if attestation is not None else by
        return await approve(client, workflow_id, by, comment, attestation), name

    covers, name = _run(go())
    if "approver(s)" in covers:
        click.echo(covers)
    else:
        click.echo(f"commit of {covers} approved by {name}")


@cli.command("undo")
@click.argument("workflow_id", callback=_workflow_id)
@click.option("--by", "undone_by", help=BY_HELP.format(who="undoes the failback"))
@click.option("--comment", default="", help="Why (goes into the audit trail)")
@friendly_errors
def undo_command(workflow_id: str, undone_by: str | None, comment: str) -> None:
    """Undo a failback before its commit (modernized): the Azure VM runs again."""
    from starter.commands import undo
    from starter.identity import attest, who_decides

    settings = settings_for_cli()
    by = who_decides(settings, undone_by, "undoes the failback")

    async def go() -> str:
        client = await _client(settings)
        attestation = await attest(settings, workflow_id, "undo", comment)
        return await undo(client, workflow_id, by, comment, attestation)

    click.echo(_run(go()))


@cli.command("list")
@click.option("--phase", help="Only failbacks in this phase (e.g. awaiting-approval)")
@click.option("--recovery-plan", "plan", help="Only this recovery plan's failbacks")
@click.option("--vault", help="Only this vault's failbacks")
@click.option("--running", is_flag=True, help="Only failbacks still running")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@friendly_errors
def list_command(
    phase: str | None,
    plan: str | None,
    vault: str | None,
    running: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List failbacks, newest first, from Temporal's visibility (running and recent)."""
    from dataclasses import asdict

    from starter.commands import list_failbacks, list_query

    query = list_query(phase, plan, vault, running)
    settings = settings_for_cli()

    async def go() -> Any:
        return await list_failbacks(await _client(settings), query, limit)

    found = _run(go())
    if as_json:
        _print_json([asdict(f) for f in found])
        return
    if not found:
        click.echo("no failback matches")
        return
    for f in found:
        started = f.started_at.strftime("%Y-%m-%d %H:%M") if f.started_at else "-"
        plan_name = f" plan {f.recovery_plan}" if f.recovery_plan and f.kind == "machine" else ""
        click.echo(
            f"{f.workflow_id:<48} {f.kind:<7} {f.execution:<10} {f.phase or '-':<30} "
            f"started {started}{plan_name}"
        )


@cli.command("cancel")
@click.argument("workflow_id", callback=_workflow_id)
@click.option("--by", "cancelled_by", help=BY_HELP.format(who="cancels the failback"))
@click.option("--comment", default="", help="Why (goes into the audit trail)")
@friendly_errors
def cancel_command(workflow_id: str, cancelled_by: str | None, comment: str) -> None:
    """Cancel a failback before its commit: its machines stand down, nothing is committed, the
    Azure VMs stay. Refused after the commit's approval."""
    from starter.commands import cancel
    from starter.identity import attest, who_decides

    settings = settings_for_cli()
    by = who_decides(settings, cancelled_by, "cancels the failback")

    async def go() -> str:
        client = await _client(settings)
        attestation = await attest(settings, workflow_id, "cancel", comment)
        return await cancel(client, workflow_id, by, comment, attestation)

    click.echo(_run(go()))


@cli.command("cutover")
@click.argument("workflow_id", callback=_workflow_id)
@click.option("--by", "cut_over_by", help=BY_HELP.format(who="gives the cut-over"))
@click.option("--comment", default="", help="Why now (goes into the audit trail)")
@friendly_errors
def cutover_command(workflow_id: str, cut_over_by: str | None, comment: str) -> None:
    """Hyper-V for-downtime: cut over now (the Azure VM is shut down, the last changes sent,
    the VM started on-premises). A plan's cut-over covers all its machines."""
    from starter.commands import cut_over
    from starter.identity import attest, who_decides

    settings = settings_for_cli()
    by = who_decides(settings, cut_over_by, "gives the cut-over")

    async def go() -> str:
        client = await _client(settings)
        attestation = await attest(settings, workflow_id, "cutover", comment)
        return await cut_over(client, workflow_id, by, comment, attestation)

    click.echo(_run(go()))


@cli.command("agent")
@click.argument("workflow_id", callback=_workflow_id)
@click.option("--by", "decided_by", help=BY_HELP.format(who="decides"))
@click.option("--keep-waiting", "action", flag_value="keep-waiting", help="Wait another period")
@click.option(
    "--finish-without-reprotect",
    "action",
    flag_value="finish-without-reprotect",
    help="End the failback; re-protect to Azure by hand later",
)
@click.option("--comment", default="")
@friendly_errors
def agent_command(
    workflow_id: str, decided_by: str | None, action: str | None, comment: str
) -> None:
    """Decide what a failback stuck on an unregistered mobility agent does next."""
    from domain.models import OperatorDecision
    from starter.commands import CommandError, decide_agent
    from starter.identity import attest, who_decides

    if action is None:
        raise CommandError("choose --keep-waiting or --finish-without-reprotect")
    settings = settings_for_cli()
    by = who_decides(settings, decided_by, "decides")

    async def go() -> str:
        client = await _client(settings)
        attestation = await attest(settings, workflow_id, "agent", comment)
        decision = OperatorDecision.model_validate(
            {
                "decided_by": attestation.identity.name if attestation else by,
                "action": action,
                "comment": comment,
                "attestation": attestation,
            }
        )
        return await decide_agent(client, workflow_id, decision)

    click.echo(_run(go()))


@cli.command("report")
@click.argument("workflow_id", callback=_workflow_id)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="md: Markdown with the timeline as an embedded data: URI SVG image; html: a standalone "
    "page with the SVG inline; json: the report's data",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to FILE instead of standard output",
)
@friendly_errors
def report_command(workflow_id: str, fmt: str, output: Path | None) -> None:
    """Report a failback (running or finished), reconciled with ASR, vCenter and Azure now.

    Per machine: the recovery point and data-loss window, a timeline of the phases, the ASR jobs,
    the verification evidence, the approval (and refused ones), and every place where what ASR
    recorded and what vCenter or Azure show now disagree. Only reads.
    """
    from starter.commands import CommandError
    from starter.observe import failback_report
    from starter.report import render

    settings = settings_for_cli()

    async def go() -> Any:
        return await failback_report(await _client(settings), settings, workflow_id)

    report = _run(go())
    text = render(report, fmt)  # type: ignore[arg-type]
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise CommandError(
            f"cannot write the report to {output}: {err.strerror}; choose another --output"
        ) from err
    disagreements = len(report.disagreements)
    click.echo(
        f"report of {workflow_id} written to {output}: {len(report.machines)} machine(s), "
        + (f"{disagreements} disagreement(s)" if disagreements else "no disagreement")
    )
