"""Test helpers for the consumer: KCL-shaped inputs, a checkpointer double, stand-in access."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from amazon_kclpy import messages
from amazon_kclpy.checkpoint_error import CheckpointError

from devops_core.aws import boto_client
from devops_core.events import DevOpsEvent, EventType
from devops_core.settings import Settings


class FakeCheckpointer:
    """Records checkpoints; ``fail_with`` makes the next calls raise a CheckpointError."""

    def __init__(self) -> None:
        self.checkpoints: list[tuple[str | None, int | None]] = []
        self.fail_with: list[str] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        if self.fail_with:
            raise CheckpointError(self.fail_with.pop(0))
        self.checkpoints.append((sequence_number, sub_sequence_number))


def make_event(repo: str = "svc", event: str = "deploy", **fields: Any) -> DevOpsEvent:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "time": now,
        "repo": repo,
        "event": EventType(event),
        "metadata": '{"v":1}',
        "source": "cicd_script",
        "received_at": now,
        **fields,
    }
    return DevOpsEvent.model_validate(values)


def kcl_record(data: bytes, sequence_number: int | str, partition_key: str = "svc") -> messages.Record:
    return messages.Record(
        {
            "sequenceNumber": str(sequence_number),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": int(time.time() * 1000),
            "partitionKey": partition_key,
            "data": base64.b64encode(data).decode("ascii"),
            "action": "record",
        }
    )


def process_input(
    records: list[messages.Record], checkpointer: FakeCheckpointer
) -> messages.ProcessRecordsInput:
    message = messages.ProcessRecordsInput(
        {"records": records, "millisBehindLatest": 0, "action": "processRecords"}
    )
    message._checkpointer = checkpointer
    return message


def initialize_input(shard_id: str = "shardId-000000000000") -> messages.InitializeInput:
    return messages.InitializeInput(
        {"shardId": shard_id, "sequenceNumber": None, "subSequenceNumber": 0, "action": "initialize"}
    )


def standin_logs(standin_url: str, api_key: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{standin_url}/__standin__/logs?api_key={api_key}", timeout=10) as response:
        return list(json.load(response)["logs"])


def standin_fault(standin_url: str, **rule: Any) -> None:
    request = urllib.request.Request(
        f"{standin_url}/__standin__/faults",
        data=json.dumps(rule).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def set_faults(proxy_url: str, **plan: Any) -> None:
    request = urllib.request.Request(
        f"{proxy_url}/__faults__",
        data=json.dumps(plan).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    sqs = boto_client("sqs")
    url = sqs.get_queue_url(QueueName=settings.dead_letter_queue_name)["QueueUrl"]
    bodies: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        got = response.get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
