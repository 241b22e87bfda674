"""Settings from FAILBACK_* environment variables or a settings file (dotenv format).

The settings file is named by FAILBACK_SETTINGS_FILE; environment variables win over it.
Secrets are SecretStr: they are never printed and never enter a workflow's input or history.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PUBLIC_ARM_ENDPOINT = "https://management.azure.com"


class SettingsError(ValueError):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAILBACK_", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "failback"
    temporal_ui_url: str | None = Field(
        default=None, description="Web UI base URL, for links printed by the CLI"
    )

    azure_subscription_id: str | None = None
    azure_resource_group: str | None = None
    azure_vault: str | None = None
    azure_recovery_resource_group: str | None = None
    azure_reprotect_policy_id: str | None = None
    azure_endpoint: str = PUBLIC_ARM_ENDPOINT
    azure_ca_bundle: str | None = None
    azure_auth: Literal["default", "lab"] = "default"
    azure_lab_token_secret: SecretStr | None = None
    azure_polling_interval: float = Field(default=30.0, gt=0)

    vcenter_host: str | None = None
    vcenter_port: int = 443
    vcenter_user: str | None = None
    vcenter_password: SecretStr | None = None
    vcenter_verify_tls: bool = True

    payload_key: SecretStr | None = Field(
        default=None, description="32 bytes, base64: encrypt payloads in Temporal (optional)"
    )
    payload_key_id: str = "default"

    # Workflow timings passed into each failback's input (production defaults when unset).
    job_poll_seconds: float | None = Field(default=None, gt=0)
    verify_poll_seconds: float | None = Field(default=None, gt=0)
    verify_timeout_seconds: float | None = Field(default=None, gt=0)
    agent_poll_seconds: float | None = Field(default=None, gt=0)
    agent_wait_timeout_seconds: float | None = Field(default=None, gt=0)
    replication_poll_seconds: float | None = Field(default=None, gt=0)
    replication_timeout_seconds: float | None = Field(default=None, gt=0)

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
    try:
        return Settings(_env_file=settings_file)  # type: ignore[call-arg]
    except ValidationError as err:
        problems = "; ".join(
            f"FAILBACK_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in err.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from err
