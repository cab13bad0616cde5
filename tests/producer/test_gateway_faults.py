"""Failure paths provoked for real: a fault-injecting proxy between the gateway and the emulator
answers PutRecords with per-entry failures, throttles, or fails every Kinesis call."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter

import aiohttp
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
        # Kinesis answers again, but the last record was refused and none accepted since.
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"] == {
            "token": "ok",
            "kinesis": "ok",
            "queue": "ok",
            "puts": "failing: PutRecords failed: ClientError; no record accepted since",
        }
        again = await client.post(
            "/process-event", json={"repo": "r", "event": "push"}, headers=bearer(stack.token)
        )
        assert again.status == 202
        await asyncio.sleep(1.1)
        assert (await client.get("/readyz")).status == 200
    assert len(read_stream_events(stack.settings.devops_stream_name)) == 1


async def test_readiness_reports_records_refused_while_the_stream_answers(
    kinesis_via_proxy: str, stack: Stack
) -> None:
    """DescribeStreamSummary works, but every PutRecords entry is refused: not ready, and why."""
    settings = stack.settings.model_copy(update={"batch_retry_deadline_seconds": 0.5})
    async with open_gateway(settings) as client:
        assert (await client.get("/readyz")).status == 200
        set_faults(kinesis_via_proxy, put_records_entry_failure_ratio=1.0)
        response = await client.post(
            "/process-event", json={"repo": "r", "event": "push"}, headers=bearer(stack.token)
        )
        assert response.status == 503
        await asyncio.sleep(1.1)  # past the cached answer
        ready = await client.get("/readyz")
        assert ready.status == 503
        checks = (await ready.json())["checks"]
        assert checks["kinesis"] == "ok"
        assert checks["puts"] == (
            "failing: records refused: ProvisionedThroughputExceededException; no record accepted since"
        )


async def test_readiness_makes_one_kinesis_call_for_concurrent_probes(
    kinesis_via_proxy: str, stack: Stack
) -> None:
    """60 concurrent unauthenticated /readyz share one DescribeStreamSummary (and its answer for a
    second): the public probe cannot multiply control-plane calls."""
    async with open_gateway(stack.settings) as client:
        before = fault_counts(kinesis_via_proxy).get("calls:DescribeStreamSummary", 0)
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(60)))
        elapsed = asyncio.get_running_loop().time() - started
        assert [answer.status for answer in answers] == [200] * 60
        calls = fault_counts(kinesis_via_proxy).get("calls:DescribeStreamSummary", 0) - before
    # One call per second at most (the answer is reused for a second), however many probes.
    assert 1 <= calls <= int(elapsed) + 1


async def test_black_holed_kinesis_gets_503_within_the_deadline(kinesis_via_proxy: str, stack: Stack) -> None:
    """Kinesis never answers (packets dropped): botocore alone would retry and time out for 21 s and
    more. Every request is answered 503 within BATCH_RETRY_DEADLINE_SECONDS, so a CI script (15 s per
    request) or GitHub (10 s per delivery) gets the answer instead of its own timeout."""
    deadline = 2.0
    settings = stack.settings.model_copy(update={"batch_retry_deadline_seconds": deadline})
    async with open_gateway(settings) as client:
        set_faults(kinesis_via_proxy, black_hole_services=["Kinesis"])
        timeout = aiohttp.ClientTimeout(total=10)  # GitHub's webhook timeout: answered well within it
        answers = await asyncio.gather(
            client.post(
                "/process-event",
                json={"repo": "r", "event": "push"},
                headers=bearer(stack.token),
                timeout=timeout,
            ),
            client.post(
                "/events",
                json=[{"repo": "r", "event": "push"}] * 3,
                headers=bearer(stack.token),
                timeout=timeout,
            ),
        )
        single, batch = answers
        assert single.status == 503
        assert single.headers["Retry-After"] == "1"
        assert (await single.json())["detail"] == f"Kinesis did not accept the record within {deadline:g} s"
        assert batch.status == 207
        assert [item["status"] for item in (await batch.json())["results"]] == [503] * 3
        # Records queued behind the hung calls get their answer in time too.
        queued = await asyncio.gather(
            *(
                client.post(
                    "/process-event",
                    json={"repo": "r", "event": "push"},
                    headers=bearer(stack.token),
                    timeout=timeout,
                )
                for _ in range(10)
            )
        )
        assert [answer.status for answer in queued] == [503] * 10
    assert fault_counts(kinesis_via_proxy)["black_holed"] >= 1


async def test_records_arriving_during_a_slow_put_ride_along_in_the_next_call(
    kinesis_via_proxy: str, stack: Stack
) -> None:
    """Nagle's rule in the batcher: while one partial batch is in flight (Kinesis answering in 1 s),
    the next 40 requests, arriving one by one, gather into one call instead of taking a call per free
    slot."""
    set_faults(kinesis_via_proxy, kinesis_latency_ms=1000)
    async with open_gateway(stack.settings) as client:
        headers = bearer(stack.token)

        async def send(i: int) -> int:
            response = await client.post(
                "/process-event", json={"repo": "r", "event": "push", "event_id": f"n-{i}"}, headers=headers
            )
            return response.status

        first = asyncio.create_task(send(0))
        for _ in range(3000):  # until the first record's call is in flight
            if (await asyncio.to_thread(fault_counts, kinesis_via_proxy)).get("calls:PutRecords"):
                break
            await asyncio.sleep(0.01)
        later = []
        for i in range(1, 41):  # spread over ~0.4 s, all while the first call is in flight
            later.append(asyncio.create_task(send(i)))
            await asyncio.sleep(0.01)
        statuses = await asyncio.gather(first, *later)
    assert statuses == [202] * 41
    # One call for the first record, one for the 40 that arrived while it was in flight (a third if
    # the machine was slow enough for some to arrive after that). One call per slot would make 5+.
    assert fault_counts(kinesis_via_proxy)["calls:PutRecords"] <= 3
    stored = {event.event_id for event in read_stream_events(stack.settings.devops_stream_name)}
    assert stored == {f"n-{i}" for i in range(41)}
