"""One versioning mechanism (workflows/versioning.py): every patch used is listed, with its
removal condition, and every listed patch is used."""

from __future__ import annotations

import ast
from pathlib import Path

from workflows.versioning import ACTIVE_PATCHES

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
PATCH_CALLS = {"patched", "deprecate_patch"}


def patch_ids_used(folder: Path = WORKFLOWS) -> set[str]:
    constants: dict[str, str] = {p.id.upper().replace("-", "_"): p.id for p in ACTIVE_PATCHES}
    used = set()
    for source in folder.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        constants.setdefault(target.id, node.value.value)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in PATCH_CALLS or not node.args:
                continue
            argument = node.args[0]
            if isinstance(argument, ast.Constant):
                used.add(str(argument.value))
            elif isinstance(argument, ast.Name):
                used.add(constants.get(argument.id, argument.id))
            elif isinstance(argument, ast.Attribute):
                used.add(constants.get(argument.attr, argument.attr))
    return used


def test_every_patch_used_is_listed_and_every_listed_patch_is_used() -> None:
    listed = {p.id for p in ACTIVE_PATCHES}
    assert patch_ids_used() == listed


def test_every_listed_patch_says_what_it_guards_and_when_it_goes() -> None:
    for patch in ACTIVE_PATCHES:
        assert patch.what and patch.remove_when, patch


def test_the_check_finds_patch_calls_by_constant_and_by_literal(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text(
        'ID = "x-1"\nif workflow.patched(ID):\n    pass\nworkflow.deprecate_patch("y-2")\n'
    )
    assert patch_ids_used(tmp_path) == {"x-1", "y-2"}
