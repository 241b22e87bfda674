"""How the worker and the CLI reach a secured Temporal (worker.wiring.temporal_tls): TLS with a
CA and a server name, mutual TLS with a client certificate, an API key that turns TLS on; and a
setting that cannot work named before any connection is tried."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from lab.certs import make_client_cert, make_lab_tls
from worker.settings import Settings, SettingsError
from worker.wiring import temporal_connect_hint, temporal_tls


def test_plain_by_default_and_tls_when_asked() -> None:
    assert temporal_tls(Settings()) == (False, None)
    assert temporal_tls(Settings(temporal_tls=True)) == (True, None)


def test_ca_server_name_and_client_certificate_make_one_tls_config(tmp_path: Path) -> None:
    tls = make_lab_tls(tmp_path)
    cert, key = make_client_cert(tls, "worker-1", tmp_path / "clients")
    config, api_key = temporal_tls(
        Settings(
            temporal_tls_ca=str(tls.ca_cert),
            temporal_tls_server_name="temporal.corp.local",
            temporal_tls_cert=str(cert),
            temporal_tls_key=str(key),
        )
    )
    assert isinstance(config, TLSConfig) and api_key is None
    assert config.server_root_ca_cert == tls.ca_cert.read_bytes()
    assert config.domain == "temporal.corp.local"
    assert config.client_cert == cert.read_bytes()
    assert config.client_private_key == key.read_bytes()


def test_an_api_key_is_sent_over_tls_only(tmp_path: Path) -> None:
    assert temporal_tls(Settings(temporal_api_key="k-123")) == (True, "k-123")  # type: ignore[arg-type]
    secret = tmp_path / "temporal_api_key"
    secret.write_text("k-from-a-docker-secret\n")
    assert temporal_tls(Settings(temporal_api_key_file=str(secret))) == (
        True,
        "k-from-a-docker-secret",
    )


def test_settings_that_cannot_work_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="both FAILBACK_TEMPORAL_TLS_CERT"):
        temporal_tls(Settings(temporal_tls_cert=str(tmp_path / "c.pem")))
    with pytest.raises(SettingsError, match=r"FAILBACK_TEMPORAL_TLS_CA=.*cannot read"):
        temporal_tls(Settings(temporal_tls_ca=str(tmp_path / "none.pem")))
    (tmp_path / "ca.txt").write_text("hello")
    with pytest.raises(SettingsError, match="not a PEM file"):
        temporal_tls(Settings(temporal_tls_ca=str(tmp_path / "ca.txt")))


def test_a_failed_connect_says_which_setting_to_check(tmp_path: Path) -> None:
    closed = RuntimeError("Failed client connect: ... connection closed")
    assert "FAILBACK_TEMPORAL_TLS_CA" in temporal_connect_hint(Settings(), closed)
    assert "FAILBACK_TEMPORAL_TLS_CERT" in temporal_connect_hint(
        Settings(temporal_tls=True), closed
    )
    untrusted = RuntimeError("invalid peer certificate: UnknownIssuer")
    assert "not trusted" in temporal_connect_hint(Settings(temporal_tls=True), untrusted)
    no_h2 = RuntimeError("ConnectError(H2NotNegotiated)")
    assert "HTTP/2" in temporal_connect_hint(Settings(temporal_tls=True), no_h2)
