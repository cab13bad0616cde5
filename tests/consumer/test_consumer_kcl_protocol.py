"""``python -m consumer.kcl_app`` speaks the MultiLangDaemon's line protocol on stdin/stdout."""

from __future__ import annotations

import base64
import os
import time

from devstack.inspect import timestream_records
from tests.consumer.consumer_helpers import make_event, standin_logs
from tests.support import KclChild


def _record(data: bytes, sequence: str) -> dict:
    return {
        "action": "record",
        "data": base64.b64encode(data).decode(),
        "partitionKey": "svc",
        "sequenceNumber": sequence,
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": int(time.time() * 1000),
    }


def test_daemon_protocol_round_trip(emulator, consumer_settings, newrelic_standin, api_key):
    settings = consumer_settings
    env = {
        **os.environ,
        "DEVOPS_DB_NAME": settings.devops_db_name,
        "DEVOPS_TABLE_NAME": settings.devops_table_name,
        "DEVOPS_STREAM_NAME": settings.devops_stream_name,
        "DEAD_LETTER_QUEUE_NAME": settings.dead_letter_queue_name,
        "LOGGER_API_KEY": api_key,
        "NEW_RELIC_LOG_ENDPOINT": settings.new_relic_url,
    }
    child = KclChild("consumer.kcl_app", env)
    process, send, receive = child.process, child.send, child.receive

    events = [make_event() for _ in range(3)]
    try:
        child.initialize()
        send(
            {
                "action": "processRecords",
                "millisBehindLatest": 0,
                "records": [_record(e.to_record_data(), str(10 + i)) for i, e in enumerate(events)],
            }
        )
        assert receive() == {"action": "checkpoint", "sequenceNumber": "12", "subSequenceNumber": None}
        send({"action": "checkpoint", "sequenceNumber": "12", "subSequenceNumber": 0})
        assert receive() == {"action": "status", "responseFor": "processRecords"}
        send({"action": "shardEnded"})
        assert receive() == {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}
        send({"action": "checkpoint", "sequenceNumber": "SHARD_END", "subSequenceNumber": 0})
        assert receive() == {"action": "status", "responseFor": "shardEnded"}
    finally:
        assert process.stdin
        process.stdin.close()
        process.wait(15)
    assert process.returncode == 0
    stored = timestream_records(emulator, settings.devops_db_name, settings.devops_table_name)
    assert len(stored) == 3
    assert len(standin_logs(newrelic_standin, api_key)) == 3
