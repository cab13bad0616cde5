"""Wiring: settings -> clients -> state, emitter, dead letters -> Aggregator / processor.

Also the periodic emitter, a daemon thread that wakes at every period boundary
(``aggregator_emit_interval_seconds``) and emits for every known scope, claiming the period in
the state table so that one task (of however many) does it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from aggregator.application import AggregatorApplication
from aggregator.emitter import StreamEmitter
from aggregator.event_log import EventLog
from aggregator.facts import FactsWriter
from aggregator.service import Aggregator
from devops_core.aws import boto_client, client_config
from devops_core.kcl.processor import StreamProcessor, build_stream_processor
from devops_core.metrics_read import build_read_model
from devops_core.settings import Settings

__all__ = ["PeriodicEmitter", "build_aggregator", "build_processor"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_aggregator(settings: Settings, *, clock: Clock = _utc_now) -> Aggregator:
    dynamodb = boto_client("dynamodb", config=client_config(max_attempts=6))
    read_model = build_read_model(settings, dynamodb, clock=clock)
    store = read_model.store
    retention = settings.aggregator_retention_days
    return Aggregator(
        store,
        EventLog(store, dynamodb, retention_days=retention, clock=clock),
        FactsWriter(dynamodb, settings.aggregator_state_table, retention_days=retention, clock=clock),
        StreamEmitter(boto_client("kinesis"), settings.devops_stream_name),
        read_model,
        window_days=settings.deployment_freq_timeframe_day,
        clock=clock,
    )


def build_processor(
    settings: Settings, aggregator: Aggregator | None = None, *, stopping: threading.Event | None = None
) -> StreamProcessor:
    application = AggregatorApplication(aggregator or build_aggregator(settings))
    return build_stream_processor(application, settings, stopping=stopping)


class PeriodicEmitter:
    """Emits every scope's metrics at each period boundary, so values decay when deploys stop."""

    def __init__(self, aggregator: Aggregator, interval_seconds: float) -> None:
        self._aggregator = aggregator
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aggregator-periodic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            now = datetime.now(UTC).timestamp()
            wait = self._interval - (now % self._interval) + 0.05
            if self._stop.wait(wait):
                return
            try:
                self._aggregator.emit_periodic(self._interval)
            except Exception:  # the next period retries; a missed period only delays a decay
                logger.exception("periodic emit failed; next period retries")
