"""Soak: drive the gateway at a steady rate for minutes and watch throughput, p99 and RSS over time.

The gateway runs as production runs it (``python -m producer``, INFO logs) against the emulator; a
paced open-loop client posts /process-event at ``--rate`` events/s from ``--concurrency`` connections.
Every ``--interval`` seconds it samples accepted events/s, p99 latency and the gateway's RSS
(VmRSS from /proc/<pid>/status). Verdict: RSS is flat when the average of the last third of the
samples after warm-up is within 10% of the first third's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp

from bench.common import AWS_ENV, percentile, progress, start_announcing, start_gateway

FLAT_TOLERANCE = 0.10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=180, help="seconds of load (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=400, help="target events/s (default: %(default)s)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="client connections (default: %(default)s)"
    )
    parser.add_argument("--interval", type=float, default=5, help="seconds per sample (default: %(default)s)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=15,
        help="seconds excluded from the RSS verdict (default: %(default)s)",
    )
    parser.add_argument(
        "--emulator-url", help="use this running emulator instead of starting one (AWS_* test credentials)"
    )
    return parser.parse_args(argv)


@dataclass
class Window:
    accepted: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass
class Sample:
    at: float
    events_per_s: float
    p99_ms: float
    errors: int
    rss_mb: float


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def drive(url: str, token: str, pid: int, args: argparse.Namespace) -> list[Sample]:
    """Open-loop pacing: a ticker releases ``rate`` sends per second; clients take them as they can."""
    headers = {"Authorization": f"Bearer {token}"}
    tickets: asyncio.Queue[None] = asyncio.Queue(maxsize=args.concurrency * 4)
    window = Window()
    samples: list[Sample] = []
    started = time.monotonic()
    stop_at = started + args.duration

    async def ticker() -> None:
        sent = 0
        while (now := time.monotonic()) < stop_at:
            due = int((now - started) * args.rate)
            while sent < due:
                if tickets.full():  # the gateway is behind: drop the tick, it shows as lower events/s
                    sent = due
                    break
                tickets.put_nowait(None)
                sent += 1
            await asyncio.sleep(0.005)

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            try:
                await asyncio.wait_for(tickets.get(), 0.5)
            except TimeoutError:
                continue
            i += 1
            body = {"repo": f"repo-{(number + i) % 16}", "event": "push", "metadata": {"soak": i}}
            t0 = time.perf_counter()
            try:
                async with session.post(f"{url}/process-event", json=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 202
            except aiohttp.ClientError:
                ok = False
            if ok:
                window.accepted += 1
                window.latencies.append(time.perf_counter() - t0)
            else:
                window.errors += 1

    async def sampler() -> None:
        nonlocal window
        last = time.monotonic()
        while time.monotonic() < stop_at:
            await asyncio.sleep(args.interval)
            now = time.monotonic()
            current, window = window, Window()
            sample = Sample(
                at=now - started,
                events_per_s=current.accepted / (now - last),
                p99_ms=percentile(current.latencies, 99) * 1000,
                errors=current.errors,
                rss_mb=rss_mb(pid),
            )
            last = now
            samples.append(sample)
            progress(
                f"t={sample.at:5.0f}s  {sample.events_per_s:6.0f} ev/s  p99 {sample.p99_ms:6.1f} ms  "
                f"errors {sample.errors}  rss {sample.rss_mb:6.1f} MB"
            )

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(ticker(), sampler(), *(client(session, n) for n in range(args.concurrency)))
    return samples


def verdict(samples: list[Sample], warmup: float) -> tuple[bool, float, float]:
    """(flat, first-third average MB, last-third average MB) over the samples after warm-up."""
    steady = [s.rss_mb for s in samples if s.at > warmup] or [s.rss_mb for s in samples]
    third = max(1, len(steady) // 3)
    first = sum(steady[:third]) / third
    last = sum(steady[-third:]) / third
    return last <= first * (1 + FLAT_TOLERANCE), first, last


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(AWS_ENV)
    from devops_core.settings import Settings
    from devstack.emulator import free_port
    from devstack.resources import provision

    emulator = None
    if args.emulator_url:
        os.environ["AWS_ENDPOINT_URL"] = args.emulator_url
    else:
        progress("starting emulator")
        emulator = start_announcing(["-m", "devstack.emulator", "--port", str(free_port())])
        os.environ["AWS_ENDPOINT_URL"] = emulator.url
    gateway = None
    try:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(devops_stream_name=f"soak-{suffix}", secret_store_name=f"soak-{suffix}")
        token = provision(settings, shard_count=4).token
        gateway, url = start_gateway(settings.devops_stream_name, settings.secret_store_name)
        progress(
            f"soak: {args.rate:.0f} events/s target, {args.concurrency} connections, "
            f"{args.duration:.0f} s, sample every {args.interval:.0f} s, gateway pid {gateway.pid}"
        )
        samples = asyncio.run(drive(url, token, gateway.pid, args))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        if emulator is not None:
            emulator.stop()

    if not samples:
        print("no samples: --duration must exceed --interval", file=sys.stderr)
        return 2
    flat, first, last = verdict(samples, args.warmup)
    total_errors = sum(s.errors for s in samples)
    steady = [s for s in samples if s.at > args.warmup] or samples
    print(f"{'t (s)':>6} {'events/s':>9} {'p99 (ms)':>9} {'errors':>7} {'RSS (MB)':>9}")
    for s in samples:
        print(f"{s.at:6.0f} {s.events_per_s:9.0f} {s.p99_ms:9.1f} {s.errors:7d} {s.rss_mb:9.1f}")
    summary = {
        "duration_s": args.duration,
        "target_events_per_s": args.rate,
        "events_per_s": round(sum(s.events_per_s for s in steady) / len(steady), 1),
        "p99_ms_worst": round(max(s.p99_ms for s in steady), 1),
        "errors": total_errors,
        "rss_mb_first_third": round(first, 1),
        "rss_mb_last_third": round(last, 1),
        "rss_mb_peak": round(max(s.rss_mb for s in samples), 1),
        "rss_flat": flat,
    }
    print(
        f"verdict: RSS {'flat' if flat else 'GREW'} ({first:.1f} MB -> {last:.1f} MB after warm-up, "
        f"tolerance {FLAT_TOLERANCE:.0%}); errors {total_errors}"
    )
    print("summary: " + json.dumps(summary))
    return 0 if flat and total_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
