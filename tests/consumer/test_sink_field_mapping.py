"""The event model's fields in every store: Timestream (under 2 KB), New Relic (the full event, and a
timestamp New Relic keeps for backfills) and the S3 raw store (every field)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from consumer.sinks.firehose import encode_raw_record, to_raw_record
from consumer.sinks.newrelic import to_log_entry
from consumer.sinks.timestream import MAX_RECORD_BYTES, to_timestream_record
from devops_core.events import DevOpsEvent
from tests.consumer.consumer_helpers import make_event

NOW = datetime.now(UTC)
FIELDS = {
    "sha": "a" * 40,
    "before": "b" * 40,
    "environment": "production",
    "outcome": "success",
    "remediation": "rollback",
    "deployment_id": "deploy-42",
    "team": "payments",
    "service": "checkout-api",
}


def _size(record: dict) -> int:
    parts = [record["MeasureName"], record["Time"]]
    for item in [*record["Dimensions"], *record["MeasureValues"]]:
        parts += [item["Name"], item["Value"]]
    return sum(len(part.encode()) for part in parts)


def _commits(count: int) -> list[dict]:
    return [{"sha": f"{i:040x}", "time": NOW - timedelta(minutes=count - i)} for i in range(count)]


def _largest_event() -> DevOpsEvent:
    """Every field at its maximum size: the record must still fit Timestream's 2 KB."""
    return DevOpsEvent(
        event_id="e" * 128,
        time=NOW,
        received_at=NOW,
        repo="r" * 140,
        event="deploy",
        metadata="é" * 512,  # 1,024 bytes, the model's limit
        sha="a" * 64,
        before="b" * 64,
        environment="E" * 100,
        outcome="failure",
        remediation="rollback",
        deployment_id="d" * 128,
        team="t" * 100,
        service="s" * 100,
        commits=_commits(2048),
    )


def test_timestream_record_carries_every_field_as_a_measure() -> None:
    event = make_event(**FIELDS, commits=_commits(3))
    measures = {m["Name"]: m["Value"] for m in to_timestream_record(event)["MeasureValues"]}
    for name, value in FIELDS.items():
        assert measures[name] == value
    assert measures["commit_count"] == "3"
    assert [c["sha"] for c in json.loads(measures["commits"])] == [c["sha"] for c in _commits(3)]
    assert "commits_truncated" not in measures
    # identity stays the four dimensions, so a redelivery is still an identical upsert
    dimensions = [d["Name"] for d in to_timestream_record(event)["Dimensions"]]
    assert dimensions == ["repo", "event", "source", "event_id"]


def test_timestream_record_stays_under_two_kilobytes_with_everything_at_its_maximum() -> None:
    record = to_timestream_record(_largest_event())
    assert _size(record) <= MAX_RECORD_BYTES
    measures = {m["Name"]: m["Value"] for m in record["MeasureValues"]}
    assert measures["commit_count"] == "2048"  # the count always fits
    assert measures["deployment_id"] == "d" * 128


def test_timestream_keeps_the_commits_that_fit_and_says_it_cut() -> None:
    event = make_event(metadata="", commits=_commits(40))
    record = to_timestream_record(event)
    assert _size(record) <= MAX_RECORD_BYTES
    measures = {m["Name"]: m["Value"] for m in record["MeasureValues"]}
    kept = json.loads(measures["commits"])
    assert 5 < len(kept) < 40
    assert [c["sha"] for c in kept] == [c["sha"] for c in _commits(40)[: len(kept)]]  # whole, in order
    assert measures["commits_truncated"] == "true"
    assert measures["commit_count"] == "40"


def test_new_relic_entry_keeps_the_full_event() -> None:
    event = make_event(**FIELDS, commits=_commits(2048))
    attributes = to_log_entry(event, now=NOW)["attributes"]
    for name, value in FIELDS.items():
        assert attributes["event_service" if name == "service" else name] == value
    assert "service" not in attributes  # the common 'devops-metrics' service stays what queries filter on
    assert attributes["commit_count"] == 2048
    assert len(json.loads(attributes["commits"])) == 2048
    assert attributes["event_time"] == event.time_ms


def test_incident_fields_reach_new_relic() -> None:
    event = make_event(event="incident_opened", incident_id="inc-7", deployment_id="deploy-42")
    attributes = to_log_entry(event, now=NOW)["attributes"]
    assert attributes["incident_id"] == "inc-7"
    assert attributes["deployment_id"] == "deploy-42"


def test_a_fresh_event_is_logged_at_its_own_time() -> None:
    event = make_event(time=NOW - timedelta(hours=2))
    entry = to_log_entry(event, now=NOW)
    assert entry["timestamp"] == event.time_ms
    assert "timestamp_is_send_time" not in entry["attributes"]


def test_a_backfilled_event_is_logged_at_send_time_with_its_event_time_kept() -> None:
    """New Relic may drop entries older than 48 h while answering 202."""
    event = make_event(time=NOW - timedelta(days=3))
    entry = to_log_entry(event, now=NOW)
    assert entry["timestamp"] == int(NOW.timestamp() * 1000)
    assert entry["attributes"]["event_time"] == event.time_ms
    assert entry["attributes"]["timestamp_is_send_time"] is True


def test_raw_record_keeps_every_field() -> None:
    event = make_event(**FIELDS, commits=_commits(2), metadata='{"k":"v"}')
    row = to_raw_record(event)
    for name, value in FIELDS.items():
        assert row[name] == value
    assert row["commits"][0] == {"sha": _commits(2)[0]["sha"], "time": row["commits"][0]["time"]}
    assert row["time"] == event.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    assert row["digest"] == event.content_digest()
    line = encode_raw_record(event)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line)["event_id"] == event.event_id
