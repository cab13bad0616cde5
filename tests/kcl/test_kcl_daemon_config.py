"""The daemon's properties file and java command line (no Java started here)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from devops_core.kcl.daemon import MAIN_CLASS, DaemonConfig, jars_dir, java_command, render_properties
from devops_core.settings import Settings
from tests.support import ROOT


def parse(text: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in text.splitlines())


def test_properties_from_settings_and_boto_endpoint_variables() -> None:
    settings = Settings(devops_stream_name="events", kcl_retrieval_mode="FANOUT", kcl_max_records=500)
    environ = {"AWS_ENDPOINT_URL": "http://emulator:4566", "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:8000"}
    config = DaemonConfig.from_settings(
        settings, application_name="consumer", executable="/venv/bin/python -m consumer", environ=environ
    )
    properties = parse(render_properties(config))
    assert properties["streamName"] == "events"
    assert properties["applicationName"] == "consumer"
    assert properties["executableName"] == "/venv/bin/python -m consumer"
    assert properties["retrievalMode"] == "FANOUT"
    assert properties["metricsLevel"] == "NONE"
    assert properties["maxRecords"] == "500"
    assert properties["initialPositionInStream"] == "TRIM_HORIZON"
    assert properties["kinesisEndpoint"] == "http://emulator:4566"
    assert properties["dynamoDBEndpoint"] == "http://ddb:8000"


def test_no_endpoint_properties_for_real_aws() -> None:
    config = DaemonConfig.from_settings(Settings(), application_name="a", executable="x", environ={})
    properties = parse(render_properties(config))
    assert "kinesisEndpoint" not in properties
    assert "dynamoDBEndpoint" not in properties
    assert properties["retrievalMode"] == "POLLING"


def test_java_command_uses_every_bundled_jar_and_disables_cbor(tmp_path: Path) -> None:
    command = java_command(tmp_path / "app.properties")
    assert command[0] == "java"
    assert "-Daws.cborEnabled=false" in command
    classpath = command[command.index("-cp") + 1].split(":")
    assert sorted(Path(jar).name for jar in classpath) == sorted(p.name for p in jars_dir().glob("*.jar"))
    assert any("amazon-kinesis-client-multilang" in jar for jar in classpath)
    assert command[command.index("-cp") + 2] == MAIN_CLASS
    assert command[-2:] == ["--properties-file", str(tmp_path / "app.properties")]


def test_cli_prints_properties_with_this_interpreter() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devops_core.kcl.daemon", "--app-name", "agg", "--executable",
         "python -m aggregator", "--stream", "s1", "--property", "leaseAssignmentIntervalMillis=1000",
         "--print-properties"],
        capture_output=True, text=True, cwd=ROOT, check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    properties = parse(result.stdout)
    assert properties["executableName"] == f"{sys.executable} -m aggregator"
    assert properties["streamName"] == "s1"
    assert properties["leaseAssignmentIntervalMillis"] == "1000"


def test_run_daemon_returns_the_exit_code_and_forwards_sigterm(tmp_path: Path) -> None:
    """With a stand-in "java" (a shell script) that waits for SIGTERM, run_daemon in a child Python
    forwards our SIGTERM and reports the clean stop as 0."""
    fake_java = tmp_path / "java"
    fake_java.write_text("#!/bin/sh\ntrap 'exit 143' TERM\necho started >&2\nwhile :; do sleep 0.1; done\n")
    fake_java.chmod(0o755)
    script = (
        "import sys; from devops_core.kcl.daemon import DaemonConfig, run_daemon; "
        f"sys.exit(run_daemon(DaemonConfig(application_name='a', stream_name='s', executable='x'), "
        f"java={str(fake_java)!r}))"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    for line in child.stderr:
        if "started" in line:
            break
    else:
        raise AssertionError("the stand-in java never started")
    child.send_signal(signal.SIGTERM)
    assert child.wait(10) == 0


def test_a_sigterm_while_the_daemon_is_being_spawned_stops_it(tmp_path: Path) -> None:
    """Issue 12: a SIGTERM that arrived after the daemon was spawned but before run_daemon's handler
    was installed killed the parent and left the daemon running (an orphaned JVM). Here the stop is
    sent from inside the spawn, deterministically: it must be forwarded, and nothing left running."""
    fake_java = tmp_path / "java"
    fake_java.write_text("#!/bin/sh\ntrap 'exit 143' TERM\nwhile :; do sleep 0.1; done\n")
    fake_java.chmod(0o755)
    script = f"""
import os, signal, subprocess, sys
from devops_core.kcl import daemon

class Popen(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        print(f"spawned {{self.pid}}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)  # the stop lands right after the spawn

daemon.subprocess.Popen = Popen
config = daemon.DaemonConfig(application_name="a", stream_name="s", executable="x")
sys.exit(daemon.run_daemon(config, java={str(fake_java)!r}))
"""
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE, text=True, timeout=60, check=False
    )
    spawned = [line for line in child.stderr.splitlines() if line.startswith("spawned ")]
    assert spawned, child.stderr
    assert child.returncode == 0, child.stderr
    pid = int(spawned[0].split()[1])
    # run_daemon waited for it: the stand-in is gone (reaped), not orphaned to init.
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_aggregator_cli_passes_extra_kcl_properties() -> None:
    """``python -m aggregator --property`` reaches the daemon's properties, as the consumer's does
    (bench/chaos --driver daemon sets leaseAssignmentIntervalMillis on both applications)."""
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "--worker-id", "agg-w1", "--property",
         "leaseAssignmentIntervalMillis=1000", "--print-properties"],
        capture_output=True, text=True, cwd=ROOT, check=True,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )  # fmt: skip
    properties = parse(result.stdout)
    assert properties["leaseAssignmentIntervalMillis"] == "1000"
    assert properties["workerId"] == "agg-w1"
    assert properties["executableName"] == f"{sys.executable} -m aggregator.child"


def test_graceful_lease_handoff_is_off_unless_asked_for() -> None:
    """KCL 3.1.3's graceful handoff can strand a lease: the old owner keeps renewing it with
    checkpointOwner set and nobody reads the shard again (a KCL bug, found by bench/chaos --driver
    daemon; fixed upstream after 3.1.3). Off, the KCL moves a lease the 2.x way: old owner loses it."""
    properties = parse(render_properties(DaemonConfig(application_name="a", stream_name="s", executable="x")))
    assert properties["isGracefulLeaseHandoffEnabled"] == "false"
    config = DaemonConfig.from_settings(
        Settings(kcl_graceful_lease_handoff=True), application_name="a", executable="x", environ={}
    )
    assert parse(render_properties(config))["isGracefulLeaseHandoffEnabled"] == "true"
