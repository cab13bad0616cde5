"""The real KCL MultiLangDaemon (Java, KCL 3.x) against the moto emulator (served over h2c + HTTP/1.1
by hypercorn), driven through our CLI: all records processed, checkpoints in the lease table, a
graceful SIGTERM stop that lets processors checkpoint, and a restart that resumes after the
checkpoint. One daemon start on a new lease table (10-60 s: the KCL waits a random 1-30 s before it
syncs shards into an empty table) plus one restart."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.kcl.kcl_recording_processor import read_events
from tests.kcl.kcl_test_support import leases, make_stream, put, records, wait_for
from tests.support import ROOT, unique_settings

pytestmark = [pytest.mark.kcl_daemon, pytest.mark.timeout(420)]

PROCESSOR = Path(__file__).with_name("kcl_recording_processor.py")


def start_daemon(app: str, stream: str, output: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RECORDING_OUTPUT": str(output),
        "DEVOPS_STREAM_NAME": stream,
        # Short KCL timings so a test run takes seconds, not minutes, after the start-up.
        "KCL_SHARD_SYNC_INTERVAL_MILLIS": "1000",
        "KCL_FAILOVER_TIME_MILLIS": "5000",
        "KCL_IDLE_TIME_BETWEEN_READS_MILLIS": "200",
    }
    command = [
        sys.executable,
        "-m",
        "devops_core.kcl.daemon",
        "--app-name",
        app,
        "--executable",
        f"python {PROCESSOR}",
        # The same worker id on restart: the KCL takes its own leases back at once (a new random id
        # would wait until the old worker's metrics go stale, about a minute).
        "--worker-id",
        f"{app}-worker",
        "--property",
        "leaseAssignmentIntervalMillis=1000",
    ]
    with log.open("ab") as sink:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=sink, stderr=sink)


def stop_daemon(daemon: subprocess.Popen[bytes]) -> int:
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        raise


def run_until(app: str, stream: str, output: Path, log: Path, expected: int) -> tuple[float, int]:
    started = time.monotonic()
    daemon = start_daemon(app, stream, output, log)
    try:
        wait_for(lambda: len(records(output)) >= expected, timeout=240, interval=0.5)
        took = time.monotonic() - started
        # Let the daemon finish writing the checkpoint that follows the last batch.
        wait_for(lambda: len(checkpoint_events(output)) >= 2, timeout=30, interval=0.2)
    except AssertionError:
        sys.stderr.write(log.read_text()[-5000:])
        raise
    finally:
        code = stop_daemon(daemon)
    return took, code


def checkpoint_events(output: Path) -> list[dict[str, object]]:
    return [e for e in read_events(output) if e["event"] == "checkpoint" and e["ok"]]


def test_daemon_processes_checkpoints_and_resumes_after_restart(emulator: str, tmp_path: Path) -> None:
    assert shutil.which("java"), "the KCL MultiLangDaemon needs java on PATH"
    app = unique_settings().consumer_application_name
    stream = make_stream(2)
    output, log = tmp_path / "records.jsonl", tmp_path / "daemon.log"
    first = [f"first-{i}" for i in range(120)]
    put(stream, first)

    took, code = run_until(app, stream, output, log, len(first))
    print(f"daemon: first start to all {len(first)} records: {took:.1f}s")
    assert code == 0, "SIGTERM forwarded, graceful shutdown, clean exit"
    seen = records(output)
    assert sorted(r["data"] for r in seen) == sorted(first)
    last_by_shard = {r["shard"]: r["seq"] for r in seen}
    assert len(last_by_shard) == 2
    table = leases(app)
    assert {shard: table[shard]["checkpoint"]["S"] for shard in last_by_shard} == last_by_shard
    shutdowns = [e for e in read_events(output) if e["event"] == "shutdown_requested"]
    assert sorted(e["shard"] for e in shutdowns) == sorted(last_by_shard)
    assert all(e["ok"] for e in shutdowns), "processors could checkpoint during the graceful stop"

    second = [f"second-{i}" for i in range(60)]
    put(stream, second)
    events_before = len(read_events(output))
    took, code = run_until(app, stream, output, log, len(first) + len(second))
    print(f"daemon: restart to all {len(second)} new records: {took:.1f}s")
    assert code == 0

    counts = Counter(r["data"] for r in records(output))
    assert set(counts) == set(first) | set(second)
    assert max(counts.values()) == 1, "nothing before the checkpoint was processed again"
    restarted_inits = [e for e in read_events(output)[events_before:] if e["event"] == "initialize"]
    assert {e["shard"]: e["seq"] for e in restarted_inits} == last_by_shard
