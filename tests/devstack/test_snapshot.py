"""The emulator snapshot: every backend in use comes back (with locks made anew), a snapshot of
another moto is refused, and a snapshot waits for running requests and holds new ones."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import boto3
import pytest

from devstack.emulator import Emulator
from devstack.snapshot import RequestGate, SnapshotError, is_mutating
from tests.support import CLIENT_KWARGS as KWARGS


def test_a_saved_emulator_comes_back_whole(tmp_path: Path, fresh_moto: None) -> None:
    from moto.core.base_backend import BackendDict

    snapshot = tmp_path / "emulator.pickle"
    first = Emulator(port=0, snapshot=snapshot).start()
    try:
        kinesis = boto3.client("kinesis", endpoint_url=first.url, **KWARGS)
        kinesis.create_stream(StreamName="s", ShardCount=1)
        kinesis.put_record(StreamName="s", Data=b"kept", PartitionKey="k")
        sqs = boto3.client("sqs", endpoint_url=first.url, **KWARGS)
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]  # an SQS queue holds a threading.Condition
        sqs.send_message(QueueUrl=queue, MessageBody="letter")
        dynamodb = boto3.client("dynamodb", endpoint_url=first.url, **KWARGS)
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "checkpoint"}, "at": {"S": "42"}})
        saved = first.save_snapshot()
        assert saved is not None
        assert {"kinesis", "sqs", "dynamodb"} <= set(saved.services)
        assert first.save_snapshot(only_if_changed=True) is None  # nothing changed since
    finally:
        first.stop()
    BackendDict.reset()  # what a new process starts with

    second = Emulator(port=0, snapshot=snapshot).start()
    try:
        assert second.restored is not None
        kinesis = boto3.client("kinesis", endpoint_url=second.url, **KWARGS)
        iterator = kinesis.get_shard_iterator(
            StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [b"kept"]
        sqs = boto3.client("sqs", endpoint_url=second.url, **KWARGS)
        queue = sqs.get_queue_url(QueueName="q")["QueueUrl"]
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]] == ["letter"]
        dynamodb = boto3.client("dynamodb", endpoint_url=second.url, **KWARGS)
        item = dynamodb.get_item(TableName="t", Key={"pk": {"S": "checkpoint"}})["Item"]
        assert item["at"] == {"S": "42"}
        kinesis.put_record(StreamName="s", Data=b"new", PartitionKey="k")  # and it keeps working
    finally:
        second.stop()


def test_a_snapshot_of_another_moto_is_refused_with_the_versions(tmp_path: Path, fresh_moto: None) -> None:
    snapshot = tmp_path / "emulator.pickle"
    snapshot.write_bytes(pickle.dumps({"format": 1, "moto": "0.0.1", "python": (3, 11), "backends": {}}))
    with pytest.raises(SnapshotError, match=r"saved by moto 0\.0\.1 .* this is moto \d"):
        Emulator(port=0, snapshot=snapshot).start()
    snapshot.write_bytes(b"not a pickle")
    with pytest.raises(SnapshotError, match="cannot be read"):
        Emulator(port=0, snapshot=snapshot).start()


def test_a_snapshot_waits_for_running_requests_and_holds_new_ones() -> None:
    gate = RequestGate()
    inside, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def running() -> None:
        with gate.request(mutating=True):
            inside.set()
            release.wait()

    def arriving() -> None:
        with gate.request(mutating=False):
            second_in.set()

    worker = threading.Thread(target=running)
    worker.start()
    inside.wait()
    with gate.paused(timeout=0) as quiet:
        assert not quiet  # a request is still inside: this snapshot is skipped
    release.set()
    worker.join()
    with gate.paused(timeout=5) as quiet:
        assert quiet
        late = threading.Thread(target=arriving)
        late.start()
        assert not second_in.wait(0.2)  # held while the snapshot is taken
    late.join()
    assert second_in.is_set()
    assert gate.changes == 1  # only the mutating request made a snapshot due


@pytest.mark.parametrize(
    ("environ", "mutating"),
    [
        ({"HTTP_X_AMZ_TARGET": "Kinesis_20131202.PutRecords", "REQUEST_METHOD": "POST"}, True),
        ({"HTTP_X_AMZ_TARGET": "Kinesis_20131202.GetRecords", "REQUEST_METHOD": "POST"}, False),
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem", "REQUEST_METHOD": "POST"}, True),
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query", "REQUEST_METHOD": "POST"}, False),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket/key"}, False),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket/key"}, True),
    ],
)
def test_reads_never_make_a_snapshot_due(environ: dict[str, str], mutating: bool) -> None:
    assert is_mutating(environ) is mutating
