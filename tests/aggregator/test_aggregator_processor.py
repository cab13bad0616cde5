"""The aggregator under the processor core, with the daemon's record objects and a test-double
checkpointer, against real moto Kinesis, DynamoDB and SQS."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from amazon_kclpy import messages

from aggregator.app import PeriodicEmitter, build_aggregator, build_processor
from devops_core.aws import boto_client
from devops_core.events import DevOpsEvent
from devops_core.kcl.processor import StreamProcessor
from devstack.inspect import read_stream_events
from tests.aggregator.helpers import make_event
from tests.kcl.kcl_test_support import wait_for

METRICS = (
    "calc_deployment_freq",
    "calc_lead_time",
    "calc_change_failure_rate",
    "calc_recovery_time",
    "calc_rework_rate",
)


class Checkpointer:
    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self.calls.append(sequence_number)


def kcl_record(data: bytes, seq: int, key: str = "demo") -> messages.Record:
    return messages.Record(
        {
            "sequenceNumber": str(seq),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": 0,
            "partitionKey": key,
            "data": base64.b64encode(data).decode(),
        }
    )


def process(proc: StreamProcessor, records: list[messages.Record]) -> Checkpointer:
    checkpointer = Checkpointer()
    batch = messages.ProcessRecordsInput(
        {"records": records, "millisBehindLatest": 0, "action": "processRecords"}
    )
    batch.dispatch(checkpointer, proc)
    return checkpointer


@pytest.fixture
def processor(stack: Any) -> StreamProcessor:
    proc = build_processor(stack.settings)
    messages.InitializeInput(
        {
            "action": "initialize",
            "shardId": "shardId-000000000000",
            "sequenceNumber": "0",
            "subSequenceNumber": 0,
        }
    ).dispatch(None, proc)
    return proc


def metrics_in_stream(stack: Any) -> list[DevOpsEvent]:
    return [e for e in read_stream_events(stack.settings.devops_stream_name) if e.source == "aggregator"]


def now_event(kind: str, **kw: Any) -> DevOpsEvent:
    """Events near the real clock: the processor's window ends today."""
    return make_event(kind, at=datetime.now(UTC) - kw.pop("ago", timedelta(0)), **kw)


def test_deploys_emit_all_five_metrics_for_repo_and_all(stack: Any, processor: StreamProcessor) -> None:
    events = [now_event("deploy", ago=timedelta(days=d)) for d in (0, 1, 2)]
    checkpointer = process(processor, [kcl_record(e.to_record_data(), i) for i, e in enumerate(events)])
    assert checkpointer.calls == ["2"]
    emitted = metrics_in_stream(stack)
    assert {(e.repo, e.event.value) for e in emitted} == {(s, m) for s in ("demo", "ALL") for m in METRICS}
    freq = next(e for e in emitted if e.repo == "demo" and e.event == "calc_deployment_freq")
    values = json.loads(freq.metadata)
    assert (values["count"], values["per_day"], values["window_days"], values["level"]) == (
        3,
        0.1,
        30,
        "medium",
    )
    assert len(freq.metadata.encode()) < 1024
    cfr = next(e for e in emitted if e.repo == "demo" and e.event == "calc_change_failure_rate")
    assert json.loads(cfr.metadata)["rate"] == 0.0


def test_a_push_arriving_after_its_deploy_emits_the_new_lead_time(
    stack: Any, processor: StreamProcessor
) -> None:
    deploy = now_event("deploy", sha="abcdef12")
    process(processor, [kcl_record(deploy.to_record_data(), 1)])
    before = metrics_in_stream(stack)
    assert [json.loads(e.metadata)["samples"] for e in before if e.event == "calc_lead_time"] == [0, 0]
    push = make_event("push", sha="abcdef12", at=deploy.time - timedelta(hours=2))
    assert process(processor, [kcl_record(push.to_record_data(), 2)]).calls == ["2"]
    after = [e for e in metrics_in_stream(stack) if e not in before]
    lead = [json.loads(e.metadata) for e in after if e.event == "calc_lead_time"]
    assert [(value["samples"], value["median_s"]) for value in lead] == [(1, 7200.0), (1, 7200.0)]
    # A push that ships nothing yet changes no fact and emits nothing.
    process(processor, [kcl_record(now_event("push", sha="0000000f").to_record_data(), 3)])
    assert len(metrics_in_stream(stack)) == len(before) + len(after)


