"""End to end: gateway -> Kinesis -> aggregator (in-process KCL driver) -> calc_deployment_freq back in
the stream -> consumer -> Timestream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from aggregator.local import LocalAggregator
from consumer.local import LocalConsumer
from devstack.inspect import timestream_records
from tests.support import Stack


def _metric_values(record: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """(repo, event, metadata) of a Timestream record that holds a calc_deployment_freq."""
    dimensions = {d["Name"]: d["Value"] for d in record.get("Dimensions", [])}
    if dimensions.get("event") != "calc_deployment_freq":
        return None
    measures = {m["Name"]: m["Value"] for m in record.get("MeasureValues", [])}
    return dimensions["repo"], dimensions["source"], json.loads(measures["metadata"])


async def test_three_deploys_for_demo_reach_timestream_as_count_3_and_a_tenth_per_day(
    stack: Stack, gateway: TestClient, emulator: str
) -> None:
    settings = stack.settings
    aggregator = LocalAggregator(settings, poll_interval=0.2)
    consumer = LocalConsumer(settings, poll_interval=0.2)
    await asyncio.to_thread(aggregator.start)
    await asyncio.to_thread(consumer.start)
    try:
        for version in ("v1", "v2", "v3"):
            response = await gateway.post(
                "/process-event",
                json={"repo": "demo", "event": "deploy", "metadata": version},
                headers={"Authorization": f"Bearer {stack.token}"},
            )
            assert response.status == 202, await response.text()
        wanted = {"demo", "ALL"}
        async with asyncio.timeout(120):  # how fast is bench/aggregator/latency.py's business
            while wanted:
                records = await asyncio.to_thread(
                    timestream_records, emulator, settings.devops_db_name, settings.devops_table_name
                )
                for record in records:
                    found = _metric_values(record)
                    if found and found[2]["count"] == 3:
                        repo, source, values = found
                        assert (values["per_day"], values["window_days"], source) == (0.1, 30, "aggregator")
                        wanted.discard(repo)
                await asyncio.sleep(0.3)
    finally:
        assert await asyncio.to_thread(consumer.stop)
        assert await asyncio.to_thread(aggregator.stop)
