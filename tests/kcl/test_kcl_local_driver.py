"""LocalKclDriver against the real moto server: delivery, lease-table checkpoints, restart, shutdown,
processor failures, lease loss and shard end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devops_core.aws import boto_client
from devops_core.kcl import LocalKclDriver
from devops_core.kcl.leases import SHARD_END
from tests.kcl.kcl_recording_processor import POISON, RecordingProcessor, read_events
from tests.kcl.kcl_test_support import leases, make_stream, put, records, wait_for
from tests.support import unique_settings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def app(emulator: str) -> str:
    return unique_settings().consumer_application_name


@pytest.fixture
def drivers() -> Iterator[list[LocalKclDriver]]:
    """Drivers made by a test; stopped afterwards whatever happened."""
    made: list[LocalKclDriver] = []
    yield made
    for driver in made:
        driver.stop(5)


def driver_for(
    drivers: list[LocalKclDriver], stream: str, app: str, output: Path, **processor_args: Any
) -> LocalKclDriver:
    driver = LocalKclDriver(
        stream_name=stream,
        application_name=app,
        processor_factory=lambda: RecordingProcessor(output, **processor_args),
        poll_interval=0.05,
        shard_sync_interval=0.5,
    )
    drivers.append(driver)
    return driver


def test_all_records_checkpointed_and_restart_resumes_after_checkpoint(
    app: str, tmp_path: Path, drivers: list[LocalKclDriver]
) -> None:
    stream = make_stream(2)
    output = tmp_path / "out.jsonl"
    first = [f"a{i}" for i in range(300)]
    put(stream, first)

    driver = driver_for(drivers, stream, app, output)
    driver.start()
    wait_for(lambda: len(records(output)) >= len(first))
    assert driver.stop(10)

    seen = records(output)
    assert sorted(r["data"] for r in seen) == sorted(first)
    by_shard = {shard: [r for r in seen if r["shard"] == shard] for shard in {r["shard"] for r in seen}}
    assert len(by_shard) == 2, "both shards were read"
    table = leases(app)
    for shard, shard_records in by_shard.items():
        assert table[shard]["checkpoint"]["S"] == shard_records[-1]["seq"]
        assert "leaseOwner" not in table[shard], "lease released on stop"
        assert int(table[shard]["leaseCounter"]["N"]) >= 2

    second = [f"b{i}" for i in range(100)]
    put(stream, second)
    restarted = driver_for(drivers, stream, app, output)
    restarted.start()
    wait_for(lambda: len(records(output)) >= len(first) + len(second))
    assert restarted.stop(10)

    counts = Counter(r["data"] for r in records(output))
    assert set(counts) == set(first) | set(second)
    assert max(counts.values()) == 1, "nothing checkpointed was delivered again"
    inits = [e for e in read_events(output) if e["event"] == "initialize"][2:]
    assert {e["shard"]: e["seq"] for e in inits} == {s: table[s]["checkpoint"]["S"] for s in by_shard}


def test_shutdown_requested_checkpoints(app: str, tmp_path: Path, drivers: list[LocalKclDriver]) -> None:
    stream = make_stream(2)
    output = tmp_path / "out.jsonl"
    put(stream, [f"s{i}" for i in range(50)])
    driver = driver_for(drivers, stream, app, output, checkpoint_each_batch=False)
    driver.start()
    wait_for(lambda: len(records(output)) == 50)
    assert {lease["checkpoint"]["S"] for lease in leases(app).values()} == {"TRIM_HORIZON"}

    assert driver.stop(10)
    events = read_events(output)
    shutdowns = [e for e in events if e["event"] == "shutdown_requested"]
    assert len(shutdowns) == 2
    assert all(e["ok"] for e in shutdowns)
    last = {r["shard"]: r["seq"] for r in records(output)}
    assert {shard: lease["checkpoint"]["S"] for shard, lease in leases(app).items()} == last


def test_processor_exception_does_not_stop_the_driver(
    app: str, tmp_path: Path, drivers: list[LocalKclDriver], caplog: pytest.LogCaptureFixture
) -> None:
    stream = make_stream(1)
    output = tmp_path / "out.jsonl"
    driver = driver_for(drivers, stream, app, output)
    driver.start()
    put(stream, [POISON.decode()])
    wait_for(lambda: len(records(output)) == 1)
    poison_seq = records(output)[0]["seq"]
    put(stream, ["after"])
    wait_for(lambda: len(records(output)) == 2)
    (status,) = driver.status().values()
    assert status.state == "running"
    after_seq = records(output)[1]["seq"]
    wait_for(lambda: driver.status()[status.shard_id].checkpoint == after_seq)
    assert [r.exc_info[1].args for r in caplog.records if r.msg == "record processor raised"] == [
        ("poison record",)
    ]
    assert int(after_seq) > int(poison_seq)
    assert driver.stop(10)


def test_lease_lost_stops_the_shard_without_checkpointing(
    app: str, tmp_path: Path, drivers: list[LocalKclDriver]
) -> None:
    stream = make_stream(1)
    output = tmp_path / "out.jsonl"
    driver = driver_for(drivers, stream, app, output)
    driver.start()
    put(stream, ["one"])
    wait_for(lambda: any(e["event"] == "checkpoint" for e in read_events(output)))
    (shard,) = leases(app)
    boto_client("dynamodb").update_item(
        TableName=app,
        Key={"leaseKey": {"S": shard}},
        UpdateExpression="SET leaseOwner = :other",
        ExpressionAttributeValues={":other": {"S": "another-worker"}},
    )
    put(stream, ["two"])
    wait_for(lambda: any(e["event"] == "lease_lost" for e in read_events(output)))
    checkpoints = [e["ok"] for e in read_events(output) if e["event"] == "checkpoint"]
    assert checkpoints == [True, False], "the checkpoint after the steal got ShutdownException"
    assert driver.status()[shard].state == "lease_lost"
    assert leases(app)[shard]["leaseOwner"]["S"] == "another-worker"
    assert leases(app)[shard]["checkpoint"]["S"] == records(output)[0]["seq"]
    assert driver.stop(10)


def test_closed_parent_ends_with_shard_end_before_children_start(
    app: str, tmp_path: Path, drivers: list[LocalKclDriver]
) -> None:
    """After a split the parent is closed; its processor gets shard_ended and checkpoints SHARD_END,
    and only then the children start. (moto keeps routing writes to the closed parent, so the data
    sits there; real Kinesis would route new writes to the children.)"""
    stream = make_stream(1)
    kinesis = boto_client("kinesis")
    (parent,) = kinesis.list_shards(StreamName=stream)["Shards"]
    parent_id = parent["ShardId"]
    put(stream, [f"c{i}" for i in range(20)])
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent_id, NewStartingHashKey=str(2**127))

    output = tmp_path / "out.jsonl"
    driver = driver_for(drivers, stream, app, output)
    driver.start()

    def initialized() -> set[str]:
        return {e["shard"] for e in read_events(output) if e["event"] == "initialize"}

    wait_for(lambda: len(initialized()) == 3)
    assert driver.stop(10)

    events = read_events(output)
    ended = [e for e in events if e["event"] == "shard_ended"]
    assert ended == [{"event": "shard_ended", "shard": parent_id, "ok": True}]
    children = initialized() - {parent_id}
    child_inits = [i for i, e in enumerate(events) if e["event"] == "initialize" and e["shard"] in children]
    assert min(child_inits) > events.index(ended[0]), "children start after the parent's SHARD_END"
    table = leases(app)
    assert table[parent_id]["checkpoint"]["S"] == SHARD_END
    for child in children:
        assert table[child]["parentShardId"]["SS"] == [parent_id]
    assert driver.status()[parent_id].state == "finished"
