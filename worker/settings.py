"""Settings from FAILBACK_* environment variables or a settings file (dotenv format).

The settings file is named by FAILBACK_SETTINGS_FILE; environment variables win over it.
Secrets are SecretStr: they are never printed and never enter a workflow's input or history.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PUBLIC_ARM_ENDPOINT = "https://management.azure.com"


class SettingsError(ValueError):
    pass


# Credential sources other than azure-identity's plug in by name (FAILBACK_AZURE_AUTH), as entry
# points of this group: the lab registers its own, so the product never imports it.
CREDENTIAL_PLUGINS = "failback.azure_credentials"


def credential_sources() -> set[str]:
    from importlib.metadata import entry_points

    return {"default"} | {e.name for e in entry_points(group=CREDENTIAL_PLUGINS)}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAILBACK_", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "failback"
    temporal_ui_url: str | None = Field(
        default=None, description="Web UI base URL, for links printed by the CLI"
    )
    # A secured Temporal server (worker.wiring.temporal_tls). Files, so that Docker secrets
    # (/run/secrets/NAME) and mounted certificates serve as they are.
    temporal_tls: bool = Field(
        default=False, description="TLS to Temporal (implied by any setting below)"
    )
    temporal_tls_ca: str | None = Field(
        default=None, description="PEM file of the CA that signed the server's certificate"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="The name the server's certificate is for, if not its address"
    )
    temporal_tls_cert: str | None = Field(
        default=None, description="Mutual TLS: PEM file of this client's certificate"
    )
    temporal_tls_key: str | None = Field(
        default=None, description="Mutual TLS: PEM file of this client's private key"
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="An API key (Temporal Cloud); sent over TLS only"
    )
    temporal_api_key_file: str | None = Field(
        default=None, description="A file holding the API key (a Docker secret)"
    )

    azure_subscription_id: str | None = None
    azure_resource_group: str | None = None
    azure_vault: str | None = None
    azure_recovery_resource_group: str | None = None
    azure_reprotect_policy_id: str | None = None
    # The process server in Azure that failback data flows through (the reprotect to
    # on-premises); needed only when the configuration server has several that could be it.
    azure_process_server_id: str | None = None
    # The storage account replication to Azure keeps its logs in, for the re-protect to Azure
    # when ASR no longer shows the one it used before the failback.
    azure_log_storage_account_id: str | None = None
    azure_endpoint: str = PUBLIC_ARM_ENDPOINT
    azure_ca_bundle: str | None = None
    # "default": azure-identity's DefaultAzureCredential; any other name: a credential plugin
    # (worker.wiring.CREDENTIAL_PLUGINS), such as the lab's "lab".
    azure_auth: str = Field(default="default", min_length=1)
    azure_lab_token_secret: SecretStr | None = None
    # The lab's stand-in for a service principal of one's own (AZURE_CLIENT_ID in production):
    # ARM keeps a read and a write budget per principal.
    azure_lab_client_id: str | None = None
    azure_polling_interval: float = Field(default=30.0, gt=0)

    vcenter_host: str | None = None
    vcenter_port: int = 443
    vcenter_user: str | None = None
    vcenter_password: SecretStr | None = None
    vcenter_verify_tls: bool = True
    # ESXi hosts that vCenter lists but does not manage: the configuration server reaches them as
    # standalone ESXi hosts (readiness R2/R3). A real vCenter lists only the hosts it manages, so
    # this stays empty there; the lab, whose one vCenter simulator also plays standalone hosts,
    # names them. Comma-separated.
    vcenter_standalone_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Hyper-V hosts (or VMM servers), read over WinRM (HTTPS, Basic) to verify failed-back VMs.
    hyperv_username: str | None = None
    hyperv_password: SecretStr | None = None
    # HOST=URL pairs, comma-separated, for hosts whose WinRM is not at https://HOST:5986/wsman.
    hyperv_endpoints: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    hyperv_ca_bundle: str | None = None
    hyperv_verify_tls: bool = True

    # Worker capacity. The write activities await ASR's jobs without holding a thread, so the
    # threads only run short SDK calls; a cached workflow costs ~0.7 MB (bench/RESULTS.md).
    activity_slots: int = Field(
        default=256, ge=2, description="activities run at once, and threads for their SDK calls"
    )
    max_cached_workflows: int = Field(
        default=600, ge=0, description="workflows kept in memory between their tasks"
    )

    # The worker's writes stay within ARM's write bucket (per subscription and principal).
    arm_write_burst: int = Field(default=200, ge=1)
    arm_writes_per_second: float = Field(default=10.0, gt=0)
    # And its reads within ARM's read bucket (per principal: 250, refilled at 25/s), a share
    # kept for the reads that decide what happens next (activities/budget.ReadBudget).
    arm_read_burst: int = Field(default=250, ge=1)
    arm_reads_per_second: float = Field(default=25.0, gt=0)
    arm_urgent_read_share: float = Field(default=0.3, gt=0, lt=1)
    # Several workers on one principal split its budgets: each takes this share of both.
    arm_budget_share: float = Field(default=1.0, gt=0, le=1)

    payload_key: SecretStr | None = Field(
        default=None, description="32 bytes, base64: encrypt payloads in Temporal (optional)"
    )
    payload_key_id: str = "default"
    # Who may decide (domain/authority.py, R28-R31). Names are user principal names or object
    # ids; groups are the group claims of the approver's token (object ids in Entra ID).
    require_identity: bool = Field(
        default=False, description="R28: decisions only from a signed-in person (the desk)"
    )
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    approver_groups: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # PLAN=NAME;NAME,PLAN2=NAME: a plan's own approvers instead of the vault's.
    plan_approvers: Annotated[dict[str, list[str]], NoDecode] = Field(default_factory=dict)
    four_eyes: bool = Field(default=False, description="R30: the starter cannot approve")
    approvers_required: int = Field(default=1, ge=1, description="R31: distinct approvers")

    # The decision desk (worker/decision_desk.py): the worker checks a person's Entra ID token
    # and signs who they are for the workflow. Its keys: KEYID=BASE64 (32-byte Ed25519 seeds),
    # comma-separated, the first signs; the others still verify (rotation).
    decision_signing_keys: SecretStr | None = None
    decision_desk_port: int | None = Field(default=None, ge=0, le=65535)
    decision_desk_host: str = "127.0.0.1"
    decision_desk_tls_cert: str | None = None
    decision_desk_tls_key: str | None = None
    decision_desk_attestation_seconds: float = Field(default=300.0, gt=0)
    # The identity provider whose tokens the desk takes: Entra ID's v2.0 issuer for the
    # tenant, its published keys, the audience (the app registration's id or id URI).
    identity_issuer: str | None = None
    identity_jwks_url: str | None = None
    identity_audience: str | None = None
    identity_ca_bundle: str | None = None
    # The CLI's side: where the desk is, and how the person signs in ("default":
    # azure-identity; a plugin name such as the lab's "lab").
    decision_desk_url: str | None = None
    decision_desk_ca_bundle: str | None = None
    identity_auth: str = "default"
    # The lab's sign-in plugin: which lab user the CLI signs in as.
    lab_identity: str | None = None
    identity_scope: str | None = Field(
        default=None, description="The scope to ask a token for; default: AUDIENCE/.default"
    )

    # The codec server over HTTPS, for a Web UI served over HTTPS.
    codec_tls_cert: str | None = None
    codec_tls_key: str | None = None

    # Workflow timings passed into each failback's input (production defaults when unset).
    job_poll_seconds: float | None = Field(default=None, gt=0)
    verify_poll_seconds: float | None = Field(default=None, gt=0)
    verify_timeout_seconds: float | None = Field(default=None, gt=0)
    agent_poll_seconds: float | None = Field(default=None, gt=0)
    agent_wait_timeout_seconds: float | None = Field(default=None, gt=0)
    replication_poll_seconds: float | None = Field(default=None, gt=0)
    replication_timeout_seconds: float | None = Field(default=None, gt=0)
    machines_start_into_plan_job_seconds: float | None = Field(default=None, ge=0)

    @field_validator("vcenter_standalone_hosts", "approvers", "approver_groups", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("plan_approvers", mode="before")
    @classmethod
    def _plan_lists(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        plans: dict[str, list[str]] = {}
        for entry in (e.strip() for e in value.split(",") if e.strip()):
            plan, sep, names = entry.partition("=")
            listed = [n.strip() for n in names.split(";") if n.strip()]
            if not sep or not plan.strip() or not listed:
                raise ValueError(f"{entry!r} is not PLAN=NAME;NAME (a plan and its approvers)")
            plans[plan.strip()] = listed
        return plans

    @field_validator("hyperv_endpoints", mode="before")
    @classmethod
    def _host_url_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for entry in (e.strip() for e in value.split(",") if e.strip()):
            host, sep, url = entry.partition("=")
            if not sep or not host.strip() or not url.strip().startswith("https://"):
                raise ValueError(
                    f"{entry!r} is not HOST=https://ADDRESS:PORT/wsman (WinRM over HTTPS only)"
                )
            pairs[host.strip()] = url.strip()
        return pairs

    @field_validator("azure_auth")
    @classmethod
    def _known_credential_source(cls, value: str) -> str:
        # Refused when the settings are read, so that no command runs with a credential source
        # that only fails later, at its first Azure call.
        known = credential_sources()
        if value not in known:
            raise ValueError(
                f"{value!r} names no credential source; use one of: {', '.join(sorted(known))}"
            )
        return value

    def require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) in (None, "")]
        if missing:
            raise SettingsError(
                "missing settings: "
                + ", ".join("FAILBACK_" + n.upper() for n in missing)
                + ". Set them in the environment or in the file named by FAILBACK_SETTINGS_FILE "
                "(`failback lab env` prints the lab's)."
            )


def load_settings() -> Settings:
    settings_file = os.environ.get("FAILBACK_SETTINGS_FILE")
    if settings_file and not os.path.isfile(settings_file):
        raise SettingsError(
            f"FAILBACK_SETTINGS_FILE names {settings_file}, which does not exist; "
            "fix the path or unset it"
        )
    if settings_file:
        _check_settings_file(settings_file)
    try:
        return Settings(_env_file=settings_file)  # type: ignore[call-arg]
    except ValidationError as err:
        problems = "; ".join(
            f"FAILBACK_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in err.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from err


def _check_settings_file(path: str) -> None:
    """python-dotenv skips lines it cannot parse with a warning; a settings file that silently
    loses a setting would send the worker somewhere else, so refuse it, naming the line."""
    import re

    pattern = re.compile(r"^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text and not text.startswith("#") and not pattern.match(text):
                raise SettingsError(
                    f"settings file {path}, line {number}, is not NAME=value: {text[:60]!r}; "
                    "fix or remove that line"
                )
