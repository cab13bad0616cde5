"""The record processor against the real moto server and the shared New Relic stand-in."""

from __future__ import annotations

import threading

from consumer.sinks.timestream import MEASURE_NAME
from devstack.inspect import timestream_records
from tests.consumer.consumer_helpers import (
    FakeCheckpointer,
    dead_letters,
    initialize_input,
    kcl_record,
    make_event,
    process_input,
    set_faults,
    standin_fault,
    standin_logs,
    wait_until,
)

SHARD = "shardId-000000000001"


def _processor(runtime):
    processor = runtime.new_processor()
    processor.initialize(initialize_input(SHARD))
    return processor


def _ts(emulator, settings):
    return timestream_records(emulator, settings.devops_db_name, settings.devops_table_name)


def _dims(record):
    return {d["Name"]: d["Value"] for d in record["Dimensions"]}


def test_batch_reaches_both_sinks_then_checkpoints(
    emulator, consumer_settings, make_runtime, newrelic_standin, api_key
):
    events = [make_event(repo=f"svc-{i % 2}", event="deploy" if i % 3 else "push") for i in range(7)]
    checkpointer = FakeCheckpointer()
    processor = _processor(make_runtime(consumer_settings))
    processor.process_records(
        process_input([kcl_record(e.to_record_data(), 100 + i) for i, e in enumerate(events)], checkpointer)
    )

    assert checkpointer.checkpoints == [("106", None)]
    stored = _ts(emulator, consumer_settings)
    assert sorted(_dims(r)["event_id"] for r in stored) == sorted(e.event_id for e in events)
    first = next(r for r in stored if _dims(r)["event_id"] == events[0].event_id)
    assert _dims(first) == {
        "repo": "svc-0",
        "event": events[0].event.value,
        "source": "cicd_script",
        "event_id": events[0].event_id,
    }
    assert first["Time"] == str(events[0].time_ms)
    assert first["TimeUnit"] == "MILLISECONDS"
    assert first["MeasureName"] == MEASURE_NAME
    logs = standin_logs(newrelic_standin, api_key)
    assert sorted(log["event_id"] for log in logs) == sorted(e.event_id for e in events)
    log = next(entry for entry in logs if entry["event_id"] == events[0].event_id)
    assert log["service"] == "devops-metrics"
    assert log["repo"] == "svc-0"
    assert log["event"] == events[0].event.value
    assert log["metadata"] == '{"v":1}'
    assert log["timestamp"] == events[0].time_ms


def test_poison_records_are_dead_lettered_and_the_shard_moves_on(
    emulator, consumer_settings, make_runtime, newrelic_standin, api_key
):
    good = make_event()
    records = [
        kcl_record(b"not json at all", 1),
        kcl_record(b'{"schema": 1, "event_id": "x", "repo": "r", "event": "nope"}', 2),
        kcl_record(b"\xff\xfe\x00binary", 3),
        kcl_record(good.to_record_data(), 4),
    ]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(process_input(records, checkpointer))

    assert checkpointer.checkpoints == [("4", None)]
    letters = sorted(dead_letters(consumer_settings), key=lambda body: body["sequence_number"])
    assert [letter["sequence_number"] for letter in letters] == ["1", "2", "3"]
    assert all(letter["shard_id"] == SHARD and letter["stage"] == "decode" for letter in letters)
    assert letters[0]["record"] == "not json at all"
    assert "invalid record" in letters[1]["reason"]
    assert "event" in letters[1]["reason"]
    assert letters[2]["record_encoding"] == "base64"
    assert [_dims(r)["event_id"] for r in _ts(emulator, consumer_settings)] == [good.event_id]
    assert [log["event_id"] for log in standin_logs(newrelic_standin, api_key)] == [good.event_id]


