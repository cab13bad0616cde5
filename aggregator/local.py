"""The aggregator on the in-process KCL driver (a development harness: ``make run`` and tests;
production runs the KCL MultiLangDaemon, docs/kcl.md). It keeps its KCL checkpoints in its own lease
table (``AGGREGATOR_APPLICATION_NAME``), apart from the consumer's."""

from __future__ import annotations

import logging
import threading

from aggregator.app import PeriodicEmitter, build_aggregator, build_processor
from devops_core.kcl import LocalKclDriver
from devops_core.kcl.processor import StreamProcessor
from devops_core.settings import Settings

__all__ = ["LocalAggregator"]

logger = logging.getLogger(__name__)


class LocalAggregator:
    """The in-process aggregator: a LocalKclDriver over the stream plus the periodic emitter."""

    def __init__(self, settings: Settings, *, poll_interval: float = 0.2) -> None:
        self._settings = settings
        self._stopping = threading.Event()
        self.driver = LocalKclDriver(
            stream_name=settings.devops_stream_name,
            application_name=settings.aggregator_application_name,
            processor_factory=self._new_processor,
            poll_interval=poll_interval,
        )
        self.periodic = PeriodicEmitter(build_aggregator(settings), settings.aggregator_emit_interval_seconds)

    def _new_processor(self) -> StreamProcessor:
        return build_processor(self._settings, stopping=self._stopping)

    def start(self) -> None:
        self.driver.start()
        self.periodic.start()

    def stop(self, timeout: float = 30.0) -> bool:
        self.periodic.stop()
        self._stopping.set()  # a batch still being retried is abandoned, not skipped
        return self.driver.stop(timeout)

    def __enter__(self) -> LocalAggregator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
