"""The pure metrics against the independent reference (tests/dora/reference.py), on generated
histories; and the same metrics whatever the order and the duplicates of the events."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devops_core.dora import DoraConfig, Window, metrics
from devops_core.events import DevOpsEvent
from tests.dora.histories import NOW, histories
from tests.dora.reference import reference

WINDOWS = (7, 30, 90)


def observed(result: dict[str, dict[str, object]]) -> dict[str, object]:
    """What the reference computes, read from summarize()'s output."""
    freq, lead = result["calc_deployment_freq"], result["calc_lead_time"]
    cfr, rec, rework = (
        result["calc_change_failure_rate"],
        result["calc_recovery_time"],
        result["calc_rework_rate"],
    )
    return {
        "deploys": freq["count"],
        "failed_deploys": freq["failed"],
        "change_failures": cfr["failures"],
        "rework": rework["rework"],
        "other_deploys": freq["other_environments"],
        "lead_samples": lead["samples"],
        "lead_median": lead["median_s"],
        "recovery_samples": rec["samples"],
        "recovery_median": rec["median_s"],
        "open_now": rec["open_failures"],
    }


def expected(events: list[DevOpsEvent], days: int, lookback_days: int) -> dict[str, object]:
    window = Window.ending_at(NOW, days)
    ref = reference(events, window.first_day, window.last_day, NOW, lookback_days=lookback_days).values()
    return {
        "deploys": ref["deploys"],
        "failed_deploys": ref["failed_deploys"],
        "change_failures": ref["change_failures"],
        "rework": ref["rework"],
        "other_deploys": ref["other_deploys"],
        "lead_samples": len(ref["lead"]),
        "lead_median": ref["lead_median"],
        "recovery_samples": len(ref["recovery"]),
        "recovery_median": ref["recovery_median"],
        "open_now": ref["open_now"],
    }


@settings(max_examples=300, deadline=None)
@given(histories(), st.sampled_from([180, 20]))
def test_metrics_agree_with_the_reference(events: list[DevOpsEvent], lookback_days: int) -> None:
    config = DoraConfig(lookback_days=lookback_days)
    for days in WINDOWS:
        result = metrics(events, Window.ending_at(NOW, days), config, now=NOW)
        assert observed(result) == expected(events, days, lookback_days), days


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
