"""Latency and throughput of POST /webhooks/github: signed push deliveries (2 commits each) through
the real gateway into Kinesis on the embedded emulator (moto in a subprocess). Prints one JSON line
per concurrency level."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bench.common import AWS_ENV, ROOT, percentile, progress, start_announcing
from devops_core.settings import Settings
from devstack.emulator import free_port
from devstack.inspect import read_stream
from devstack.resources import provision
from producer.app import create_app
from producer.github import WEBHOOK_PATH, sign

SECRET = "bench-secret"
PAYLOAD = ROOT / "tests" / "webhooks" / "payloads" / "push.json"


async def run(deliveries: int, concurrency: int) -> dict[str, float | int]:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        devops_stream_name=f"bench-gh-{suffix}",
        secret_store_name=f"bench-gh-{suffix}",
        github_webhook_secret=SecretStr(SECRET),
    )
    provision(settings, shard_count=2)
    body = PAYLOAD.read_bytes()
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    async with TestClient(TestServer(create_app(settings))) as client:

        async def one() -> None:
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(body, SECRET),
            }
            async with gate:
                started = time.perf_counter()
                response = await client.post(WEBHOOK_PATH, data=body, headers=headers)
                await response.read()
                latencies.append(time.perf_counter() - started)
                assert response.status == 202, response.status

        await one()  # warm-up (connection pools)
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(deliveries)))
        elapsed = time.perf_counter() - started
    records = len(await asyncio.to_thread(read_stream, settings.devops_stream_name))
    return {
        "deliveries": deliveries,
        "concurrency": concurrency,
        "payload_bytes": len(body),
        "deliveries_per_s": round(deliveries / elapsed, 1),
        "events_per_s": round(2 * deliveries / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "records_in_stream": records,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    emulator = start_announcing(["-m", "devstack.emulator", "--port", str(free_port())])
    try:
        os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=emulator.url)
        for concurrency in (1, args.concurrency):
            progress(f"{args.deliveries} push deliveries, concurrency {concurrency}")
            print(json.dumps(asyncio.run(run(args.deliveries, concurrency))))
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
