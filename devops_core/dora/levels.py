"""DORA performance levels (elite, high, medium, low): every threshold lives here and only here.

Source: DORA, *Accelerate State of DevOps Report* 2024 (https://dora.dev/research/2024/dora-report/),
table "software delivery performance levels"; summarised at
https://octopus.com/blog/2024-devops-performance-clusters. The report gives each cluster as a band:

- deployment frequency: elite on demand (several per day); high once per day .. once per week;
  medium once per week .. once per month; low once per month .. once every six months.
- change lead time: elite < 1 day; high 1 day .. 1 week; medium 1 week .. 1 month;
  low 1 month .. 6 months.
- change fail rate: elite 5 %; high 20 %; medium 10 %; low 40 %.
- failed deployment recovery time: elite < 1 hour; high < 1 day; medium < 1 day;
  low 1 week .. 1 month.

The 2024 stability bands are cluster medians and are not monotonic (high 20 % > medium 10 %;
high and medium share "< 1 day"), so they cannot classify on their own. For the two stability
metrics we use the 2023 report's bands (https://octopus.com/blog/software-delivery-performance-clusters-2023),
which are monotonic: change failure rate elite 5 %, high 10 %, medium 15 %, low 64 %; recovery time
elite < 1 hour, high < 1 day, medium 1 day .. 1 week, low 1 month .. 6 months.

A band's upper edge belongs to the better level ("at most 5 %" is elite); throughput edges are
"at least" (one deploy per day is elite). Lead and recovery "less than" edges are strict as the
report words them: exactly one day of lead time is high, not elite.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CHANGE_FAILURE_RATE_MAX",
    "DEPLOYS_PER_DAY_MIN",
    "LEAD_TIME_BELOW_SECONDS",
    "RECOVERY_TIME_BELOW_SECONDS",
    "Level",
    "change_failure_rate_level",
    "deployment_frequency_level",
    "lead_time_level",
    "recovery_time_level",
]

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY


class Level(StrEnum):
    ELITE = "elite"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# Deployment frequency, deploys per day: a level needs at least this rate.
DEPLOYS_PER_DAY_MIN: dict[Level, float] = {
    Level.ELITE: 1.0,  # on demand: one or more deploys per day
    Level.HIGH: 1 / 7,  # at least once per week
    Level.MEDIUM: 1 / 30,  # at least once per month
}
# Lead time for changes (median), seconds: a level needs strictly less than this.
LEAD_TIME_BELOW_SECONDS: dict[Level, float] = {
    Level.ELITE: DAY,  # less than one day
    Level.HIGH: WEEK,  # one day .. one week
    Level.MEDIUM: MONTH,  # one week .. one month
}
# Change failure rate, 0..1: a level needs at most this rate (2023 bands, see above).
CHANGE_FAILURE_RATE_MAX: dict[Level, float] = {
    Level.ELITE: 0.05,
    Level.HIGH: 0.10,
    Level.MEDIUM: 0.15,
}
# Failed deployment recovery time (median), seconds: a level needs strictly less than this.
RECOVERY_TIME_BELOW_SECONDS: dict[Level, float] = {
    Level.ELITE: HOUR,  # less than one hour
    Level.HIGH: DAY,  # less than one day
    Level.MEDIUM: WEEK,  # one day .. one week (2023)
}

_ORDER = (Level.ELITE, Level.HIGH, Level.MEDIUM)


def deployment_frequency_level(deploys_per_day: float) -> Level:
    return next((lvl for lvl in _ORDER if deploys_per_day >= DEPLOYS_PER_DAY_MIN[lvl]), Level.LOW)


def lead_time_level(median_seconds: float | None) -> Level | None:
    if median_seconds is None:
        return None
    return next((lvl for lvl in _ORDER if median_seconds < LEAD_TIME_BELOW_SECONDS[lvl]), Level.LOW)


def change_failure_rate_level(rate: float | None) -> Level | None:
    if rate is None:
        return None
    return next((lvl for lvl in _ORDER if rate <= CHANGE_FAILURE_RATE_MAX[lvl]), Level.LOW)


def recovery_time_level(median_seconds: float | None) -> Level | None:
    if median_seconds is None:
        return None
    return next((lvl for lvl in _ORDER if median_seconds < RECOVERY_TIME_BELOW_SECONDS[lvl]), Level.LOW)
