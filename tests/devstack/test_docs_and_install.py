"""What a newcomer reads and installs: links that resolve inside the repository, the README's error
table and Deploy prerequisites, and a `make run` install that holds only what running needs."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def tracked_markdown() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if "node_modules" not in name]


def ignored(path: Path) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False).returncode == 0


@pytest.mark.parametrize("document", tracked_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_the_docs_is_a_file_inside_the_repository(document: Path) -> None:
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"{document.name} links outside the repository: {target}"
        assert path.exists(), f"{document.name} links to a missing file: {target}"
        assert not ignored(path), f"{document.name} links to a git-ignored file: {target}"


def test_the_readme_error_table_lists_every_status_the_gateway_answers() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("Errors are always JSON") : readme.index("### Durability")]
    for status in (400, 401, 404, 405, 408, 413, 415, 422, 429, 503):
        assert re.search(rf"^\| {status} `[a-z_]+` \| \S", table, re.M), status


def test_the_deploy_section_says_npm_ci_and_the_node_versions_the_cdk_supports() -> None:
    readme = (ROOT / "README.md").read_text()
    deploy = readme[readme.index("## Deploy") : readme.index("## LocalStack")]
    assert "npm ci" in deploy
    assert "Node 22 or 24" in deploy
    assert "Node 18" not in readme.replace("(Node 18+, no dependencies)", "")  # only the CI script's own


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / name).read_text()
    return {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", text, re.M)}


def test_make_run_installs_only_what_running_needs() -> None:
    run, dev = _pins("run.txt"), _pins("dev.txt")
    assert {name: dev[name] for name in run} == run  # the same versions as the tests use
    for tool in (
        "pytest",
        "playwright",
        "aws-cdk-lib",
        "cfn-lint",
        "mypy",
        "ruff",
        "hypothesis",
        "schemathesis",
    ):
        assert tool not in run, f"{tool} is not needed to run"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {canonicalize_name(Requirement(r).name) for r in pyproject["dependencies"]}
    wanted |= {canonicalize_name(Requirement(r).name) for r in pyproject["optional-dependencies"]["run"]}
    assert wanted <= set(run)
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "demo", "inspect"):
        assert re.search(rf"^{target}: \$\(RUN_STAMP\)$", makefile, re.M), (
            f"make {target} installs run.txt only"
        )
    assert "-r requirements/run.txt" in makefile


def test_the_state_directory_is_ignored_by_git() -> None:
    assert ignored(ROOT / ".devstack" / "emulator.pickle")
    assert ignored(ROOT / ".devstack" / "token")


_PACKAGES = r"(?:consumer|aggregator|producer|devops_core|devstack|newrelic|tools|bench|tests)"
_PYTHON_M = re.compile(r"python3? -m ([A-Za-z_][\w.]*)")
_DOTTED = re.compile(rf"`({_PACKAGES}(?:\.[A-Za-z_]\w*)+)`")
_SOURCE_PATH = re.compile(rf"(?<![\w/.-])({_PACKAGES}/[\w/.-]+\.py)\b")


def _resolves(name: str) -> bool:
    """A module, or an attribute (class, function, constant) of one."""
    import importlib
    import importlib.util

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        target: object = importlib.import_module(module_name)
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


@pytest.mark.parametrize("document", tracked_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_name_only_modules_and_files_that_exist(document: Path) -> None:
    """`python -m X`, `package.module.Name` and `package/file.py` in the docs name real code (docs/kcl.md
    named a consumer.processor module and a ConsumerProcessor class long after they were gone)."""
    text = document.read_text()
    missing = sorted({m for m in _PYTHON_M.findall(text) if not _resolves(m.rstrip("."))})
    missing += sorted({m for m in _DOTTED.findall(text) if not _resolves(m)})
    missing += sorted({p for p in _SOURCE_PATH.findall(text) if not (ROOT / p).exists()})
    assert not missing, f"{document.relative_to(ROOT)} names what does not exist: {missing}"
