"""The aggregator: DORA metrics over a window, from the event stream back into the stream."""

from __future__ import annotations

from aggregator.service import Aggregator, HandleOutcome
from aggregator.state import ApplyResult, StateRepository

__all__ = ["Aggregator", "ApplyResult", "HandleOutcome", "StateRepository"]
