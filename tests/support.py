"""Helpers shared by tests and benchmarks: child processes, unique settings, the provisioned stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devops_core.settings import Settings
from devstack.resources import ProvisionResult

ROOT = Path(__file__).resolve().parent.parent
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# The same, as boto3 client arguments (for an emulator started in the test's own process).
CLIENT_KWARGS = {
    "region_name": AWS_TEST_ENV["AWS_REGION"],
    "aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
}


@dataclass
class Background:
    """A child process that announced itself with one JSON line ``{"ready": true, "url": ...}``."""

    process: subprocess.Popen[str]
    url: str

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_background(args: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> Background:
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError(f"{args} exited before it was ready")
    return Background(process, json.loads(line)["url"])


def unique_settings(**overrides: object) -> Settings:
    """Settings whose resource names are unique to one test, so tests never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "devops_stream_name": f"events-{suffix}",
        "devops_table_name": f"raw-{suffix}",
        "secret_store_name": f"secret-{suffix}",
        "dead_letter_queue_name": f"dlq-{suffix}",
        "aggregator_state_table": f"agg-{suffix}",
        "consumer_application_name": f"consumer-{suffix}",
        "aggregator_application_name": f"aggregator-{suffix}",
        **overrides,
    }
    return Settings.model_validate(values)


@dataclass
class Stack:
    settings: Settings
    resources: ProvisionResult

    @property
    def token(self) -> str:
        return self.resources.token


@dataclass
class LocalStackProcess:
    """`make run` (``python -m devstack``) as a child in its own process group, on free ports, with its
    own state directory (never the repository's .devstack/)."""

    process: subprocess.Popen[str]
    gateway: str
    emulator: str
    token: str
    newrelic: str | None
    state_dir: Path
    banner: str

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_local_stack(
    *extra_args: str, state_dir: Path | None = None, timeout: float = 90, env: dict[str, str] | None = None
) -> LocalStackProcess:
    """Start the local stack on ports the OS picks (no race for a free port) and read its banner (ports,
    token, stand-in URL) up to the Ctrl-C line. ``state_dir``: kept data; default a new empty one."""
    import tempfile

    state = state_dir or Path(tempfile.mkdtemp(prefix="devstack-state-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "DEVOPS_EVENTS"))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--gateway-port",
            "0",
            "--emulator-port",
            "0",
            "--state-dir",
            str(state),
            *extra_args,
        ],
        cwd=ROOT,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: stoppable as a whole, provably left empty
    )
    assert process.stdout is not None
    token = newrelic = gateway = emulator = None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise TimeoutError(f"python -m devstack was not ready within {timeout:.0f} s")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("python -m devstack exited before it was ready: " + "".join(lines))
        lines.append(line)
        if match := re.search(r"export DEVOPS_EVENTS_SECRET_TOKEN=(\S+)", line):
            token = match.group(1)
        if match := re.search(r"New Relic stand-in: (\S+)", line):
            newrelic = match.group(1)
        if match := re.match(r"\s+gateway:\s+(\S+)", line):
            gateway = match.group(1)
        if match := re.match(r"\s+emulator:\s+(\S+)", line):
            emulator = match.group(1)
        if "Ctrl-C" in line:
            break
    assert gateway, "no gateway address in the banner"
    assert emulator, "no emulator address in the banner"
    return LocalStackProcess(process, gateway, emulator, token or "", newrelic, state, "".join(lines))


class KclChild:
    """A record-processor process driven over the MultiLangDaemon's line protocol (JSON lines on
    stdin/stdout), as the Java daemon drives it."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout
        line = self.process.stdout.readline()
        while line == "\n":  # the KCL's writer frames each message with newlines
            line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else "the child closed stdout"
        return dict(json.loads(line))

    def initialize(self, shard_id: str = "shardId-000000000000") -> None:
        """The daemon's first message to a processor, answered with a status."""
        message = {"action": "initialize", "shardId": shard_id, "sequenceNumber": "TRIM_HORIZON"}
        self.send({**message, "subSequenceNumber": 0})
        assert self.receive() == {"action": "status", "responseFor": "initialize"}


_GUNICORN_LISTENING = re.compile(r"Listening at: http://\S+:(\d+) ")


def announced_gateway_port(log: Path, alive: Any, timeout: float = 60) -> int:
    """The port a ``python -m producer --port 0`` bound, from its "gateway listening" log line (JSON
    lines in ``log``, its stderr), or that ``python -m producer.multiworker --port 0`` bound, from
    gunicorn's "Listening at" line. ``alive()`` is False once the process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if '"gateway listening"' in line:
                return int(json.loads(line)["port"])
            if gunicorn := _GUNICORN_LISTENING.search(line):
                return int(gunicorn.group(1))
        if not alive():
            raise RuntimeError(
                f"the gateway exited before listening:\n{log.read_text(errors='replace')[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gateway did not listen within {timeout:.0f} s")
        time.sleep(0.05)
