"""The consumer under the real KCL MultiLangDaemon (Java) against the moto emulator: events sent
through the gateway all reach Timestream and the New Relic stand-in, checkpoints land in the lease
table, and a restarted daemon resumes after the checkpoint without processing anything again.
One daemon start on a new lease table plus one restart (the KCL needs 10-60 s to start)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from consumer.daemon import ConsumerDaemon, start_consumer_daemon
from devops_core.aws import boto_client
from devstack.inspect import timestream_records
from tests.consumer.consumer_helpers import standin_logs

pytestmark = [pytest.mark.kcl_daemon, pytest.mark.timeout(480)]


def _start(settings, api_key: str, log: Path) -> ConsumerDaemon:
    env = {
        **os.environ,
        "DEVOPS_STREAM_NAME": settings.devops_stream_name,
        "DEVOPS_DB_NAME": settings.devops_db_name,
        "DEVOPS_TABLE_NAME": settings.devops_table_name,
        "DEAD_LETTER_QUEUE_NAME": settings.dead_letter_queue_name,
        "CONSUMER_APPLICATION_NAME": settings.consumer_application_name,
        "LOGGER_API_KEY": api_key,
        "NEW_RELIC_LOG_ENDPOINT": settings.new_relic_url,
        # Short KCL timings so the test takes seconds after the daemon's start-up.
        "KCL_SHARD_SYNC_INTERVAL_MILLIS": "1000",
        "KCL_FAILOVER_TIME_MILLIS": "5000",
        "KCL_IDLE_TIME_BETWEEN_READS_MILLIS": "200",
    }
    with log.open("ab") as sink:
        return start_consumer_daemon(
            # The same worker id on restart: the KCL takes its own leases back at once.
            args=[
                "--worker-id",
                f"{settings.consumer_application_name}-worker",
                "--property",
                "leaseAssignmentIntervalMillis=1000",
            ],
            env=env,
            stdout=sink,
            stderr=sink,
        )


def _event_ids(emulator, settings) -> list[str]:
    stored = timestream_records(emulator, settings.devops_db_name, settings.devops_table_name)
    return [next(d["Value"] for d in r["Dimensions"] if d["Name"] == "event_id") for r in stored]


def _checkpoints(application: str) -> dict[str, str]:
    try:
        items = boto_client("dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    except boto_client("dynamodb").exceptions.ResourceNotFoundException:
        return {}
    return {item["leaseKey"]["S"]: item.get("checkpoint", {}).get("S", "") for item in items}


async def _wait(predicate, within: float, log: Path) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            print((await asyncio.to_thread(log.read_text, errors="replace"))[-6000:])
            raise AssertionError(f"condition not met within {within:.0f}s")
        await asyncio.sleep(0.5)


async def _send(gateway, token: str, count: int, tag: str) -> dict[str, tuple[str, str]]:
    sent = {}
    for i in range(count):
        response = await gateway.post(
            "/process-event",
            json={"repo": f"svc-{i % 4}", "event": "deploy", "metadata": {tag: i}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 202
        body = await response.json()
        sent[body["event_id"]] = (body["shard_id"], body["sequence_number"])
    return sent


async def test_real_daemon_end_to_end_with_checkpoints_and_restart(
    emulator, stack, gateway, consumer_settings, newrelic_standin, api_key, tmp_path
):
    assert shutil.which("java"), "the KCL MultiLangDaemon needs java on PATH"
    settings = consumer_settings
    log = tmp_path / "daemon.log"
    first = await _send(gateway, stack.token, 24, "first")

    daemon = _start(settings, api_key, log)
    try:
        await _wait(lambda: set(_event_ids(emulator, settings)) >= set(first), 240, log)
        await _wait(
            lambda: {entry["event_id"] for entry in standin_logs(newrelic_standin, api_key)} >= set(first),
            30,
            log,
        )
        last_by_shard: dict[str, int] = {}
        for shard, sequence in first.values():
            last_by_shard[shard] = max(last_by_shard.get(shard, 0), int(sequence))
        expected = {shard: str(sequence) for shard, sequence in last_by_shard.items()}
        await _wait(
            lambda: (
                {k: v for k, v in _checkpoints(settings.consumer_application_name).items() if k in expected}
                == expected
            ),
            30,
            log,
        )
    finally:
        assert await asyncio.to_thread(daemon.stop) in (0, 130, 143)

    later = await _send(gateway, stack.token, 8, "later")
    daemon = _start(settings, api_key, log)
    try:
        await _wait(lambda: set(_event_ids(emulator, settings)) >= set(first) | set(later), 180, log)
        await asyncio.sleep(3)  # a wrong re-read of the old records would show up now
    finally:
        await asyncio.to_thread(daemon.stop)

    # moto keeps every WriteRecords record: exactly one per event means nothing was processed twice.
    assert sorted(_event_ids(emulator, settings)) == sorted(set(first) | set(later))
    logs = [entry["event_id"] for entry in standin_logs(newrelic_standin, api_key)]
    assert sorted(logs) == sorted(set(first) | set(later))
