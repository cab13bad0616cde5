"""Who may import whom: the applications never import the local dev stack, the gateway reads metrics
through the neutral read model (never the aggregator's writer), and the shared core imports none of
the applications."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = {
    "devops_core": {"producer", "consumer", "aggregator", "devstack"},
    "producer": {"consumer", "aggregator", "devstack"},
    "consumer": {"producer", "aggregator", "devstack"},
    "aggregator": {"producer", "consumer", "devstack"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_imports_only_what_it_may(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & RULES[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_packages(path) & RULES[package]
    }
    assert offenders == {}


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from devstack.emulator import free_port\n")
    assert imported_packages(module) == {"devstack"}
