"""The `failback` command line without the lab, with it, and with a plugin that cannot load: the
lab's commands come only through the entry point group starter.cli.CLI_PLUGINS."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from starter import cli as cli_module
from starter.cli import CLI_PLUGINS, CliPlugin, cli, cli_plugins, settings_for_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    cli_plugins.cache_clear()
    yield
    cli_plugins.cache_clear()


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAILBACK_SETTINGS_FILE", "FAILBACK_TEMPORAL_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def _with_plugins(monkeypatch: pytest.MonkeyPatch, *plugins: CliPlugin) -> None:
    monkeypatch.setattr(cli_module, "cli_plugins", lambda: plugins)


def test_without_any_plugin_the_product_commands_work(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_plugins(monkeypatch)
    shown = CliRunner().invoke(cli, ["--help"])
    assert shown.exit_code == 0
    for command in ("start", "status", "approve", "check", "preview", "report", "worker"):
        assert f"  {command} " in shown.output
    assert "  lab " not in shown.output and "  demo " not in shown.output
    assert "No such command 'lab'" in CliRunner().invoke(cli, ["lab", "up"]).output


def test_the_lab_plugs_in_its_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.cli import plugin

    _with_plugins(monkeypatch, plugin)
    shown = CliRunner().invoke(cli, ["--help"])
    assert "  lab " in shown.output and "  demo " in shown.output
    scenario = ROOT / "lab" / "scenarios" / "single-vm.json"
    valid = CliRunner().invoke(cli, ["lab", "validate", str(scenario)])
    assert valid.exit_code == 0, valid.output
    assert "valid scenario 'single-vm'" in valid.output
    refused = CliRunner().invoke(cli, ["lab", "validate", str(ROOT / "no-such.json")])
    assert refused.exit_code == 2
    assert "cannot read scenario file" in refused.output


def test_the_lab_is_registered_as_an_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"][CLI_PLUGINS] == {"lab": "lab.cli:plugin"}


def test_a_plugin_cannot_replace_a_product_command(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command("start")
    def impostor() -> None:
        click.echo("impostor")

    _with_plugins(monkeypatch, CliPlugin(commands=[impostor]))
    assert "impostor" not in CliRunner().invoke(cli, ["start", "x", "--help"]).output


def test_a_plugin_that_does_not_load_is_named_and_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [
        EntryPoint(name="gone", value="no_such_package.cli:plugin", group=CLI_PLUGINS),
        EntryPoint(name="odd", value="starter.cli:cli", group=CLI_PLUGINS),
    ]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: entries)
    assert cli_plugins() == ()
    err = capsys.readouterr().err
    assert "plugin 'gone' not loaded" in err and "no_such_package" in err
    assert "plugin 'odd' (starter.cli:cli) is no CliPlugin" in err


def test_with_no_settings_given_a_plugin_s_settings_file_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_settings: None
) -> None:
    lab_env = tmp_path / "lab.env"
    lab_env.write_text("FAILBACK_TEMPORAL_ADDRESS=127.0.0.1:17233\n")
    _with_plugins(monkeypatch, CliPlugin(commands=[], default_settings_file=lambda: lab_env))
    assert settings_for_cli().temporal_address == "127.0.0.1:17233"


def test_settings_given_win_over_a_plugin_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_settings: None
) -> None:
    lab_env = tmp_path / "lab.env"
    lab_env.write_text("FAILBACK_TEMPORAL_ADDRESS=127.0.0.1:17233\n")
    _with_plugins(monkeypatch, CliPlugin(commands=[], default_settings_file=lambda: lab_env))
    monkeypatch.setenv("FAILBACK_TEMPORAL_ADDRESS", "temporal.example:7233")
    assert settings_for_cli().temporal_address == "temporal.example:7233"


def test_unreachable_temporal_without_settings_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, no_settings: None
) -> None:
    from starter.commands import CommandError
    from worker.settings import Settings

    settings = Settings(temporal_address="127.0.0.1:1")
    _with_plugins(monkeypatch)
    with pytest.raises(CommandError) as plain:
        cli_module._run(cli_module._client(settings))
    assert "cannot reach Temporal at 127.0.0.1:1: no FAILBACK_* settings are set: set " in str(
        plain.value
    )
    _with_plugins(monkeypatch, CliPlugin(commands=[], no_settings_hint="no lab runs here"))
    with pytest.raises(CommandError) as hinted:
        cli_module._run(cli_module._client(settings))
    assert "no FAILBACK_* settings are set and no lab runs here." in str(hinted.value)
