"""Pure window maths: per-day buckets in, DORA metric values out. No I/O, no clock.

Definitions (docs/aggregator.md repeats them for users):

- The window is the ``days`` UTC calendar days ending with the day of ``now`` (today included);
  an event belongs to the day of its *event* time, so late and out-of-order events count in the
  window they belong to. An event whose day is before the window's first day is "too old".
- Deployment frequency: deploy events in the window; per day = count / days.
- Lead time for changes: for each deploy in the window that carries a ``sha``, deploy time minus
  the time of the earliest push of the same repo and sha; median and p90 (nearest rank).
- Change failure rate: deploy_failed events / deploy events, both in the window, capped at 1.0;
  undefined (None) without deploys.
- Failed-deployment recovery time: for each deploy_failed, the time until the next
  service_restored of the same repo; a sample belongs to the day of the restore; median and p90.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aggregator.levels import (
    Level,
    change_failure_rate_level,
    deployment_frequency_level,
    lead_time_level,
    recovery_time_level,
)

__all__ = [
    "DayBucket",
    "Window",
    "WindowTotals",
    "change_failure_rate",
    "daily_series",
    "deployment_frequency",
    "lead_time",
    "percentile",
    "recovery_time",
    "summarize",
]


@dataclass(frozen=True)
class Window:
    """The ``days`` calendar days (UTC) ending with ``today``."""

    days: int
    today: date

    @classmethod
    def ending_at(cls, now: datetime, days: int) -> Window:
        return cls(days, now.astimezone(UTC).date())

    @property
    def first_day(self) -> date:
        return self.today - timedelta(days=self.days - 1)

    def is_too_old(self, event_time: datetime) -> bool:
        return day_of(event_time) < self.first_day

    def contains(self, day: date) -> bool:
        # Tomorrow is accepted: the gateway allows 15 minutes of clock skew across midnight.
        return self.first_day <= day <= self.today + timedelta(days=1)


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass
class DayBucket:
    """What one (scope, day) holds; the state repository stores exactly these fields."""

    day: date
    deploys: int = 0
    failures: int = 0
    lead_seconds: list[float] = field(default_factory=list)
    recovery_seconds: list[float] = field(default_factory=list)


@dataclass
class WindowTotals:
    deploys: int = 0
    failures: int = 0
    lead_seconds: list[float] = field(default_factory=list)
    recovery_seconds: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, buckets: Iterable[DayBucket], window: Window) -> WindowTotals:
        totals = cls()
        for bucket in buckets:
            if not window.contains(bucket.day):
                continue
            totals.deploys += bucket.deploys
            totals.failures += bucket.failures
            totals.lead_seconds.extend(bucket.lead_seconds)
            totals.recovery_seconds.extend(bucket.recovery_seconds)
        return totals


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): the smallest value with at least q % at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def deployment_frequency(count: int, days: int) -> dict[str, Any]:
    per_day = count / days
    return {"count": count, "per_day": round(per_day, 6), "level": deployment_frequency_level(per_day).value}


def _durations(samples: list[float], level_of: Callable[[float | None], Level | None]) -> dict[str, Any]:
    """Median and p90 of duration samples in seconds, with the level of the median."""
    median = _median(samples)
    level = level_of(median)
    return {
        "samples": len(samples),
        "median_s": _round(median),
        "p90_s": _round(percentile(samples, 90)),
        "level": level.value if level else None,
    }


def lead_time(samples: list[float]) -> dict[str, Any]:
    return _durations(samples, lead_time_level)


def change_failure_rate(failures: int, deploys: int) -> dict[str, Any]:
    rate = min(1.0, failures / deploys) if deploys else None
    level = change_failure_rate_level(rate)
    return {
        "failures": failures,
        "deploys": deploys,
        "rate": _round(rate),
        "level": level.value if level else None,
    }


def recovery_time(samples: list[float]) -> dict[str, Any]:
    return _durations(samples, recovery_time_level)


def summarize(totals: WindowTotals, window: Window) -> dict[str, dict[str, Any]]:
    """The four metrics, keyed by the calc_* event name that carries each one."""
    common = {"window_days": window.days, "window_start": window.first_day.isoformat()}
    return {
        "calc_deployment_freq": {**deployment_frequency(totals.deploys, window.days), **common},
        "calc_lead_time": {**lead_time(totals.lead_seconds), **common},
        "calc_change_failure_rate": {**change_failure_rate(totals.failures, totals.deploys), **common},
        "calc_recovery_time": {**recovery_time(totals.recovery_seconds), **common},
    }


def daily_series(buckets: Iterable[DayBucket], window: Window) -> list[dict[str, Any]]:
    """One point per day of the window, oldest first, empty days included (a chart needs them);
    tomorrow only when it holds data (clock skew). Lead and recovery medians are of the samples that
    sit on that day (the deploy's day, the restore's day), ``None`` on a day without samples."""
    by_day = {bucket.day: bucket for bucket in buckets if window.contains(bucket.day)}
    days = [window.first_day + timedelta(days=n) for n in range(window.days)]
    tomorrow = window.today + timedelta(days=1)
    if tomorrow in by_day:
        days.append(tomorrow)
    points = []
    for day in days:
        bucket = by_day.get(day) or DayBucket(day=day)
        points.append(
            {
                "day": day.isoformat(),
                "deploys": bucket.deploys,
                "failures": bucket.failures,
                "lead_time_samples": len(bucket.lead_seconds),
                "lead_time_median_s": _round(_median(bucket.lead_seconds)),
                "recoveries": len(bucket.recovery_seconds),
                "recovery_time_median_s": _round(_median(bucket.recovery_seconds)),
            }
        )
    return points


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
