"""The pure metrics against the independent reference (tests/dora/reference.py), on generated
histories; and the same metrics whatever the order and the duplicates of the events."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devops_core.dora import DoraConfig, Window, metrics
from devops_core.events import DevOpsEvent
from tests.dora.histories import NOW, histories
from tests.dora.reference import observed, reference

WINDOWS = (7, 30, 90)


def expected(
    events: list[DevOpsEvent], days: int, lookback_days: int, environment: str | None = None
) -> dict[str, object]:
    window = Window.ending_at(NOW, days)
    first, last = window.first_day, window.last_day
    return reference(events, first, last, NOW, lookback_days=lookback_days, environment=environment).numbers()


@settings(max_examples=300, deadline=None)
@given(histories(), st.sampled_from([180, 20]), st.sampled_from([None, "staging"]))
def test_metrics_agree_with_the_reference(
    events: list[DevOpsEvent], lookback_days: int, environment: str | None
) -> None:
    """Production by default, or another environment counted as if it were production (the filter)."""
    config = DoraConfig(lookback_days=lookback_days)
    for days in WINDOWS:
        result = metrics(events, Window.ending_at(NOW, days), config, now=NOW, environment=environment)
        assert observed(result) == expected(events, days, lookback_days, environment), days


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.data())
def test_order_and_duplicates_never_change_a_result(
    events: list[DevOpsEvent], random: object, data: st.DataObject
) -> None:
    config = DoraConfig()
    resent = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    shuffled = [
        *events,
        *resent,
        *[e.model_copy(update={"received_at": NOW + timedelta(hours=1)}) for e in resent],
    ]
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    for days in WINDOWS:
        window = Window.ending_at(NOW, days)
        assert metrics(shuffled, window, config, now=NOW) == metrics(events, window, config, now=NOW)