def test_a_different_event_under_a_used_id_in_one_batch_is_dead_lettered_not_dropped(
    emulator, consumer_settings, make_runtime, newrelic_standin, api_key
):
    """Two clients reusing an event_id: the first is stored, the second dead-lettered as a conflict with
    the reason (it used to vanish with only 'events received 2 / written 1' in the log); an exact
    repeat is a duplicate, written once and not dead-lettered."""
    first = make_event(repo="conf-test")
    other = first.model_copy(update={"repo": "conf-other"})
    records = [
        kcl_record(first.to_record_data(), 1),
        kcl_record(other.to_record_data(), 2),
        kcl_record(first.to_record_data(), 3),
    ]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(process_input(records, checkpointer))

    assert checkpointer.checkpoints == [("3", None)]
    assert [(_dims(r)["event_id"], _dims(r)["repo"]) for r in _ts(emulator, consumer_settings)] == [
        (first.event_id, "conf-test")
    ]
    (letter,) = dead_letters(consumer_settings)
    assert (letter["stage"], letter["sequence_number"]) == ("conflict", "2")
    assert "already names a different event" in letter["reason"]


def test_redelivered_batch_is_an_identical_upsert(emulator, consumer_settings, make_runtime):
    events = [make_event() for _ in range(3)]
    records = [kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)]
    processor = _processor(make_runtime(consumer_settings))
    processor.process_records(process_input(records, FakeCheckpointer()))
    processor.process_records(process_input(records, FakeCheckpointer()))  # KCL at-least-once

    stored = _ts(emulator, consumer_settings)
    assert len(stored) == 6  # moto appends; Timestream would upsert identical records into 3
    by_id: dict[str, list[dict]] = {}
    for record in stored:
        by_id.setdefault(_dims(record)["event_id"], []).append(record)
    assert all(first == second for first, second in by_id.values())
    assert all(
        first["Version"] == int(e.received_at.timestamp() * 1000)
        for e in events
        for first, _ in [by_id[e.event_id]]
    )


def test_timestream_rejections_dead_letter_the_rejected_only(
    emulator, fault_proxy, consumer_settings, make_runtime, monkeypatch, newrelic_standin, api_key
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_TIMESTREAM_WRITE", fault_proxy)
    set_faults(fault_proxy, timestream_reject_ratio=0.3, seed=7)
    events = [make_event() for _ in range(150)]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )

    assert checkpointer.checkpoints == [("150", None)]
    letters = dead_letters(consumer_settings)
    stored = {_dims(r)["event_id"] for r in _ts(emulator, consumer_settings)}
    rejected = {letter["event_id"] for letter in letters}
    assert letters
    assert all(letter["stage"] == "timestream" for letter in letters)
    assert all("outside the time range" in letter["reason"] for letter in letters)
    assert stored.isdisjoint(rejected)
    assert stored | rejected == {e.event_id for e in events}
    # New Relic took every event, once, whatever Timestream thought of them.
    assert sorted(log["event_id"] for log in standin_logs(newrelic_standin, api_key)) == sorted(
        e.event_id for e in events
    )


def test_retryable_timestream_rejections_are_retried_not_dead_lettered(
    emulator, fault_proxy, consumer_settings, make_runtime, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_TIMESTREAM_WRITE", fault_proxy)
    set_faults(
        fault_proxy,
        timestream_reject_ratio=0.4,
        timestream_reject_reason="Internal server error, please try again",
        seed=3,
    )
    events = [make_event() for _ in range(60)]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )
    assert checkpointer.checkpoints == [("60", None)]
    assert dead_letters(consumer_settings) == []
    assert {_dims(r)["event_id"] for r in _ts(emulator, consumer_settings)} == {e.event_id for e in events}


def _run_in_thread(processor, records, checkpointer):
    thread = threading.Thread(target=processor.process_records, args=(process_input(records, checkpointer),))
    thread.start()
    return thread


