"""Helpers shared by tests and benchmarks: child processes, unique settings, the provisioned stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from devops_core.settings import Settings
from devstack.resources import ProvisionResult

ROOT = Path(__file__).resolve().parent.parent
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
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
        "batch_linger_ms": 2.0,
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
