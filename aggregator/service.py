"""The aggregator's one job, independent of how records arrive: count events into the window
state, then emit the four DORA metrics for every scope the batch touched (and, periodically, for
every known scope so that values decay when deploys stop)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aggregator.emitter import StreamEmitter
from aggregator.metrics import Window, WindowTotals, summarize
from aggregator.state import ApplyResult, StateRepository, scopes_of
from devops_core.events import MAX_METADATA_BYTES, REPO_ALL, DevOpsEvent, EventType

__all__ = ["METRIC_EVENTS", "Aggregator", "HandleOutcome", "metric_event_id"]

logger = logging.getLogger(__name__)

SOURCE = "aggregator"
# Events that change a metric and so trigger an emit for their scopes.
_TRIGGERS = {EventType.DEPLOY, EventType.DEPLOY_FAILED, EventType.SERVICE_RESTORED}
METRIC_EVENTS = (
    EventType.CALC_DEPLOYMENT_FREQ,
    EventType.CALC_LEAD_TIME,
    EventType.CALC_CHANGE_FAILURE_RATE,
    EventType.CALC_RECOVERY_TIME,
)
_ID_NAMESPACE = uuid.UUID("5a0c3d7e-6c1b-4b7e-9a43-2f1d8c6b1a90")


def metric_event_id(metric: EventType, scope: str, cause: str) -> str:
    """Deterministic: the same cause (trigger event or emit period) always yields the same id, so a
    redelivered batch re-emits records the sinks already hold instead of new ones."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{metric.value}|{scope}|{cause}"))


@dataclass
class HandleOutcome:
    applied: ApplyResult
    internal_ignored: int
    emitted: int


class Aggregator:
    def __init__(
        self,
        state: StateRepository,
        emitter: StreamEmitter,
        *,
        window_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.state = state
        self._emitter = emitter
        self._window_days = window_days
        self._clock = clock

    def handle(self, events: Sequence[DevOpsEvent]) -> HandleOutcome:
        """Count the batch (exactly once), then emit metrics for the scopes it touched."""
        internal = sum(1 for e in events if e.event.is_internal)
        applied = self.state.apply([e for e in events if not e.event.is_internal])
        if applied.too_old:
            logger.warning(
                "events older than the window ignored",
                extra={
                    "too_old": applied.too_old,
                    "window_days": self._window_days,
                    "event_ids": applied.too_old_event_ids[:10],
                },
            )
        # One emit per scope per batch, caused by the batch's latest trigger of that scope;
        # duplicates trigger too, since a redelivery may be the retry of a batch whose emit failed.
        # A push that completed the lead time of an already counted deploy triggers too.
        causes: dict[str, DevOpsEvent] = {}
        window = Window.ending_at(self._clock(), self._window_days)
        lead_pushes = set(applied.lead_pushes.values())
        for event in sorted(events, key=lambda e: (e.time, e.event_id)):
            triggers = event.event in _TRIGGERS or event.event_id in lead_pushes
            if triggers and not window.is_too_old(event.time):
                for scope in scopes_of(event.repo):
                    causes[scope] = event
        metric_events = [
            event
            for scope, cause in sorted(causes.items())
            for event in self.metric_events(scope, cause=f"event:{cause.event_id}", at=cause.received_at)
        ]
        self._emitter.emit(metric_events)
        logger.info(
            "batch aggregated",
            extra={
                "records": len(events),
                "counted": applied.counted,
                "pushes": applied.pushes,
                "late_lead_samples": applied.late_lead_samples,
                "too_old": applied.too_old,
                "ignored": applied.ignored + internal,
                "writes": applied.writes,
                "emitted": len(metric_events),
            },
        )
        return HandleOutcome(applied, internal, len(metric_events))

    def metric_events(self, scope: str, *, cause: str, at: datetime) -> list[DevOpsEvent]:
        """The four calc_* events for ``scope``, computed from the state as it is now."""
        now = self._clock()
        window = Window.ending_at(now, self._window_days)
        values = summarize(WindowTotals.of(self.state.buckets(scope, window), window), window)
        return [
            DevOpsEvent(
                event_id=metric_event_id(metric, scope, cause),
                time=at,
                repo=scope,
                event=metric,
                metadata=_metadata(values[metric.value]),
                source=SOURCE,
                received_at=now,
            )
            for metric in METRIC_EVENTS
        ]

    def emit_periodic(self, interval_seconds: float, *, claim: bool = True) -> int:
        """Emit for ALL and every repo seen within the window, once per period across all tasks (a
        claim item in the state table); time and ids derive from the period, so even a double
        emit would produce identical records."""
        now = self._clock()
        period = int(now.timestamp() // interval_seconds)
        at = datetime.fromtimestamp(period * interval_seconds, UTC)
        cause = f"period:{interval_seconds:g}:{period}"
        if claim and not self.state.claim(cause, ttl_seconds=int(interval_seconds) + 86400):
            return 0
        scopes = sorted({REPO_ALL, *self.state.known_repos()})
        events = [event for scope in scopes for event in self.metric_events(scope, cause=cause, at=at)]
        self._emitter.emit(events)
        logger.info("periodic metrics emitted", extra={"scopes": len(scopes), "emitted": len(events)})
        return len(events)


def _metadata(values: dict[str, Any]) -> str:
    text = json.dumps(values, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_METADATA_BYTES:  # cannot happen with the fixed fields; guard anyway
        raise ValueError(f"metric metadata of {len(text)} bytes exceeds {MAX_METADATA_BYTES}")
    return text
