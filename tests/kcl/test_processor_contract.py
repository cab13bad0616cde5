"""The processor core's contract, checked for both KCL applications over the MultiLangDaemon's line
protocol: each test starts the real processor child (``python -m consumer.kcl_app``,
``python -m aggregator.child``) and plays the daemon's part, answering its checkpoint requests.

The rules (devops_core/kcl/processor.py): a handled batch is checkpointed at exactly its last record;
poison goes to the dead-letter queue in one shape; a batch that keeps failing is retried, never
checkpointed, and when a stop abandons it nothing after it is checkpointed either, not even at
shutdown; lease loss never checkpoints; shard end checkpoints SHARD_END; a configuration error is
retried and alarmed, never dead-lettered.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devops_core.dead_letters import DeadLetter
from devops_core.settings import Settings
from tests.consumer.consumer_helpers import dead_letters, make_event, set_faults
from tests.support import KclChild, Stack

# The application under test: its child module, and the service its batches write to (the one the
# fault proxy breaks in front of the emulator).
APPS = {
    "consumer": ("consumer.kcl_app", "TIMESTREAM_WRITE", "Timestream"),
    "aggregator": ("aggregator.child", "DYNAMODB", "DynamoDB"),
}


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings a child reads from its environment, as production passes them."""
    names = [
        "devops_stream_name",
        "devops_db_name",
        "devops_table_name",
        "dead_letter_queue_name",
        "aggregator_state_table",
        "consumer_application_name",
        "aggregator_application_name",
    ]
    return {name.upper(): str(getattr(settings, name)) for name in names}