def test_timestream_down_for_a_while_then_back(
    emulator, fault_proxy, consumer_settings, make_runtime, monkeypatch, newrelic_standin, api_key
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_TIMESTREAM_WRITE", fault_proxy)
    set_faults(fault_proxy, timestream_unavailable=True)
    events = [make_event() for _ in range(20)]
    checkpointer = FakeCheckpointer()
    processor = _processor(make_runtime(consumer_settings))
    thread = _run_in_thread(
        processor, [kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer
    )

    wait_until(lambda: processor.stats.retries >= 3, timeout=60)  # retrying, not given up
    assert thread.is_alive()
    assert checkpointer.checkpoints == []
    wait_until(lambda: len(standin_logs(newrelic_standin, api_key)) == 20)  # New Relic took its part
    # Backing off, not spinning: each retry is one WriteRecords pass (botocore retries a 503 at most
    # 3 times in it), never a burst of calls.
    calls_during_outage = _proxy_counts(fault_proxy).get("timestream_unavailable", 0)
    assert 2 <= calls_during_outage <= 3 * (processor.stats.retries + 1)

    set_faults(fault_proxy)  # Timestream is back
    thread.join(15)
    assert not thread.is_alive()
    assert checkpointer.checkpoints == [("20", None)]
    assert sorted(_dims(r)["event_id"] for r in _ts(emulator, consumer_settings)) == sorted(
        e.event_id for e in events
    )
    assert sorted(log["event_id"] for log in standin_logs(newrelic_standin, api_key)) == sorted(
        e.event_id for e in events
    )  # nothing sent to New Relic twice
    assert dead_letters(consumer_settings) == []


def _proxy_counts(proxy_url):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{proxy_url}/__faults__", timeout=5) as response:
        return json.load(response)


def test_newrelic_down_for_a_while_then_back(
    emulator, consumer_settings, make_runtime, newrelic_standin, api_key
):
    standin_fault(newrelic_standin, status=503, count=3, api_key=api_key)
    events = [make_event() for _ in range(10)]
    checkpointer = FakeCheckpointer()
    processor = _processor(make_runtime(consumer_settings))
    processor.process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )
    assert processor.stats.retries == 3  # one retry per refused POST, then the batch went through
    assert checkpointer.checkpoints == [("10", None)]
    assert sorted(log["event_id"] for log in standin_logs(newrelic_standin, api_key)) == sorted(
        e.event_id for e in events
    )
    assert len(_ts(emulator, consumer_settings)) == 10  # Timestream written once, not once per retry


def test_newrelic_429_burst_honours_retry_after(consumer_settings, make_runtime, newrelic_standin, api_key):
    """A 429's Retry-After reaches the processor's backoff (a wait at least that long, above the 0.5 s
    cap of these tests); the wait itself is the backoff's, tested in tests/core/test_retry.py."""
    standin_fault(newrelic_standin, status=429, count=2, retry_after=0.7, api_key=api_key)
    events = [make_event() for _ in range(5)]
    runtime = make_runtime(consumer_settings)
    sink = next(sink for sink in runtime.application.sinks if sink.name == "newrelic")
    result = runtime.run(sink.write(events))
    assert (len(result.pending), result.retry_after) == (5, 0.7)
    checkpointer = FakeCheckpointer()
    processor = _processor(runtime)
    processor.process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )
    assert processor.stats.retries == 1  # the second 429, waited out, then delivered
    assert checkpointer.checkpoints == [("5", None)]
    assert len(standin_logs(newrelic_standin, api_key)) == 5


def test_newrelic_500_burst_is_retried(consumer_settings, make_runtime, newrelic_standin, api_key):
    standin_fault(newrelic_standin, status=500, count=3, api_key=api_key)
    events = [make_event() for _ in range(5)]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )
    assert checkpointer.checkpoints == [("5", None)]
    assert sorted(log["event_id"] for log in standin_logs(newrelic_standin, api_key)) == sorted(
        e.event_id for e in events
    )
    assert dead_letters(consumer_settings) == []


def test_newrelic_4xx_dead_letters_the_batch_with_the_response(
    emulator, consumer_settings, make_runtime, newrelic_standin, api_key
):
    standin_fault(newrelic_standin, status=400, count=1, api_key=api_key)
    events = [make_event() for _ in range(3)]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )
    assert checkpointer.checkpoints == [("3", None)]
    letters = dead_letters(consumer_settings)
    assert sorted(letter["event_id"] for letter in letters) == sorted(e.event_id for e in events)
    assert all(letter["stage"] == "newrelic" and "400" in letter["reason"] for letter in letters)
    assert all("injected by the stand-in" in letter["reason"] for letter in letters)
    assert len(_ts(emulator, consumer_settings)) == 3


