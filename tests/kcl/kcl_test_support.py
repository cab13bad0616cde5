"""Helpers shared by the KCL tests: streams, records and the lease table on the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devops_core.aws import boto_client
from tests.kcl.kcl_recording_processor import read_events
from tests.support import unique_settings


def make_stream(shards: int = 2) -> str:
    name = unique_settings().devops_stream_name
    kinesis = boto_client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return name


def put(stream: str, data: list[str]) -> None:
    kinesis = boto_client("kinesis")
    for start in range(0, len(data), 500):
        chunk = data[start : start + 500]
        response = kinesis.put_records(
            StreamName=stream,
            Records=[{"Data": item.encode(), "PartitionKey": f"key-{item}"} for item in chunk],
        )
        assert response["FailedRecordCount"] == 0


def leases(application: str) -> dict[str, dict[str, Any]]:
    items = boto_client("dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    return {item["leaseKey"]["S"]: item for item in items}


def records(output: Path) -> list[dict[str, Any]]:
    return [event for event in read_events(output) if event["event"] == "record"]


def wait_for(condition: Callable[[], bool], timeout: float = 30, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f}s")
        time.sleep(interval)
