"""The README's getting-started commands, pasted literally into a shell, work: `make run` on
non-default ports in one terminal, then the second terminal's block, in a copy of the repository (so
the state directory is the copy's own .devstack/, as in a fresh clone)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from devstack.emulator import free_port
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def getting_started() -> tuple[str, str]:
    """(the documented `make run` line for other ports, the second terminal's block)."""
    section = README[README.index("## Getting started") : README.index("### Where local data lives")]
    other_ports = re.search(r'`(make run ARGS="--emulator-port \d+ --gateway-port \d+")`', section)
    assert other_ports, "the README shows how to pick other ports"
    second = section[section.index("In a second terminal") :]
    block = re.search(r"```bash\n(.*?)```", second, re.S)
    assert block, "the second terminal's commands are a bash block"
    return other_ports.group(1), block.group(1)


def copy_repository(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # modification times kept: make sees the install as done


def test_the_readme_getting_started_pasted_literally_works_on_other_ports(tmp_path: Path) -> None:
    run_line, second_terminal = getting_started()
    emulator, gateway = free_port(), free_port()
    run_line = re.sub(r"--emulator-port \d+", f"--emulator-port {emulator}", run_line)
    run_line = re.sub(r"--gateway-port \d+", f"--gateway-port {gateway}", run_line)
    clone = tmp_path / "devops-metrics"
    copy_repository(clone)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVOPS_EVENTS", "API_DEVOPS"))}
    # The installed environment instead of a new install, and stamps that say it is installed: make
    # must never install the copy into the shared .venv (an editable install pointing at tmp_path
    # broke every later import of devops_core outside the repository once pytest removed the copy).
    stamp = tmp_path / "installed"
    stamp.touch()
    env["MAKEFLAGS"] = f"VENV={ROOT / '.venv'} STAMP={stamp} RUN_STAMP={stamp}"

    first = subprocess.Popen(
        ["bash", "-c", run_line],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert first.stdout is not None
        banner = []
        deadline = time.monotonic() + 300  # the bound only stops a broken run
        while not banner or "Ctrl-C" not in banner[-1]:
            line = first.stdout.readline()
            assert line, "make run exited: " + "".join(banner)
            assert time.monotonic() < deadline
            banner.append(line)
        assert f"dashboard: http://127.0.0.1:{gateway}/dashboard" in "".join(banner)

        second = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", second_terminal],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        out = second.stdout
        assert re.search(r"make demo: sent (\d+) of \1 events", out), out
        assert "metrics ready" in out
        assert re.search(r"^event_id=[0-9a-f-]{36}$", out, re.M), out  # the CI script's one line
        assert f"Metrics from http://127.0.0.1:{gateway}/metrics" in out
        # The last inspect shows the event the CI script just sent, by the repo it named.
        last = out[out.rindex("Stream devops-events") :]
        assert re.search(r"^\S+ \S+\s+\d+\s+my-service\s+deploy\s", last, re.M), last
        assert "object at 0x" not in out
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.wait(timeout=120)
    assert (clone / ".devstack" / "emulator.pickle").exists()
    assert (clone / ".devstack" / "token").exists()
    installed = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", "import devops_core; print(devops_core.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert installed.startswith(str(ROOT)), f"the shared .venv now imports the copy: {installed}"
