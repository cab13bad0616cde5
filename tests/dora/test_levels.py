"""Windows, summaries and the DORA levels, tested directly (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from devops_core.dora import DayFacts, Window, levels, percentile, summarize
from devops_core.dora.levels import Level

HOUR = 3600.0
DAY = 24 * HOUR


def test_window_covers_n_calendar_days_ending_today() -> None:
    window = Window.ending_at(datetime(2026, 11, 27, 23, 59, tzinfo=UTC), 30)
    assert (window.first_day, window.last_day) == (date(2026, 10, 29), date(2026, 11, 27))
    assert len(window.day_list()) == 30
    assert window.contains(date(2026, 10, 29))
    assert not window.contains(date(2026, 10, 28))
    assert window.previous() == Window(30, date(2026, 10, 28))


def test_summaries_take_only_the_days_of_the_window() -> None:
    window = Window(30, date(2026, 11, 27))
    facts = {
        date(2026, 10, 28): DayFacts(deploys=5),  # a day before the window
        date(2026, 10, 29): DayFacts(deploys=1, lead_s=[10.0]),
        date(2026, 11, 27): DayFacts(deploys=2, failed_deploys=1, change_failures=1, recovery_s=[60.0]),
    }
    values = summarize(facts, window)
    assert values["calc_deployment_freq"]["count"] == 3
    assert values["calc_deployment_freq"]["per_day"] == 0.1
    assert values["calc_deployment_freq"]["level"] == "medium"
    assert values["calc_lead_time"]["median_s"] == 10.0
    assert values["calc_change_failure_rate"]["rate"] == round(1 / 3, 6)
    assert values["calc_recovery_time"]["median_s"] == 60.0


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile(range(1, 11), 90) == 9
    assert percentile(range(1, 11), 50) == 5
    assert percentile([1, 2, 3, 100], 90) == 100


def test_lead_time_median_and_p90() -> None:
    window = Window(30, date(2026, 11, 27))
    lead = summarize({window.last_day: DayFacts(lead_s=[HOUR, 2 * HOUR, 3 * HOUR, 10 * DAY])}, window)
    assert lead["calc_lead_time"]["median_s"] == 2.5 * HOUR
    assert lead["calc_lead_time"]["p90_s"] == 10 * DAY
    assert lead["calc_lead_time"]["level"] == "elite"
    assert summarize({}, window)["calc_lead_time"]["level"] is None


def test_summarize_names_every_calc_event_and_the_window() -> None:
    window = Window(30, date(2026, 11, 27))
    values = summarize({window.last_day: DayFacts(deploys=3)}, window)
    assert set(values) == {
        "calc_deployment_freq",
        "calc_lead_time",
        "calc_change_failure_rate",
        "calc_recovery_time",
        "calc_rework_rate",
    }
    assert values["calc_deployment_freq"]["window_start"] == "2026-10-29"
    assert values["calc_change_failure_rate"]["rate"] == 0.0
    assert values["calc_rework_rate"]["level"] is None  # DORA gives no bands for it


@pytest.mark.parametrize(
    ("per_day", "level"),
    [
        (1.0, Level.ELITE),
        (0.999, Level.HIGH),
        (1 / 7, Level.HIGH),
        (0.1428, Level.MEDIUM),
        (1 / 30, Level.MEDIUM),
        (0.0333, Level.LOW),
        (0.0, Level.LOW),
    ],
)
def test_deployment_frequency_band_edges(per_day: float, level: Level) -> None:
    assert levels.deployment_frequency_level(per_day) is level


@pytest.mark.parametrize(
    ("seconds", "level"),
    [
        (DAY - 1, Level.ELITE),
        (DAY, Level.HIGH),
        (7 * DAY - 1, Level.HIGH),
        (7 * DAY, Level.MEDIUM),
        (30 * DAY - 1, Level.MEDIUM),
        (30 * DAY, Level.LOW),
    ],
)
def test_lead_time_band_edges(seconds: float, level: Level) -> None:
    assert levels.lead_time_level(seconds) is level


@pytest.mark.parametrize(
    ("rate", "level"),
    [
        (0.0, Level.ELITE),
        (0.05, Level.ELITE),
        (0.0501, Level.HIGH),
        (0.10, Level.HIGH),
        (0.1001, Level.MEDIUM),
        (0.15, Level.MEDIUM),
        (0.1501, Level.LOW),
        (1.0, Level.LOW),
    ],
)
def test_change_failure_rate_band_edges(rate: float, level: Level) -> None:
    assert levels.change_failure_rate_level(rate) is level


@pytest.mark.parametrize(
    ("seconds", "level"),
    [
        (HOUR - 1, Level.ELITE),
        (HOUR, Level.HIGH),
        (DAY - 1, Level.HIGH),
        (DAY, Level.MEDIUM),
        (7 * DAY - 1, Level.MEDIUM),
        (7 * DAY, Level.LOW),
    ],
)
def test_recovery_time_band_edges(seconds: float, level: Level) -> None:
    assert levels.recovery_time_level(seconds) is level


def test_no_data_has_no_level() -> None:
    assert levels.change_failure_rate_level(None) is None
    assert levels.recovery_time_level(None) is None
