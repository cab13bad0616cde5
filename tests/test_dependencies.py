"""Dependencies are declared directly and locked: every package pyproject names is pinned with hashes in
requirements/dev.txt (what make installs), the image's requirements/runtime.txt pins the same versions,
and what the code imports is declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# import name -> distribution, where they differ
DISTRIBUTIONS = {
    "amazon_kclpy": "kclpy-ext",
    "yaml": "pyyaml",
    "aws_cdk": "aws-cdk-lib",
    "pydantic_settings": "pydantic-settings",
    "pytest_asyncio": "pytest-asyncio",
}


def _pins(path: Path) -> dict[str, str]:
    text = path.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", text, re.MULTILINE))
    return {canonicalize_name(name): version for name, version in pins.items()}


def _declared(*groups: str) -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for group in groups:
        requirements += PYPROJECT["project"]["optional-dependencies"][group]
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    return names - {"devops-metrics"}


def test_every_declared_package_is_locked_with_hashes() -> None:
    dev = _pins(ROOT / "requirements" / "dev.txt")
    missing = _declared("local", "cdk", "bench", "dev") - set(dev)
    assert not missing
    text = (ROOT / "requirements" / "dev.txt").read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.strip()):
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_image_pins_the_same_versions_as_make() -> None:
    runtime = _pins(ROOT / "requirements" / "runtime.txt")
    dev = _pins(ROOT / "requirements" / "dev.txt")
    assert _declared() <= set(runtime)
    assert {name: dev[name] for name in runtime} == runtime
    assert "moto" not in runtime  # the emulator stays out of the image


def _imports(folder: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_runtime_code_imports_only_declared_packages() -> None:
    local = {"devops_core", "producer", "consumer", "aggregator", "devstack"}
    third_party = set()
    for folder in ("devops_core", "producer", "consumer", "aggregator"):
        third_party |= _imports(folder) - local - set(sys.stdlib_module_names)
    distributions = {canonicalize_name(DISTRIBUTIONS.get(name, name)) for name in third_party}
    assert distributions <= _declared(), distributions - _declared()
    assert {"boto3", "botocore"} <= distributions  # declared directly, not only via aiobotocore
