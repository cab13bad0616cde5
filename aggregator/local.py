"""Running the aggregator beside the gateway (``make run``) and in tests.

Two drivers for the same processor: ``local`` (default) reads the shards in-process with
``devops_core.kcl.LocalKclDriver`` (no Java), ``daemon`` starts ``python -m aggregator``, i.e. the
real KCL MultiLangDaemon, as a child process. Either way the aggregator keeps its KCL checkpoints in
its own lease table (``AGGREGATOR_APPLICATION_NAME``), apart from the consumer's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import threading

from aggregator.app import PeriodicEmitter, build_aggregator, build_processor
from devops_core.kcl import LocalKclDriver
from devops_core.kcl.processor import StreamProcessor
from devops_core.settings import Settings

__all__ = ["AggregatorWorker", "LocalAggregator"]

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


class AggregatorWorker:
    """Registered in devstack.workers.all_workers(); started by ``make run``."""

    name = "aggregator"

    def __init__(self) -> None:
        self._local: LocalAggregator | None = None
        self._daemon: subprocess.Popen[bytes] | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--aggregator-driver",
            choices=["local", "daemon", "off"],
            default="local",
            help="how the aggregator reads the stream: in-process (local), the KCL MultiLangDaemon "
            "(daemon, needs Java) or not at all (default: %(default)s)",
        )

    def enabled(self, args: argparse.Namespace) -> bool:
        return bool(args.aggregator_driver != "off")

    async def start(self, args: argparse.Namespace, settings: Settings) -> None:
        if args.aggregator_driver == "daemon":
            # The child inherits AWS_ENDPOINT_URL and credentials, so the JVM uses the same emulator.
            command = [sys.executable, "-m", "aggregator"]
            self._daemon = await asyncio.to_thread(subprocess.Popen, command, env=dict(os.environ))
            logger.info("aggregator started", extra={"driver": "daemon", "pid": self._daemon.pid})
            return
        self._local = LocalAggregator(settings)
        await asyncio.to_thread(self._local.start)
        logger.info("aggregator started", extra={"driver": "local"})

    async def stop(self) -> None:
        if self._local is not None:
            await asyncio.to_thread(self._local.stop)
        if self._daemon is not None and self._daemon.poll() is None:
            self._daemon.terminate()  # forwarded to the JVM, whose shutdown hook checkpoints
            try:
                await asyncio.to_thread(self._daemon.wait, 40)
            except subprocess.TimeoutExpired:
                logger.error("aggregator daemon did not stop in time; killing it")
                self._daemon.kill()
