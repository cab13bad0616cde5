"""``make run``'s consumer: the same record processor, driven in-process (default) or by the real
KCL MultiLangDaemon (``--consumer-driver daemon``); optionally with the local New Relic stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from consumer.runtime import ConsumerRuntime
from devops_core.settings import Settings

__all__ = ["ConsumerWorker", "LocalConsumer"]

logger = logging.getLogger(__name__)

STANDIN_API_KEY = "local-standin-key"


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


class ConsumerWorker:
    name = "consumer"

    def __init__(self) -> None:
        self._local: LocalConsumer | None = None
        self._daemon: Any = None
        self._standin: web.AppRunner | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("consumer")
        group.add_argument(
            "--consumer-driver",
            choices=["local", "daemon"],
            default="local",
            help="run the consumer in-process (local, default) or under the KCL MultiLangDaemon (Java)",
        )
        group.add_argument("--no-consumer", action="store_true", help="do not run the consumer")
        group.add_argument(
            "--newrelic-standin",
            action="store_true",
            help="start the local New Relic Log API stand-in and send logs there "
            "(sets NEW_RELIC_LOG_ENDPOINT and a dummy LOGGER_API_KEY when they are unset)",
        )

    def enabled(self, args: argparse.Namespace) -> bool:
        return not args.no_consumer

    async def start(self, args: argparse.Namespace, settings: Settings) -> None:
        if args.newrelic_standin:
            settings = await self._start_standin(args, settings)
        if args.consumer_driver == "daemon":
            self._daemon = await asyncio.to_thread(_start_daemon, settings)
        else:
            self._local = LocalConsumer(settings)
            await asyncio.to_thread(self._local.start)

    async def stop(self) -> None:
        if self._local is not None:
            await asyncio.to_thread(self._local.stop)
        if self._daemon is not None:
            await asyncio.to_thread(self._daemon.stop)
        if self._standin is not None:
            await self._standin.cleanup()

    async def _start_standin(self, args: argparse.Namespace, settings: Settings) -> Settings:
        from devstack.emulator import free_port
        from devstack.newrelic_standin import LOG_PATH, start_standin

        host = getattr(args, "host", "127.0.0.1")
        port = free_port(host)
        self._standin = await start_standin(host, port)
        url = f"http://{host}:{port}"
        update: dict[str, Any] = {}
        # Child processes (the daemon's KCL processes) read the same variables.
        if not settings.new_relic_log_endpoint:
            os.environ["NEW_RELIC_LOG_ENDPOINT"] = update["new_relic_log_endpoint"] = url + LOG_PATH
        if settings.logger_api_key is None:
            os.environ["LOGGER_API_KEY"] = STANDIN_API_KEY
            update["logger_api_key"] = SecretStr(STANDIN_API_KEY)
        print(f"  New Relic stand-in: {url} (received logs: {url}/__standin__/logs)", flush=True)
        return settings.model_copy(update=update)


def _start_daemon(settings: Settings) -> Any:
    """The daemon child reads settings from the environment: pass the ones make run decided."""
    from consumer.daemon import start_consumer_daemon

    env = dict(os.environ)
    env.setdefault("DEVOPS_STREAM_NAME", settings.devops_stream_name)
    env.setdefault("CONSUMER_APPLICATION_NAME", settings.consumer_application_name)
    env.setdefault("KCL_SHARD_SYNC_INTERVAL_MILLIS", "5000")
    env.setdefault("KCL_IDLE_TIME_BETWEEN_READS_MILLIS", "200")
    return start_consumer_daemon(args=["--worker-id", "make-run-consumer", "--log-level", "WARN"], env=env)
