"""Bad input through the CLI, as an operator types it: each must give a clear error, a non-zero
exit, no Python traceback, and start nothing (no POST in the simulator's journal, no workflow)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from lab.reliability.harness import Lab
from lab.scenario import default_scenario_path

NOBODY = "failback-vault-dr-nobody"
TRACEBACK = "Traceback (most recent call last)"


def _scenario(change: str) -> str:
    data: dict[str, Any] = json.loads(default_scenario_path().read_text())
    if change == "unknown-field":
        data["azure"]["items"][0]["colour"] = "red"
    elif change == "bad-reference":
        data["vcenter"]["vms"][0]["host"] = "esx-99.corp.local"
    elif change == "wrong-type":
        data["azure"]["items"][0]["agent_registration_delay_seconds"] = "soon"
    elif change == "missing-field":
        del data["azure"]["items"][0]["vm_name"]
    return json.dumps(data)


@dataclass(frozen=True)
class BadInput:
    name: str
    what: str
    args: tuple[str, ...]
    says: tuple[str, ...]
    # Files written to the case's directory first; "{dir}" in args and env is that directory.
    files: tuple[tuple[str, str], ...] = ()
    # False: only `env` (no lab settings), for the settings-file cases.
    lab_env: bool = True
    env: tuple[tuple[str, str], ...] = ()
    # A workflow id that must not exist afterwards.
    must_not_start: str | None = None
    exit_code: int | None = None
    # A product bug this input shows (the test is then an expected, strict failure).
    known_bug: str | None = None


@dataclass
class BadInputResult:
    name: str
    what: str
    command: str
    exit_code: int
    message: str
    traceback: bool
    new_posts: int
    started: bool
    violations: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.violations


BROKEN_JSON = '{"name": "broken", '

BAD_INPUTS = [
    BadInput(
        "scenario-not-json",
        "scenario file that is not JSON",
        ("lab", "validate", "{dir}/broken.json"),
        ("broken.json", "not valid JSON"),
        files=(("broken.json", BROKEN_JSON),),
    ),
    BadInput(
        "scenario-unknown-field",
        "scenario with an unknown field",
        ("lab", "validate", "{dir}/unknown.json"),
        ("azure.items.0.colour",),
        files=(("unknown.json", _scenario("unknown-field")),),
    ),
    BadInput(
        "scenario-bad-reference",
        "scenario whose VM names a host that does not exist",
        ("lab", "validate", "{dir}/badref.json"),
        ("esx-99.corp.local", "not in hosts"),
        files=(("badref.json", _scenario("bad-reference")),),
    ),
    BadInput(
        "scenario-wrong-type",
        "scenario with a text where a number belongs",
        ("lab", "validate", "{dir}/badtype.json"),
        ("agent_registration_delay_seconds",),
        files=(("badtype.json", _scenario("wrong-type")),),
    ),
    BadInput(
        "scenario-missing-field",
        "scenario item without its vm_name",
        ("lab", "validate", "{dir}/missing.json"),
        ("vm_name",),
        files=(("missing.json", _scenario("missing-field")),),
    ),
    BadInput(
        "lab-up-bad-scenario",
        "`lab up` with a scenario that is not JSON (nothing may start)",
        ("lab", "up", "--scenario", "{dir}/broken.json", "--lab-dir", "{dir}/lab"),
        ("broken.json", "not valid JSON"),
        files=(("broken.json", BROKEN_JSON),),
        lab_env=False,
    ),
    BadInput(
        "settings-file-missing",
        "FAILBACK_SETTINGS_FILE names a file that does not exist",
        ("status", NOBODY),
        ("nope.env", "does not exist"),
        lab_env=False,
        env=(("FAILBACK_SETTINGS_FILE", "{dir}/nope.env"),),
    ),
    BadInput(
        "settings-file-bad-value",
        "settings file with a port that is not a number",
        ("status", NOBODY),
        ("FAILBACK_VCENTER_PORT",),
        files=(("bad.env", "FAILBACK_VCENTER_PORT=not-a-port\n"),),
        lab_env=False,
        env=(("FAILBACK_SETTINGS_FILE", "{dir}/bad.env"),),
    ),
    BadInput(
        "settings-file-unparseable",
        "settings file with a line that is not NAME=value",
        ("status", NOBODY),
        ("garbage.env",),
        files=(("garbage.env", "FAILBACK_TEMPORAL_ADDRESS 127.0.0.1:7233\n"),),
        lab_env=False,
        env=(("FAILBACK_SETTINGS_FILE", "{dir}/garbage.env"),),
    ),
    BadInput(
        "settings-env-bad-value",
        "FAILBACK_AZURE_AUTH set to a value that does not exist",
        ("status", NOBODY),
        ("FAILBACK_AZURE_AUTH",),
        env=(("FAILBACK_AZURE_AUTH", "sometimes"),),
    ),
    BadInput(
        "start-unknown-plan",
        "`start --recovery-plan` of a plan the vault does not have",
        ("start", "--recovery-plan", "no-such-plan"),
        ("no-such-plan",),
        must_not_start="failback-plan-vault-dr-no-such-plan",
    ),
    BadInput(
        "start-unknown-machine",
        "`start` of a machine the vault does not have",
        ("start", "no-such-vm"),
        ("no-such-vm",),
        must_not_start="failback-vault-dr-no-such-vm",
    ),
    BadInput(
        "preview-unknown-plan",
        "`preview` of a plan the vault does not have",
        ("preview", "--recovery-plan", "no-such-plan"),
        ("no-such-plan", "known plans"),
    ),
    BadInput(
        "check-unknown-plan",
        "`check` of a plan the vault does not have",
        ("check", "--recovery-plan", "no-such-plan"),
        ("no-such-plan", "known plans"),
    ),
    BadInput(
        "status-unknown-id",
        "`status` of a workflow id that does not exist",
        ("status", NOBODY),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "approve-unknown-id",
        "`approve` of a workflow id that does not exist",
        ("approve", NOBODY, "--by", "alice"),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "report-unknown-id",
        "`report` of a workflow id that does not exist",
        ("report", NOBODY),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "agent-unknown-id",
        "`agent` decision for a workflow id that does not exist",
        ("agent", NOBODY, "--by", "alice", "--keep-waiting"),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "approve-empty-by",
        "`approve --by ''` (nobody)",
        ("approve", "{finished}", "--by", ""),
        ("--by must name",),
    ),
    BadInput(
        "approve-blank-by",
        "`approve --by '   '` (blank)",
        ("approve", "{finished}", "--by", "   "),
        ("--by must name",),
    ),
    BadInput(
        "approve-finished",
        "`approve` of a failback that has completed",
        ("approve", "{finished}", "--by", "alice"),
        ("already ended",),
    ),
    BadInput(
        "undo-unknown-id",
        "`undo` of a failback id that does not exist",
        ("undo", NOBODY, "--by", "alice"),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "undo-empty-by",
        "`undo --by ''` (nobody)",
        ("undo", "{finished}", "--by", ""),
        ("--by must name",),
    ),
    BadInput(
        "undo-finished",
        "`undo` of a failback that has completed (committed: never undone)",
        ("undo", "{finished}", "--by", "alice"),
        ("already ended",),
    ),
    BadInput(
        "undo-plan-member",
        "`undo` of one machine of a plan's failback",
        ("undo", "{finished_machine}", "--by", "alice"),
        ("undo the plan as a whole",),
    ),
    BadInput(
        "agent-not-stuck",
        "`agent --keep-waiting` for a machine whose failback has completed",
        ("agent", "{finished_machine}", "--by", "alice", "--keep-waiting"),
        ("not stuck",),
    ),
    BadInput(
        "agent-no-decision",
        "`agent` without --keep-waiting or --finish-without-reprotect",
        ("agent", "{finished_machine}", "--by", "alice"),
        ("--keep-waiting", "--finish-without-reprotect"),
    ),
    BadInput(
        "recovery-point-sometimes",
        "`start --recovery-point sometimes`",
        ("start", "--recovery-plan", "{plan}", "--recovery-point", "sometimes"),
        ("Invalid value for '--recovery-point'", "sometimes"),
        exit_code=2,
    ),
    BadInput(
        "preview-recovery-point-sometimes",
        "`preview --recovery-point sometimes`",
        ("preview", "--recovery-plan", "{plan}", "--recovery-point", "sometimes"),
        ("Invalid value for '--recovery-point'",),
        exit_code=2,
    ),
    BadInput(
        "start-machine-and-plan",
        "`start` with a machine and a plan at once",
        ("start", "web-01", "--recovery-plan", "{plan}"),
        ("either a MACHINE or a --recovery-plan",),
    ),
    # An outage or a refusal of another system: one line naming it and what to do (issue 17).
    BadInput(
        "temporal-unreachable",
        "`list` with a Temporal address nothing listens on",
        ("list",),
        ("cannot reach Temporal", "FAILBACK_TEMPORAL_ADDRESS"),
        env=(("FAILBACK_TEMPORAL_ADDRESS", "127.0.0.1:1"),),
    ),
    BadInput(
        "arm-unreachable",
        "`check` with an ARM endpoint nothing listens on",
        ("check", "--recovery-plan", "{plan}"),
        ("Azure", "FAILBACK_AZURE"),
        env=(("FAILBACK_AZURE_ENDPOINT", "https://127.0.0.1:1"),),
    ),
    BadInput(
        "unknown-vault",
        "`check` of a vault that does not exist",
        ("check", "--recovery-plan", "{plan}"),
        ("FAILBACK_AZURE_VAULT",),
        env=(("FAILBACK_AZURE_VAULT", "no-such-vault"),),
    ),
    BadInput(
        "vcenter-wrong-password",
        "`check` with a wrong vCenter password",
        ("check", "--recovery-plan", "{plan}"),
        ("vCenter", "FAILBACK_VCENTER_PASSWORD"),
        env=(("FAILBACK_VCENTER_PASSWORD", "wrong-password"),),
    ),
    BadInput(
        "vcenter-unreachable",
        "`check` with a vCenter port nothing listens on",
        ("check", "--recovery-plan", "{plan}"),
        ("vCenter",),
        env=(("FAILBACK_VCENTER_PORT", "1"),),
    ),
    # Secured Temporal settings that cannot work (issue 17, point 3).
    BadInput(
        "temporal-tls-ca-missing",
        "FAILBACK_TEMPORAL_TLS_CA names a file that does not exist",
        ("list",),
        ("FAILBACK_TEMPORAL_TLS_CA", "cannot read it"),
        env=(("FAILBACK_TEMPORAL_TLS_CA", "{dir}/no-such-ca.pem"),),
    ),
    BadInput(
        "temporal-tls-ca-not-pem",
        "FAILBACK_TEMPORAL_TLS_CA names a file that is not PEM",
        ("list",),
        ("FAILBACK_TEMPORAL_TLS_CA", "not a PEM file"),
        files=(("ca.txt", "this is not a certificate"),),
        env=(("FAILBACK_TEMPORAL_TLS_CA", "{dir}/ca.txt"),),
    ),
    BadInput(
        "temporal-tls-cert-without-key",
        "a client certificate for mutual TLS without its key",
        ("list",),
        ("FAILBACK_TEMPORAL_TLS_CERT", "FAILBACK_TEMPORAL_TLS_KEY"),
        files=(("client.pem", "-----BEGIN CERTIFICATE-----\n"),),
        env=(("FAILBACK_TEMPORAL_TLS_CERT", "{dir}/client.pem"),),
    ),
    BadInput(
        "temporal-tls-to-a-plain-server",
        "TLS on, to a Temporal server that speaks no TLS",
        ("list",),
        ("cannot reach Temporal", "FAILBACK_TEMPORAL_TLS"),
        env=(("FAILBACK_TEMPORAL_TLS", "true"),),
    ),
    BadInput(
        "temporal-api-key-file-missing",
        "FAILBACK_TEMPORAL_API_KEY_FILE names a file that does not exist",
        ("list",),
        ("FAILBACK_TEMPORAL_API_KEY_FILE", "cannot read it"),
        env=(("FAILBACK_TEMPORAL_API_KEY_FILE", "{dir}/no-such-key"),),
    ),
    # Signed decisions that cannot be made (issue 17, points 1 and 2).
    BadInput(
        "desk-unreachable",
        "`approve` with a decision desk address nothing listens on",
        ("approve", "{finished}"),
        ("cannot reach the decision desk", "FAILBACK_DECISION_DESK_URL"),
        env=(
            ("FAILBACK_DECISION_DESK_URL", "https://127.0.0.1:1"),
            ("FAILBACK_IDENTITY_AUDIENCE", "api://failback-orchestrator"),
            ("FAILBACK_IDENTITY_AUTH", "lab"),
            ("FAILBACK_LAB_IDENTITY", "alice"),
        ),
    ),
    BadInput(
        "signed-decision-with-typed-name",
        "`approve --by alice` where decisions are signed in",
        ("approve", "{finished}", "--by", "alice"),
        ("--by is not taken",),
        env=(("FAILBACK_DECISION_DESK_URL", "https://127.0.0.1:1"),),
    ),
    BadInput(
        "sign-in-unknown-source",
        "FAILBACK_IDENTITY_AUTH names no sign-in there is",
        ("cutover", "{finished}"),
        ("FAILBACK_IDENTITY_AUTH", "names no sign-in"),
        env=(
            ("FAILBACK_DECISION_DESK_URL", "https://127.0.0.1:1"),
            ("FAILBACK_IDENTITY_AUDIENCE", "api://failback-orchestrator"),
            ("FAILBACK_IDENTITY_AUTH", "smartcard"),
        ),
    ),
    BadInput(
        "sign-in-no-audience",
        "signed decisions without the app registration to sign in to",
        ("undo", "{finished}"),
        ("FAILBACK_IDENTITY_AUDIENCE",),
        env=(("FAILBACK_DECISION_DESK_URL", "https://127.0.0.1:1"),),
    ),
    BadInput(
        "sign-in-token-endpoint-unreachable",
        "the identity provider's token endpoint does not answer",
        ("cancel", "{finished}"),
        ("sign-in failed", "cannot reach"),
        env=(
            ("FAILBACK_DECISION_DESK_URL", "https://127.0.0.1:1"),
            ("FAILBACK_IDENTITY_AUDIENCE", "api://failback-orchestrator"),
            ("FAILBACK_IDENTITY_AUTH", "lab"),
            ("FAILBACK_LAB_IDENTITY", "alice"),
            ("FAILBACK_AZURE_ENDPOINT", "https://127.0.0.1:1"),
        ),
    ),
    BadInput(
        "sign-in-no-lab-user",
        "the lab's sign-in without a user to sign in as",
        ("approve", "{finished}"),
        ("FAILBACK_LAB_IDENTITY",),
        env=(
            ("FAILBACK_DECISION_DESK_URL", "https://127.0.0.1:1"),
            ("FAILBACK_IDENTITY_AUDIENCE", "api://failback-orchestrator"),
            ("FAILBACK_IDENTITY_AUTH", "lab"),
        ),
    ),
    BadInput(
        "approvers-required-too-many",
        "`start --approvers-required 9`",
        ("start", "--recovery-plan", "{plan}", "--approvers-required", "9"),
        ("Invalid value for '--approvers-required'",),
        exit_code=2,
    ),
    # `cancel` and `cutover` as an operator can get them wrong (issue 17, point 4).
    BadInput(
        "cancel-unknown-id",
        "`cancel` of a failback id that does not exist",
        ("cancel", NOBODY, "--by", "alice"),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "cancel-finished",
        "`cancel` of a failback that has completed",
        ("cancel", "{finished}", "--by", "alice"),
        ("has ended",),
    ),
    BadInput(
        "cancel-plan-member",
        "`cancel` of one machine of a plan's failback",
        ("cancel", "{finished_machine}", "--by", "alice"),
        ("cancel the plan as a whole",),
    ),
    BadInput(
        "cancel-empty-by",
        "`cancel --by ''` (nobody)",
        ("cancel", "{finished}", "--by", ""),
        ("--by must name",),
    ),
    BadInput(
        "cutover-unknown-id",
        "`cutover` of a failback id that does not exist",
        ("cutover", NOBODY, "--by", "alice"),
        ("no failback with id", NOBODY),
    ),
    BadInput(
        "cutover-finished",
        "`cutover` of a failback that has completed",
        ("cutover", "{finished}", "--by", "alice"),
        ("has ended",),
    ),
    BadInput(
        "cutover-plan-member",
        "`cutover` of one machine of a plan's failback",
        ("cutover", "{finished_machine}", "--by", "alice"),
        ("cut the plan over as a whole",),
    ),
    BadInput(
        "cutover-at-without-for-downtime",
        "`start --cutover-at` for a for-synchronization failback",
        ("start", "--recovery-plan", "{plan}", "--cutover-at", "2026-12-05T02:00+00:00"),
        ("--cutover-at applies to --data-sync for-downtime",),
    ),
    BadInput(
        "cutover-at-no-offset",
        "`start --cutover-at` without a UTC offset",
        (
            "start",
            "--recovery-plan",
            "{plan}",
            "--data-sync",
            "for-downtime",
            "--cutover-at",
            "2026-12-05T02:00",
        ),
        ("Invalid value for '--cutover-at'",),
        exit_code=2,
    ),
    BadInput(
        "data-sync-sometimes",
        "`start --data-sync sometimes`",
        ("start", "--recovery-plan", "{plan}", "--data-sync", "sometimes"),
        ("Invalid value for '--data-sync'",),
        exit_code=2,
    ),
    BadInput(
        "list-phase-with-quote",
        '`list --phase "it\'s"` (a quote in a filter)',
        ("list", "--phase", "it's"),
        ("not a FailbackPhase to filter on",),
    ),
    BadInput(
        "list-empty-plan",
        "`list --recovery-plan ''`",
        ("list", "--recovery-plan", ""),
        ("not a RecoveryPlan to filter on",),
    ),
    BadInput(
        "list-limit-zero",
        "`list --limit 0`",
        ("list", "--limit", "0"),
        ("Invalid value for '--limit'",),
        exit_code=2,
    ),
    BadInput(
        "unknown-resource-group",
        "`check` in a resource group that does not exist",
        ("check", "--recovery-plan", "{plan}"),
        ("FAILBACK_AZURE_RESOURCE_GROUP",),
        env=(("FAILBACK_AZURE_RESOURCE_GROUP", "no-such-rg"),),
    ),
    BadInput(
        "status-empty-id",
        "`status ''` (an empty id)",
        ("status", ""),
        ("is not a failback id", "failback list"),
        exit_code=2,
    ),
    BadInput(
        "approve-id-with-spaces",
        "`approve 'web 01'` (an id with a space: a VM name, not an id)",
        ("approve", "web 01", "--by", "alice"),
        ("is not a failback id",),
        exit_code=2,
    ),
    BadInput(
        "report-unknown-format",
        "`report ID --format pdf`",
        ("report", "{finished}", "--format", "pdf"),
        ("Invalid value for '--format'",),
        exit_code=2,
    ),
    BadInput(
        "start-app-consistent-machine",
        "`start MACHINE --recovery-point app-consistent` (a plan-only choice)",
        ("start", "no-such-vm-2", "--recovery-point", "app-consistent"),
        ("applies to a recovery plan",),
        must_not_start="failback-vault-dr-no-such-vm-2",
    ),
]


async def _exists(lab: Lab, workflow_id: str) -> bool:
    client = await lab.client()
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def run_bad_input(
    lab: Lab, bad: BadInput, directory: Path, values: dict[str, str]
) -> BadInputResult:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in bad.files:
        (directory / name).write_text(content)
    fill = {"dir": str(directory), **values}
    args = [a.format(**fill) for a in bad.args]
    env = {k: v.format(**fill) for k, v in bad.env}
    if not bad.lab_env:
        # Not even a lab in ./.lab to fall back on: the file (or its absence) is all it has.
        env["FAILBACK_LAB_DIR"] = str(directory / "no-lab")
    before = len([e for e in lab.journal() if e["method"] != "GET"])
    shown = await asyncio.to_thread(lab.cli, *args, env=env, lab_env=bad.lab_env)
    new_posts = len([e for e in lab.journal() if e["method"] != "GET"]) - before
    started = bool(bad.must_not_start) and await _exists(lab, str(bad.must_not_start))
    output = shown.stdout + shown.stderr
    lines = [line for line in shown.stderr.strip().splitlines() if line.strip()]
    result = BadInputResult(
        name=bad.name,
        what=bad.what,
        command="failback " + " ".join(_quoted(a) for a in args),
        exit_code=shown.returncode,
        message=" / ".join(lines[-3:]) if lines else shown.stdout.strip()[:200],
        traceback=TRACEBACK in output,
        new_posts=new_posts,
        started=started,
    )
    if shown.returncode == 0:
        result.violations.append(f"exit code 0 (stdout: {shown.stdout.strip()[:200]})")
    if bad.exit_code is not None and shown.returncode != bad.exit_code:
        result.violations.append(f"exit code {shown.returncode}, expected {bad.exit_code}")
    result.violations += [
        f"the error does not say {word!r}" for word in bad.says if word not in shown.stderr
    ]
    if result.traceback:
        result.violations.append("a Python traceback was printed")
    if new_posts:
        result.violations.append(f"{new_posts} writes were sent to ASR")
    if started:
        result.violations.append(f"workflow {bad.must_not_start} was started")
    if bad.name == "lab-up-bad-scenario" and (directory / "lab" / "state.json").exists():
        result.violations.append("a lab was started")
    return result


# Cases run at once: each is a CLI process that mostly imports and waits (1-2 s of a core), so
# three at a time take the batch from ~100 s to ~45 s on two cores. Nothing is lost: none may
# write, and a write seen while cases overlap fails each of them (it is never missed).
BAD_INPUT_CONCURRENCY = 3


async def run_bad_inputs(
    lab: Lab, cases: list[BadInput], root: Path, values: dict[str, str]
) -> dict[str, BadInputResult]:
    gate = asyncio.Semaphore(BAD_INPUT_CONCURRENCY)

    async def one(bad: BadInput) -> BadInputResult:
        async with gate:
            return await run_bad_input(lab, bad, root / bad.name, values)

    results = await asyncio.gather(*(one(bad) for bad in cases))
    return {r.name: r for r in results}


def _quoted(arg: str) -> str:
    return arg if arg and " " not in arg else repr(arg)
