"""Issue 17 point 3: a Temporal server that requires mutual TLS. The lab's dev server (no TLS of
its own) is reached only through Debian's haproxy, which requires a client certificate from the
lab's CA: the worker and the CLI connect with FAILBACK_TEMPORAL_TLS_* and a whole failback runs;
a CLI without the certificate, or without TLS, is refused with one message naming the settings,
and no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.manager import lab_down
from starter.commands import machine_status
from tests.integration.conftest import cli, cli_with, lab_settings, start_lab, until_phase
from worker.wiring import connect_temporal

SCENARIO = Path(__file__).resolve().parents[2] / "lab" / "scenarios" / "modernized-single-vm.json"
CERT_SETTINGS = ("FAILBACK_TEMPORAL_TLS_CERT", "FAILBACK_TEMPORAL_TLS_KEY")


def cli_without(settings: dict[str, str], dropped: tuple[str, ...], *args: str) -> Any:
    return cli_with({k: v for k, v in settings.items() if k not in dropped}, *args)


async def test_a_failback_runs_through_mutual_tls_and_a_client_without_a_certificate_is_refused(
    tmp_path: Path,
) -> None:
    state = start_lab(tmp_path, SCENARIO, temporal_mtls=True)
    try:
        settings = state.settings
        assert "temporal-mtls-proxy" in {p.name for p in state.processes}
        assert settings["FAILBACK_TEMPORAL_TLS_CERT"].endswith(".pem")

        no_cert = cli_without(settings, CERT_SETTINGS, "list")
        assert no_cert.returncode != 0
        assert "Traceback" not in no_cert.stderr
        assert "FAILBACK_TEMPORAL_TLS_CERT" in no_cert.stderr, no_cert.stderr
        assert f"cannot reach Temporal at {settings['FAILBACK_TEMPORAL_ADDRESS']}" in (
            no_cert.stderr
        )
        plain = cli_without(settings, ("FAILBACK_TEMPORAL_TLS_CA", *CERT_SETTINGS), "list")
        assert plain.returncode != 0 and "Traceback" not in plain.stderr
        assert "FAILBACK_TEMPORAL_TLS_CA" in plain.stderr, plain.stderr
        missing = cli_without(
            {**settings, "FAILBACK_TEMPORAL_TLS_KEY": str(tmp_path / "nowhere.pem")}, (), "list"
        )
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert "FAILBACK_TEMPORAL_TLS_KEY" in missing.stderr and "cannot read" in missing.stderr

        # The worker reaches Temporal through the proxy only (its settings are these): a whole
        # failback runs.
        started = cli(state, "start", "web-01")
        assert started.returncode == 0, started.stderr
        workflow_id = started.stdout.strip()
        client = await connect_temporal(lab_settings(state))
        await until_phase(lambda: machine_status(client, workflow_id), "awaiting-approval")
        approved = cli(state, "approve", workflow_id, "--by", "alice")
        assert approved.returncode == 0, approved.stderr
        done = await until_phase(lambda: machine_status(client, workflow_id), "completed")
        assert done.approval is not None
        listed = cli(state, "list", "--json")
        assert listed.returncode == 0 and workflow_id in listed.stdout
    finally:
        lab_down(Path(state.lab_dir), say=lambda _: None)
