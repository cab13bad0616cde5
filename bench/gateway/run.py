"""Gateway throughput, CPU and latency, each beside its baseline measured in the same run.

  1. (a) a bare aiohttp handler that reads the body and answers 202 with aiohttp's defaults
     (bench/gateway/bare_app.py), against the gateway with Kinesis replaced by an in-memory sink
     (bench/gateway/memory_gateway.py, INFO logs as in production): the gateway with all its work
     (auth, rate limit, validation, batching, logging) must be at least as fast as (a), spend at most
     100 µs of CPU per accepted event, and answer 202 with a p99 below 50 ms at 64 clients.
  2. (b) the seed service's shape, a synchronous Flask app under gunicorn doing one Kinesis PutRecord
     per request (bench/gateway/seed_flask_app.py), against ``python -m producer``, both writing into
     the same emulator: the gateway at least 20x (b) on POST /process-event.
  3. The emulator's own PutRecords ceiling (batches of 500 of the gateway's records, 4 calls in flight,
     no HTTP in front) against the gateway's POST /events (batches of 100, from as many clients as
     keep the same 2,000 records outstanding): within 10% of the ceiling.
  4. ``python -m producer.multiworker`` (the container's entry point) with GATEWAY_WORKERS=2 against 1
     worker, into the same emulator: at least 1.7x.

Each pair alternates ``--rounds`` rounds (after a warm-up) and compares medians, so a slow minute
of a shared machine hits both alike; server CPU is user+sys from /proc (children included). One
load generator (raw keep-alive HTTP/1.1 connections on uvloop, bench/common.py's http_load) drives
every server the same way. Prints every figure, then one PASS/FAIL line per target; exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvloop

from bench.common import (
    AWS_ENV,
    UNLIMITED_RATE,
    LoadRun,
    cpu_seconds,
    gateway_records,
    http_load,
    http_request,
    progress,
    start_announcing,
    start_gateway,
    start_http_server,
    stop_process,
)

HERE = Path(__file__).resolve().parent
MIN_RATIO_TO_BARE = 1.0
MAX_CPU_US_PER_EVENT = 100.0
MAX_P99_MS = 50.0
MIN_RATIO_TO_SEED = 20.0
MIN_SHARE_OF_CEILING = 0.90
MIN_WORKER_SCALING = 1.7
GUNICORN = [sys.executable, "-m", "gunicorn", "--log-level", "warning"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=20_000, help="events per measured round (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument(
        "--seed-events",
        type=int,
        default=2_000,
        help="events per round of baseline (b), which is slow (default: %(default)s)",
    )
    parser.add_argument(
        "--seed-workers",
        type=int,
        default=2 * (os.cpu_count() or 1) + 1,
        help="gunicorn sync workers for baseline (b); default 2 x cores + 1, gunicorn's advice "
        "(%(default)s here)",
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="events per POST /events request (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per pair; medians compared (default: 3)"
    )
    return parser.parse_args()


def process_event_requests(token: str, events: int) -> list[bytes]:
    return [
        http_request(
            "/process-event",
            token,
            json.dumps({"repo": f"repo-{i % 16}", "event": "push", "metadata": "bench"}).encode(),
        )
        for i in range(events)
    ]


def events_requests(token: str, events: int, batch: int) -> list[bytes]:
    return [
        http_request(
            "/events",
            token,
            json.dumps([{"repo": f"repo-{j % 16}", "event": "deploy"} for j in range(batch)]).encode(),
        )
        for _ in range(events // batch)
    ]


@dataclass
class Contestant:
    """One thing under test, measured in several rounds; its rate is the median of the rounds."""

    name: str
    measure: Callable[[], LoadRun]
    pid: int | None = None  # server process whose CPU is counted (None: no server)
    events_per_request: int = 1
    warmup: Callable[[], object] | None = None
    runs: list[LoadRun] = field(default_factory=list)
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Events per second, median of the rounds."""
        return statistics.median(run.rate for run in self.runs) * self.events_per_request

    @property
    def median_run(self) -> LoadRun:
        return sorted(self.runs, key=lambda run: run.rate)[len(self.runs) // 2]

    @property
    def cpu_us(self) -> float:
        events = sum(run.requests for run in self.runs) * self.events_per_request
        return self.cpu / events * 1e6 if events else float("nan")

    def round(self) -> None:
        before = cpu_seconds(self.pid) if self.pid else 0.0
        run = self.measure()
        if self.pid:
            self.cpu += cpu_seconds(self.pid) - before
        refused = {status: n for status, n in run.statuses.items() if status != 202}
        if refused:
            raise RuntimeError(f"{self.name}: answers other than 202: {refused}")
        self.runs.append(run)


def alternate(pair: list[Contestant], rounds: int) -> None:
    """Round after round, each contestant in turn (after a warm-up), so that a slow minute of a
    shared machine hits all of them alike."""
    for contestant in pair:
        if contestant.warmup is not None:
            contestant.warmup()
    for number in range(1, rounds + 1):
        progress(f"round {number}/{rounds}: " + ", then ".join(c.name for c in pair))
        for contestant in pair:
            contestant.round()


def load(url: str, requests: list[bytes], concurrency: int) -> Callable[[], LoadRun]:
    return lambda: uvloop.run(http_load(url, requests, concurrency))


CEILING_IN_FLIGHT = 4  # PutRecords calls of 500 records in flight when measuring the ceiling


def put_records_ceiling(
    stream: str, batches: int, in_flight: int = CEILING_IN_FLIGHT
) -> Callable[[], LoadRun]:
    """The emulator's PutRecords alone: ``batches`` calls of 500 gateway-shaped records, ``in_flight``
    at a time, through the gateway's own write client (``producer.app.kinesis_writer``)."""
    from producer.app import kinesis_writer

    records = [{"Data": r.data, "PartitionKey": r.repo} for r in gateway_records(500)]

    async def run() -> LoadRun:
        async with kinesis_writer() as kinesis:
            remaining = iter(range(batches))
            latencies: list[float] = []

            async def caller() -> None:
                for _ in remaining:
                    started = time.perf_counter()
                    response = await kinesis.put_records(StreamName=stream, Records=records)
                    if response.get("FailedRecordCount"):
                        raise RuntimeError("the emulator refused records")
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(in_flight)))
            return LoadRun(batches, time.perf_counter() - started, latencies, {202: batches})

    return lambda: uvloop.run(run())


