"""producer/put_records_wire.py writes and reads PutRecords exactly as botocore does (the installed
botocore is the reference), falls back to botocore for anything else, and a client it is installed
on writes records that GetRecords reads back unchanged from the emulator."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import botocore.session
import pytest
from aiobotocore.parsers import AioResponseParserFactory
from aiohttp.test_utils import TestClient
from botocore.exceptions import ClientError
from botocore.serialize import create_serializer

from devops_core.aws import aio_client, client_config
from devstack.inspect import read_stream_events
from producer import put_records_wire
from producer.put_records_wire import _ParserFactory, _PutRecordsSerializer
from producer.state import KINESIS_CLIENT
from tests.producer.conftest import bearer
from tests.support import Stack

KINESIS = botocore.session.get_session().get_service_model("kinesis")
PUT_RECORDS = KINESIS.operation_model("PutRecords")

# Every byte value, an empty payload, a partition key needing JSON escapes and one beyond ASCII.
ODD_RECORDS = [
    {"Data": bytes(range(256)), "PartitionKey": "org/repo"},
    {"Data": b"", "PartitionKey": 'quote " backslash \\ tab \t'},
    {"Data": json.dumps({"repo": "é", "event": "push"}).encode(), "PartitionKey": "répo-ünïcode-☃"},
]
GATEWAY_RECORDS = [
    {
        "Data": json.dumps({"event_id": f"{i:032x}", "repo": f"repo-{i % 7}"}).encode(),
        "PartitionKey": f"repo-{i % 7}",
    }
    for i in range(500)
]


def serializers() -> tuple[Any, _PutRecordsSerializer]:
    botocores = create_serializer(KINESIS.resolved_protocol, include_validation=False)
    return botocores, _PutRecordsSerializer(
        create_serializer(KINESIS.resolved_protocol, include_validation=False)
    )


@pytest.mark.parametrize("records", [ODD_RECORDS, GATEWAY_RECORDS, GATEWAY_RECORDS[:1]])
def test_the_request_is_the_one_botocore_writes(records: list[dict[str, Any]]) -> None:
    botocores, ours = serializers()
    parameters = {"StreamName": "events-stream", "Records": records}
    expected = botocores.serialize_to_request(parameters, PUT_RECORDS)
    written = ours.serialize_to_request(parameters, PUT_RECORDS)
    assert written == expected  # URL, method, headers and the body byte for byte
    assert isinstance(written["body"], bytes)


@pytest.mark.parametrize(
    ("operation", "parameters"),
    [
        # Entries the module does not write itself: botocore serializes the call, unchanged.
        (
            "PutRecords",
            {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "1"}]},
        ),
        ("PutRecords", {"StreamName": "s", "Records": [{"Data": "text, not bytes", "PartitionKey": "k"}]}),
        ("PutRecords", {"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "Records": []}),
        ("PutRecord", {"StreamName": "s", "Data": b"x", "PartitionKey": "k"}),
    ],
)
def test_anything_else_is_botocores_own(operation: str, parameters: dict[str, Any]) -> None:
    botocores, ours = serializers()
    model = KINESIS.operation_model(operation)
    assert ours.serialize_to_request(parameters, model) == botocores.serialize_to_request(parameters, model)


def answer(body: object, status: int = 200) -> dict[str, Any]:
    return {
        "status_code": status,
        # As aiobotocore hands them to the parser: names in lower case.
        "headers": {"x-amzn-requestid": "req-1", "content-type": "application/x-amz-json-1.1"},
        "body": json.dumps(body).encode(),
    }


@pytest.mark.parametrize(
    "response",
    [
        answer(
            {
                "FailedRecordCount": 0,
                "Records": [{"SequenceNumber": "4959", "ShardId": "shardId-000000000001"}],
            }
        ),
        answer(
            {
                "FailedRecordCount": 1,
                "EncryptionType": "KMS",
                "Records": [
                    {"SequenceNumber": "4960", "ShardId": "shardId-000000000000"},
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"},
                ],
            }
        ),
        answer({"__type": "ResourceNotFoundException", "message": "Stream s not found"}, status=400),
        answer({"__type": "InternalFailure"}, status=500),
    ],
)
async def test_the_answer_is_the_one_botocore_reads(response: dict[str, Any]) -> None:
    shape = PUT_RECORDS.output_shape
    expected = await AioResponseParserFactory().create_parser("json").parse(dict(response), shape)
    parsed = (
        await _ParserFactory(AioResponseParserFactory()).create_parser("json").parse(dict(response), shape)
    )
    assert parsed == expected


async def test_an_installed_client_round_trips_records_through_the_emulator(stack: Stack) -> None:
    stream = stack.settings.devops_stream_name
    config = client_config(max_attempts=1, parameter_validation=False)
    async with aio_client("kinesis", config=config) as kinesis:
        assert put_records_wire.install(kinesis) is True
        assert put_records_wire.install(kinesis) is True  # twice: wrapped once
        assert isinstance(kinesis._serializer, _PutRecordsSerializer)
        assert not isinstance(kinesis._serializer._inner, _PutRecordsSerializer)
        answered = await kinesis.put_records(StreamName=stream, Records=ODD_RECORDS)
        assert answered["FailedRecordCount"] == 0
        assert answered["ResponseMetadata"]["HTTPStatusCode"] == 200
        read: list[tuple[bytes, str, str]] = []
        shards = (await kinesis.list_shards(StreamName=stream))["Shards"]
        for shard in shards:
            iterator = (
                await kinesis.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            records = (await kinesis.get_records(ShardIterator=iterator))["Records"]
            read += [(r["Data"], r["PartitionKey"], r["SequenceNumber"]) for r in records]
        assert sorted(read) == sorted(
            (sent["Data"], sent["PartitionKey"], put["SequenceNumber"])
            for sent, put in zip(ODD_RECORDS, answered["Records"], strict=True)
        )
        # Error answers are still botocore's: a missing stream is its ClientError, code and all.
        with pytest.raises(ClientError) as missing:
            await kinesis.put_records(StreamName=f"{stream}-missing", Records=ODD_RECORDS)
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_a_client_that_validates_parameters_keeps_botocores_path(
    emulator: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with aio_client("kinesis", config=client_config(max_attempts=1)) as kinesis:
        serializer = kinesis._serializer
        with caplog.at_level(logging.WARNING, logger="producer.put_records_wire"):
            assert put_records_wire.install(kinesis) is False
        assert kinesis._serializer is serializer
    assert [record.reason for record in caplog.records] == ["the client validates parameters"]


def test_moved_internals_leave_the_client_alone(caplog: pytest.LogCaptureFixture) -> None:
    meta = SimpleNamespace(service_model=KINESIS)
    moved = SimpleNamespace(meta=meta, _endpoint=SimpleNamespace())  # no serializer, no parser factory
    with caplog.at_level(logging.WARNING, logger="producer.put_records_wire"):
        assert put_records_wire.install(moved) is False
    assert not hasattr(moved, "_serializer")
    assert "botocore's own serializer" in caplog.text
    assert [record.reason for record in caplog.records] == ["botocore's client internals moved"]


async def test_the_gateway_writes_through_it(gateway: TestClient, stack: Stack) -> None:
    assert isinstance(gateway.app[KINESIS_CLIENT]._serializer, _PutRecordsSerializer)
    sent = [{"repo": "org/repo", "event": "push"}, {"repo": "org/other", "event": "deploy"}]
    answered = await gateway.post("/events", json=sent, headers=bearer(stack.token))
    assert answered.status == 202, await answered.text()
    events = read_stream_events(stack.settings.devops_stream_name)
    assert sorted((e.repo, e.event) for e in events) == sorted((s["repo"], s["event"]) for s in sent)
