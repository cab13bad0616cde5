"""The container image, without an engine: the Dockerfile's shape, and every command its entry point names
exists and starts (the gateway for real, in several processes, against the emulator)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from devstack.emulator import free_port
from devstack.inspect import read_stream_events

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    # as Docker does: comment lines go first (also inside continued instructions), then lines join
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.strip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _commands() -> dict[str, str]:
    """Entry-point command -> python module, from docker/entrypoint.sh's case table."""
    return dict(re.findall(r"^\s*(\w+)\) exec python -m ([\w.]+)", ENTRYPOINT.read_text(), re.MULTILINE))


def test_runtime_stage_is_debian_python_with_a_jlinked_jre() -> None:
    """Debian 12 (its python3 is 3.11) in both stages; the runtime gets a jlink'ed JRE, not a JRE package."""
    args = dict(_arguments())
    assert args["BASE_IMAGE"] == "debian:bookworm-slim"
    stage = _final_stage()
    assert stage[0][1].split()[0] == "${BASE_IMAGE}"
    runs = " ".join(a for keyword, a in stage if keyword == "RUN")
    assert "openjdk" not in runs  # no JRE package in the runtime...
    assert "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    copies = [a for keyword, a in stage if keyword == "COPY"]
    assert "--from=build /opt/jre /opt/jre" in copies  # ...but the jlink'ed one
    build = " ".join(a for keyword, a in _instructions() if keyword == "RUN")
    assert "jlink --add-modules" in build
    assert "--require-hashes" in build  # the locked requirements only


def test_healthcheck_is_declared() -> None:
    (health,) = [a for keyword, a in _final_stage() if keyword == "HEALTHCHECK"]
    assert "devops-metrics-healthcheck" in health
    assert os.access(ROOT / "docker" / "healthcheck.py", os.X_OK)


def _arguments() -> list[tuple[str, str]]:
    return [tuple(a.split("=", 1)) for keyword, a in _instructions() if keyword == "ARG" and "=" in a]  # type: ignore[misc]


def test_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in _final_stage() if keyword == "USER"]
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_entry_point_is_the_dispatch_script() -> None:
    stage = dict(_final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["devops-metrics"]
    assert json.loads(stage["CMD"]) == ["gateway"]
    copies = [args for keyword, args in _final_stage() if keyword == "COPY"]
    assert "docker/entrypoint.sh /usr/local/bin/devops-metrics" in copies
    assert os.access(ENTRYPOINT, os.X_OK)
    assert set(_commands()) == {"gateway", "consumer", "aggregator", "rederive", "provision"}


def test_image_carries_the_kcl_jars() -> None:
    """kclpy-ext's wheel ships the KCL jars; the build stage asserts it, and so does this."""
    spec = importlib.util.find_spec("amazon_kclpy")
    assert spec is not None
    assert spec.origin is not None
    jars = Path(spec.origin).parent / "jars"
    assert list(jars.glob("amazon-kinesis-client-multilang-*.jar"))
    assert "amazon-kinesis-client-multilang" in DOCKERFILE.read_text()


def test_build_context_keeps_what_the_dockerfile_copies() -> None:
    included = {
        line[1:].strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for keyword, args in _instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                source = source.rstrip("/").removeprefix("./")
                assert source in included, f"{source} is copied but excluded by .dockerignore"
                assert (ROOT / source).exists(), f"{source} is copied but missing from the repository"


@pytest.mark.parametrize("command", ["gateway", "consumer", "aggregator", "rederive", "provision"])
def test_every_command_exists_and_starts(command: str) -> None:
    module = _commands()[command]
    assert importlib.util.find_spec(module) is not None, f"{module} (entry point '{command}') is missing"
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), command, "--help"],
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def _get(url: str) -> int:
    """The status, or 0 while the server is not answering yet (refused, reset, or slower than the
    probe's timeout while its workers start on a busy machine: the caller's deadline decides)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def test_gateway_command_serves_with_several_workers(stack) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEVOPS_STREAM_NAME": stack.settings.devops_stream_name,
        "SECRET_STORE_NAME": stack.settings.secret_store_name,
        "GATEWAY_WORKERS": "2",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
    }
    env.pop("DEVOPS_EVENTS_SECRET_TOKEN", None)
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "gateway"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while _get(f"http://127.0.0.1:{port}/healthz") != 200:
            assert process.poll() is None, "gateway exited"
            assert time.monotonic() < deadline, "gateway not healthy within 30 s"
            time.sleep(0.2)
        assert len(_children(process.pid)) == 2  # the shell exec'd into the arbiter, which forked 2

        event_id = str(uuid.uuid4())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/process-event",
            data=json.dumps({"repo": "container_test", "event": "deploy", "event_id": event_id}).encode(),
            headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        assert event_id in {event.event_id for event in read_stream_events(stack.settings.devops_stream_name)}

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_provision_command_creates_the_resources(emulator: str) -> None:
    """The compose file's init step: `provision` against an emulator, idempotent, token not printed."""
    import boto3

    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEVOPS_STREAM_NAME": f"provision-{suffix}",
        "SECRET_STORE_NAME": f"provision-{suffix}",
        "DEVOPS_TABLE_NAME": f"provision-{suffix}",
        "DEAD_LETTER_QUEUE_NAME": f"provision-{suffix}",
        "AGGREGATOR_STATE_TABLE": f"provision-{suffix}",
        "DEVOPS_EVENTS_SECRET_TOKEN": f"token-{suffix}",
    }
    for _ in range(2):  # re-running is harmless
        result = subprocess.run(
            ["sh", str(ENTRYPOINT), "provision", "--shards", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["ready"] is True
        assert f"token-{suffix}" not in result.stdout + result.stderr
    kinesis = boto3.client("kinesis", endpoint_url=emulator)
    assert kinesis.describe_stream_summary(StreamName=f"provision-{suffix}")["StreamDescriptionSummary"]
    secret = boto3.client("secretsmanager", endpoint_url=emulator).get_secret_value(
        SecretId=f"provision-{suffix}"
    )
    assert json.loads(secret["SecretString"]) == {"token": f"token-{suffix}"}