def test_large_batches_are_split_under_one_megabyte(
    consumer_settings, make_runtime, newrelic_standin, api_key
):
    # ~1,000 bytes of metadata each: 2,000 events are ~2.5 MB of JSON, so at least three POSTs.
    events = [make_event(metadata="x" * 1000) for _ in range(2000)]
    checkpointer = FakeCheckpointer()
    _processor(make_runtime(consumer_settings)).process_records(
        process_input([kcl_record(e.to_record_data(), i + 1) for i, e in enumerate(events)], checkpointer)
    )
    assert checkpointer.checkpoints == [("2000", None)]
    assert len(standin_logs(newrelic_standin, api_key)) == 2000


def test_without_a_key_new_relic_is_off(emulator, consumer_settings, make_runtime, caplog):
    settings = consumer_settings.model_copy(update={"logger_api_key": None})
    runtime = make_runtime(settings)
    assert [sink.name for sink in runtime.application.sinks] == ["timestream"]
    assert sum("new relic sink off" in r.getMessage() for r in caplog.records) == 1
    checkpointer = FakeCheckpointer()
    event = make_event()
    _processor(runtime).process_records(process_input([kcl_record(event.to_record_data(), 9)], checkpointer))
    assert checkpointer.checkpoints == [("9", None)]
    assert len(_ts(emulator, settings)) == 1


def test_lease_lost_shard_ended_and_shutdown(consumer_settings, make_runtime):
    from amazon_kclpy import messages

    runtime = make_runtime(consumer_settings)
    processor = _processor(runtime)
    processor.process_records(
        process_input([kcl_record(make_event().to_record_data(), 5)], FakeCheckpointer())
    )

    shutdown = FakeCheckpointer()
    request = messages.ShutdownRequestedInput({"action": "shutdownRequested"})
    request.dispatch(shutdown, processor)
    assert shutdown.checkpoints == []  # already checkpointed at 5 after the batch

    lost = FakeCheckpointer()
    messages.LeaseLostInput({"action": "leaseLost"}).dispatch(lost, processor)
    assert lost.checkpoints == []
    assert processor.lease_lost_flag

    ended = FakeCheckpointer()
    ended.fail_with = ["ThrottlingException"]  # retried
    messages.ShardEndedInput({"action": "shardEnded"}).dispatch(ended, processor)
    assert ended.checkpoints == [(None, None)]  # the shard end itself


def test_shutdown_checkpoints_the_last_delivered_batch_when_the_batch_checkpoint_failed(
    consumer_settings, make_runtime
):
    from amazon_kclpy import messages

    processor = _processor(make_runtime(consumer_settings))
    failing = FakeCheckpointer()
    failing.fail_with = ["ShutdownException"]
    processor.process_records(process_input([kcl_record(make_event().to_record_data(), 8)], failing))
    assert failing.checkpoints == []
    shutdown = FakeCheckpointer()
    messages.ShutdownRequestedInput({"action": "shutdownRequested"}).dispatch(shutdown, processor)
    assert shutdown.checkpoints == [("8", None)]


def test_stopping_during_an_outage_does_not_checkpoint(
    fault_proxy, consumer_settings, make_runtime, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_TIMESTREAM_WRITE", fault_proxy)
    set_faults(fault_proxy, timestream_unavailable=True)
    runtime = make_runtime(consumer_settings)
    checkpointer = FakeCheckpointer()
    processor = _processor(runtime)
    thread = _run_in_thread(processor, [kcl_record(make_event().to_record_data(), 1)], checkpointer)
    wait_until(lambda: processor.stats.retries >= 1, timeout=60)  # the outage has the batch
    runtime.stopping.set()
    thread.join(60)  # the pass in flight finishes first (botocore retries up to ~6 s)
    assert not thread.is_alive()
    assert checkpointer.checkpoints == []
    assert processor.abandoned
