"""Where the gateway's CPU goes: cProfile over the in-memory gateway while it serves a load run.

    .venv/bin/python bench/gateway/profile.py                       # this checkout
    .venv/bin/python bench/gateway/profile.py --source /tmp/old     # another checkout (before/after)

Starts ``bench/gateway/memory_gateway.py`` of ``--source`` under ``python -m cProfile``, sends
``--events`` ``POST /process-event`` requests over ``--concurrency`` keep-alive connections (the same
load generator as bench/gateway/run.py), stops the gateway with SIGTERM (it drains and exits, and
cProfile writes its statistics), and prints the functions with the largest own time, each as a share
of the whole profile. cProfile slows every Python call alike, so shares are comparable between runs
and checkouts; absolute times are not (bench/gateway/run.py measures those).
"""

from __future__ import annotations

import argparse
import os
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import ROOT, UNLIMITED_RATE, http_load, progress, wait_http
from bench.gateway.run import process_event_requests
from devstack.emulator import free_port


def profile(source: Path, events: int, concurrency: int, top: int) -> int:
    token = secrets.token_hex(16)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "gateway.prof"
        env = {
            **os.environ,
            **UNLIMITED_RATE,
            "DEVOPS_EVENTS_SECRET_TOKEN": token,
            "GITHUB_WEBHOOK_SECRET": secrets.token_hex(16),
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(source),
        }
        command = [sys.executable, "-m", "cProfile", "-o", str(output)]
        command += [str(source / "bench/gateway/memory_gateway.py"), "--port", str(port)]
        process = subprocess.Popen(command, cwd=source, env=env, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            progress(f"profiling {source}: {events} events, {concurrency} clients")
            run = uvloop.run(
                http_load(f"http://127.0.0.1:{port}", process_event_requests(token, events), concurrency)
            )
            if set(run.statuses) != {202}:
                print(f"answers other than 202: {run.statuses}", file=sys.stderr)
                return 1
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        stats = pstats.Stats(str(output))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values())  # own time of every function
    rows = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    print(
        f"{source}: {events} events, profile total {total:.2f} s own time, "
        f"{total / events * 1e6:.0f} µs per event"
    )
    print(f"{'own %':>6} {'µs/event':>9} {'calls/event':>11}  function")
    for (filename, line, name), (_, calls, own, _cumulative, _callers) in rows:
        where = filename.replace(str(source) + "/", "").replace(sys.prefix, "<venv>")
        print(
            f"{own / total * 100:6.1f} {own / events * 1e6:9.1f} {calls / events:11.2f}  "
            f"{name} ({where}:{line})"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="checkout whose gateway is profiled (default: this one)"
    )
    parser.add_argument(
        "--events", type=int, default=20_000, help="POST /process-event requests (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument(
        "--top", type=int, default=25, help="functions listed, by own time (default: %(default)s)"
    )
    args = parser.parse_args()
    return profile(args.source.resolve(), args.events, args.concurrency, args.top)


if __name__ == "__main__":
    raise SystemExit(main())
