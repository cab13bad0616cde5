"""The event log on real DynamoDB (moto): one event per event_id, first write wins, conflicts are
reported and never counted."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from aggregator.event_log import AppendResult, EventLog
from devops_core.events import DevOpsEvent
from devops_core.metrics_read import Scope
from tests.aggregator.conftest import AggregatorFactory
from tests.aggregator.helpers import NOW, make_event


def test_a_resent_event_is_a_duplicate_and_counts_once(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    deploy = make_event("deploy", event_id="job-1", ago=timedelta(hours=2))
    first = aggregator.log.append([deploy])
    resent = aggregator.log.append([deploy.model_copy(update={"received_at": NOW + timedelta(minutes=5)})])
    assert (len(first.new), len(resent.duplicates), resent.conflicts) == (1, 1, [])
    assert [e.event_id for e in aggregator.store.events("demo", NOW - timedelta(days=1))] == ["job-1"]


def test_the_same_id_on_two_days_is_a_conflict_and_the_first_is_kept(
    new_aggregator: AggregatorFactory,
) -> None:
    aggregator = new_aggregator()
    monday = make_event("deploy", event_id="job-7", ago=timedelta(days=3))
    tuesday = make_event("deploy", event_id="job-7", ago=timedelta(days=2))
    aggregator.handle([monday])
    outcome = aggregator.handle([tuesday])
    assert [c.event.event_id for c in outcome.conflicts] == ["job-7"]
    assert "already names a different event" in outcome.conflicts[0].reason
    stored = aggregator.store.events("demo", NOW - timedelta(days=10))
    assert [e.time for e in stored] == [monday.time]
    freq = aggregator.read_model.metrics(
        __import__("devops_core.metrics_read").metrics_read.Scope.repo("demo"), 30
    )
    assert freq.values["calc_deployment_freq"]["count"] == 1


def test_a_deploy_resent_as_a_failure_does_not_make_it_fail(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    aggregator.handle([make_event("deploy", event_id="job-9", ago=timedelta(hours=3))])
    outcome = aggregator.handle([make_event("deploy_failed", event_id="job-9", ago=timedelta(hours=3))])
    assert len(outcome.conflicts) == 1
    cfr = aggregator.read_model.metrics(Scope.repo("demo"), 30).values["calc_change_failure_rate"]
    assert (cfr["failures"], cfr["deploys"]) == (0, 1)


def test_a_conflict_within_one_batch_keeps_the_first(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    first = make_event("deploy", event_id="dup", ago=timedelta(hours=1))
    second = make_event("deploy", event_id="dup", ago=timedelta(hours=5))
    outcome = aggregator.handle([first, first, second])
    assert (len(outcome.appended.new), len(outcome.appended.duplicates), len(outcome.conflicts)) == (1, 1, 1)
    assert outcome.conflicts[0].event is second


def test_two_writers_racing_on_one_id_store_exactly_one(new_aggregator: AggregatorFactory) -> None:
    """Two tasks (a lease handover) append different events under one id at the same moment: the
    transaction's condition lets exactly one in; the other learns it lost."""
    for round_ in range(5):
        a, b = new_aggregator(), new_aggregator()
        left = make_event("deploy", event_id=f"race-{round_}", ago=timedelta(hours=1))
        right = make_event("deploy", event_id=f"race-{round_}", ago=timedelta(hours=2))
        results: dict[str, AppendResult] = {}
        barrier = threading.Barrier(2)

        def append(
            name: str,
            log: EventLog,
            event: DevOpsEvent,
            barrier: threading.Barrier = barrier,
            results=results,
        ) -> None:
            barrier.wait()
            results[name] = log.append([event])

        threads = [
            threading.Thread(target=append, args=("a", a.log, left)),
            threading.Thread(target=append, args=("b", b.log, right)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted((len(r.new), len(r.conflicts)) for r in results.values()) == [(0, 1), (1, 0)]
        stored = a.store.events("demo", NOW - timedelta(days=1))
        assert [e.event_id for e in stored if e.event_id == f"race-{round_}"] == [f"race-{round_}"]


def test_a_write_that_loses_the_race_inside_the_transaction_is_handed_back(
    new_aggregator: AggregatorFactory,
) -> None:
    """The other writer's guard appeared after our read: the transaction is cancelled for that event
    only, the rest of the chunk is written, and the loser comes back to be classified."""
    a, b = new_aggregator(), new_aggregator()
    taken = make_event("deploy", event_id="taken", ago=timedelta(hours=1))
    a.log.append([taken])
    loser = make_event("deploy", event_id="taken", ago=timedelta(hours=4))
    fine = make_event("deploy", event_id="fine", ago=timedelta(hours=4))
    result = AppendResult()
    lost = b.log._write([fine, loser], result)
    assert (lost, result.new) == ([loser], [fine])


def test_events_older_than_the_retention_are_not_kept(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    ancient = make_event("deploy", ago=timedelta(days=401))
    kept = make_event("deploy", ago=timedelta(days=399))
    result = aggregator.log.append([ancient, kept])
    assert (result.too_old, result.new) == ([ancient], [kept])


def test_test_pass_and_metric_events_are_not_logged(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    result = aggregator.log.append([make_event("test_pass"), make_event("calc_lead_time")])
    assert (result.new, result.duplicates, result.conflicts) == ([], [], [])


def test_a_cancelled_transaction_writes_nothing(new_aggregator: AggregatorFactory) -> None:
    """The emulator keeps DynamoDB's all-or-nothing: the chunk's other items are not left behind."""
    a = new_aggregator()
    a.log.append([make_event("deploy", event_id="held", ago=timedelta(hours=1))])
    clash = make_event("deploy", event_id="held", ago=timedelta(hours=3))
    other = make_event("deploy", event_id="innocent", ago=timedelta(hours=3))
    items = [*a.log._items(other), *a.log._items(clash)]
    with pytest.raises(ClientError, match="TransactionCanceledException"):
        a.store._db.transact_write_items(TransactItems=items)
    assert a.store.batch_get([("id#innocent", "-")]) == {}
    assert [e.event_id for e in a.store.events("demo", NOW - timedelta(days=1))] == ["held"]
