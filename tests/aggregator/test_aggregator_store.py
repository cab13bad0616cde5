"""The aggregator's stored facts on real DynamoDB (moto): late and backfilled events re-derive the days
they change, a stale derivation never overwrites a newer one, and every scope reads the same facts."""

from __future__ import annotations

from datetime import timedelta

from aggregator.facts import FactsWriter
from devops_core.dora.model import DayFacts, FactKey, day_of
from devops_core.metrics_read import Scope
from devops_core.teams import TeamMapping
from tests.aggregator.conftest import AggregatorFactory
from tests.aggregator.helpers import NOW, make_event
from tests.support import Stack

D = timedelta(days=1)
H = timedelta(hours=1)


def values(aggregator: object, scope: Scope, days: int = 30) -> dict[str, dict[str, object]]:
    return aggregator.read_model.metrics(scope, days).values  # type: ignore[attr-defined]


def test_an_incident_in_a_later_batch_fails_the_deployment_it_names(
    new_aggregator: AggregatorFactory,
) -> None:
    """The cause was deployed five days before the incident: that day's facts are re-derived."""
    aggregator = new_aggregator()
    aggregator.handle(
        [make_event("deploy", at=NOW - 5 * D, sha="aaaaaaa1"), make_event("deploy", at=NOW - 4 * D)]
    )
    aggregator.handle([make_event("incident_opened", at=NOW - H, incident_id="INC-1", sha="aaaaaaa1")])
    cfr = values(aggregator, Scope.repo("demo"))["calc_change_failure_rate"]
    assert (cfr["failures"], cfr["deploys"]) == (1, 2)


