"""The emulator writes the answers of Kinesis PutRecords and GetRecords itself (moto's generic
serializer was half its CPU on PutRecords): those answers must be byte for byte what moto's own
serializer writes for the same records, with the same content type (the KCL's Java SDK reads
nothing else), read over HTTP by a real boto3 client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.kinesis.responses import KinesisResponse

from devstack import emulator as emulator_module
from devstack.emulator import Emulator
from tests.support import CLIENT_KWARGS as KWARGS

RECORDS = [
    {"Data": b'{"event":"deploy"}', "PartitionKey": "repo-a"},
    {"Data": bytes(range(256)), "PartitionKey": "repo-b"},  # every byte value, not UTF-8
    {"Data": b"x", "PartitionKey": "r", "ExplicitHashKey": "0"},
]


@pytest.fixture
def kinesis(fresh_moto: None) -> Iterator[tuple[Any, list[bytes]]]:
    """A client of a fresh emulator and the raw body of every answer it receives."""
    running = Emulator(port=0).start()
    try:
        client = boto3.client("kinesis", endpoint_url=running.url, **KWARGS)
        bodies: list[bytes] = []

        def keep(http_response: Any, **_: Any) -> None:
            bodies.append(http_response.content)
            assert http_response.headers["content-type"] == "application/x-amz-json-1.1"

        client.meta.events.register("after-call.kinesis", keep)
        client.create_stream(StreamName="s", ShardCount=1)
        yield client, bodies
    finally:
        running.stop()


def _moto_serializes(monkeypatch: pytest.MonkeyPatch) -> None:
    for (owner, name), original in emulator_module.MOTO_ORIGINALS.items():
        monkeypatch.setattr(owner, name, original)


def test_put_records_answer_is_moto_own(
    kinesis: tuple[Any, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, bodies = kinesis
    assert {(KinesisResponse, "put_records"), (KinesisResponse, "get_records")} <= set(
        emulator_module.MOTO_ORIGINALS
    )
    _moto_serializes(monkeypatch)
    theirs = client.put_records(StreamName="s", Records=RECORDS)
    their_body = bodies[-1]
    monkeypatch.undo()
    ours = client.put_records(StreamName="s", Records=RECORDS)
    our_body = bodies[-1]

    assert ours["FailedRecordCount"] == 0
    assert len(ours["Records"]) == len(RECORDS)
    for their, our in zip(theirs["Records"], ours["Records"], strict=True):
        assert int(our["SequenceNumber"]) > int(their["SequenceNumber"])
        their_body = their_body.replace(their["SequenceNumber"].encode(), our["SequenceNumber"].encode())
    assert our_body == their_body


def test_get_records_answer_is_moto_own(
    kinesis: tuple[Any, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, bodies = kinesis
    client.put_records(StreamName="s", Records=RECORDS)
    shard = client.list_shards(StreamName="s")["Shards"][0]["ShardId"]

    def read(limit: int) -> tuple[dict[str, Any], bytes]:
        iterator = client.get_shard_iterator(StreamName="s", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        answer = client.get_records(ShardIterator=iterator["ShardIterator"], Limit=limit)
        return answer, bodies[-1]

    for limit in (10, 2):  # every record (caught up), then a partial read
        _moto_serializes(monkeypatch)
        theirs, their_body = read(limit)
        monkeypatch.undo()
        ours, our_body = read(limit)
        assert [r["Data"] for r in ours["Records"]] == [r["Data"] for r in RECORDS][:limit]
        arrival = [answer["Records"][0]["ApproximateArrivalTimestamp"] for answer in (theirs, ours)]
        assert arrival[0] == arrival[1]
        assert our_body == their_body
