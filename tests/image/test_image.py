"""The container image, built and run without a Docker engine (buildah, chroot isolation).

The image is built from the repository's Dockerfile on a Debian base made by debootstrap from apt's own
mirror (docker/debian-base.sh), then each entry point runs inside it with `buildah run` against the
embedded emulator on this machine (chroot isolation shares the host's network): the gateway accepts an
event with 202, the consumer stores it under the real KCL MultiLangDaemon, the aggregator's daemon
comes up, SIGTERM drains and stops each in time, and every process runs as user 10001.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devops_core.aws import boto_client
from devstack.emulator import free_port
from devstack.inspect import read_stream_events
from devstack.raw_store import read_raw_events
from devstack.resources import ensure_raw_event_delivery
from tests.support import Stack

pytestmark = pytest.mark.timeout(1500)

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/devops-metrics:image-test"
MULTILANG_DAEMON = "software.amazon.kinesis.multilang.MultiLangDaemon"
# What the image may weigh (measured in docs/deploy.md); a regression past this fails the build.
MAX_IMAGE_MB = 400


def _run(*args: str, timeout: float = 600) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def _pip_config(key: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


@dataclass
class Built:
    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    size_mb: float = 0.0


@pytest.fixture(scope="module")
def image() -> Built:
    built = Built(IMAGE)
    started = time.monotonic()
    base = _run("bash", str(ROOT / "docker" / "debian-base.sh"), timeout=1200).strip().splitlines()[-1]
    built.seconds["base"] = time.monotonic() - started
    started = time.monotonic()
    # Behind a TLS-intercepting proxy pip needs its CA bundle: the Dockerfile's pip_cert build secret.
    cert = os.environ.get("PIP_CERT") or _pip_config("global.cert")
    secret = ["--secret", f"id=pip_cert,src={cert}"] if cert and Path(cert).is_file() else []
    _run(
        "buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers", *secret,
        "--build-arg", f"BASE_IMAGE={base}", "-t", IMAGE, "-f", str(ROOT / "Dockerfile"), str(ROOT),
        timeout=2400,
    )  # fmt: skip
    built.seconds["build"] = time.monotonic() - started
    (entry,) = json.loads(_run("buildah", "images", "--json", IMAGE))
    number, unit = str(entry["size"]).split()  # "264 MB"
    built.size_mb = float(number) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]
    print(f"image-test: base {built.seconds['base']:.0f} s, build {built.seconds['build']:.0f} s")
    return built


@pytest.fixture
def container(image: Built) -> Iterator[str]:
    name = f"image-test-{uuid.uuid4().hex[:8]}"
    _run("buildah", "from", "--name", name, image.name)
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True, check=False, timeout=120)


def _env(stack: Stack, emulator: str, **extra: str) -> dict[str, str]:
    s = stack.settings
    return {
        "AWS_ENDPOINT_URL": emulator,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "DEVOPS_STREAM_NAME": s.devops_stream_name,
        "SECRET_STORE_NAME": s.secret_store_name,
        "DEVOPS_DB_NAME": s.devops_db_name,
        "DEVOPS_TABLE_NAME": s.devops_table_name,
        "DEAD_LETTER_QUEUE_NAME": s.dead_letter_queue_name,
        "AGGREGATOR_STATE_TABLE": s.aggregator_state_table,
        "CONSUMER_APPLICATION_NAME": s.consumer_application_name,
        "AGGREGATOR_APPLICATION_NAME": s.aggregator_application_name,
        "KCL_SHARD_SYNC_INTERVAL_MILLIS": "1000",
        "KCL_FAILOVER_TIME_MILLIS": "5000",
        "KCL_IDLE_TIME_BETWEEN_READS_MILLIS": "200",
        **extra,
    }


class Running:
    """One `buildah run` of an entry point; its main process is what ECS would signal (the container's
    PID 1: the entry point script exec's into it)."""

    def __init__(self, container: str, env: dict[str, str], command: list[str], log: Path) -> None:
        args = ["buildah", "run", "--isolation", "chroot"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        self.log = log
        self._sink = log.open("wb")
        self.process = subprocess.Popen(
            [*args, container, "--", "devops-metrics", *command], stdout=self._sink, stderr=subprocess.STDOUT
        )
        self.module = {"gateway": "producer.multiworker"}.get(command[0], command[0])

    def main_pid(self) -> int | None:
        for pid in _descendants(self.process.pid):
            if _runs_module(pid, self.module):
                return pid
        return None

    def wait_for(self, predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + within
        while not predicate():
            assert self.process.poll() is None, f"{what}: exited\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"{what}: not within {within:.0f} s\n{self.output()[-4000:]}"
            time.sleep(0.5)

    def terminate(self, within: float) -> float:
        """SIGTERM to the container's main process (as ECS sends it); seconds until all exited."""
        pid = self.main_pid()
        assert pid is not None, self.output()[-4000:]
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        self.process.wait(timeout=within)
        return time.monotonic() - started

    def output(self) -> str:
        if not self._sink.closed:
            self._sink.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            for pid in _descendants(self.process.pid):
                with _suppress():
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(30)
        self._sink.close()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return isinstance(exc[1], ProcessLookupError | PermissionError)


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        children: list[int] = []
        # every thread's children: buildah is a Go program and may fork from any of its threads
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        found += children
        queue += children
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def _runs_module(pid: int, module: str) -> bool:
    argv = _cmdline(pid)
    return any(argv[i] == "-m" and argv[i + 1] == module for i in range(len(argv) - 1))


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


def _healthcheck(container: str, command: str, env: dict[str, str] | None = None) -> int:
    """The health check command as ECS runs it: in the container, with the task's environment."""
    flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
    return subprocess.run(
        [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            *flags,
            container,
            "--",
            "devops-metrics-healthcheck",
            command,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except (urllib.error.URLError, OSError):
        return 0


def test_image_is_small_and_runs_as_a_non_root_user(image: Built, container: str) -> None:
    print(f"image-test: image size {image.size_mb:.0f} MB")
    assert 0 < image.size_mb < MAX_IMAGE_MB
    assert _run("buildah", "run", "--isolation", "chroot", container, "--", "id", "-u").strip() == "10001"
    java = _run("buildah", "run", "--isolation", "chroot", container, "--", "java", "--list-modules")
    assert "jdk.crypto.ec" in java  # TLS to AWS endpoints (ECDHE)
    assert "java.desktop" in java  # the KCL multilang's bean configuration (java.beans)
    # the jlink'ed runtime trusts the public CAs (its cacerts comes from Debian's ca-certificates-java)
    keystore = _run(
        "buildah", "run", "--isolation", "chroot", container, "--",
        "sh", "-c", "ls -l /opt/jre/lib/security/cacerts | awk '{print $5}'",
    )  # fmt: skip
    assert int(keystore.strip()) > 100_000


def test_gateway_accepts_an_event_and_drains_on_sigterm(
    emulator: str, stack: Stack, container: str, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(stack, emulator, GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATEWAY_WORKERS="2")
    gateway = Running(container, env, ["gateway"], tmp_path / "gateway.log")
    try:
        gateway.wait_for(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, 60, "gateway healthy")
        pid = gateway.main_pid()
        assert pid is not None
        assert _uid(pid) == 10001
        assert _healthcheck(container, "gateway", env) == 0
        event_id = str(uuid.uuid4())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/process-event",
            data=json.dumps({"repo": "image_test", "event": "deploy", "event_id": event_id}).encode(),
            headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        assert event_id in {e.event_id for e in read_stream_events(stack.settings.devops_stream_name)}
        seconds = gateway.terminate(within=30)
        print(f"image-test: gateway stopped {seconds:.1f} s after SIGTERM")
        assert gateway.process.returncode == 0, gateway.output()[-3000:]
    finally:
        gateway.close()
    assert _healthcheck(container, "gateway", env) == 1  # nothing answers any more


def _checkpoints(application: str) -> dict[str, str]:
    try:
        items = boto_client("dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    except boto_client("dynamodb").exceptions.ResourceNotFoundException:
        return {}
    return {item["leaseKey"]["S"]: item.get("checkpoint", {}).get("S", "") for item in items}


def _create_kcl_tables_as_cloudformation_would(application_name: str) -> dict[str, float]:
    """The consumer's KCL tables exactly as the CDK app declares them (kcl_tables.py), created up front
    as CloudFormation does in AWS; returns each table's creation time."""
    os.environ.setdefault("CDK_VALIDATION", "false")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.path.insert(0, str(ROOT / "cdk"))
    import aws_cdk as cdk
    from aws_cdk.assertions import Template
    from devops_metrics_cdk.kcl_tables import KclTables

    stack = cdk.Stack(cdk.App(), "KclTables")
    KclTables(stack, "Kcl", application_name=application_name)
    dynamodb = boto_client("dynamodb")
    created = {}
    for resource in Template.from_stack(stack).find_resources("AWS::DynamoDB::GlobalTable").values():
        spec = resource["Properties"]
        params = {key: spec[key] for key in ("TableName", "KeySchema", "AttributeDefinitions", "BillingMode")}
        if "GlobalSecondaryIndexes" in spec:
            params["GlobalSecondaryIndexes"] = spec["GlobalSecondaryIndexes"]
        table = dynamodb.create_table(**params)["TableDescription"]
        created[spec["TableName"]] = table["CreationDateTime"].timestamp()
    return created


def test_consumer_stores_under_the_kcl_daemon_and_checkpoints_on_sigterm(
    emulator: str, stack: Stack, container: str, tmp_path: Path
) -> None:
    settings = stack.settings.model_copy(
        update={
            "raw_events_bucket": f"raw-{uuid.uuid4().hex[:10]}",
            "raw_events_delivery_stream": f"raw-{uuid.uuid4().hex[:10]}",
        }
    )
    ensure_raw_event_delivery(settings)
    tables = _create_kcl_tables_as_cloudformation_would(settings.consumer_application_name)
    kinesis = boto_client("kinesis")
    from devops_core.events import DevOpsEvent

    event = DevOpsEvent.model_validate(
        {"event_id": str(uuid.uuid4()), "time": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:01Z",
         "repo": "image_test", "event": "deploy", "outcome": "success"}
    )  # fmt: skip
    kinesis.put_record(StreamName=settings.devops_stream_name, Data=event.to_record_data(), PartitionKey="k")
    env = _env(
        stack,
        emulator,
        RAW_STORE="s3",
        RAW_EVENTS_DELIVERY_STREAM=settings.raw_events_delivery_stream,
    )
    consumer = Running(container, env, ["consumer"], tmp_path / "consumer.log")
    try:
        consumer.wait_for(
            lambda: any(r["event_id"] == event.event_id for r in read_raw_events(settings.raw_events_bucket)),
            240,
            "event stored in S3 by the consumer under the KCL",
        )
        pid = consumer.main_pid()
        assert pid is not None
        daemons = [p for p in _descendants(pid) if MULTILANG_DAEMON in _cmdline(p)]
        assert daemons, "the consumer does not run the MultiLangDaemon"
        assert {_uid(p) for p in [pid, *daemons]} == {10001}
        assert _healthcheck(container, "consumer") == 0
        seconds = consumer.terminate(within=60)
        print(f"image-test: consumer stopped {seconds:.1f} s after SIGTERM")
        assert consumer.process.returncode == 0, consumer.output()[-3000:]
    finally:
        consumer.close()
    log = consumer.output()
    assert "Received error line from subprocess" not in log  # processor lines are not logged twice
    assert any(
        c not in {"", "TRIM_HORIZON", "LATEST"}
        for c in _checkpoints(settings.consumer_application_name).values()
    )
    # the KCL worked in the tables CloudFormation made (lease GSI included) and created none of its own
    dynamodb = boto_client("dynamodb")
    for name, created_at in tables.items():
        assert dynamodb.describe_table(TableName=name)["Table"]["CreationDateTime"].timestamp() == created_at
    lease_table = dynamodb.describe_table(TableName=settings.consumer_application_name)["Table"]
    assert [index["IndexName"] for index in lease_table["GlobalSecondaryIndexes"]] == [
        "LeaseOwnerToLeaseKeyIndex"
    ]


def test_aggregator_runs_its_daemon_and_stops_on_sigterm(
    emulator: str, stack: Stack, container: str, tmp_path: Path
) -> None:
    aggregator = Running(container, _env(stack, emulator), ["aggregator"], tmp_path / "aggregator.log")
    try:

        def daemon_up() -> bool:
            pid = aggregator.main_pid()
            return pid is not None and any(MULTILANG_DAEMON in _cmdline(p) for p in _descendants(pid))

        aggregator.wait_for(daemon_up, 60, "aggregator's MultiLangDaemon running")
        assert _healthcheck(container, "aggregator") == 0
        seconds = aggregator.terminate(within=60)
        print(f"image-test: aggregator stopped {seconds:.1f} s after SIGTERM")
        assert aggregator.process.returncode == 0, aggregator.output()[-3000:]
    finally:
        aggregator.close()
