"""Failure paths provoked for real: a fault-injecting proxy between the gateway and the emulator
answers PutRecords with per-entry failures, throttles, or fails every Kinesis call."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter

import pytest

from devstack.inspect import read_stream_events
from tests.producer.conftest import bearer, open_gateway
from tests.support import Stack


def set_faults(proxy_url: str, **plan: object) -> None:
    request = urllib.request.Request(
        f"{proxy_url}/__faults__",
        data=json.dumps(plan).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def fault_counts(proxy_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{proxy_url}/__faults__", timeout=5) as response:
        return json.load(response)


@pytest.fixture
def kinesis_via_proxy(fault_proxy: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", fault_proxy)
    return fault_proxy


async def test_partly_failed_put_records_resends_only_failed_entries(
    kinesis_via_proxy: str, stack: Stack
) -> None:
    set_faults(kinesis_via_proxy, put_records_entry_failure_ratio=0.4, seed=7)
    async with open_gateway(stack.settings) as client:
        events = [{"repo": f"r{i % 5}", "event": "push", "event_id": f"e-{i}"} for i in range(300)]
        response = await client.post("/events", json=events, headers=bearer(stack.token))
        assert response.status == 202
        assert (await response.json())["accepted"] == 300
    assert fault_counts(kinesis_via_proxy)["put_records_entries_failed"] > 50
    stored = Counter(event.event_id for event in read_stream_events(stack.settings.devops_stream_name))
    assert set(stored) == {f"e-{i}" for i in range(300)}
    assert max(stored.values()) == 1, "an entry that succeeded was sent again"


async def test_entries_that_keep_failing_get_503_and_are_not_acknowledged(
    kinesis_via_proxy: str, stack: Stack
) -> None:
    set_faults(kinesis_via_proxy, put_records_entry_failure_ratio=1.0)
    settings = stack.settings.model_copy(update={"batch_retry_deadline_seconds": 0.5})
    async with open_gateway(settings) as client:
        response = await client.post(
            "/process-event", json={"repo": "r", "event": "deploy"}, headers=bearer(stack.token)
        )
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "throughput" in (await response.json())["detail"]
    assert read_stream_events(stack.settings.devops_stream_name) == []


async def test_throttled_calls_are_retried_by_botocore(kinesis_via_proxy: str, stack: Stack) -> None:
    set_faults(kinesis_via_proxy, kinesis_throttle_ratio=0.5, seed=3)
    async with open_gateway(stack.settings) as client:
        results = await asyncio.gather(
            *(
                client.post(
                    "/process-event", json={"repo": "r", "event": "push"}, headers=bearer(stack.token)
                )
                for _ in range(20)
            )
        )
        statuses = [r.status for r in results]
    assert fault_counts(kinesis_via_proxy).get("kinesis_throttled", 0) > 0
    accepted = statuses.count(202)
    assert set(statuses) <= {202, 503}
    assert accepted >= 15
    assert len(read_stream_events(stack.settings.devops_stream_name)) == accepted


async def test_kinesis_outage_gives_503_and_readiness_follows(kinesis_via_proxy: str, stack: Stack) -> None:
    async with open_gateway(stack.settings) as client:
        assert (await client.get("/readyz")).status == 200
        set_faults(kinesis_via_proxy, kinesis_unavailable=True)
        await asyncio.sleep(1.1)  # readiness is cached for a second
        response = await client.post(
            "/process-event", json={"repo": "r", "event": "push"}, headers=bearer(stack.token)
        )
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["kinesis"].startswith("unreachable")
        set_faults(kinesis_via_proxy, kinesis_unavailable=False)
        await asyncio.sleep(1.1)
        assert (await client.get("/readyz")).status == 200
        again = await client.post(
            "/process-event", json={"repo": "r", "event": "push"}, headers=bearer(stack.token)
        )
        assert again.status == 202
    assert len(read_stream_events(stack.settings.devops_stream_name)) == 1
