"""RAW_STORE=s3: the consumer's Firehose sink against moto (which delivers to its S3 for real), through the
fault proxy for what moto never does (per-record failures, denied permissions, outages)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from consumer.sinks.firehose import MAX_RECORD_BYTES, FirehoseSink
from devops_core.aws import aio_client, client_config
from devops_core.events import DevOpsEvent
from devops_core.settings import Settings
from devstack.raw_store import read_raw_events
from devstack.resources import ensure_raw_event_delivery
from tests.consumer.consumer_helpers import (
    FakeCheckpointer,
    dead_letters,
    initialize_input,
    kcl_record,
    make_event,
    process_input,
    set_faults,
)


@pytest.fixture
def s3_settings(stack: Any) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    settings = stack.settings.model_copy(
        update={
            "raw_store": "s3",
            "raw_events_bucket": f"raw-{suffix}",
            "raw_events_delivery_stream": f"raw-{suffix}",
            "processor_max_backoff_seconds": 0.2,
        }
    )
    ensure_raw_event_delivery(settings)
    return settings


def _write(settings: Settings, events: list[DevOpsEvent], stream: str | None = None) -> Any:
    async def write() -> Any:
        async with aio_client("firehose", config=client_config(max_attempts=1)) as client:
            return await FirehoseSink(client, stream or settings.raw_events_delivery_stream).write(events)

    return asyncio.run(write())


def test_the_processor_stores_a_batch_in_s3_then_checkpoints(s3_settings: Settings, make_runtime) -> None:
    events = [make_event(repo=f"svc-{i % 3}", event="deploy", sha="ab" * 20) for i in range(12)]
    runtime = make_runtime(s3_settings)
    assert [sink.name for sink in runtime.application.sinks] == ["s3"]  # no New Relic key: S3 only
    processor = runtime.new_processor()
    processor.initialize(initialize_input("shardId-000000000001"))
    checkpointer = FakeCheckpointer()
    processor.process_records(
        process_input([kcl_record(e.to_record_data(), 500 + i) for i, e in enumerate(events)], checkpointer)
    )
    assert checkpointer.checkpoints == [("511", None)]
    rows = read_raw_events(s3_settings.raw_events_bucket)
    assert sorted(row["event_id"] for row in rows) == sorted(e.event_id for e in events)
    assert {row["sha"] for row in rows} == {"ab" * 20}


def test_only_the_records_firehose_failed_are_sent_again(
    s3_settings: Settings, fault_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", fault_proxy)
    set_faults(fault_proxy, firehose_entry_failure_ratio=0.4, seed=3)
    events = [make_event(repo="svc", event="push") for _ in range(30)]
    result = _write(s3_settings, events)
    assert result.pending  # some failed inside a 200 answer...
    assert len(result.pending) < len(events)
    assert not result.rejected
    assert not result.misconfigured
    pending = result.pending
    for _ in range(20):  # ...and only those are resent until every one is taken
        if not pending:
            break
        pending = _write(s3_settings, pending).pending
    assert not pending
    rows = read_raw_events(s3_settings.raw_events_bucket)
    assert sorted(row["event_id"] for row in rows) == sorted(e.event_id for e in events)  # each exactly once


@pytest.mark.parametrize("fault", ["access_denied_services", "unavailable_services"])
def test_denied_or_down_is_pending_never_rejected(
    s3_settings: Settings, fault_proxy: str, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", fault_proxy)
    set_faults(fault_proxy, **{fault: ["Firehose"]})
    events = [make_event() for _ in range(5)]
    result = _write(s3_settings, events)
    assert [e.event_id for e in result.pending] == [e.event_id for e in events]
    assert not result.rejected
    assert result.misconfigured is (fault == "access_denied_services")
    expected = "AccessDenied" if fault == "access_denied_services" else "ServiceUnavailable"
    assert expected in (result.error or "")


def test_a_missing_delivery_stream_is_a_configuration_error(s3_settings: Settings) -> None:
    result = _write(s3_settings, [make_event()], stream=f"missing-{uuid.uuid4().hex[:8]}")
    assert len(result.pending) == 1
    assert not result.rejected
    assert result.misconfigured


def test_a_record_firehose_can_never_take_is_dead_lettered_and_the_rest_stored(
    s3_settings: Settings, make_runtime
) -> None:
    # Only a writer that skips the gateway can make one this big; the wire model refuses it at decoding
    # (Firehose's own limit stays guarded in the sink).
    huge = make_event().model_copy(update={"metadata": "x" * (MAX_RECORD_BYTES + 1)})
    fine = [make_event() for _ in range(3)]
    runtime = make_runtime(s3_settings)
    processor = runtime.new_processor()
    processor.initialize(initialize_input("shardId-000000000002"))
    checkpointer = FakeCheckpointer()
    batch = [huge, *fine]
    processor.process_records(
        process_input([kcl_record(e.to_record_data(), 700 + i) for i, e in enumerate(batch)], checkpointer)
    )
    assert checkpointer.checkpoints == [("703", None)]
    assert sorted(row["event_id"] for row in read_raw_events(s3_settings.raw_events_bucket)) == sorted(
        e.event_id for e in fine
    )
    (letter,) = [d for d in dead_letters(s3_settings) if huge.event_id in str(d)]
    assert f"metadata is {MAX_RECORD_BYTES + 1} bytes" in str(letter)
