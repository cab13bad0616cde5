"""The production entry points run the real KCL MultiLangDaemon; the in-process local driver (a
development harness) only when ``--driver local`` is given on the command line (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["consumer", "aggregator"])
def test_without_the_flag_the_daemon_runs_whatever_the_environment_says(module: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_DEFAULT_REGION": "us-east-1",
        # Anything that might look like a way to pick the local driver is ignored.
        "DRIVER": "local",
        "KCL_DRIVER": "local",
        f"{module.upper()}_DRIVER": "local",
    }

    def run(option: str) -> str:
        command = [sys.executable, "-m", module, option]
        return subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, env=env, check=True, timeout=60
        ).stdout

    assert "executableName" in run("--print-properties")  # the daemon's properties: the daemon path was taken
    assert "(default: daemon)" in " ".join(run("--help").split())
