"""End to end: gateway -> Kinesis -> aggregator (in-process KCL driver) -> calc_* events in the stream."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp.test_utils import TestClient

from aggregator.local import LocalAggregator
from devops_core.events import DevOpsEvent
from devstack.inspect import read_stream_events
from tests.support import Stack


async def wait_for_metric(stream: str, repo: str, count: int) -> DevOpsEvent:
    async with asyncio.timeout(30):
        while True:
            for event in await asyncio.to_thread(read_stream_events, stream):
                if (
                    event.repo == repo
                    and event.event == "calc_deployment_freq"
                    and json.loads(event.metadata)["count"] == count
                ):
                    return event
            await asyncio.sleep(0.3)


async def test_three_deploys_for_demo_give_count_3_and_a_tenth_per_day(
    stack: Stack, gateway: TestClient
) -> None:
    aggregator = LocalAggregator(stack.settings, poll_interval=0.2)
    await asyncio.to_thread(aggregator.start)
    try:
        for version in ("v1", "v2", "v3"):
            response = await gateway.post(
                "/process-event",
                json={"repo": "demo", "event": "deploy", "metadata": version},
                headers={"Authorization": f"Bearer {stack.token}"},
            )
            assert response.status == 202, await response.text()
        started = time.monotonic()
        for repo in ("demo", "ALL"):
            metric = await wait_for_metric(stack.settings.devops_stream_name, repo, 3)
            values = json.loads(metric.metadata)
            assert (values["count"], values["per_day"], values["window_days"]) == (3, 0.1, 30)
            assert metric.source == "aggregator"
        assert time.monotonic() - started < 15  # "within seconds"
    finally:
        assert await asyncio.to_thread(aggregator.stop)
