"""Window metrics from day facts: the five DORA metrics with their levels, a daily series, and the
single pure entry point ``metrics(events, window, config)``.

The aggregator's calc_* events, GET /metrics and the dashboard all read their numbers from here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from devops_core.dora.history import daily_facts, derive, failures_open_at
from devops_core.dora.levels import (
    Level,
    change_failure_rate_level,
    deployment_frequency_level,
    lead_time_level,
    recovery_time_level,
)
from devops_core.dora.model import DayFacts, DoraConfig, Window
from devops_core.events import DevOpsEvent, EventType

__all__ = [
    "METRIC_EVENTS",
    "daily_series",
    "metrics",
    "percentile",
    "summarize",
    "window_facts",
]

# The calc_* event that carries each metric (the keys of ``summarize``'s result).
METRIC_EVENTS = (
    EventType.CALC_DEPLOYMENT_FREQ,
    EventType.CALC_LEAD_TIME,
    EventType.CALC_CHANGE_FAILURE_RATE,
    EventType.CALC_RECOVERY_TIME,
    EventType.CALC_REWORK_RATE,
)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): the smallest value with at least q % at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _level(level: Level | None) -> str | None:
    return level.value if level else None


def _durations(samples: list[float], level_of: Callable[[float | None], Level | None]) -> dict[str, Any]:
    median = _median(samples)
    return {
        "samples": len(samples),
        "median_s": _round(median),
        "p90_s": _round(percentile(samples, 90)),
        "level": _level(level_of(median)),
    }


def _rate(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def window_facts(facts: Mapping[date, DayFacts], window: Window) -> DayFacts:
    """The facts of the window's days, summed."""
    return DayFacts.total(value for day, value in facts.items() if window.contains(day))


def summarize(
    facts: Mapping[date, DayFacts], window: Window, *, open_failures: int | None = None
) -> dict[str, dict[str, Any]]:
    """The five metrics over ``window``, keyed by the calc_* event name that carries each one;
    ``open_failures``: production failures open now (None when unknown, e.g. a past window)."""
    total = window_facts(facts, window)
    per_day = total.deploys / window.days
    common = {"window_days": window.days, "window_start": window.first_day.isoformat()}
    return {
        EventType.CALC_DEPLOYMENT_FREQ.value: {
            "count": total.deploys,
            "per_day": _round(per_day),
            "failed": total.failed_deploys,
            "other_environments": total.other_deploys,
            # No deployment, no level: zero deploys says nothing about how a team ships.
            "level": _level(deployment_frequency_level(per_day)) if total.deploys else None,
            **common,
        },
        EventType.CALC_LEAD_TIME.value: {**_durations(total.lead_s, lead_time_level), **common},
        EventType.CALC_CHANGE_FAILURE_RATE.value: {
            "failures": total.change_failures,
            "deploys": total.deploys,
            "rate": _rate(total.change_failures, total.deploys),
            "level": _level(change_failure_rate_level(_rate(total.change_failures, total.deploys))),
            **common,
        },
        EventType.CALC_RECOVERY_TIME.value: {
            **_durations(total.recovery_s, recovery_time_level),
            "open_failures": open_failures,
            **common,
        },
        EventType.CALC_REWORK_RATE.value: {
            "rework": total.rework,
            "deploys": total.deploys,
            "rate": _rate(total.rework, total.deploys),
            "level": None,  # DORA publishes no performance bands for rework rate (docs/aggregator.md)
            **common,
        },
    }


def daily_series(facts: Mapping[date, DayFacts], window: Window) -> list[dict[str, Any]]:
    """One point per day of the window, oldest first, empty days included (a chart needs them)."""
    points = []
    for day in window.day_list():
        item = facts.get(day) or DayFacts()
        points.append(
            {
                "day": day.isoformat(),
                "deploys": item.deploys,
                "failed_deploys": item.failed_deploys,
                "change_failures": item.change_failures,
                "rework": item.rework,
                "lead_time_samples": len(item.lead_s),
                "lead_time_median_s": _round(_median(item.lead_s)),
                "recoveries": len(item.recovery_s),
                "recovery_time_median_s": _round(_median(item.recovery_s)),
            }
        )
    return points


def metrics(
    events: Iterable[DevOpsEvent],
    window: Window,
    config: DoraConfig,
    *,
    now: datetime | None = None,
    environment: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The metrics of a set of events (any repos) over ``window``: the definition, in one call.

    One event per ``event_id``, the first given (as the event log keeps the first written, whatever
    repo a later event under the same id names). Pairing never crosses repos, so each repo's history
    is derived alone and the day facts summed. ``now`` (usually within the window's last day) also
    counts the failures open at that moment. ``environment``: count one named (normalized)
    environment instead of production.
    """
    first_of_id: dict[str, DevOpsEvent] = {}
    for event in events:
        first_of_id.setdefault(event.event_id, event)
    by_repo: dict[str, list[DevOpsEvent]] = {}
    for event in first_of_id.values():
        by_repo.setdefault(event.repo, []).append(event)
    facts: dict[date, DayFacts] = {}
    still_open = 0
    for repo_events in by_repo.values():
        history = derive(repo_events, config, environment)
        for day, items in daily_facts(history, window.first_day, window.last_day).items():
            facts.setdefault(day, DayFacts()).add(DayFacts.total(items.values()))
        if now is not None:
            still_open += len(failures_open_at(history, now, config.lookback))
    return summarize(facts, window, open_failures=still_open if now is not None else None)