def test_a_restore_delivered_before_its_failure_pairs_by_time(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    aggregator.handle([make_event("service_restored", at=NOW - 2 * D)])
    aggregator.handle([make_event("deploy_failed", at=NOW - 3 * D)])
    recovery = values(aggregator, Scope.repo("demo"))["calc_recovery_time"]
    assert (recovery["samples"], recovery["median_s"], recovery["open_failures"]) == (1, 86400.0, 0)


def test_backfilled_history_shows_in_the_90_day_window(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    aggregator.handle([make_event("deploy", at=NOW - H)])
    aggregator.handle(
        [
            make_event("push", at=NOW - 70 * D, sha="bbbbbbb1"),
            make_event("deploy", at=NOW - 60 * D, sha="bbbbbbb1"),
        ]
    )
    quarter, month = values(aggregator, Scope.repo("demo"), 90), values(aggregator, Scope.repo("demo"), 30)
    assert (quarter["calc_deployment_freq"]["count"], month["calc_deployment_freq"]["count"]) == (2, 1)
    assert quarter["calc_lead_time"]["median_s"] == 10 * 86400.0


def test_a_stale_derivation_never_replaces_a_newer_one(
    new_aggregator: AggregatorFactory, stack: Stack
) -> None:
    """Two workers over one repo during a lease handover: the one that derived from an older log
    version loses, whatever the order of their writes."""
    aggregator = new_aggregator()
    aggregator.handle([make_event("deploy", at=NOW - H)])
    info = aggregator.store.repo("demo")
    assert info is not None
    writer = FactsWriter(aggregator.store._db, stack.settings.aggregator_state_table, retention_days=400)
    stale = {FactKey("demo"): DayFacts(deploys=99)}
    assert not writer.write_day("demo", day_of(NOW), stale, info.version - 1)
    assert values(aggregator, Scope.repo("demo"))["calc_deployment_freq"]["count"] == 1
    assert values(aggregator, Scope.all())["calc_deployment_freq"]["count"] == 1


def test_all_sums_every_repo_and_a_team_takes_its_repos_and_named_events(
    new_aggregator: AggregatorFactory, tmp_path: object
) -> None:
    aggregator = new_aggregator()
    aggregator.read_model.teams = TeamMapping(teams={"payments": ["pay-api"]})
    aggregator.handle(
        [
            make_event("deploy", "pay-api", at=NOW - H),
            make_event("deploy", "ledger", at=NOW - 2 * H, team="payments", service="ledger-worker"),
            make_event("deploy", "ledger", at=NOW - 3 * H),
            make_event("deploy", "web", at=NOW - 4 * H),
        ]
    )
    count = {
        scope: values(aggregator, scope)["calc_deployment_freq"]["count"]
        for scope in (
            Scope.all(),
            Scope("team", "payments"),
            Scope.repo("ledger"),
            Scope("service", "ledger-worker"),
        )
    }
    assert count == {
        Scope.all(): 4,
        Scope("team", "payments"): 2,
        Scope.repo("ledger"): 2,
        Scope("service", "ledger-worker"): 1,
    }
    # Every service an event names is listed, a repo's own name for the events naming none.
    assert aggregator.read_model.names() == (["payments"], ["ledger", "ledger-worker", "pay-api", "web"], [])


def test_a_repo_is_a_service_only_through_events_naming_none(new_aggregator: AggregatorFactory) -> None:
    """A repo merely called like a service was once made a member of it (GET
    /metrics?service=acme/checkout answered a service of 0 deploys with a repo of 45)."""
    aggregator = new_aggregator()
    aggregator.handle(
        [make_event("deploy", "acme/checkout", at=NOW - n * H, service="checkout") for n in (1, 2)]
    )
    repos = aggregator.store.repos()
    model = aggregator.read_model
    assert not model.known(Scope("service", "acme/checkout"), repos)
    assert model.known(Scope("service", "checkout"), repos)
    assert values(aggregator, Scope("service", "checkout"))["calc_deployment_freq"]["count"] == 2
    assert model.names()[1] == ["checkout"]


def test_only_changed_days_are_written_and_a_resend_changes_nothing(
    new_aggregator: AggregatorFactory,
) -> None:
    aggregator = new_aggregator()
    events = [make_event("deploy", at=NOW - n * H) for n in range(1, 4)]
    first = aggregator.handle(events)
    again = aggregator.handle(events)
    assert first.changed_days == 1
    assert again.changed_days == 0
    assert again.emitted == first.emitted == 10  # a redelivery re-emits (same ids): demo and ALL x 5


def test_periodic_emit_covers_every_active_scope_once_per_period(new_aggregator: AggregatorFactory) -> None:
    aggregator = new_aggregator()
    aggregator.handle(
        [make_event("deploy", "a", at=NOW - H), make_event("push", "b", at=NOW - H, sha="ccccccc1")]
    )
    assert aggregator.emit_periodic(3600) == 15  # a, b (only pushes: still listed) and ALL x 5 metrics
    assert new_aggregator().emit_periodic(3600) == 0  # another task, same period


def test_another_environment_is_counted_on_its_own_when_asked(new_aggregator: AggregatorFactory) -> None:
    """Staging is never in the production numbers; filtered on, it has its own five metrics."""
    aggregator = new_aggregator()
    aggregator.handle(
        [
            make_event("push", at=NOW - 6 * H, sha="aaaaaaa1"),
            make_event("deploy", at=NOW - 5 * H, sha="aaaaaaa1", environment="Staging"),
            make_event("deploy", at=NOW - 4 * H, outcome="failure", environment="staging"),
            make_event("deploy", at=NOW - 3 * H, sha="aaaaaaa1"),
        ]
    )
    production = values(aggregator, Scope.repo("demo"))
    staging = aggregator.read_model.metrics(Scope.repo("demo"), 30, environment="staging").values
    assert (
        production["calc_deployment_freq"]["count"],
        production["calc_deployment_freq"]["other_environments"],
    ) == (1, 2)
    assert production["calc_lead_time"]["median_s"] == 3 * 3600.0
    assert (staging["calc_deployment_freq"]["count"], staging["calc_change_failure_rate"]["failures"]) == (
        2,
        1,
    )
    assert staging["calc_lead_time"]["median_s"] == 3600.0
    assert aggregator.read_model.names()[2] == ["staging"]


def test_a_later_deployment_taking_over_an_incident_uncounts_the_earlier_one(
    new_aggregator: AggregatorFactory,
) -> None:
    """An incident names deployment run-1: its cause is the latest production deployment of that id
    before it. A later run-1 deployment that arrives afterwards takes the cause over; the earlier
    deployment's day was not derived again and kept counting a change failure (2 where 1 is right;
    found by the property test against the reference)."""
    aggregator = new_aggregator()
    common = {"environment": "production", "deployment_id": "run-1"}
    aggregator.handle(
        [
            make_event("deploy", at=NOW - 10 * D, **common),
            make_event("incident_opened", at=NOW - 2 * D, incident_id="INC-1", deployment_id="run-1"),
        ]
    )
    assert values(aggregator, Scope.repo("demo"))["calc_change_failure_rate"]["failures"] == 1
    aggregator.handle([make_event("deploy", at=NOW - 5 * D, **common)])
    cfr = values(aggregator, Scope.repo("demo"))["calc_change_failure_rate"]
    assert (cfr["deploys"], cfr["failures"]) == (2, 1)
