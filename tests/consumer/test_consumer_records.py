"""Pure functions of the sinks: the Timestream record shape and New Relic's Retry-After."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from consumer.sinks.newrelic import retry_after_seconds, to_log_entry
from consumer.sinks.timestream import MAX_RECORD_BYTES, to_timestream_record
from tests.consumer.consumer_helpers import make_event


def _size(record: dict) -> int:
    parts = [record["MeasureName"], record["Time"]]
    for item in [*record["Dimensions"], *record["MeasureValues"]]:
        parts += [item["Name"], item["Value"]]
    return sum(len(part.encode()) for part in parts)


def test_record_is_deterministic_for_a_redelivery():
    event = make_event(sha="abcdef1")
    assert to_timestream_record(event) == to_timestream_record(event)
    record = to_timestream_record(event)
    assert record["Version"] == int(event.received_at.timestamp() * 1000)
    assert {m["Name"] for m in record["MeasureValues"]} == {"count", "metadata", "sha"}


def test_oversized_metadata_is_cut_to_fit_two_kilobytes():
    # 6,000 bytes of UTF-8: more than the wire model lets through (1,024); the sink's own guard.
    event = make_event().model_copy(update={"metadata": "é" * 3000})
    record = to_timestream_record(event)
    assert _size(record) <= MAX_RECORD_BYTES
    measures = {m["Name"]: m["Value"] for m in record["MeasureValues"]}
    assert measures["metadata_truncated"] == "true"
    assert measures["metadata"]
    assert set(measures["metadata"]) == {"é"}


def test_empty_metadata_has_no_metadata_measure():
    record = to_timestream_record(make_event(metadata=""))
    assert [m["Name"] for m in record["MeasureValues"]] == ["count"]


def test_log_entry_attributes():
    event = make_event(repo="acme/api", event="push")
    entry = to_log_entry(event)
    assert entry["timestamp"] == event.time_ms
    assert entry["attributes"]["event_id"] == event.event_id
    assert entry["attributes"]["repo"] == "acme/api"
    json.dumps(entry)


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31
