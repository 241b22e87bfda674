"""docker-compose.yml, the Dockerfile and deploy/: the production-shaped stack.

There is no Docker engine where the tests run, so nothing is built or started. Instead:
- a real compose parser, Debian's `docker-compose` (`make test` installs it), validates the file
  with `docker-compose config`, resolving interpolation, anchors and profiles, for the default
  stack and for the lab (`--env-file deploy/lab.env --profile lab`);
- the structure (services, profiles, ports, healthchecks, dependencies, secrets) is checked on
  the parsed YAML, and cross-checked against the code it runs (worker settings, the simulator's
  arguments, lab-init's names and ports);
- the Dockerfile is checked as text (stages, the Go build, non-root users, no secrets);
- the scripts the services run are run here: lab-init for real, the shell scripts with `sh`.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.asr_sim.__main__ import TOKEN_SECRET_ENV, VCENTER_PASSWORD_ENV, _parser
from lab.manager import LAB_VCENTER_USER
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
SCRIPTS = DEPLOY / "scripts"
LAB_ENV = DEPLOY / "lab.env"
LAB_INIT = SCRIPTS / "lab_init.py"

BASE_SERVICES = {
    "db-password",
    "postgresql",
    "temporal-schema",
    "temporal",
    "temporal-setup",
    "temporal-ui",
    "worker",
}
LAB_SERVICES = {"lab-init", "vcsim", "asr-sim", "jaeger"}
ONE_SHOTS = {"db-password", "temporal-schema", "temporal-setup", "lab-init"}
SEARCH_ATTRIBUTES = ("FailbackPhase", "RecoveryPlan", "Vault")

# Names that hold a secret when they hold a value.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PWD|CREDENTIAL|PRIVATE|(^|_)KEY($|_)", re.I)
# Variables that decide what `docker-compose config` resolves; the tests run it without them.
_COMPOSE_INPUTS = re.compile(
    r"^(COMPOSE_|DOCKER_|FAILBACK_|WORKER_|AZURE_|OTEL_|TEMPORAL_|POSTGRES_|LAB_|JAEGER_)"
)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def compose_bin() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated: run "
            "`make test`, which installs it (Debian package docker-compose)"
        )
    return found


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not _COMPOSE_INPUTS.match(k)}


def compose_config(compose_bin: str, *args: str) -> dict[str, Any]:
    """`docker-compose -f docker-compose.yml ARGS config`, which must succeed, parsed."""
    command = [compose_bin, "-f", str(COMPOSE_FILE), *args, "config"]
    result = subprocess.run(
        command, cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"{' '.join(command[1:])} exited {result.returncode}:\n{result.stderr}"
    )
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = raw["services"]
    return found


@pytest.fixture(scope="module")
def default_config(compose_bin: str) -> dict[str, Any]:
    return compose_config(compose_bin)


@pytest.fixture(scope="module")
def lab_config(compose_bin: str) -> dict[str, Any]:
    return compose_config(compose_bin, "--env-file", str(LAB_ENV), "--profile", "lab")


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def _published(port: Any) -> tuple[str | None, str]:
    """(host ip, text) of one `ports` entry, short syntax or the long form compose v2 prints."""
    if isinstance(port, dict):
        return port.get("host_ip"), str(port)
    text = str(port)
    parts = text.split(":")
    return (parts[0] if len(parts) == 3 else None), text


def _dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _holds_no_secret(name: str, value: Any) -> bool:
    """A secret-named variable may only be unset, pass through, or name a file to read."""
    if not SECRET_NAME.search(name):
        return True
    return value in (None, "") or (isinstance(value, str) and value.startswith("/"))


# --- the real compose parser ------------------------------------------------------------------


def test_the_compose_parser_supports_profiles(compose_bin: str) -> None:
    result = subprocess.run(
        [compose_bin, "version", "--short"], capture_output=True, text=True, check=True
    )
    version = tuple(int(p) for p in re.findall(r"\d+", result.stdout)[:2])
    assert version >= (1, 28), f"docker-compose {result.stdout.strip()} has no profiles"


def test_default_stack_is_valid_compose(default_config: dict[str, Any]) -> None:
    assert set(default_config["services"]) >= BASE_SERVICES
    worker = _env(default_config["services"]["worker"])
    assert worker["FAILBACK_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert worker["FAILBACK_SETTINGS_FILE"] == "/run/secrets/failback_settings"
    assert worker.get("OTEL_EXPORTER_OTLP_ENDPOINT") is None, "no trace viewer in production"
    secrets = {name: Path(spec["file"]) for name, spec in default_config["secrets"].items()}
    assert secrets == {
        "failback_settings": DEPLOY / "secrets" / "failback.env",
        "azure_client_certificate": DEPLOY / "secrets" / "azure-client.pem",
    }


def test_lab_stack_is_valid_compose(lab_config: dict[str, Any]) -> None:
    assert set(lab_config["services"]) >= (BASE_SERVICES | LAB_SERVICES)
    worker = _env(lab_config["services"]["worker"])
    assert worker["FAILBACK_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert worker["FAILBACK_SETTINGS_FILE"] == "/lab/worker.env"
    assert worker["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    # The lab needs no production secret files.
    assert {s["file"] for s in lab_config["secrets"].values()} == {"/dev/null"}


@pytest.mark.parametrize("which", ["default", "lab"])
def test_resolved_ports_are_published_on_localhost_only(
    which: str, default_config: dict[str, Any], lab_config: dict[str, Any]
) -> None:
    config = default_config if which == "default" else lab_config
    published = [
        (name, _published(port))
        for name, service in config["services"].items()
        for port in service.get("ports", [])
    ]
    assert published, "the stack publishes the Temporal frontend and the Web UI"
    assert all(ip == "127.0.0.1" for _, (ip, _) in published), published


# --- structure --------------------------------------------------------------------------------


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == BASE_SERVICES | LAB_SERVICES
    for name in BASE_SERVICES:
        assert "profiles" not in services[name], f"{name} belongs to the production stack"
    for name in LAB_SERVICES:
        assert services[name].get("profiles") == ["lab"], f"{name} is a lab stand-in"


def test_ports_are_bound_to_localhost(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
    assert "ports" not in services["postgresql"], "the database stays inside the stack"
    assert "ports" not in services["worker"]


def test_restart_policies_and_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", f"{name} runs once"
            assert "healthcheck" not in service
        else:
            assert service.get("restart") == "unless-stopped", name
            check = service.get("healthcheck", {})
            assert check.get("test"), f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    allowed = {"service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            assert condition in allowed, f"{name} -> {target}: {condition}"
            if target in ONE_SHOTS:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
            if name in BASE_SERVICES:
                assert target in BASE_SERVICES, f"{name} must start without the lab profile"
    chain = [
        ("postgresql", "db-password"),
        ("temporal-schema", "postgresql"),
        ("temporal", "temporal-schema"),
        ("temporal-setup", "temporal"),
        ("temporal-ui", "temporal"),
        ("worker", "temporal-setup"),
        ("vcsim", "lab-init"),
        ("asr-sim", "vcsim"),
    ]
    for name, target in chain:
        assert target in services[name]["depends_on"], f"{name} waits for {target}"


def test_named_volumes_are_declared(raw: dict[str, Any]) -> None:
    declared = set(raw["volumes"])
    used = set()
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith(("./", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                used.add(source)
    assert used == declared == {"postgres-data", "db-secret", "lab-data"}


def test_temporal_on_postgresql_with_ui(
    services: dict[str, dict[str, Any]], default_config: dict[str, Any]
) -> None:
    resolved = default_config["services"]
    assert resolved["postgresql"]["image"] == "postgres:16"
    assert resolved["temporal"]["image"].startswith("temporalio/server:")
    assert resolved["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert resolved["temporal-ui"]["image"].startswith("temporalio/ui:")
    temporal = _env(services["temporal"])
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["DYNAMIC_CONFIG_FILE_PATH"].startswith("/etc/temporal/config/dynamicconfig/")
    dynamic_config = DEPLOY / "temporal" / "dynamicconfig"
    assert (dynamic_config / Path(temporal["DYNAMIC_CONFIG_FILE_PATH"]).name).is_file()
    assert yaml.safe_load((dynamic_config / "production-sql.yaml").read_text())
    assert _env(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert _env(services["temporal-setup"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    initdb = (DEPLOY / "postgres" / "initdb" / "10-temporal-visibility.sql").read_text()
    assert "CREATE DATABASE " + temporal["VISIBILITY_DBNAME"] in initdb
    assert _env(services["postgresql"])["POSTGRES_DB"] == temporal["DBNAME"]


def test_setup_registers_the_search_attributes(services: dict[str, dict[str, Any]]) -> None:
    assert services["temporal-setup"]["entrypoint"][-1] == "/deploy/scripts/temporal-setup.sh"
    script = (SCRIPTS / "temporal-setup.sh").read_text()
    listed = re.search(r'^SEARCH_ATTRIBUTES="([^"]+)"', script, re.M)
    assert listed is not None
    assert tuple(listed.group(1).split()) == SEARCH_ATTRIBUTES
    assert "search-attribute create" in script
    assert "--type Keyword" in script


def test_worker_is_configured_through_failback_settings_only(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    assert worker["build"] == {"context": ".", "target": "worker"}
    assert "command" not in worker and "entrypoint" not in worker, "the image's CMD runs"
    env = _env(worker)
    fields = {"FAILBACK_" + name.upper() for name in Settings.model_fields}
    failback = {k for k in env if k.startswith("FAILBACK_")}
    assert failback <= fields | {"FAILBACK_SETTINGS_FILE"}, failback - fields
    assert env["FAILBACK_TEMPORAL_ADDRESS"] == "temporal:7233"
    others = set(env) - failback
    assert others <= {
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_SERVICE_NAME",
    }, others
    assert "env_file" not in worker
    assert set(worker["secrets"]) == {"failback_settings", "azure_client_certificate"}
    assert env["AZURE_CLIENT_CERTIFICATE_PATH"] == "/run/secrets/azure_client_certificate"


def test_no_plaintext_secret_in_the_compose_file(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        for key, value in _env(service).items():
            assert _holds_no_secret(key, value), f"{name}: {key} holds a value"
    text = COMPOSE_FILE.read_text()
    secret_settings = [
        "FAILBACK_" + name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    ]
    assert secret_settings, "Settings marks its secrets SecretStr"
    for name in [
        *secret_settings,
        "AZURE_CLIENT_SECRET",
        "POSTGRES_PASSWORD",
        "POSTGRES_PWD",
        "ASR_SIM_TOKEN_SECRET",
        "ASR_SIM_VCENTER_PASSWORD",
    ]:
        assigned = re.findall(rf"\b{name}\s*[:=]\s*(?!/)\S+", text)
        assert not assigned, f"{name} is given a value in docker-compose.yml: {assigned}"
    # The secrets come from files outside the image and outside version control.
    for secret in raw["secrets"].values():
        assert secret["file"].endswith(("/failback.env}", "/azure-client.pem}"))
    assert (DEPLOY / "secrets" / ".gitignore").read_text().split() == ["*", "!.gitignore"]


@pytest.mark.parametrize("path", [LAB_ENV, DEPLOY / "failback.env.example"])
def test_env_files_hold_no_secret(path: Path) -> None:
    for key, value in _dotenv(path).items():
        assert _holds_no_secret(key, value), f"{path.name}: {key} holds a value"


def test_example_settings_are_worker_settings() -> None:
    fields = {"FAILBACK_" + name.upper() for name in Settings.model_fields}
    keys = set(_dotenv(DEPLOY / "failback.env.example"))
    assert keys <= fields, keys - fields
    assert {"FAILBACK_AZURE_VAULT", "FAILBACK_VCENTER_HOST", "FAILBACK_VCENTER_PASSWORD"} <= keys


def test_scripts_the_services_run_exist_and_parse(raw: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    referenced = set(re.findall(r"/deploy/scripts/([\w.-]+)", text))
    assert referenced == {
        "db-password.sh",
        "secret-env.sh",
        "temporal-schema.sh",
        "temporal-setup.sh",
        "lab_init.py",
    }
    for name in referenced:
        assert (SCRIPTS / name).is_file(), name
        if name.endswith(".sh"):
            subprocess.run(["sh", "-n", str(SCRIPTS / name)], check=True)


def test_services_reading_secret_files_get_them(services: dict[str, dict[str, Any]]) -> None:
    def wrapped(name: str) -> dict[str, str]:
        entrypoint = services[name]["entrypoint"]
        assert entrypoint[:2] == ["/bin/sh", "/deploy/scripts/secret-env.sh"], name
        assert entrypoint[-1] == "--"
        return dict(item.split("=", 1) for item in entrypoint[2:-1])

    assert wrapped("temporal") == {"POSTGRES_PWD": "/run/db/postgres-password"}
    assert wrapped("temporal-schema") == {"SQL_PASSWORD": "/run/db/postgres-password"}
    assert wrapped("asr-sim") == {
        TOKEN_SECRET_ENV: "/lab/secrets/token-secret",
        VCENTER_PASSWORD_ENV: "/lab/secrets/vcenter-password",
    }
    assert _env(services["postgresql"])["POSTGRES_PASSWORD_FILE"] == "/run/db/postgres-password"


def test_lab_services_match_the_simulator_and_lab_init(services: dict[str, dict[str, Any]]) -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import lab_init
    finally:
        sys.path.remove(str(SCRIPTS))

    asr = services["asr-sim"]
    command = asr["command"]
    assert command[:3] == ["python", "-m", "lab.asr_sim"]
    args = _parser().parse_args(command[3:])
    assert args.port == lab_init.ASR_PORT
    assert args.host == "0.0.0.0"
    assert args.vcenter_user == LAB_VCENTER_USER
    assert args.vcenter_url == f"https://{lab_init.VCSIM_HOST}:{lab_init.VCSIM_PORT}/sdk"
    assert str(args.scenario).startswith("/lab/") and str(args.cert).startswith("/lab/tls/")
    assert f"127.0.0.1:${{LAB_ASR_PORT:-{lab_init.ASR_PORT}}}:{lab_init.ASR_PORT}" in asr["ports"]
    assert lab_init.ASR_HOST in services and lab_init.VCSIM_HOST in services
    check = asr["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    compile(check[3], "asr-sim healthcheck", "exec")
    assert f"https://localhost:{lab_init.ASR_PORT}/" in check[3] and "/lab/tls/ca.pem" in check[3]

    vcsim = services["vcsim"]
    assert vcsim["build"] == {"context": ".", "target": "vcsim"}
    script = vcsim["command"][0]
    assert f"-listen 0.0.0.0:{lab_init.VCSIM_PORT}" in script
    assert "-inventory /lab/vcsim-inventory.json" in script
    assert "$(cat /lab/secrets/vcenter-password)" in script.replace("$$", "$")
    assert _env(vcsim)["LAB_VCENTER_USER"] == LAB_VCENTER_USER

    init = services["lab-init"]
    assert init["command"] == ["python", "/deploy/scripts/lab_init.py", "--out", "/lab"]
    assert "lab-data:/lab" in init["volumes"]
    for name in ("worker", "vcsim", "asr-sim"):
        assert "lab-data:/lab:ro" in services[name]["volumes"], name


def test_lab_env_wires_the_worker_to_the_stand_ins() -> None:
    values = _dotenv(LAB_ENV)
    assert values["COMPOSE_PROFILES"] == "lab"
    assert values["WORKER_SETTINGS_FILE"] == "/lab/worker.env"
    assert values["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


# --- Dockerfile (as text: there is no engine to build it here) ---------------------------------


def _stages() -> list[tuple[str, str, list[str]]]:
    """(base image, stage name, instructions) per FROM, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            stages.append((match.group(1), match.group(2) or "", []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def test_dockerfile_stages() -> None:
    stages = _stages()
    assert [(base, name) for base, name, _ in stages] == [
        ("debian:bookworm", "vcsim-build"),
        ("debian:bookworm-slim", "vcsim"),
        ("python:3.11-slim", "worker"),
    ], "the worker is the last stage, so a plain `docker build` makes it"
    build = " ".join(stages[0][2])
    assert "golang-go" in build and "golang-github-vmware-govmomi-dev" in build
    assert "GO111MODULE=off" in build and "GOPATH=/usr/share/gocode" in build
    assert "lab/vcsim/main.go" in build
    worker = stages[2][2]
    assert worker[-1] == 'CMD ["python", "-m", "worker"]'
    assert any(line.startswith("RUN pip install") for line in worker)


def test_dockerfile_runs_as_non_root() -> None:
    for _, name, instructions in _stages()[1:]:
        users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
        assert users, f"stage {name} sets no USER"
        user = users[-1].split(":")[0]
        assert user not in ("0", "root"), f"stage {name} runs as root"


def test_dockerfile_and_context_hold_no_secret() -> None:
    for _, name, instructions in _stages():
        for line in instructions:
            keyword = line.split()[0].upper()
            if keyword in ("ENV", "ARG"):
                for assignment in re.findall(r"(\w+)=", line):
                    assert not SECRET_NAME.search(assignment), f"{name}: {line}"
            if keyword in ("COPY", "ADD"):
                assert ".env" not in line and "secrets" not in line, f"{name}: {line}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "deploy/secrets", ".venv", ".lab", ".git"} <= set(ignored)


def test_compose_builds_existing_stages(services: dict[str, dict[str, Any]]) -> None:
    names = {name for _, name, _ in _stages()}
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["target"] in names, name


# --- the scripts the services run ---------------------------------------------------------------


def _run_lab_init(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAB_INIT), "--out", str(out), *args],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lab_init_prepares_the_lab_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography import x509

    out = tmp_path / "lab"
    result = _run_lab_init(out)
    assert result.returncode == 0, result.stderr
    for name in ("scenario.json", "vcsim-inventory.json", "tls/ca.pem", "tls/server.pem"):
        assert (out / name).is_file(), name
    for name in ("worker.env", "secrets/token-secret", "secrets/vcenter-password"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name

    cert = x509.load_pem_x509_certificate((out / "tls" / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"asr-sim", "localhost"} <= set(san.get_values_for_type(x509.DNSName))

    for key in [k for k in os.environ if k.startswith("FAILBACK_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("FAILBACK_SETTINGS_FILE", str(out / "worker.env"))
    from worker.settings import load_settings

    settings = load_settings()
    assert settings.azure_endpoint == "https://asr-sim:8443"
    assert settings.azure_auth == "lab"
    assert settings.azure_ca_bundle == str(out / "tls" / "ca.pem")
    assert settings.vcenter_host == "vcsim" and settings.vcenter_port == 8989
    assert settings.vcenter_user == LAB_VCENTER_USER
    password = (out / "secrets" / "vcenter-password").read_text().strip()
    token = (out / "secrets" / "token-secret").read_text().strip()
    assert settings.vcenter_password is not None
    assert settings.vcenter_password.get_secret_value() == password
    assert settings.azure_lab_token_secret is not None
    assert settings.azure_lab_token_secret.get_secret_value() == token
    assert settings.temporal_address == "localhost:7233", "compose sets the Temporal settings"
    assert password not in result.stdout and token not in result.stdout

    # Again (compose up a second time): the credentials running services hold stay valid.
    again = _run_lab_init(out)
    assert again.returncode == 0, again.stderr
    assert (out / "secrets" / "vcenter-password").read_text().strip() == password
    assert (out / "secrets" / "token-secret").read_text().strip() == token


def test_lab_init_names_an_unknown_scenario(tmp_path: Path) -> None:
    result = _run_lab_init(tmp_path, "--scenario", "no-such-scenario")
    assert result.returncode == 2
    assert "no-such-scenario" in result.stderr and "single-vm" in result.stderr


def test_secret_env_exports_file_contents(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret value\n")
    script = str(SCRIPTS / "secret-env.sh")
    result = subprocess.run(
        ["sh", script, f"MY_SECRET={secret}", "--", "sh", "-c", 'printf "%s" "$MY_SECRET"'],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s3cret value"
    missing = subprocess.run(
        ["sh", script, f"MY_SECRET={tmp_path / 'nope'}", "--", "true"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "MY_SECRET" in missing.stderr
    assert subprocess.run(["sh", script, "--"], capture_output=True).returncode == 2


def test_db_password_is_made_once(tmp_path: Path) -> None:
    file = tmp_path / "postgres-password"
    env = {**_clean_env(), "DB_PASSWORD_FILE": str(file), "DB_PASSWORD_OWNER": f"{os.getuid()}"}
    script = str(SCRIPTS / "db-password.sh")
    subprocess.run(["sh", script], env=env, check=True, capture_output=True)
    password = file.read_text()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", password)
    assert stat.S_IMODE(file.stat().st_mode) == 0o440
    subprocess.run(["sh", script], env=env, check=True, capture_output=True)
    assert file.read_text() == password


def test_the_worker_image_holds_every_package_the_project_ships() -> None:
    # A package the wheel ships but the image does not copy fails only at import, in production.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    worker = next(instructions for _, name, instructions in _stages() if name == "worker")
    copied = {
        line.split()[1]
        for line in worker
        if line.split()[0].upper() == "COPY" and "--from" not in line
    }
    assert shipped <= copied, f"the worker image does not copy {sorted(shipped - copied)}"


def test_the_tls_overlay_gives_the_worker_and_the_ui_the_same_certificate_secrets(
    compose_bin: str, tmp_path: Path
) -> None:
    """Issue 17 point 3: deploy/compose.temporal-tls.yml points the worker (its settings and
    its health check's temporal CLI) and the Web UI at a secured Temporal with Docker secrets."""
    overlay = ROOT / "deploy" / "compose.temporal-tls.yml"
    command = [compose_bin, "-f", str(COMPOSE_FILE), "-f", str(overlay), "config"]
    env = {**_clean_env(), "FAILBACK_TEMPORAL_ADDRESS": "temporal.example.com:7233"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    worker, ui = config["services"]["worker"], config["services"]["temporal-ui"]
    worker_env, ui_env = _env(worker), _env(ui)
    assert worker_env["FAILBACK_TEMPORAL_ADDRESS"] == "temporal.example.com:7233"
    assert ui_env["TEMPORAL_ADDRESS"] == "temporal.example.com:7233"
    for name in ("temporal_ca", "temporal_client_cert", "temporal_client_key"):
        path = f"/run/secrets/{name}"
        assert name in {s if isinstance(s, str) else s["source"] for s in worker["secrets"]}
        assert path in worker_env.values() and path in ui_env.values()
    # The worker's settings and its health check read the same files.
    assert worker_env["FAILBACK_TEMPORAL_TLS_CERT"] == worker_env["TEMPORAL_TLS_CLIENT_CERT_PATH"]
    assert worker_env["FAILBACK_TEMPORAL_TLS_CA"] == worker_env["TEMPORAL_TLS_SERVER_CA_CERT_PATH"]
    # Without the address the overlay refuses, naming it.
    missing = subprocess.run(
        command, cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert missing.returncode != 0 and "secured Temporal" in missing.stderr


def test_the_lab_runs_temporal_with_the_stacks_dynamic_config() -> None:
    """Every figure of bench/RESULTS.md was measured on the lab's dev server: each value the lab
    gives it is the one the compose stack's server runs with."""
    from lab.manager import EAGER_ACTIVITIES, ONE_PARTITION_TASK_QUEUES

    production = yaml.safe_load(
        (DEPLOY / "temporal" / "dynamicconfig" / "production-sql.yaml").read_text()
    )
    for key, value in {**ONE_PARTITION_TASK_QUEUES, **EAGER_ACTIVITIES}.items():
        assert key in production, key
        assert {str(v["value"]).lower() for v in production[key]} == {str(value).lower()}, key
