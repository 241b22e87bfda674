"""The README's JSON input for a start from the Web UI or the `temporal` CLI is valid input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from domain.models import MachineFailbackInput

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_documented_input_is_a_machine_failback_input() -> None:
    text = README.read_text()
    match = re.search(r"<!-- machine-failback-input -->\n```json\n(.*?)```", text, re.S)
    assert match, "the README lost its machine-failback-input example"
    params = MachineFailbackInput.model_validate(json.loads(match.group(1)))
    assert params.vm_name == "web-01"
    assert "machine" not in MachineFailbackInput.model_fields
    # Every field a start needs is there; what is left out takes today's defaults.
    assert "revision" not in MachineFailbackInput.model_fields


def test_a_machine_is_named_by_item_vm_or_both_never_by_neither() -> None:
    vault = {"resource_group": "rg", "vault": "v"}
    base = {"vault": vault, "recovery_resource_group": "rg-r"}
    assert MachineFailbackInput.model_validate({**base, "item_name": "web-01-item"}).given_name
    both = MachineFailbackInput.model_validate({**base, "item_name": "i", "vm_name": "web-01"})
    assert both.given_name == "web-01"
    with pytest.raises(ValidationError, match="name the machine"):
        MachineFailbackInput.model_validate(base)
    with pytest.raises(ValidationError):
        MachineFailbackInput.model_validate({**base, "vm_name": ""})
