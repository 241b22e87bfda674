"""The README's JSON input for a start from the Web UI or the `temporal` CLI is valid input."""

from __future__ import annotations

import json
import re
from pathlib import Path

from domain.models import MachineFailbackInput

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_documented_input_is_a_machine_failback_input() -> None:
    text = README.read_text()
    match = re.search(r"<!-- machine-failback-input -->\n```json\n(.*?)```", text, re.S)
    assert match, "the README lost its machine-failback-input example"
    params = MachineFailbackInput.model_validate(json.loads(match.group(1)))
    assert params.machine == "web-01"
    # Every field a start needs is there; what is left out takes today's defaults.
    assert "revision" not in MachineFailbackInput.model_fields
