"""The consumer on the in-process KCL driver (a development harness: ``make run`` and tests; production
runs the KCL MultiLangDaemon, docs/kcl.md)."""

from __future__ import annotations

import logging
from typing import Any

from consumer.runtime import ConsumerRuntime
from devops_core.settings import Settings

__all__ = ["LocalConsumer"]

logger = logging.getLogger(__name__)


class LocalConsumer:
    """The consumer on the in-process KCL driver: one runtime, one processor per shard."""

    def __init__(self, settings: Settings, *, poll_interval: float = 0.2, wrap_sink: Any = None) -> None:
        from devops_core.kcl import LocalKclDriver

        self.runtime = ConsumerRuntime(settings, wrap_sink=wrap_sink)
        self.driver = LocalKclDriver(
            stream_name=settings.devops_stream_name,
            application_name=settings.consumer_application_name,
            processor_factory=self.runtime.new_processor,
            poll_interval=poll_interval,
        )

    def start(self) -> LocalConsumer:
        self.runtime.start()
        self.driver.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        # Unblocks a processor waiting out a sink outage, so shutdown can checkpoint what was done.
        self.runtime.stopping.set()
        stopped = bool(self.driver.stop(timeout))
        self.runtime.close()
        return stopped
