"""`make run` end to end: the local stack starts on free ports, takes an event, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support import LocalStackProcess, start_local_stack


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStackProcess]:
    stack = start_local_stack("--newrelic-standin")
    yield stack
    stack.stop(signal.SIGKILL)


def post_event(stack: LocalStackProcess, body: dict) -> dict:
    request = urllib.request.Request(
        f"{stack.gateway}/process-event",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return json.load(response)


def test_event_posted_to_the_local_gateway_is_in_the_local_stream(
    local_stack: LocalStackProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = post_event(local_stack, {"repo": "demo", "event": "deploy", "metadata": "v1"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_stack.emulator)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from devstack.inspect import read_stream_events

    events = [e for e in read_stream_events("devops-events") if e.event_id == accepted["event_id"]]
    assert [(e.repo, e.event, e.metadata) for e in events] == [("demo", "deploy", "v1")]


def _wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _newrelic_event_ids(stack: LocalStackProcess) -> set[str]:
    with urllib.request.urlopen(f"{stack.newrelic}/__standin__/logs", timeout=5) as response:
        logs = json.load(response)["logs"]
    return {log.get("attributes", {}).get("event_id") or log.get("event_id") for log in logs}


def test_event_reaches_timestream_and_new_relic_within_two_seconds(
    local_stack: LocalStackProcess,
) -> None:
    from devstack.inspect import timestream_records

    accepted = post_event(local_stack, {"repo": "demo", "event": "push", "metadata": "e2e"})
    event_id = accepted["event_id"]

    def in_timestream() -> bool:
        records = timestream_records(local_stack.emulator, "DORAStats", "DORARawEventsTest")
        return any({"Name": "event_id", "Value": event_id} in r["Dimensions"] for r in records)

    assert _wait_for(in_timestream, timeout=2.0) <= 2.0
    _wait_for(lambda: event_id in _newrelic_event_ids(local_stack), timeout=2.0)


def test_sigterm_stops_everything_within_seconds(local_stack: LocalStackProcess) -> None:
    started = time.monotonic()
    local_stack.process.send_signal(signal.SIGTERM)
    assert local_stack.process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(local_stack.process.pid, 0)  # no process of its group is left
