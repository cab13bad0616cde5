"""`make run` end to end: the local stack starts on free ports, takes an event, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

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


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Wait for a condition (the bound only stops a broken run; the test asserts no timing)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {limit:.0f} s")
        time.sleep(0.05)


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


def _newrelic_event_ids(stack: LocalStackProcess) -> set[str]:
    with urllib.request.urlopen(f"{stack.newrelic}/__standin__/logs", timeout=5) as response:
        logs = json.load(response)["logs"]
    return {log.get("attributes", {}).get("event_id") or log.get("event_id") for log in logs}


def test_event_reaches_timestream_and_new_relic(local_stack: LocalStackProcess) -> None:
    from devstack.inspect import timestream_records

    accepted = post_event(local_stack, {"repo": "demo", "event": "push", "metadata": "e2e"})
    event_id = accepted["event_id"]

    def in_timestream() -> bool:
        records = timestream_records(local_stack.emulator, "DORAStats", "DORARawEventsTest")
        return any({"Name": "event_id", "Value": event_id} in r["Dimensions"] for r in records)

    wait_for(in_timestream, "the event is in Timestream")
    wait_for(lambda: event_id in _newrelic_event_ids(local_stack), "the event is at New Relic")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_root_redirects_to_the_dashboard_without_a_token(local_stack: LocalStackProcess) -> None:
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(f"{local_stack.gateway}/", timeout=10)
    assert answer.value.code == 302
    assert answer.value.headers["Location"] == "/dashboard"
    with urllib.request.urlopen(f"{local_stack.gateway}/", timeout=10) as page:  # followed: the page
        assert page.url == f"{local_stack.gateway}/dashboard"
        assert b"<html" in page.read().lower()


def test_banner_gives_the_dashboard_and_the_shell_setup_kept_in_the_state_dir(
    local_stack: LocalStackProcess,
) -> None:
    assert f"dashboard: {local_stack.gateway}/dashboard" in local_stack.banner
    env_file = local_stack.state_dir / "env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"  # it holds the token
    shown = subprocess.run(
        [
            "bash",
            "-c",
            f'. "{env_file}" && echo "$DEVOPS_EVENTS_SECRET_TOKEN $API_DEVOPS_EVENT_CATCHER '
            '$AWS_ENDPOINT_URL"',
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.split()
    assert shown == [local_stack.token, f"{local_stack.gateway}/process-event", local_stack.emulator]
    stack = json.loads((local_stack.state_dir / "stack.json").read_text())
    assert (stack["gateway_url"], stack["emulator_url"]) == (local_stack.gateway, local_stack.emulator)
    assert (local_stack.state_dir / "token").read_text().strip() == local_stack.token


def test_sigterm_stops_everything_and_saves_the_state(local_stack: LocalStackProcess) -> None:
    local_stack.process.send_signal(signal.SIGTERM)
    assert local_stack.process.wait(timeout=60) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(local_stack.process.pid, 0)  # no process of its group is left
    assert (local_stack.state_dir / "emulator.pickle").stat().st_size > 0
    assert not (local_stack.state_dir / "stack.json").exists()  # make demo / inspect: no stack runs
    assert not (local_stack.state_dir / "env").exists()