@dataclass
class Target:
    what: str
    value: str
    target: str
    met: bool


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
    quick = args.events // 10

    def serve(argv: list[str], port_option: str = "--port", **env: str) -> tuple[int, str]:
        port = free_port()
        address = str(port) if port_option == "--port" else f"127.0.0.1:{port}"
        process, url = start_http_server([*argv, port_option, address], port, **env)
        servers.append(process)
        return process.pid, url

    def stream(shards: int = 4) -> tuple[Settings, str]:
        """A fresh stream (and secret holding a token) on the emulator."""
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(devops_stream_name=f"bench-{suffix}", secret_store_name=f"bench-{suffix}")
        return settings, provision(settings, shard_count=shards).token

    def stop_all() -> None:
        while servers:
            stop_process(servers.pop())

    try:
        # 1. (a) bare aiohttp against the gateway with an in-memory sink.
        bare_pid, bare_url = serve([sys.executable, str(HERE / "bare_app.py")])
        memory_pid, memory_url = serve(
            [sys.executable, str(HERE / "memory_gateway.py")],
            DEVOPS_EVENTS_SECRET_TOKEN=token,
            GITHUB_WEBHOOK_SECRET=secrets.token_hex(16),
            LOG_LEVEL="INFO",
            **UNLIMITED_RATE,
        )
        requests = process_event_requests(token, args.events)
        bare = Contestant(
            "(a) bare aiohttp",
            load(bare_url, requests, args.concurrency),
            bare_pid,
            warmup=load(bare_url, requests[:quick], args.concurrency),
        )
        memory = Contestant(
            "gateway, in-memory sink",
            load(memory_url, requests, args.concurrency),
            memory_pid,
            warmup=load(memory_url, requests[:quick], args.concurrency),
        )
        alternate([bare, memory], args.rounds)
        stop_all()

        # 2. (b) the seed's Flask shape against python -m producer, into the emulator.
        seed_settings, _ = stream()
        seed_pid, seed_url = serve(
            [*GUNICORN, "--workers", str(args.seed_workers), "bench.gateway.seed_flask_app:app"],
            port_option="--bind",
            DEVOPS_STREAM_NAME=seed_settings.devops_stream_name,
            DEVOPS_EVENTS_SECRET_TOKEN=token,
        )
        gateway_settings, gateway_token = stream()
        gateway_process, gateway_url = start_gateway(
            gateway_settings.devops_stream_name, gateway_settings.secret_store_name, LOG_LEVEL="INFO"
        )
        servers.append(gateway_process)
        seed_requests = process_event_requests(token, args.seed_events)
        gateway_requests = process_event_requests(gateway_token, args.events)
        seed = Contestant(
            "(b) Flask + gunicorn, PutRecord per request",
            load(seed_url, seed_requests, args.concurrency),
            seed_pid,
            warmup=load(seed_url, seed_requests[: args.seed_events // 10], args.concurrency),
        )
        gateway = Contestant(
            "gateway into the emulator",
            load(gateway_url, gateway_requests, args.concurrency),
            gateway_process.pid,
            warmup=load(gateway_url, gateway_requests[:quick], args.concurrency),
        )
        alternate([seed, gateway], args.rounds)

        # 3. The emulator's PutRecords ceiling against POST /events (same gateway process).
        ceiling_settings, _ = stream()
        batches = max(1, args.events // 500)
        ceiling = Contestant(
            "emulator PutRecords alone (500/call, 4 in flight)",
            put_records_ceiling(ceiling_settings.devops_stream_name, batches),
            events_per_request=500,
        )
        batch_requests = events_requests(gateway_token, args.events, args.batch)
        batched = Contestant(
            f"gateway POST /events (x{args.batch})",
            # As many records outstanding as the ceiling has (4 calls x 500): 20 clients of 100 events.
            load(gateway_url, batch_requests, max(1, CEILING_IN_FLIGHT * 500 // args.batch)),
            gateway_process.pid,
            events_per_request=args.batch,
        )
        alternate([ceiling, batched], args.rounds)
        stop_all()

        # 4. The container's entry point with 2 workers against 1, into the emulator.
        workers: list[Contestant] = []
        for count in (1, 2):
            settings, worker_token = stream()
            pid, url = serve(
                [sys.executable, "-m", "producer.multiworker", "--workers", str(count)],
                DEVOPS_STREAM_NAME=settings.devops_stream_name,
                SECRET_STORE_NAME=settings.secret_store_name,
                LOG_LEVEL="INFO",
                **UNLIMITED_RATE,
            )
            worker_requests = process_event_requests(worker_token, args.events)
            workers.append(
                Contestant(
                    f"multiworker, GATEWAY_WORKERS={count}",
                    load(url, worker_requests, args.concurrency),
                    pid,
                    warmup=load(url, worker_requests[:quick], args.concurrency),
                )
            )
        alternate(workers, args.rounds)
    finally:
        stop_all()
        emulator.stop()

    everything = [bare, memory, seed, gateway, ceiling, batched, *workers]
    heading = f"median of {args.rounds} rounds"
    print(f"{heading:54} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/ev':>9}")
    for c in everything:
        run = c.median_run
        cpu = f"{c.cpu_us:9.0f}" if c.pid else f"{'':9}"
        print(f"{c.name:54} {c.rate:9.0f} {run.p(50):7.1f} {run.p(99):7.1f} {cpu}")
        print(f"  rounds: {', '.join(f'{r.rate * c.events_per_request:.0f}' for r in c.runs)} events/s")
    to_bare = memory.rate / bare.rate
    to_seed = gateway.rate / seed.rate
    of_ceiling = batched.rate / ceiling.rate
    scaling = workers[1].rate / workers[0].rate
    targets = [
        Target(
            "in-memory gateway / (a)",
            f"{to_bare:.2f}x",
            f">= {MIN_RATIO_TO_BARE:.1f}x",
            to_bare >= MIN_RATIO_TO_BARE,
        ),
        Target(
            "in-memory gateway CPU per accepted event",
            f"{memory.cpu_us:.0f} us",
            f"<= {MAX_CPU_US_PER_EVENT:.0f} us",
            memory.cpu_us <= MAX_CPU_US_PER_EVENT,
        ),
        Target(
            f"in-memory gateway p99 at {args.concurrency} clients",
            f"{memory.median_run.p(99):.1f} ms",
            f"< {MAX_P99_MS:.0f} ms",
            memory.median_run.p(99) < MAX_P99_MS,
        ),
        Target(
            "gateway into the emulator / (b)",
            f"{to_seed:.1f}x",
            f">= {MIN_RATIO_TO_SEED:.0f}x",
            to_seed >= MIN_RATIO_TO_SEED,
        ),
        Target(
            f"POST /events / PutRecords ceiling ({ceiling.rate:.0f} records/s)",
            f"{of_ceiling:.0%}",
            f">= {MIN_SHARE_OF_CEILING:.0%}",
            of_ceiling >= MIN_SHARE_OF_CEILING,
        ),
        Target(
            "GATEWAY_WORKERS=2 / 1",
            f"{scaling:.2f}x",
            f">= {MIN_WORKER_SCALING}x",
            scaling >= MIN_WORKER_SCALING,
        ),
    ]
    for t in targets:
        print(f"target: {t.what:58} {t.value:>9}  {t.target:9} {'PASS' if t.met else 'FAIL'}")
    passed = all(t.met for t in targets)
    print(
        f"summary: in-memory {memory.rate:.0f} ev/s = {to_bare:.2f}x (a) {bare.rate:.0f} ev/s, "
        f"{memory.cpu_us:.0f} us/event, p99 {memory.median_run.p(99):.1f} ms; "
        f"emulator {gateway.rate:.0f} ev/s = {to_seed:.1f}x (b) {seed.rate:.0f} ev/s; "
        f"/events {batched.rate:.0f} ev/s = {of_ceiling:.0%} of PutRecords {ceiling.rate:.0f} rec/s; "
        f"workers 2/1 {scaling:.2f}x; load average {os.getloadavg()[0]:.1f}; {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
