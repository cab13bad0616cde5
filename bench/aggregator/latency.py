"""Benchmark: how long after the gateway's 202 a deploy's calc_* metric record is in the raw-event
store, on `make run` (python -m devstack: the embedded emulator, the gateway, the in-process consumer
and aggregator). Target: p99 under 2 s.

Each deploy goes to a repo of its own, so the repo's calc_deployment_freq event is caused by that
deploy alone and its event_id is known in advance (aggregator.service.metric_event_id). The consumer
logs every event_id it wrote, with the time of the write ("events written to timestream"): the
latency is that time minus the 202's, both from this machine's clock (reading the store itself, a
JSON dump of the whole emulator, would load the machine it measures). Sends are paced (one every
--interval seconds), as CI jobs report deploys, not as a load test.

    .venv/bin/python bench/aggregator/latency.py           # --events 60 --interval 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aggregator.service import metric_event_id  # noqa: E402
from bench.common import AWS_ENV, percentile, progress  # noqa: E402
from devops_core.events import EventType  # noqa: E402
from devstack.emulator import free_port  # noqa: E402

TARGET_P99_S = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=60, help="deploys to time (default: %(default)s)")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between two deploys (default: %(default)s)"
    )
    return parser.parse_args(argv)


def start_stack(log: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    """`make run` on free ports, its JSON logs into ``log``; returns it, the gateway URL, the emulator
    URL and the token."""
    gateway_port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "DEVOPS_EVENTS"))}
    argv = ["--gateway-port", str(gateway_port), "--emulator-port", str(emulator_port)]
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            start_new_session=True,
        )
    assert process.stdout is not None
    token = None
    for line in process.stdout:
        if match := re.search(r"export DEVOPS_EVENTS_SECRET_TOKEN=(\S+)", line):
            token = match.group(1)
        if "Ctrl-C" in line:
            break
    if token is None:
        raise RuntimeError("python -m devstack did not print a token")
    return process, f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{emulator_port}", token


def written(log: Path, offset: int) -> tuple[dict[str, float], int]:
    """event_id -> when the consumer wrote it to the store (epoch seconds), from the log's new lines."""
    found: dict[str, float] = {}
    with log.open() as lines:
        lines.seek(offset)
        while line := lines.readline():
            if not line.endswith("\n"):  # half-written: read it next time
                break
            offset = lines.tell()
            if '"events written to timestream"' not in line:
                continue
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["ts"]).timestamp()
            for event_id in entry.get("event_ids", []):
                found.setdefault(event_id, at)
    return found, offset


def post(gateway: str, token: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{gateway}/process-event",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return dict(json.load(response))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(AWS_ENV)
    log = Path(tempfile.mkdtemp(prefix="latency-")) / "make-run.log"
    process, gateway, emulator, token = start_stack(log)
    offset = 0
    try:
        progress(f"make run up: gateway {gateway}, emulator {emulator}")
        pending: dict[str, float] = {}  # expected calc event_id -> when the 202 came
        latencies: list[float] = []
        next_send = time.monotonic()
        sent = 0
        deadline = None
        while sent < args.events or pending:
            now = time.monotonic()
            if sent < args.events and now >= next_send:
                repo = f"latency-{uuid.uuid4().hex[:8]}"
                accepted = post(gateway, token, {"repo": repo, "event": "deploy"})
                answered = time.time()
                cause = f"event:{accepted['event_id']}"
                pending[metric_event_id(EventType.CALC_DEPLOYMENT_FREQ, repo, cause)] = answered
                sent += 1
                next_send = time.monotonic() + args.interval
                if sent == args.events:
                    deadline = time.monotonic() + 30
            found, offset = written(log, offset)
            for event_id in set(found) & set(pending):
                latencies.append(found[event_id] - pending.pop(event_id))
            if deadline and time.monotonic() > deadline:
                break
            time.sleep(0.02)
        missing = len(pending)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(f"deploys: {sent}; calc_deployment_freq records found: {len(latencies)}; missing: {missing}")
        print(
            f"202 -> calc record in the store: p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(latencies):.3f} s"
        )
        verdict = "PASS" if p99 < TARGET_P99_S and not missing else "FAIL"
        target = f"target < {TARGET_P99_S:g} s"
        print(f"SUMMARY aggregator latency p99 {p99:.2f} s ({target}), {missing} missing: {verdict}")
        return 0 if verdict == "PASS" else 1
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
