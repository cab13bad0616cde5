"""Gateway throughput and latency against the emulator, beside an unbatched baseline.

Baseline (same run, same emulator): the seed service's approach, one Kinesis PutRecord per event,
driven directly with boto3 from as many threads as the gateway has concurrent clients — no HTTP
hop at all, so it is a generous baseline. Ours: concurrent HTTP clients posting to the gateway,
which micro-batches into PutRecords. Prints events/s, the ratio, and 202 latency p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp

from bench.common import AWS_ENV, percentile, progress, start_announcing, start_gateway


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
        "--baseline-events",
        type=int,
        default=3_000,
        help="events for the PutRecord baseline (default: %(default)s)",
    )
    return parser.parse_args()


def baseline_put_record(stream: str, events: int, threads: int) -> float:
    from devops_core.aws import boto_client

    client = boto_client("kinesis")
    data = b'{"schema":1,"event":"push","repo":"bench"}'

    def put(i: int) -> None:
        client.put_record(StreamName=stream, Data=data, PartitionKey=f"repo-{i % 16}")

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(events)))
    return events / (time.perf_counter() - started)


async def drive_gateway(url: str, token: str, events: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)
    headers = {"Authorization": f"Bearer {token}"}
    failures = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not queue.empty():
            i = queue.get_nowait()
            body = {"repo": f"repo-{i % 16}", "event": "push", "metadata": "bench"}
            started = time.perf_counter()
            async with session.post(f"{url}/process-event", json=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    failures += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} requests were not accepted")
    return events / elapsed, latencies


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
    """User + system CPU time of a process (Linux /proc): robust to a machine shared with others."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    args = parse_args()
    os.environ.update(AWS_ENV)
    from devops_core.settings import Settings
    from devstack.emulator import free_port
    from devstack.resources import provision

    progress("starting emulator")
    emulator = start_announcing(["-m", "devstack.emulator", "--port", str(free_port())])
    os.environ["AWS_ENDPOINT_URL"] = emulator.url
    gateway = None
    try:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(devops_stream_name=f"bench-{suffix}", secret_store_name=f"bench-{suffix}")
        resources = provision(settings, shard_count=4)
        baseline_stream = f"bench-baseline-{suffix}"
        provision(settings.model_copy(update={"devops_stream_name": baseline_stream}), shard_count=4)

        progress(f"baseline: {args.baseline_events} PutRecord calls from {args.concurrency} threads")
        baseline = baseline_put_record(baseline_stream, args.baseline_events, args.concurrency)

        gateway, url = start_gateway(
            settings.devops_stream_name, settings.secret_store_name, LOG_LEVEL="WARNING"
        )
        asyncio.run(drive_gateway(url, resources.token, 500, args.concurrency))  # warm-up
        progress(f"gateway: {args.events} events from {args.concurrency} concurrent clients")
        cpu_before = cpu_seconds(gateway.pid)
        rate, latencies = asyncio.run(drive_gateway(url, resources.token, args.events, args.concurrency))
        cpu_per_event_us = (cpu_seconds(gateway.pid) - cpu_before) / args.events * 1e6
        progress(f"gateway /events: {args.events} events in batches of 100")
        batch_rate = asyncio.run(drive_batch_endpoint(url, resources.token, args.events))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(20)
        emulator.stop()

    print(f"baseline  PutRecord per event (boto3, {args.concurrency} threads): {baseline:9.0f} events/s")
    print(
        f"gateway   POST /process-event ({args.concurrency} clients):          {rate:9.0f} events/s  "
        f"ratio {rate / baseline:.2f}x"
    )
    print(
        f"gateway   POST /events (batches of 100):                {batch_rate:9.0f} events/s  "
        f"ratio {batch_rate / baseline:.2f}x"
    )
    print(
        f"latency   202 after Kinesis accepted: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms"
    )
    print(f"gateway   CPU per /process-event: {cpu_per_event_us:.0f} us (user+sys of the gateway process)")
    print(
        f"summary: gateway {rate:.0f} ev/s single, {batch_rate:.0f} ev/s batched, "
        f"baseline {baseline:.0f} ev/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
