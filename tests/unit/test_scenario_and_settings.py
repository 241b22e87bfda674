"""Scenario files and settings: bad input gets an error that names the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.scenario import ScenarioError, default_scenario_path, load_scenario, scenario_json_schema
from worker.settings import SettingsError, load_settings


def test_the_default_scenario_is_valid() -> None:
    scenario = load_scenario(default_scenario_path())
    assert scenario.azure.items[0].vm_name == "web-01"
    assert "properties" in scenario_json_schema()


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def base() -> dict:
    return json.loads(default_scenario_path().read_text())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["azure"]["items"][0].pop("vm_name"), "azure.items.0.vm_name"),
        (
            lambda d: d["azure"]["items"][0].update(agent_registration_delay_seconds=-1),
            "azure.items.0.agent_registration_delay_seconds",
        ),
        (lambda d: d["vcenter"]["datastores"][0].update(type="FAT32"), "vcenter.datastores.0.type"),
        (lambda d: d["azure"].update(master_target_vm="nope"), "azure.master_target_vm"),
        (lambda d: d["vcenter"]["vms"][0].update(host="esx-99"), "vms[0].host"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_invalid_scenarios_name_the_field(tmp_path: Path, mutate, expected: str) -> None:
    data = base()
    mutate(data)
    with pytest.raises(ScenarioError) as error:
        load_scenario(write(tmp_path, data))
    assert expected in str(error.value)
    assert str(tmp_path / "scenario.json") in str(error.value)


def test_malformed_json_says_where(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"not valid JSON.*line 1"):
        load_scenario(write(tmp_path, "{nope"))


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "absent.json")


def test_settings_from_a_file_and_the_environment(tmp_path: Path, monkeypatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("FAILBACK_"):
            monkeypatch.delenv(key)
    settings_file = tmp_path / "failback.env"
    settings_file.write_text("FAILBACK_AZURE_VAULT=from-file\nFAILBACK_VCENTER_PASSWORD=s3cret\n")
    monkeypatch.setenv("FAILBACK_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("FAILBACK_TASK_QUEUE", "from-env")
    settings = load_settings()
    assert settings.azure_vault == "from-file"
    assert settings.task_queue == "from-env"
    assert "s3cret" not in repr(settings)
    with pytest.raises(SettingsError, match="FAILBACK_AZURE_RESOURCE_GROUP"):
        settings.require("azure_resource_group")


def test_bad_settings_are_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAILBACK_VCENTER_PORT", "not-a-port")
    monkeypatch.delenv("FAILBACK_SETTINGS_FILE", raising=False)
    with pytest.raises(SettingsError, match="FAILBACK_VCENTER_PORT"):
        load_settings()
    monkeypatch.setenv("FAILBACK_SETTINGS_FILE", str(tmp_path / "absent.env"))
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings()


def test_standalone_hosts_are_comma_separated(monkeypatch) -> None:
    monkeypatch.delenv("FAILBACK_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("FAILBACK_VCENTER_STANDALONE_HOSTS", "esx-03, esx-04,")
    assert load_settings().vcenter_standalone_hosts == ["esx-03", "esx-04"]
    monkeypatch.setenv("FAILBACK_VCENTER_STANDALONE_HOSTS", "")
    assert load_settings().vcenter_standalone_hosts == []


def test_the_lab_names_its_standalone_hosts_and_trusts_vcsim_s_certificate_explicitly() -> None:
    from lab.manager import lab_settings
    from lab.vcenter import VcsimEndpoint

    scenario = load_scenario(Path("lab") / "scenarios" / "readiness.json")
    endpoint = VcsimEndpoint(url="", host="127.0.0.1", port=8989, username="u", password="p")
    settings = lab_settings(scenario, 7233, 8233, "https://x", Path("ca.pem"), "s", endpoint)
    assert settings["FAILBACK_VCENTER_STANDALONE_HOSTS"] == "esx-03"
    assert settings["FAILBACK_VCENTER_VERIFY_TLS"] == "false"
    single = lab_settings(load_scenario(default_scenario_path()), 1, 2, "", Path(), "", endpoint)
    assert single["FAILBACK_VCENTER_STANDALONE_HOSTS"] == ""


def test_the_committed_json_schema_matches_the_model() -> None:
    committed = json.loads((Path("lab") / "scenario.schema.json").read_text())
    assert committed == scenario_json_schema(), (
        "lab/scenario.schema.json is stale: regenerate it with "
        "`failback lab schema > lab/scenario.schema.json`"
    )
