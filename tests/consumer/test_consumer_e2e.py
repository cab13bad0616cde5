"""End to end on the in-process KCL driver: gateway -> stream -> consumer -> Timestream + New Relic,
checkpoints in the lease table, and a restart that does not process anything before the checkpoint."""

from __future__ import annotations

import asyncio
import time

from consumer.local import LocalConsumer
from devops_core.aws import boto_client
from devstack.inspect import timestream_records
from tests.consumer.consumer_helpers import standin_logs


def _event_ids(emulator, settings) -> list[str]:
    stored = timestream_records(emulator, settings.devops_db_name, settings.devops_table_name)
    return [next(d["Value"] for d in r["Dimensions"] if d["Name"] == "event_id") for r in stored]


async def _wait(predicate, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _checkpoints(application: str) -> dict[str, str]:
    items = boto_client("dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    return {item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in items}


async def _post(gateway, token: str, body: object, path: str = "/process-event") -> dict:
    response = await gateway.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 202, await response.text()
    return await response.json()


async def test_gateway_to_timestream_and_new_relic_then_restart(
    emulator, stack, gateway, consumer_settings, newrelic_standin, api_key
):
    settings = consumer_settings
    consumer = await asyncio.to_thread(LocalConsumer(settings, poll_interval=0.1).start)
    try:
        # One event: in Timestream and at New Relic (how fast is bench/consumer's end-to-end latency).
        accepted = await _post(gateway, stack.token, {"repo": "svc", "event": "deploy", "metadata": "v1"})
        await _wait(lambda: accepted["event_id"] in _event_ids(emulator, settings))
        await _wait(
            lambda: any(
                log["event_id"] == accepted["event_id"] for log in standin_logs(newrelic_standin, api_key)
            )
        )
        batch = [{"repo": f"svc-{i % 3}", "event": "push", "metadata": {"i": i}} for i in range(40)]
        answer = await _post(gateway, stack.token, batch, "/events")
        first_ids = {accepted["event_id"], *(item["event_id"] for item in answer["results"])}
        await _wait(lambda: set(_event_ids(emulator, settings)) >= first_ids)
        await _wait(lambda: {log["event_id"] for log in standin_logs(newrelic_standin, api_key)} >= first_ids)
    finally:
        assert await asyncio.to_thread(consumer.stop)

    checkpoints = _checkpoints(settings.consumer_application_name)
    assert len(checkpoints) == 2  # both shards
    assert all(value.isdigit() for value in checkpoints.values())

    # While the consumer is down, more events arrive; after a restart only those are processed.
    later = [{"repo": "svc", "event": "deploy", "metadata": {"later": i}} for i in range(10)]
    later_ids = {
        item["event_id"] for item in (await _post(gateway, stack.token, later, "/events"))["results"]
    }
    consumer = await asyncio.to_thread(LocalConsumer(settings, poll_interval=0.1).start)
    try:
        await _wait(lambda: set(_event_ids(emulator, settings)) >= first_ids | later_ids)
        await asyncio.sleep(0.5)  # give a wrong re-read of the old records the time to show up
    finally:
        assert await asyncio.to_thread(consumer.stop)
    ids = _event_ids(emulator, settings)
    assert sorted(ids) == sorted(first_ids | later_ids)  # moto keeps duplicates: none were written
    logs = [log["event_id"] for log in standin_logs(newrelic_standin, api_key)]
    assert sorted(logs) == sorted(first_ids | later_ids)