def test_redelivered_batch_counts_once_and_reemits_the_same_ids(
    stack: Any, processor: StreamProcessor
) -> None:
    records = [kcl_record(now_event("deploy").to_record_data(), i) for i in range(3)]
    process(processor, records)
    first = metrics_in_stream(stack)
    process(processor, records)  # lost checkpoint: the daemon hands the same records again
    everything = metrics_in_stream(stack)
    assert len(everything) == 2 * len(first) == 20
    assert {e.event_id for e in everything} == {e.event_id for e in first}
    second = [e for e in everything if e not in first]
    assert [json.loads(e.metadata)["count"] for e in second if e.event == "calc_deployment_freq"] == [3, 3]


def dead_letters(stack: Any) -> list[dict[str, Any]]:
    sqs = boto_client("sqs")
    url = sqs.get_queue_url(QueueName=stack.settings.dead_letter_queue_name)["QueueUrl"]
    messages_ = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in messages_]


def test_poison_and_conflicts_are_dead_lettered_and_the_batch_checkpoints(
    stack: Any, processor: StreamProcessor
) -> None:
    good = now_event("deploy", event_id="job-1")
    clash = now_event("deploy_failed", event_id="job-1")
    records = [
        kcl_record(b"not json", 1),
        kcl_record(json.dumps({"schema": 1, "event": "deploy"}).encode(), 2),
        kcl_record(good.to_record_data(), 3),
        kcl_record(clash.to_record_data(), 4),
    ]
    assert process(processor, records).calls == ["4"]
    letters = sorted(dead_letters(stack), key=lambda body: body["sequence_number"])
    assert [(b["sequence_number"], b["stage"]) for b in letters] == [
        ("1", "decode"),
        ("2", "decode"),
        ("4", "conflict"),
    ]
    assert all(b["application"] == "aggregator" for b in letters)
    assert letters[2]["event_id"] == "job-1"
    assert "already names a different event" in letters[2]["reason"]


def test_own_metric_events_are_ignored(stack: Any, processor: StreamProcessor) -> None:
    process(processor, [kcl_record(now_event("deploy").to_record_data(), 1)])
    emitted = metrics_in_stream(stack)
    checkpointer = process(processor, [kcl_record(e.to_record_data(), 10 + i) for i, e in enumerate(emitted)])
    assert checkpointer.calls == [str(10 + len(emitted) - 1)]
    assert len(metrics_in_stream(stack)) == len(emitted)  # nothing new emitted


def test_a_failing_batch_is_retried_until_stopped_and_never_checkpointed(stack: Any) -> None:
    """The KCL would move past a batch whose process_records returned: the processor keeps retrying
    (no skip) and, when stopped, returns without a checkpoint so the batch is delivered again."""
    settings = stack.settings.model_copy(update={"devops_stream_name": "no-such-stream"})
    proc = build_processor(settings)
    checkpointer = Checkpointer()
    worker = threading.Thread(
        target=process, args=(proc, [kcl_record(now_event("deploy").to_record_data(), 1)])
    )
    worker.start()
    wait_for(lambda: proc.stats.retries >= 3, timeout=60)  # retrying, not given up
    assert worker.is_alive()
    proc.stop()
    worker.join(60)
    assert not worker.is_alive()
    assert checkpointer.calls == []
    assert proc.abandoned
    messages.ShutdownRequestedInput({"action": "shutdownRequested"}).dispatch(checkpointer, proc)
    assert checkpointer.calls == []  # not "the last delivered record" either


def test_the_periodic_emitter_fires_at_period_boundaries(stack: Any) -> None:
    aggregator = build_aggregator(stack.settings)
    aggregator.handle([now_event("deploy", repo="quiet")])
    before = {e.event_id for e in metrics_in_stream(stack)}
    periodic = PeriodicEmitter(aggregator, interval_seconds=1.0)
    periodic.start()
    try:
        wait_for(
            lambda: len({e.time for e in metrics_in_stream(stack) if e.event_id not in before}) >= 2,
            timeout=60,
        )
    finally:
        periodic.stop()
    fired = [e for e in metrics_in_stream(stack) if e.event_id not in before]
    assert all(e.time.microsecond == 0 for e in fired)
    assert {e.repo for e in fired} == {"quiet", "ALL"}
    by_period: dict[datetime, int] = {}
    for e in fired:
        by_period[e.time] = by_period.get(e.time, 0) + 1
    assert set(by_period.values()) <= {10}  # each period: quiet and ALL x 5, once
