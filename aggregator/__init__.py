"""The aggregator: the event log, and the DORA metrics derived from it, back into the stream."""

from __future__ import annotations

from aggregator.event_log import AppendResult, Conflict, EventLog
from aggregator.service import Aggregator, HandleOutcome

__all__ = ["Aggregator", "AppendResult", "Conflict", "EventLog", "HandleOutcome"]
