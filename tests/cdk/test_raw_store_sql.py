"""The shipped Athena SQL, run for real: events (with duplicates and a conflict) go through the consumer's
Firehose sink into moto, come back from moto's S3, and the dedupe view and the DORA queries run on them
in DuckDB (a real SQL engine; the SQL keeps to what Athena's Trino and DuckDB run alike)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from devops_metrics_cdk.athena import (
    DEDUPED_VIEW,
    RAW_EVENT_COLUMNS,
    create_view_sql,
    metric_sql,
    named_queries,
)

from consumer.sinks.firehose import FirehoseSink, to_raw_record
from devops_core.aws import aio_client
from devops_core.events import DevOpsEvent, EventType
from devstack.raw_store import first_received, raw_event_lines, read_raw_events
from devstack.resources import ensure_raw_event_delivery
from tests.support import unique_settings

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "array<struct<sha:string,time:timestamp>>": "STRUCT(sha VARCHAR, time TIMESTAMP)[]",
}


def _event(event: str, *, minutes: float, repo: str = "svc-a", **fields: Any) -> DevOpsEvent:
    time = NOW - timedelta(days=2) + timedelta(minutes=minutes)
    return DevOpsEvent(
        event_id=fields.pop("event_id", f"{repo}-{event}-{minutes}"),
        time=time,
        received_at=fields.pop("received_at", time + timedelta(seconds=5)),
        repo=repo,
        event=EventType(event),
        source="cicd_script",
        **fields,
    )


def _history() -> tuple[list[DevOpsEvent], list[list[DevOpsEvent]]]:
    """Distinct events, and the batches the sink gets (redeliveries, a resend and a conflict included)."""
    sha1, sha2, sha3 = "a" * 40, "b" * 40, "c" * 40
    events = [
        _event("push", minutes=0, sha=sha1, commits=({"sha": sha1, "time": NOW - timedelta(days=3)},)),
        _event("push", minutes=10, sha=sha2, before=sha1),
        _event("push", minutes=20, sha=sha3, before=sha2),
        _event("deploy", minutes=60, sha=sha1, outcome="success", deployment_id="d-1"),  # lead 3600 s
        _event("deploy", minutes=130, sha=sha2, outcome="success", team="core", service="api"),  # 7200 s
        _event("deploy_failed", minutes=200, sha=sha3, outcome="failure", environment="production"),
        _event("service_restored", minutes=230),  # recovery 1800 s
        _event("deploy", minutes=240, sha=sha3, outcome="success", remediation="hotfix"),  # 13200 s
        _event("deploy", minutes=300, sha=sha3, outcome="success", environment="staging"),  # not prod
        _event("incident_opened", minutes=310, incident_id="inc-1", deployment_id="d-1"),
        _event("deploy", minutes=20, repo="svc-b", outcome="success"),
        _event("test_pass", minutes=5, repo="svc-b"),
    ]
    first, deploy = events[0], events[3]
    resend = deploy.model_copy(update={"received_at": deploy.received_at + timedelta(minutes=3)})
    conflict = first.model_copy(
        update={"received_at": first.received_at + timedelta(minutes=1), "metadata": "changed"}
    )
    batches = [events[:6], events[3:], [deploy, resend], [conflict], events[:2]]
    return events, batches


async def _write(delivery_stream: str, batches: list[list[DevOpsEvent]]) -> None:
    async with aio_client("firehose") as client:
        sink = FirehoseSink(client, delivery_stream)
        for batch in batches:
            result = await sink.write(batch)
            assert result.complete, result
            assert not result.rejected, result


@pytest.fixture(scope="module")
def stored(emulator: str) -> dict[str, Any]:
    settings = unique_settings(
        raw_events_bucket=f"raw-{datetime.now(UTC).strftime('%H%M%S%f')}",
        raw_events_delivery_stream=f"raw-{datetime.now(UTC).strftime('%H%M%S%f')}",
    )
    ensure_raw_event_delivery(settings)
    events, batches = _history()
    asyncio.run(_write(settings.raw_events_delivery_stream, batches))
    return {"settings": settings, "events": events, "batches": batches}


@pytest.fixture
def db(stored: dict[str, Any], tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """raw_events in DuckDB from the very bytes Firehose delivered to S3."""
    lines = raw_event_lines(stored["settings"].raw_events_bucket)
    path = tmp_path / "raw_events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    columns = ", ".join(f"'{name}': '{_DUCKDB_TYPES[kind]}'" for name, kind in RAW_EVENT_COLUMNS.items())
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(
        f"CREATE TABLE raw_events AS SELECT * FROM read_json('{path}', format = 'newline_delimited', "
        f"timestampformat = '%Y-%m-%d %H:%M:%S.%g', columns = {{{columns}}})"
    )
    return connection


def _rows(connection: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = connection.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_raw_record_has_exactly_the_table_columns(stored: dict[str, Any]) -> None:
    for event in stored["events"]:
        assert list(to_raw_record(event)) == list(RAW_EVENT_COLUMNS)


def test_every_delivered_copy_is_in_s3(stored: dict[str, Any]) -> None:
    rows = read_raw_events(stored["settings"].raw_events_bucket)
    assert len(rows) == sum(len(batch) for batch in stored["batches"])  # at-least-once: all copies kept
    assert {row["event_id"] for row in rows} == {event.event_id for event in stored["events"]}
    deploy = next(row for row in rows if row["deployment_id"] == "d-1" and row["event"] == "deploy")
    assert deploy["outcome"] == "success"
    push = next(row for row in rows if row["commits"])
    assert push["commits"][0]["sha"] == "a" * 40
    assert push["before"] is None
    assert {row["sha"]: row["before"] for row in rows if row["before"]} == {
        "b" * 40: "a" * 40,
        "c" * 40: "b" * 40,
    }


def test_the_view_keeps_exactly_one_row_per_event_the_first_received(
    stored: dict[str, Any], db: duckdb.DuckDBPyConnection
) -> None:
    db.execute(create_view_sql())
    view = _rows(db, f"SELECT event_id, received_at, metadata, digest FROM {DEDUPED_VIEW}")
    assert len(view) == len(stored["events"])
    assert len({row["event_id"] for row in view}) == len(view)
    expected = {event.event_id: event for event in stored["events"]}
    for row in view:
        original = expected[row["event_id"]]
        assert row["received_at"] == original.received_at.replace(tzinfo=None)
        assert row["digest"] == original.content_digest()
        assert row["metadata"] == original.metadata  # the conflicting later version is not the one kept
    pushes = _rows(db, f"SELECT sha, before FROM {DEDUPED_VIEW} WHERE event = 'push' ORDER BY time")
    assert [(row["sha"], row["before"]) for row in pushes] == [
        ("a" * 40, None),
        ("b" * 40, "a" * 40),
        ("c" * 40, "b" * 40),
    ]
    # the Python reader applies the same rule
    python = first_received(read_raw_events(stored["settings"].raw_events_bucket))
    assert {(r["event_id"], r["digest"]) for r in python} == {(r["event_id"], r["digest"]) for r in view}


def test_conflicts_are_listed(stored: dict[str, Any], db: duckdb.DuckDBPyConnection) -> None:
    (query,) = [q for q in named_queries() if q.name == "conflicting-event-ids"]
    rows = _rows(db, query.sql)
    assert [row["event_id"] for row in rows] == [stored["events"][0].event_id]
    assert rows[0]["versions"] == 2


def test_deployment_frequency(db: duckdb.DuckDBPyConnection) -> None:
    rows = _rows(db, metric_sql("deployment_frequency"))
    # svc-a: 3 successful production deploys (the failed one and the staging one do not count)
    assert rows == [
        {"repo": "svc-a", "deploys": 3, "per_day": pytest.approx(3 / 30)},
        {"repo": "svc-b", "deploys": 1, "per_day": pytest.approx(1 / 30)},
    ]


def test_change_lead_time_is_the_median_of_exact_samples(db: duckdb.DuckDBPyConnection) -> None:
    rows = _rows(db, metric_sql("change_lead_time"))
    # samples 3600, 7200, 13200 s (the resent deploy counts once): median 7200
    assert rows == [{"repo": "svc-a", "samples": 3, "median_s": 7200}]


def test_change_failure_rate(db: duckdb.DuckDBPyConnection) -> None:
    rows = _rows(db, metric_sql("change_failure_rate"))
    assert rows == [
        {"repo": "svc-a", "deploys": 4, "failures": 1, "rate": pytest.approx(0.25)},
        {"repo": "svc-b", "deploys": 1, "failures": 0, "rate": 0.0},
    ]


def test_recovery_time(db: duckdb.DuckDBPyConnection) -> None:
    assert _rows(db, metric_sql("recovery_time")) == [{"repo": "svc-a", "samples": 1, "median_s": 1800}]


def test_rework_rate(db: duckdb.DuckDBPyConnection) -> None:
    rows = _rows(db, metric_sql("rework_rate"))
    assert rows[0] == {"repo": "svc-a", "deploys": 4, "remediations": 1, "rate": pytest.approx(0.25)}


def test_every_named_query_runs(db: duckdb.DuckDBPyConnection) -> None:
    names = [query.name for query in named_queries()]
    assert len(names) == len(set(names)) == 7
    for query in named_queries():
        db.execute(query.sql)  # the view's CREATE included
