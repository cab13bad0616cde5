"""Latency and throughput of POST /webhooks/github: signed push deliveries (2 commits each, one push
event per delivery) through the real gateway into Kinesis on the embedded emulator (moto in a
subprocess). Every delivery is a different push (its own `before`), so every event id differs, as in
real traffic. Baseline, same run and same gateway: the equivalent event (a push with the same two
commits) as a CI script sends it, POST /process-event with the bearer token; the ratio shows what
the signature check and GitHub's payload cost. Prints one JSON line per concurrency level."""

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
TOKEN = "bench-token"
PAYLOAD = ROOT / "tests" / "webhooks" / "payloads" / "push.json"


async def run(deliveries: int, concurrency: int) -> dict[str, float | int]:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        devops_stream_name=f"bench-gh-{suffix}",
        secret_store_name=f"bench-gh-{suffix}",
        github_webhook_secret=SecretStr(SECRET),
        devops_events_secret_token=SecretStr(TOKEN),
        rate_limit_per_second=0,
    )
    provision(settings, shard_count=2)
    template = json.loads(PAYLOAD.read_bytes())
    bodies = []
    for n in range(deliveries + 1):
        template["before"] = f"{n:040x}"
        bodies.append(json.dumps(template).encode())
    events = [
        json.dumps(
            {
                "repo": template["repository"]["full_name"],
                "event": "push",
                "sha": template["after"],
                "time": "2026-11-27T08:20:00Z",
                "commits": [{"sha": c["id"], "time": c["timestamp"]} for c in template["commits"]],
                "event_id": f"bench-{suffix}-{n}",
            }
        ).encode()
        for n in range(deliveries + 1)
    ]
    gate = asyncio.Semaphore(concurrency)
    async with TestClient(TestServer(create_app(settings))) as client:

        def webhook(body: bytes) -> tuple[str, bytes, dict[str, str]]:
            return (
                WEBHOOK_PATH,
                body,
                {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign(body, SECRET),
                },
            )

        def process_event(body: bytes) -> tuple[str, bytes, dict[str, str]]:
            return (
                "/process-event",
                body,
                {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            )

        async def one(request: tuple[str, bytes, dict[str, str]], latencies: list[float]) -> None:
            path, body, headers = request
            async with gate:
                started = time.perf_counter()
                response = await client.post(path, data=body, headers=headers)
                await response.read()
                latencies.append(time.perf_counter() - started)
                assert response.status == 202, response.status

        async def measure(requests: list[tuple[str, bytes, dict[str, str]]]) -> tuple[float, list[float]]:
            latencies: list[float] = []
            await one(requests[-1], [])  # warm-up (connection pools)
            started = time.perf_counter()
            await asyncio.gather(*(one(request, latencies) for request in requests[:-1]))
            return time.perf_counter() - started, latencies

        elapsed, latencies = await measure([webhook(body) for body in bodies])
        baseline, baseline_latencies = await measure([process_event(body) for body in events])
    records = len(await asyncio.to_thread(read_stream, settings.devops_stream_name))
    assert records == 2 * (deliveries + 1), (records, deliveries)
    return {
        "deliveries": deliveries,
        "concurrency": concurrency,
        "payload_bytes": len(bodies[0]),
        "deliveries_per_s": round(deliveries / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "baseline_process_event_per_s": round(deliveries / baseline, 1),
        "baseline_p50_ms": round(percentile(baseline_latencies, 50) * 1000, 1),
        "ratio": round(baseline / elapsed, 2),
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
