"""python -m aggregator.rederive on the real (moto) state table: facts derived by an older definition
are derived again from the event log, and a second run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from devops_core.metrics_read import Scope
from tests.aggregator.conftest import AggregatorFactory
from tests.aggregator.helpers import make_event
from tests.support import ROOT, Stack


def rederive(stack: Stack, *args: str) -> tuple[int, list[dict[str, object]], str]:
    env = {
        **os.environ,  # the emulator's endpoint (AWS_ENDPOINT_URL) comes from the test session
        "DEVOPS_STREAM_NAME": stack.settings.devops_stream_name,
        "AGGREGATOR_STATE_TABLE": stack.settings.aggregator_state_table,
    }
    done = subprocess.run(
        [sys.executable, "-m", "aggregator.rederive", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return done.returncode, lines, done.stderr


def test_facts_of_an_older_definition_are_derived_again_and_a_second_run_changes_nothing(
    stack: Stack, new_aggregator: AggregatorFactory
) -> None:
    """Facts written while production meant 'staging' (a definition that has since changed) count the
    staging deploys; re-derived with today's settings they count production, on every day."""
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events = [
        make_event("deploy", at=now - timedelta(days=20), environment="staging"),
        make_event("deploy", at=now - timedelta(days=10), environment="production"),
        make_event("deploy", at=now - timedelta(days=5), environment="production"),
    ]
    old = new_aggregator(clock=lambda: now, dora_production_environments="^staging$")
    old.handle(events)
    current = new_aggregator(clock=lambda: now)
    before = current.read_model.metrics(Scope.repo("demo"), 30).values["calc_deployment_freq"]
    assert before["count"] == 1  # the old definition's facts

    code, lines, stderr = rederive(stack)
    assert code == 0, stderr
    done = lines[-1]
    assert done["msg"] == "re-derivation done"
    assert (done["repos"], done["days_changed"]) == (1, 3)
    assert [line["repo"] for line in lines if line["msg"] == "repository re-derived"] == ["demo"]
    after = current.read_model.metrics(Scope.repo("demo"), 30).values["calc_deployment_freq"]
    assert (after["count"], after["other_environments"]) == (2, 1)

    code, lines, stderr = rederive(stack, "--repo", "demo", "--days", "90")
    assert code == 0, stderr
    assert lines[-1]["days_changed"] == 0


def test_a_store_indexed_before_implicit_services_lists_them_after_a_run(
    stack: Stack, new_aggregator: AggregatorFactory
) -> None:
    """Stores written before 2026-11-29 index only the services events named; after the run the
    repository's own name (events naming none) is a service the filter finds."""
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    aggregator = new_aggregator(clock=lambda: now)
    aggregator.handle([make_event("deploy", at=now - timedelta(days=2))])
    db, table = aggregator.store._db, stack.settings.aggregator_state_table
    for key in ({"pk": "services", "sk": "demo"}, {"pk": "svc#demo", "sk": "demo"}):  # as older code left it
        db.delete_item(TableName=table, Key={name: {"S": value} for name, value in key.items()})
    model = new_aggregator(clock=lambda: now).read_model
    assert not model.known(Scope("service", "demo"), model.store.repos())

    code, _, stderr = rederive(stack)
    assert code == 0, stderr
    assert model.known(Scope("service", "demo"), model.store.repos())
    assert model.names()[1] == ["demo"]


def test_an_unknown_repository_is_refused_with_its_name(stack: Stack) -> None:
    code, _, stderr = rederive(stack, "--repo", "no-such-repo")
    assert code == 2
    assert "no events of no-such-repo are stored" in stderr
