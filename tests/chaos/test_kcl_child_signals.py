"""A processor child under the MultiLangDaemon survives a SIGTERM sent to its process group: the
daemon, not the signal, ends it, after asking for the checkpoint. A batch the consumer cannot
deliver stops retrying on the signal and is not checkpointed (it will be redelivered)."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time

from aggregator.app import build_processor
from devstack.emulator import free_port
from tests.aggregator.test_aggregator_processor import Checkpointer, kcl_record, now_event, process_with
from tests.consumer.consumer_helpers import make_event
from tests.support import KclChild, Stack


def test_consumer_child_survives_sigterm_and_does_not_checkpoint_an_undelivered_batch(stack: Stack) -> None:
    s = stack.settings
    env = {
        **os.environ,
        "DEVOPS_DB_NAME": s.devops_db_name,
        "DEVOPS_TABLE_NAME": s.devops_table_name,
        "DEAD_LETTER_QUEUE_NAME": s.dead_letter_queue_name,
        # Timestream unreachable: the batch stays in the processor's backoff loop.
        "AWS_ENDPOINT_URL_TIMESTREAM_WRITE": f"http://127.0.0.1:{free_port()}",
        "CONSUMER_MAX_BACKOFF_SECONDS": "1",
    }
    env.pop("LOGGER_API_KEY", None)
    child = KclChild("consumer.kcl_app", env)
    process, send, receive = child.process, child.send, child.receive

    try:
        child.initialize()
        record = {
            "action": "record",
            "data": base64.b64encode(make_event().to_record_data()).decode(),
            "partitionKey": "svc",
            "sequenceNumber": "7",
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": int(time.time() * 1000),
        }
        send({"action": "processRecords", "millisBehindLatest": 0, "records": [record]})
        time.sleep(2)  # the batch is now retrying against the dead Timestream endpoint
        process.send_signal(signal.SIGTERM)
        # Not killed; the undelivered batch is given up without a checkpoint.
        assert receive() == {"action": "status", "responseFor": "processRecords"}
        assert process.poll() is None
        send({"action": "shutdownRequested"})
        assert receive() == {"action": "status", "responseFor": "shutdownRequested"}
        assert process.stdin
        process.stdin.close()
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_aggregator_stops_retrying_a_failing_batch_when_signalled(stack: Stack) -> None:
    """The child's on_signal calls ``stop()``: a batch that keeps failing is abandoned at once (no
    checkpoint) instead of being retried until it succeeds."""
    settings = stack.settings.model_copy(update={"devops_stream_name": "no-such-stream"})
    proc = build_processor(settings)
    checkpointer = Checkpointer()
    threading.Timer(1.0, proc.stop).start()
    started = time.monotonic()
    process_with(proc, [kcl_record(now_event("deploy").to_record_data(), 1)], checkpointer)
    assert time.monotonic() - started < 15  # without the signal: minutes
    assert checkpointer.calls == []
