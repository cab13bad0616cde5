"""`make demo` (a seeded history through the real gateway) and `make inspect` (readable tables of what
the pipeline holds), against `make run` as a real process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devops_core.events import parse_client_body
from devstack.demo import REPOS, build_history
from devstack.inspect import change
from tests.support import ROOT, LocalStackProcess, start_local_stack

ANCHOR = datetime(2026, 3, 18, tzinfo=UTC)


def production_deploys(history: list[dict]) -> list[dict]:
    return [
        e
        for e in history
        if e["event"] in ("deploy", "deploy_failed") and e.get("environment") == "production"
    ]


def test_the_history_is_a_pure_function_of_seed_days_and_day() -> None:
    first = build_history(seed=7, days=35, anchor=ANCHOR)
    assert first == build_history(seed=7, days=35, anchor=ANCHOR)
    assert first != build_history(seed=8, days=35, anchor=ANCHOR)
    ids = [e["event_id"] for e in first]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "demo-20260318-7-00001"
    with pytest.raises(ValueError, match="UTC midnight"):
        build_history(anchor=ANCHOR + timedelta(hours=1))


@pytest.mark.parametrize(
    "anchor", [ANCHOR + timedelta(days=n) for n in range(7)], ids=lambda a: a.strftime("%a")
)
def test_every_history_is_valid_and_shows_everything_the_dashboard_can(anchor: datetime) -> None:
    history = build_history(anchor=anchor)
    for event in history:
        parse_client_body(event, now=anchor)  # the gateway's own validation: nothing is refused
    times = sorted(datetime.fromisoformat(e["time"]) for e in history)
    assert times[-1] < anchor  # nothing today or later (the gateway refuses the future)
    assert (anchor - times[0]).days >= 30
    assert {e["repo"] for e in history} == {r.repo for r in REPOS}
    assert len({e["team"] for e in history}) >= 4
    pushes = [e for e in history if e["event"] == "push"]
    assert all(e["commits"] and all(c.get("time") for c in e["commits"]) for e in pushes)
    for repo in {e["repo"] for e in pushes}:  # each push moves the branch on from the previous head
        chain = [e for e in pushes if e["repo"] == repo]
        assert "before" not in chain[0]
        assert [e["before"] for e in chain[1:]] == [e["sha"] for e in chain[:-1]]
    deploys = production_deploys(history)
    outcomes = Counter(
        "failure" if e["event"] == "deploy_failed" or e.get("outcome") == "failure" else "success"
        for e in deploys
    )
    assert outcomes["failure"] >= 3
    assert outcomes["success"] >= 60
    assert any(e["event"] == "deploy_failed" for e in history)  # the seed's name for a failed deploy
    assert {e.get("remediation") for e in deploys} >= {"hotfix", "rollback"}
    assert any(e["event"] == "deploy" and e.get("environment") == "staging" for e in history)
    assert any(e["event"] == "service_restored" for e in history)
    opened = {e["incident_id"] for e in history if e["event"] == "incident_opened"}
    resolved = {e["incident_id"] for e in history if e["event"] == "incident_resolved"}
    assert opened
    assert opened == resolved
    assert any(e.get("deployment_id") for e in history if e["event"] == "incident_opened")


def test_inspect_shows_a_push_as_the_range_it_moved_the_branch() -> None:
    assert change("a1b2c3d4e5f6", "0f1e2d3c4b5a") == "0f1e2d3..a1b2c3d"
    assert change("a1b2c3d4e5f6", None) == "a1b2c3d"
    assert change(None, None) == ""


def test_demo_print_into_a_reader_that_stops_early_ends_quietly() -> None:
    """`make demo ARGS=--print | head -3` ended in a BrokenPipeError traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.demo", "--print"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"{")
    process.stdout.close()  # more than a pipe's buffer is still to come
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0
    assert b"Traceback" not in stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    running = start_local_stack(state_dir=tmp_path_factory.mktemp("state"))
    yield running
    running.stop(signal.SIGINT)


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVOPS_EVENTS"))}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_output(stack: LocalStackProcess) -> str:
    result = run_module("devstack.demo", "--state-dir", str(stack.state_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_demo_sends_the_history_through_the_gateway_and_the_metrics_count_it(
    stack: LocalStackProcess, demo_output: str
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    history = build_history(anchor=today)
    assert f"sent {len(history)} of {len(history)} events" in demo_output
    in_window = [
        e for e in production_deploys(history) if e["time"] >= (today - timedelta(days=29)).isoformat()
    ]
    match = re.search(r"metrics ready \(ALL: (\d+) production deploys in 30 days\)", demo_output)
    assert match, demo_output
    assert int(match.group(1)) == len(in_window)
    assert f"open {stack.gateway}/dashboard" in demo_output


def test_make_demo_twice_on_a_day_stores_the_events_once(stack: LocalStackProcess, demo_output: str) -> None:
    again = run_module("devstack.demo", "--state-dir", str(stack.state_dir))
    assert again.returncode == 0, again.stderr
    first = re.search(r"ALL: (\d+) production deploys", demo_output)
    second = re.search(r"ALL: (\d+) production deploys", again.stdout)
    assert first
    assert second
    assert first.group(1) == second.group(1)


def test_make_inspect_honours_the_exported_endpoint(
    stack: LocalStackProcess, demo_output: str, tmp_path: Path
) -> None:
    """No stack on the state directory it is given: everything comes from the exported variables."""
    env = {
        "AWS_ENDPOINT_URL": stack.emulator,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DEVOPS_EVENTS_SECRET_TOKEN": stack.token,
    }
    result = run_module(
        "devstack.inspect", "--state-dir", str(tmp_path / "none"), "--gateway", stack.gateway, env=env
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    history = build_history(anchor=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    pushes = sum(1 for e in history if e["event"] == "push")
    # The stream keeps every resend (make demo may have run twice); the raw store has each event once.
    counted = re.search(r"^push\s+(\d+)$", out, re.M)
    assert counted, out
    assert int(counted.group(1)) % pushes == 0
    assert re.search(r"^Stream devops-events \(2 open shards\): \d+ records$", out, re.M)
    distinct = re.search(
        r"^Raw store Timestream DORAStats.DORARawEventsTest: \d+ rows, (\d+) distinct", out, re.M
    )
    assert distinct, out
    assert int(distinct.group(1)) >= len(history)
    assert re.search(r"^ALL\s+\d+\s+\d+\.\d\d/day\s+(elite|high|medium|low)", out, re.M), out
    assert re.search(r"^acme/checkout\s", out, re.M)
    assert "Dead letters in devops-events-dlq: 0" in out
    assert "object at 0x" not in out  # tables, not object dumps


def test_make_inspect_finds_the_running_stack_without_any_export(
    stack: LocalStackProcess, demo_output: str
) -> None:
    result = run_module(
        "devstack.inspect", "metrics", "--repo", "acme/search", "--state-dir", str(stack.state_dir)
    )
    assert result.returncode == 0, result.stderr
    assert f"Metrics from {stack.gateway}/metrics/acme%2Fsearch?window=30" in result.stdout
    assert re.search(r"^acme/search\s+\d+", result.stdout, re.M), result.stdout


def test_make_inspect_counts_one_repos_raw_rows_with_repo(stack: LocalStackProcess, demo_output: str) -> None:
    """With --repo, the raw store's distinct event_id count is the repo's, like the row count beside it
    (it was the whole store's: "6 rows, 11 distinct")."""
    result = run_module(
        "devstack.inspect", "raw", "--repo", "acme/search", "--state-dir", str(stack.state_dir)
    )
    assert result.returncode == 0, result.stderr
    counts = re.search(r"^Raw store .*: (\d+) rows, (\d+) distinct event_id", result.stdout, re.M)
    assert counts, result.stdout
    rows, distinct = int(counts.group(1)), int(counts.group(2))
    assert 0 < distinct <= rows


def test_make_inspect_limits_the_metrics_table_and_shows_receive_times(
    stack: LocalStackProcess, demo_output: str
) -> None:
    result = run_module(
        "devstack.inspect", "metrics", "raw", "--limit", "3", "--state-dir", str(stack.state_dir)
    )
    assert result.returncode == 0, result.stderr
    title = re.search(r"^Metrics from .*: (\d+) scope\(s\) \(the first 3\)$", result.stdout, re.M)
    assert title, result.stdout
    assert int(title.group(1)) > 3
    metrics = result.stdout.split("Metrics from", 1)[1]
    assert re.search(r"^ALL\s", metrics, re.M)
    assert len(re.findall(r"^(ALL|acme/\S+)\s+\d+\s", metrics, re.M)) == 3
    # The raw store's first column is when the consumer received the event, not epoch milliseconds.
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+acme/", result.stdout, re.M), result.stdout


def test_make_inspect_exits_1_when_a_section_cannot_be_read(stack: LocalStackProcess, tmp_path: Path) -> None:
    """A stopped stack's exported lines used to give 20 s of "cannot be read" and exit 0."""
    result = run_module(
        "devstack.inspect",
        "metrics",
        "--state-dir",
        str(stack.state_dir),
        "--gateway",
        "http://127.0.0.1:9",  # the discard port: nothing answers
    )
    assert result.returncode == 1
    assert "the gateway does not answer" in result.stdout
    assert "could not read metrics" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_inspect_without_a_stack_or_an_endpoint_says_what_to_do(tmp_path: Path) -> None:
    result = run_module("devstack.inspect", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "export AWS_ENDPOINT_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_inspect_help_explains_every_option() -> None:
    result = run_module("devstack.inspect", "--help")
    assert result.returncode == 0
    for option in ("--repo", "--limit", "--window", "--gateway", "--state-dir", "SECTION"):
        assert option in result.stdout
    text = re.sub(r"-\s+", "-", " ".join(result.stdout.split()))  # argparse wraps at hyphens
    assert "stream, raw, metrics, dead-letters" in text
    bad = run_module("devstack.inspect", "nonsense")
    assert bad.returncode == 2
    assert "unknown section nonsense" in bad.stderr
