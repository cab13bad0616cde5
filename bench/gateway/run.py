"""Gateway throughput and latency, beside two baselines measured in the same run.

  (a) a bare aiohttp handler that reads the body and answers 202 (bench/gateway/bare_app.py),
      against the gateway with Kinesis replaced by an in-memory sink (bench/gateway/memory_gateway.py):
      what the gateway's own work (auth, rate limit, validation, batching) costs.
      Target: the gateway at most 30% below (a).
  (b) the seed service's shape: a synchronous Flask app under gunicorn doing one Kinesis PutRecord
      per request (bench/gateway/seed_flask_app.py), against the real gateway, both writing into the
      same emulator. Target: the gateway at least 10x (b).

Every server is a separate process on 127.0.0.1; one load generator (aiohttp, N concurrent
keep-alive clients posting /process-event) drives them all the same way. Also prints the
gateway's /events rate (batches of 100), 202 latency p50/p99 and the gateway's CPU per event.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp

from bench.common import (
    AWS_ENV,
    UNLIMITED_RATE,
    percentile,
    progress,
    start_announcing,
    start_gateway,
    start_http_server,
    stop_process,
)

HERE = Path(__file__).resolve().parent
MIN_RATIO_TO_BARE = 0.70  # "at most 30% below (a)"
MIN_RATIO_TO_SEED = 10.0  # "at least 10x (b)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=10_000, help="events per measured run (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument(
        "--seed-events",
        type=int,
        default=2_000,
        help="events for baseline (b), which is slow (default: %(default)s)",
    )
    parser.add_argument(
        "--seed-workers",
        type=int,
        default=2 * (os.cpu_count() or 1) + 1,
        help="gunicorn sync workers for baseline (b); default 2 x cores + 1, gunicorn's advice "
        "(%(default)s here)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="(a) and the in-memory gateway alternate this many rounds; medians compared "
        "(default: %(default)s)",
    )
    return parser.parse_args()


@dataclass
class Run:
    rate: float
    latencies: list[float]

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


async def drive(url: str, token: str, events: int, concurrency: int) -> Run:
    """``events`` POST /process-event from ``concurrency`` keep-alive clients; every answer must be 202."""
    latencies: list[float] = []
    remaining = iter(range(events))
    headers = {"Authorization": f"Bearer {token}"}
    failures: dict[int, int] = {}

    async def client(session: aiohttp.ClientSession) -> None:
        for i in remaining:
            body = {"repo": f"repo-{i % 16}", "event": "push", "metadata": "bench"}
            started = time.perf_counter()
            async with session.post(f"{url}/process-event", json=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    failures[response.status] = failures.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{url}: answers other than 202: {failures}")
    return Run(events / elapsed, latencies)


async def drive_batch_endpoint(url: str, token: str, events: int, batch: int = 100) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    bodies = [
        [{"repo": f"repo-{j % 16}", "event": "deploy"} for j in range(batch)] for _ in range(events // batch)
    ]
    async with aiohttp.ClientSession() as session:

        async def send(body: list[dict]) -> None:
            async with session.post(f"{url}/events", json=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"batch answered {response.status}")

        started = time.perf_counter()
        for i in range(0, len(bodies), 8):
            await asyncio.gather(*(send(b) for b in bodies[i : i + 8]))
        return events / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children alive now (gunicorn's workers), from
    Linux /proc: robust to a machine shared with others."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


@dataclass
class Contestant:
    """One server under test, measured in several rounds; its rate is the median of the rounds."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    token: str
    events: int
    runs: list[Run] = field(default_factory=list)
    cpu: float = 0.0
    requests: int = 0

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    @property
    def median_run(self) -> Run:
        return sorted(self.runs, key=lambda run: run.rate)[len(self.runs) // 2]

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.requests * 1e6


def alternate(contestants: list[Contestant], rounds: int, concurrency: int) -> None:
    """Round after round, each contestant in turn (after a warm-up), so that a slow minute of a
    shared machine hits all of them alike."""
    for contestant in contestants:
        asyncio.run(drive(contestant.url, contestant.token, min(500, contestant.events), concurrency))
    for round_number in range(1, rounds + 1):
        progress(f"round {round_number}/{rounds}: " + ", then ".join(c.name for c in contestants))
        for contestant in contestants:
            before = cpu_seconds(contestant.process.pid)
            contestant.runs.append(
                asyncio.run(drive(contestant.url, contestant.token, contestant.events, concurrency))
            )
            contestant.cpu += cpu_seconds(contestant.process.pid) - before
            contestant.requests += contestant.events


def main() -> int:
    args = parse_args()
    os.environ.update(AWS_ENV)
    from devops_core.settings import Settings
    from devstack.emulator import free_port
    from devstack.resources import provision

    progress("starting emulator")
    emulator = start_announcing(["-m", "devstack.emulator", "--port", str(free_port())])
    os.environ["AWS_ENDPOINT_URL"] = emulator.url
    token = secrets.token_urlsafe(24)
    servers: list[subprocess.Popen[bytes]] = []

    def serve(
        argv: list[str], port_option: str = "--port", **env: str
    ) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        address = str(port) if port_option == "--port" else f"127.0.0.1:{port}"
        process, url = start_http_server([*argv, port_option, address], port, **env)
        servers.append(process)
        return process, url

    try:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(devops_stream_name=f"bench-{suffix}", secret_store_name=f"bench-{suffix}")
        resources = provision(settings, shard_count=4)
        seed_stream = f"bench-seed-{suffix}"
        provision(settings.model_copy(update={"devops_stream_name": seed_stream}), shard_count=4)

        bare = Contestant(
            "(a) bare aiohttp", *serve([sys.executable, str(HERE / "bare_app.py")]), token, args.events
        )
        memory = Contestant(
            "gateway, in-memory sink",
            *serve(
                [sys.executable, str(HERE / "memory_gateway.py")],
                DEVOPS_EVENTS_SECRET_TOKEN=token,
                GITHUB_WEBHOOK_SECRET=secrets.token_hex(16),
                LOG_LEVEL="WARNING",
                **UNLIMITED_RATE,
            ),
            token,
            args.events,
        )
        alternate([bare, memory], args.rounds, args.concurrency)
        stop_process(bare.process)
        stop_process(memory.process)

        gunicorn = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(args.seed_workers),
            "--log-level",
            "warning",
        ]
        seed_process, seed_url = serve(
            [*gunicorn, "bench.gateway.seed_flask_app:app"],
            port_option="--bind",
            DEVOPS_STREAM_NAME=seed_stream,
            DEVOPS_EVENTS_SECRET_TOKEN=token,
        )
        seed = Contestant("(b) Flask + gunicorn", seed_process, seed_url, token, args.seed_events)
        gateway_process, url = start_gateway(
            settings.devops_stream_name, settings.secret_store_name, LOG_LEVEL="WARNING"
        )
        servers.append(gateway_process)
        gateway = Contestant("gateway into Kinesis", gateway_process, url, resources.token, args.events)
        alternate([seed, gateway], args.rounds, args.concurrency)
        stop_process(seed.process)
        progress(f"gateway /events: {args.events} events in batches of 100")
        batch_rate = asyncio.run(drive_batch_endpoint(url, resources.token, args.events))
    finally:
        for process in servers:
            stop_process(process)
        emulator.stop()

    to_bare = memory.rate / bare.rate
    to_seed = gateway.rate / seed.rate
    passed = to_bare >= MIN_RATIO_TO_BARE and to_seed >= MIN_RATIO_TO_SEED

    def row(name: str, rate: float, run: Run | None = None, note: str = "") -> None:
        latency = f"{run.p50_ms:7.1f} {run.p99_ms:7.1f}" if run else f"{'':7} {'':7}"
        print(f"{name:46} {rate:9.0f} {latency}  {note}".rstrip())

    print(f"{f'POST /process-event, {args.concurrency} clients, median of {args.rounds}':46} "
          f"{'events/s':>9} {'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
    row("(a) bare aiohttp handler", bare.rate, bare.median_run)
    row("gateway, in-memory sink", memory.rate, memory.median_run, f"{to_bare:.2f}x (a), target >= 0.70x")
    row(f"(b) Flask + gunicorn ({args.seed_workers} workers), PutRecord each", seed.rate, seed.median_run)
    row("gateway, emulator Kinesis", gateway.rate, gateway.median_run, f"{to_seed:.1f}x (b), target >= 10x")
    row("gateway, emulator Kinesis, POST /events x100", batch_rate, note=f"{batch_rate / seed.rate:.1f}x (b)")
    for contestant in (bare, memory, seed, gateway):
        rounds = ", ".join(f"{run.rate:.0f}" for run in contestant.runs)
        print(f"  {contestant.name}: rounds {rounds} events/s; server CPU {contestant.cpu_us:.0f} us/request")
    print(
        f"summary: gateway {gateway.rate:.0f} ev/s = {to_seed:.1f}x (b) {seed.rate:.0f} ev/s; "
        f"in-memory {memory.rate:.0f} ev/s = {to_bare:.2f}x (a) {bare.rate:.0f} ev/s; "
        f"/events {batch_rate:.0f} ev/s; {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
