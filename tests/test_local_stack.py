"""`make run` end to end: the local stack starts on free ports, takes an event, and stops cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devstack.emulator import free_port
from tests.support import ROOT


@dataclass
class LocalStack:
    process: subprocess.Popen[str]
    gateway: str
    emulator: str
    token: str


def _read_banner(process: subprocess.Popen[str], timeout: float = 90) -> dict[str, str]:
    assert process.stdout is not None
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "ctrl" not in found:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("make run exited before it was ready")
        if match := re.search(r"export DEVOPS_EVENTS_SECRET_TOKEN=(\S+)", line):
            found["token"] = match.group(1)
        if "Ctrl-C" in line:
            found["ctrl"] = "yes"
    return found


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    gateway_port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "DEVOPS_EVENTS"))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--gateway-port",
            str(gateway_port),
            "--emulator-port",
            str(emulator_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, so we can prove nothing is left behind
    )
    banner = _read_banner(process)
    yield LocalStack(
        process, f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{emulator_port}", banner["token"]
    )
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def post_event(stack: LocalStack, body: dict) -> dict:
    request = urllib.request.Request(
        f"{stack.gateway}/process-event",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return json.load(response)


def test_event_posted_to_the_local_gateway_is_in_the_local_stream(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = post_event(local_stack, {"repo": "demo", "event": "deploy", "metadata": "v1"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_stack.emulator)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from devstack.inspect import read_stream_events

    events = [e for e in read_stream_events("devops-events") if e.event_id == accepted["event_id"]]
    assert [(e.repo, e.event, e.metadata) for e in events] == [("demo", "deploy", "v1")]


def test_sigterm_stops_everything_within_seconds(local_stack: LocalStack) -> None:
    started = time.monotonic()
    local_stack.process.send_signal(signal.SIGTERM)
    assert local_stack.process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(local_stack.process.pid, 0)  # no process of its group is left
