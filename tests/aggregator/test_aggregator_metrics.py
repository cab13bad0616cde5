"""Pure window maths and the DORA levels, tested directly (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregator import levels
from aggregator.levels import Level
from aggregator.metrics import (
    DayBucket,
    Window,
    WindowTotals,
    change_failure_rate,
    deployment_frequency,
    lead_time,
    percentile,
    summarize,
)

HOUR = 3600.0
DAY = 24 * HOUR


def test_window_covers_n_calendar_days_ending_today() -> None:
    window = Window.ending_at(datetime(2026, 11, 27, 23, 59, tzinfo=UTC), 30)
    assert window.first_day == date(2026, 10, 29)
    assert not window.is_too_old(datetime(2026, 10, 29, 0, 0, tzinfo=UTC))  # first instant of day 1
    assert window.is_too_old(datetime(2026, 10, 28, 23, 59, 59, tzinfo=UTC))  # last instant before
    assert window.contains(date(2026, 11, 28))  # tomorrow: 15 min clock skew across midnight
    assert not window.contains(date(2026, 11, 29))


def test_totals_ignore_buckets_outside_the_window() -> None:
    window = Window(30, date(2026, 11, 27))
    buckets = [
        DayBucket(date(2026, 10, 28), deploys=5),  # a day too old
        DayBucket(date(2026, 10, 29), deploys=1, lead_seconds=[10.0]),
        DayBucket(date(2026, 11, 27), deploys=2, failures=1, recovery_seconds=[60.0]),
    ]
    totals = WindowTotals.of(buckets, window)
    assert (totals.deploys, totals.failures) == (3, 1)
    assert totals.lead_seconds == [10.0]
    assert totals.recovery_seconds == [60.0]


def test_deployment_frequency_three_in_thirty_days() -> None:
    assert deployment_frequency(3, 30) == {"count": 3, "per_day": 0.1, "level": "medium"}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile(range(1, 11), 90) == 9
    assert percentile(range(1, 11), 50) == 5
    assert percentile([1, 2, 3, 100], 90) == 100


def test_lead_time_median_and_p90() -> None:
    result = lead_time([HOUR, 2 * HOUR, 3 * HOUR, 10 * DAY])
    assert result["median_s"] == 2.5 * HOUR
    assert result["p90_s"] == 10 * DAY
    assert result["level"] == "elite"
    assert lead_time([])["level"] is None


def test_change_failure_rate_is_failures_over_deploys_capped() -> None:
    assert change_failure_rate(1, 4)["rate"] == 0.25
    assert change_failure_rate(0, 0)["rate"] is None
    assert change_failure_rate(3, 2)["rate"] == 1.0


def test_summarize_names_every_calc_event_and_the_window() -> None:
    window = Window(30, date(2026, 11, 27))
    values = summarize(WindowTotals(deploys=3), window)
    assert set(values) == {
        "calc_deployment_freq",
        "calc_lead_time",
        "calc_change_failure_rate",
        "calc_recovery_time",
    }
    assert values["calc_deployment_freq"]["window_start"] == "2026-10-29"
    assert values["calc_change_failure_rate"]["rate"] == 0.0


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