@dataclass
class Child:
    """The processor child and what it logged (stderr, read by a thread so it never blocks)."""

    kcl: KclChild
    log: list[str]
    name: str

    def call(self, message: dict[str, Any], *, checkpoint_error: str | None = None) -> list[str | None]:
        """Send one action as the daemon does, answer the child's checkpoint requests, and return the
        sequence numbers it asked to checkpoint before it reported the action done."""
        self.kcl.send(message)
        asked: list[str | None] = []
        while True:
            reply = self.kcl.receive()
            if reply["action"] == "checkpoint":
                asked.append(reply["sequenceNumber"])
                self.kcl.send(
                    {
                        "action": "checkpoint",
                        "sequenceNumber": reply["sequenceNumber"],
                        "subSequenceNumber": reply.get("subSequenceNumber"),
                        "error": checkpoint_error,
                    }
                )
                continue
            assert reply == {"action": "status", "responseFor": message["action"]}
            return asked

    def process(self, *records: dict[str, Any], **kwargs: Any) -> list[str | None]:
        batch = {"action": "processRecords", "millisBehindLatest": 0, "records": list(records)}
        return self.call(batch, **kwargs)

    def send_batch_in_background(self, *records: dict[str, Any]) -> threading.Thread:
        result: list[list[str | None]] = []
        thread = threading.Thread(target=lambda: result.append(self.process(*records)), daemon=True)
        thread.result = result  # type: ignore[attr-defined]
        thread.start()
        return thread

    def wait_for_log(self, text: str, timeout: float = 60) -> str:
        """Block until the child logged a line containing ``text`` (an event, not a sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.log):
                if text in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"the {self.name} child never logged {text!r}; it logged:\n" + "".join(self.log))

    def finish(self) -> int:
        assert self.kcl.process.stdin
        self.kcl.process.stdin.close()
        return self.kcl.process.wait(30)


def record(seq: int, data: bytes | None = None) -> dict[str, Any]:
    return {
        "action": "record",
        "data": base64.b64encode(data if data is not None else make_event().to_record_data()).decode(),
        "partitionKey": "svc",
        "sequenceNumber": str(seq),
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": int(time.time() * 1000),
    }


@pytest.fixture(params=sorted(APPS))
def child(request: pytest.FixtureRequest, stack: Stack, fault_proxy: str) -> Iterator[Child]:
    name = request.param
    module, endpoint, _ = APPS[name]
    env = {
        **os.environ,
        **settings_env(stack.settings),
        f"AWS_ENDPOINT_URL_{endpoint}": fault_proxy,
        "PROCESSOR_MAX_BACKOFF_SECONDS": "0.2",
    }
    env.pop("LOGGER_API_KEY", None)
    kcl = KclChild(module, env)
    log: list[str] = []

    def drain() -> None:
        assert kcl.process.stderr
        for line in kcl.process.stderr:
            log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    child = Child(kcl, log, name)
    child.kcl.initialize()
    yield child
    if kcl.process.poll() is None:
        kcl.process.kill()
        kcl.process.wait()


def break_the_sink(fault_proxy: str, child: Child, **how: Any) -> None:
    service = APPS[child.name][2]
    set_faults(fault_proxy, **{key: [service] for key in how})


def test_a_handled_batch_is_checkpointed_at_its_last_record(child: Child) -> None:
    assert child.process(record(11), record(12), record(13)) == ["13"]
    assert child.call({"action": "shutdownRequested"}) == []  # nothing handled since
    assert child.finish() == 0


def test_the_child_freezes_its_start_up_heap_before_serving(child: Child) -> None:
    """devops_core/startup_heap.py: full collections skip the processor's clients and models (the
    consumer child: 151 -> 118 µs of CPU per record, docs/performance.md step four)."""
    ready = json.loads(child.wait_for_log('"processor ready"'))
    assert ready["startup_objects_frozen"] >= 40_000


def test_poison_is_dead_lettered_in_the_one_shape(child: Child, stack: Stack) -> None:
    assert child.process(record(1, b"not json"), record(2, b'{"schema": 1}'), record(3)) == ["3"]
    letters = sorted(dead_letters(stack.settings), key=lambda letter: letter["sequence_number"])
    assert [letter["sequence_number"] for letter in letters] == ["1", "2"]
    for letter in letters:
        assert set(letter) == set(DeadLetter.model_fields)
        assert (letter["application"], letter["stage"], letter["shard_id"]) == (
            child.name,
            "decode",
            "shardId-000000000000",
        )
        assert letter["reason"].startswith("invalid record")
    assert letters[0]["record"] == "not json"


def test_shutdown_after_an_abandoned_batch_never_checkpoints_past_it(child: Child, fault_proxy: str) -> None:
    assert child.process(record(1)) == ["1"]
    break_the_sink(fault_proxy, child, unavailable_services=True)
    failing = child.send_batch_in_background(record(2))
    child.wait_for_log("batch failed; retrying")
    child.kcl.process.send_signal(signal.SIGTERM)  # the daemon's stop reaches the child's group
    failing.join(60)
    assert failing.result == [[]]  # type: ignore[attr-defined]  # abandoned: no checkpoint
    # The daemon may deliver another batch before its shutdown request: handling and checkpointing
    # it would skip record 2.
    set_faults(fault_proxy)
    assert child.process(record(3)) == []
    # The regression: a checkpoint without a sequence number here means "the last record delivered"
    # (3) to the KCL, and record 2 would be skipped forever.
    assert child.call({"action": "shutdownRequested"}) == []
    assert child.call({"action": "shardEnded"}) == []  # not SHARD_END either
    assert child.finish() == 0
    assert child.kcl.process.poll() == 0


def test_shutdown_checkpoints_exactly_the_last_handled_record(child: Child) -> None:
    # The daemon answers the batch's checkpoint with ShutdownException (the lease is moving).
    assert child.process(record(7), record(8), checkpoint_error="ShutdownException") == ["8"]
    assert child.call({"action": "shutdownRequested"}) == ["8"]  # not None, not a later record
    assert child.finish() == 0


def test_lease_loss_never_checkpoints_and_shard_end_does(child: Child) -> None:
    assert child.process(record(5)) == ["5"]
    assert child.call({"action": "leaseLost"}) == []
    assert child.call({"action": "shardEnded"}) == [None]  # SHARD_END: the KCL's own marker
    assert child.finish() == 0


def test_a_configuration_error_is_retried_and_alarmed_not_dead_lettered(
    child: Child, fault_proxy: str, stack: Stack
) -> None:
    break_the_sink(fault_proxy, child, access_denied_services=True)
    batch = child.send_batch_in_background(record(21), record(22))
    alarm = json.loads(child.wait_for_log('"alarm": "sink_misconfigured"'))
    assert alarm["level"] == "error"
    assert batch.is_alive()  # still retrying: not given up, not dead-lettered
    set_faults(fault_proxy)  # the operator fixed the IAM policy
    batch.join(60)
    assert batch.result == [["22"]]  # type: ignore[attr-defined]
    assert dead_letters(stack.settings) == []
    assert child.finish() == 0
