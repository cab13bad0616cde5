"""The vocabulary of the DORA metrics: configuration, windows and the per-day facts they sum.

``DayFacts`` is what one repo contributes to one UTC day (for one service and team): everything a
window's metrics need is a sum of day facts, so a window of any length, the ALL scope and a team are
all computed the same way, and the stored facts of a repo are a pure function of its events
(devops_core.dora.history).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "DayFacts",
    "DoraConfig",
    "FactKey",
    "Window",
    "day_of",
    "end_of_day",
]

# An event that names no environment is about production (the seed's CI events name none).
DEFAULT_ENVIRONMENT = "production"
DEFAULT_PRODUCTION_PATTERN = r"(?i)^(prod|production|live)$"


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def end_of_day(day: date) -> datetime:
    """The first instant after ``day`` (UTC)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)


@dataclass(frozen=True)
class DoraConfig:
    """What the definitions leave to the operator.

    - ``production``: which environments count (re.search on the environment name; an event without
      one is in ``production``). Deployments elsewhere are stored and shown, never counted.
    - ``lookback_days``: how far back a deployment looks for the pushes and commits it ships and the
      failures it may end or remediate; what lies further back is not paired (see docs/aggregator.md).
    """

    production: re.Pattern[str] = field(default_factory=lambda: re.compile(DEFAULT_PRODUCTION_PATTERN))
    lookback_days: int = 180

    @property
    def lookback(self) -> timedelta:
        return timedelta(days=self.lookback_days)

    def environment(self, name: str | None) -> str:
        """The environment an event is about, normalized for matching (case-insensitive)."""
        return (name or DEFAULT_ENVIRONMENT).strip().casefold()

    def is_production(self, name: str | None) -> bool:
        return self.production.search(name or DEFAULT_ENVIRONMENT) is not None


@dataclass(frozen=True)
class Window:
    """The ``days`` UTC calendar days ending with ``last_day`` (today, for live metrics)."""

    days: int
    last_day: date

    @classmethod
    def ending_at(cls, now: datetime, days: int) -> Window:
        return cls(days, day_of(now))

    @property
    def first_day(self) -> date:
        return self.last_day - timedelta(days=self.days - 1)

    def day_list(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.days)]

    def contains(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def previous(self) -> Window:
        """The window of the same length just before this one (for trends)."""
        return Window(self.days, self.first_day - timedelta(days=1))


@dataclass(frozen=True, order=True)
class FactKey:
    """Who a fact belongs to inside its repo: the service (the repo's name when the event names
    none) and the team the event named (None: the repo-to-team mapping decides when reading)."""

    service: str
    team: str | None = None

    def encode(self) -> str:
        return f"{self.service}\t{self.team or ''}"

    @classmethod
    def decode(cls, text: str) -> FactKey:
        service, _, team = text.partition("\t")
        return cls(service, team or None)


@dataclass
class DayFacts:
    """What one day holds for one scope. Counts are of production deployments only."""

    deploys: int = 0  # production deployments, whatever their outcome
    failed_deploys: int = 0  # of which the outcome was failure
    change_failures: int = 0  # of which failed or caused an incident
    rework: int = 0  # of which were unplanned remediation (hotfix, rollback, or during a failure)
    other_deploys: int = 0  # deployments to environments that do not count
    lead_s: list[float] = field(default_factory=list)  # one per change first shipped that day
    recovery_s: list[float] = field(default_factory=list)  # one per failure that ended that day

    def add(self, other: DayFacts) -> None:
        self.deploys += other.deploys
        self.failed_deploys += other.failed_deploys
        self.change_failures += other.change_failures
        self.rework += other.rework
        self.other_deploys += other.other_deploys
        self.lead_s += other.lead_s
        self.recovery_s += other.recovery_s

    @classmethod
    def total(cls, facts: Any) -> DayFacts:
        result = cls()
        for item in facts:
            result.add(item)
        return result

    def is_empty(self) -> bool:
        return self == DayFacts()

    def normalized(self) -> DayFacts:
        """Samples sorted, so that equal facts compare (and serialize) equal."""
        return DayFacts(
            self.deploys,
            self.failed_deploys,
            self.change_failures,
            self.rework,
            self.other_deploys,
            sorted(self.lead_s),
            sorted(self.recovery_s),
        )

    def to_json(self) -> dict[str, Any]:
        """Compact: only what is not zero."""
        data: dict[str, Any] = {
            "d": self.deploys,
            "fd": self.failed_deploys,
            "cf": self.change_failures,
            "rw": self.rework,
            "od": self.other_deploys,
            "l": sorted(self.lead_s),
            "r": sorted(self.recovery_s),
        }
        return {key: value for key, value in data.items() if value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DayFacts:
        return cls(
            deploys=int(data.get("d", 0)),
            failed_deploys=int(data.get("fd", 0)),
            change_failures=int(data.get("cf", 0)),
            rework=int(data.get("rw", 0)),
            other_deploys=int(data.get("od", 0)),
            lead_s=[float(v) for v in data.get("l", [])],
            recovery_s=[float(v) for v in data.get("r", [])],
        )
