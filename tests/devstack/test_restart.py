"""Local state survives `make run` restarts (events, raw rows, metrics, KCL checkpoints, the token),
nothing accepted is lost or counted twice, and `--clean` wipes it all."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.inspect import timestream_records
from tests.support import AWS_TEST_ENV, LocalStackProcess, start_local_stack

REPO = "restart-demo"
BOTO_TEST_KWARGS = {
    "region_name": AWS_TEST_ENV["AWS_DEFAULT_REGION"],
    "aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
}


def call(stack: LocalStackProcess, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.gateway}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def deploy(stack: LocalStackProcess, hours_ago: float) -> str:
    when = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
    status, body = call(stack, "/process-event", {"repo": REPO, "event": "deploy", "time": when})
    assert status == 202, body
    return str(body["event_id"])


def deploys_counted(stack: LocalStackProcess) -> int:
    status, body = call(stack, f"/metrics/{REPO}?window=7")
    if status == 404:
        return 0
    assert status == 200, body
    return int(body["deployment_frequency"]["count"])


def stored(stack: LocalStackProcess) -> Counter[str]:
    """Raw-store rows per event_id (moto keeps a redelivered record's row twice)."""
    rows = timestream_records(stack.emulator, "DORAStats", "DORARawEventsTest")
    ids = (next(d["Value"] for d in r["Dimensions"] if d["Name"] == "event_id") for r in rows)
    return Counter(ids)


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 90.0) -> None:
    """Wait for a condition (the bound only stops a broken run; no timing is asserted)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {limit:.0f} s")
        time.sleep(0.1)


def stream_ids(stack: LocalStackProcess, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    for name, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": stack.emulator}.items():
        monkeypatch.setenv(name, value)
    from devstack.inspect import read_stream_events

    return {e.event_id for e in read_stream_events("devops-events")}


def test_a_restart_keeps_events_metrics_and_token_and_clean_wipes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = start_local_stack(state_dir=tmp_path)
    try:
        assert "(new;" in first.banner
        sent = [deploy(first, hours) for hours in (30, 20, 10)]
        wait_for(lambda: deploys_counted(first) == 3, "the aggregator counted the three deploys")
        wait_for(lambda: set(sent) <= set(stored(first)), "the consumer stored the three deploys")
        rows_before = stored(first)
    finally:
        first.stop(signal.SIGINT)
    assert first.process.returncode == 0

    second = start_local_stack(state_dir=tmp_path)
    try:
        assert "restored from the last run" in second.banner
        assert second.token == first.token
        assert "The token is kept from the last run" in second.banner
        assert set(sent) <= stream_ids(second, monkeypatch)
        assert deploys_counted(second) == 3
        fourth = deploy(second, 1)
        wait_for(lambda: deploys_counted(second) == 4, "the new deploy is counted, the old ones not again")
        wait_for(lambda: fourth in stored(second), "the new deploy is stored")
        after = stored(second)
        # The consumer resumed at its checkpoint: nothing stored before was delivered again.
        assert {i: after[i] for i in rows_before} == dict(rows_before)
        assert after[fourth] == 1
    finally:
        second.stop(signal.SIGINT)

    third = start_local_stack("--clean", state_dir=tmp_path)
    try:
        assert "--clean: wiped" in third.banner
        assert "(new;" in third.banner
        assert third.token != first.token
        assert "The token is made for this state directory" in third.banner
        assert not (set(sent) | {fourth}) & stream_ids(third, monkeypatch)
        assert deploys_counted(third) == 0
        old_token = urllib.request.Request(
            f"{third.gateway}/metrics", headers={"Authorization": f"Bearer {first.token}"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:  # the old token went with the old data
            urllib.request.urlopen(old_token, timeout=30)
        assert refused.value.code == 401
    finally:
        third.stop(signal.SIGINT)


def test_a_crash_keeps_what_the_last_periodic_snapshot_held_and_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    stack = start_local_stack("--snapshot-interval", "0.5", state_dir=tmp_path)
    try:
        sent = [deploy(stack, hours) for hours in (5, 4)]
        wait_for(lambda: deploys_counted(stack) == 2, "the aggregator counted both deploys")
        wait_for(lambda: set(sent) <= set(stored(stack)), "the consumer stored both deploys")
        handled = time.time_ns()
        # A change after that, so that a later snapshot is due (snapshots are taken only after changes).
        import boto3

        sqs = boto3.client("sqs", endpoint_url=stack.emulator, **BOTO_TEST_KWARGS)
        sqs.create_queue(QueueName="snapshot-trigger")
        snapshot = tmp_path / "emulator.pickle"
        wait_for(
            lambda: snapshot.exists() and snapshot.stat().st_mtime_ns > handled,
            "a periodic snapshot was taken after both deploys were handled",
        )
    finally:
        os.killpg(stack.process.pid, signal.SIGKILL)  # no clean shutdown, no final snapshot
        stack.process.wait()

    again = start_local_stack(state_dir=tmp_path)
    try:
        assert "restored from the last run" in again.banner
        assert deploys_counted(again) == 2
        third = deploy(again, 1)
        wait_for(lambda: deploys_counted(again) == 3, "a new deploy is counted once, the old ones not again")
        wait_for(lambda: third in stored(again), "the new deploy is stored")
        assert set(sent) <= set(stored(again))
    finally:
        again.stop(signal.SIGINT)
