"""The DORA metrics as pure functions of the events (no I/O, no clock): definitions, levels, windows.

The aggregator (writer), the gateway's metrics API and the dashboard (readers) all use this package,
so there is one definition of every number the product shows.
"""

from devops_core.dora.history import Deployment, Failure, RepoHistory, ShippedChange, daily_facts, derive
from devops_core.dora.levels import Level
from devops_core.dora.model import DayFacts, DoraConfig, FactKey, Window, day_of
from devops_core.dora.summary import METRIC_EVENTS, daily_series, metrics, percentile, summarize, window_facts

__all__ = [
    "METRIC_EVENTS",
    "DayFacts",
    "Deployment",
    "DoraConfig",
    "FactKey",
    "Failure",
    "Level",
    "RepoHistory",
    "ShippedChange",
    "Window",
    "daily_facts",
    "daily_series",
    "day_of",
    "derive",
    "metrics",
    "percentile",
    "summarize",
    "window_facts",
]
