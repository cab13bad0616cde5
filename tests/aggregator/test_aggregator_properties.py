"""The stored, incremental aggregator against the independent reference: any order, duplication and
batch split of a generated history leaves the same metrics in the state table (real moto DynamoDB),
and they are the reference's numbers, for windows of 7, 30 and 90 days."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.app import build_aggregator
from devops_core.dora import Window
from devops_core.events import DevOpsEvent
from devops_core.metrics_read import Scope
from devops_core.settings import Settings
from devstack.resources import dynamodb_table_specs
from tests.dora.histories import NOW, REPOS, histories
from tests.dora.reference import observed, reference
from tests.support import Stack


def fresh_table(settings: Settings) -> Settings:
    from devops_core.aws import boto_client

    ours = settings.model_copy(update={"aggregator_state_table": f"prop-{uuid.uuid4().hex[:10]}"})
    spec = {k: v for k, v in dynamodb_table_specs(ours)[0].items() if not k.startswith("_")}
    boto_client("dynamodb").create_table(**spec)
    return ours


def expected(events: list[DevOpsEvent], days: int, environment: str | None = None) -> dict[str, object]:
    window = Window.ending_at(NOW, days)
    return reference(events, window.first_day, window.last_day, NOW, environment=environment).numbers()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories(max_size=30), st.randoms(use_true_random=False), st.data())
def test_any_order_duplication_and_batch_split_gives_the_reference_numbers(
    stack: Stack, events: list[DevOpsEvent], random: object, data: st.DataObject
) -> None:
    ours = fresh_table(stack.settings)
    aggregator = build_aggregator(ours, clock=lambda: NOW)
    resent = data.draw(st.lists(st.sampled_from(events), max_size=6)) if events else []
    delivery = [*events, *[e.model_copy(update={"received_at": NOW + timedelta(minutes=1)}) for e in resent]]
    random.shuffle(delivery)  # type: ignore[attr-defined]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(delivery)), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(delivery)], strict=True):
        if start < end:
            assert aggregator.handle(delivery[start:end]).conflicts == []
    repos = aggregator.store.repos()
    for days in (7, 30, 90):
        model = aggregator.read_model
        assert observed(model.metrics(Scope.all(), days, repos=repos).values) == expected(events, days)
        staging = model.metrics(Scope.all(), days, repos=repos, environment="staging").values
        assert observed(staging) == expected(events, days, "staging")
        for repo in REPOS:
            mine = [e for e in events if e.repo == repo]
            if repo in repos:
                got = aggregator.read_model.metrics(Scope.repo(repo), days, repos=repos).values
                assert observed(got) == expected(mine, days), (repo, days)
            else:
                assert not [e for e in mine if e.event != "test_pass"]
