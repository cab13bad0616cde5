"""Everything a consumer process shares between its record processors: one asyncio loop on a
background thread, the AWS and HTTP clients on it, and the sinks.

KCL record processors are synchronous (the MultiLangDaemon protocol is a blocking line protocol);
the sinks are asynchronous so Timestream chunks and New Relic posts overlap. ``run(coro)`` bridges
the two. One runtime per process: the KCLProcess has one shard, the local driver several.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from aiobotocore.session import get_session

from consumer.application import ConsumerApplication
from consumer.sinks.base import Sink
from consumer.sinks.firehose import FirehoseSink
from consumer.sinks.newrelic import NewRelicSink
from consumer.sinks.timestream import TimestreamSink
from devops_core.aws import aio_client, client_config
from devops_core.kcl.processor import StreamProcessor, build_stream_processor
from devops_core.settings import Settings

__all__ = ["ConsumerRuntime", "SinkWrapper"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
SinkWrapper = Callable[[Sink], Sink]


class ConsumerRuntime:
    def __init__(self, settings: Settings, *, wrap_sink: SinkWrapper | None = None) -> None:
        self.settings = settings
        # Set on shutdown: every processor of this runtime abandons a batch it is still retrying.
        self.stopping = threading.Event()
        self._wrap = wrap_sink or (lambda sink: sink)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._application: ConsumerApplication | None = None

    @property
    def application(self) -> ConsumerApplication:
        if self._application is None:
            raise RuntimeError("ConsumerRuntime.start() first")
        return self._application

    def new_processor(self) -> StreamProcessor:
        """A record processor (one per shard) over this runtime's sinks."""
        return build_stream_processor(self.application, self.settings, stopping=self.stopping)

    def start(self) -> ConsumerRuntime:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="consumer-loop", daemon=True)
        self._thread.start()
        sinks = self.run(self._open())
        self._application = ConsumerApplication(sinks, self.run)
        return self

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            raise RuntimeError("ConsumerRuntime.start() first")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        self.stopping.set()
        if self._loop is None:
            return
        if self._stack is not None:
            self.run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)
        self._loop.close()
        self._loop = None

    async def _open(self) -> list[Sink]:
        settings = self.settings
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        session = get_session()
        # Records are built by our own code (to_timestream_record, to_raw_record); botocore's client-side
        # parameter validation walks every nested field of 100 records per call and was most of the CPU
        # cost.
        # botocore retries throttling/5xx a few times; longer outages are the processor's backoff.
        write_config = client_config(
            max_attempts=3,
            connect_timeout=2,
            read_timeout=10,
            max_pool_connections=32,
            parameter_validation=False,
        )
        sinks: list[Sink] = [self._wrap(await self._open_raw_store(stack, session, write_config))]
        if settings.logger_api_key is not None:
            http = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, connect=5))
            )
            sinks.append(
                self._wrap(
                    NewRelicSink(http, settings.new_relic_url, settings.logger_api_key.get_secret_value())
                )
            )
            logger.info("new relic sink on", extra={"new_relic_url": settings.new_relic_url})
        else:
            logger.warning(
                "new relic sink off: LOGGER_API_KEY is not set; events go to the raw-event store only",
                extra={"raw_store": settings.raw_store},
            )
        return sinks

    async def _open_raw_store(self, stack: contextlib.AsyncExitStack, session: Any, config: Any) -> Sink:
        """RAW_STORE=s3: Firehose -> S3 (any account); timestream: Timestream for LiveAnalytics."""
        settings = self.settings
        if settings.raw_store == "s3":
            firehose = await stack.enter_async_context(aio_client("firehose", config=config, session=session))
            logger.info("raw-event store: s3", extra={"delivery_stream": settings.raw_events_delivery_stream})
            return FirehoseSink(firehose, settings.raw_events_delivery_stream)
        timestream = await stack.enter_async_context(
            aio_client("timestream-write", config=config, session=session)
        )
        return TimestreamSink(timestream, settings.devops_db_name, settings.devops_table_name)
