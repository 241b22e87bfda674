"""The layers of the code: a pure domain, a product that does not know the lab, and no import
cycle between packages.

Read from the source (every import statement, at any depth), so an import hidden in a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "workflows", "activities", "worker", "starter", "lab", "bench", "scripts")
# What the domain may import besides itself: the standard library, pydantic, and cryptography
# for one pure computation (R28's signature check of an attestation: no I/O, no clock).
DOMAIN_THIRD_PARTY = {"pydantic", "cryptography"}
FORBIDDEN_IN_DOMAIN = ("temporalio", "azure", "pyVmomi", "pyVim", "aiohttp", "requests")
# What ships and runs in production; the lab plugs into it by entry point, never by import.
PRODUCT = ("domain", "workflows", "activities", "worker", "starter")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_domain_imports_no_infrastructure() -> None:
    offending = []
    for path in _modules("domain"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "domain" or top in DOMAIN_THIRD_PARTY or top in sys.stdlib_module_names:
                continue
            offending.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offending, "domain/ must stay pure: " + "; ".join(offending)


def test_importing_the_domain_loads_no_infrastructure() -> None:
    # What an import really drags in, transitively, in a fresh interpreter.
    code = (
        "import sys, importlib, pkgutil, domain\n"
        "for m in pkgutil.walk_packages(domain.__path__, 'domain.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN_IN_DOMAIN!r})\n"
        "print(','.join(bad))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"importing domain/ loaded {loaded}"


def test_the_product_does_not_import_the_lab() -> None:
    offending = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in PRODUCT
        for path in _modules(package)
        for name in _imports(path)
        if name.split(".")[0] == "lab"
    ]
    assert not offending, "the product must not know the lab: " + "; ".join(offending)


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lab.manager import lab_up\n    import lab.cli\n")
    assert _imports(module) == {"lab.manager", "lab.cli"}


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in _modules(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in edges and top != package:
                    edges[package].add(top)
    return edges


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(edges[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_no_import_cycle_between_packages() -> None:
    cycle = _find_cycle(_package_edges())
    assert cycle is None, "packages import each other in a circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


# The classes whose methods are activities: the CLI reads through the gateways instead.
ACTIVITY_CLASSES = {
    "AsrActivities",
    "ComputeActivities",
    "VSphereActivities",
    "VerificationActivities",
}


def test_the_cli_calls_gateways_never_activities() -> None:
    for path in _modules("starter"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {a.name for a in node.names}
                assert not names & ACTIVITY_CLASSES, (path, names)
