"""Background workers that ``make run`` starts beside the gateway (consumer, aggregator): the
devstack's adapters over the applications' in-process runners and daemons (devstack depends on them,
never the other way round).

Each worker can add its own command-line options; it is started after the resources exist and
stopped (checkpointing) after the gateway has drained and before the emulator goes away.

Under the real KCL MultiLangDaemon (``--consumer-driver daemon``, ``--aggregator-driver daemon``) a
worker is not reading when it has started: the JVM takes 40-90 s to take its leases. ``make run``
says so up front and ``announce_ready`` prints a line once the daemon holds (and renews) a lease on
every shard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from typing import Any, Protocol

from aiohttp import web
from botocore.exceptions import ClientError
from pydantic import SecretStr

from devops_core.settings import Settings

__all__ = ["AggregatorWorker", "ConsumerWorker", "Worker", "all_workers"]

logger = logging.getLogger(__name__)

STANDIN_API_KEY = "local-standin-key"
DAEMON_START_NOTE = "takes 40-90 s to start (Java, lease table); a line below says when it reads the stream"
_READY_POLL_SECONDS = 2.0
_READY_GIVE_UP_SECONDS = 300.0


class Worker(Protocol):
    name: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def enabled(self, args: argparse.Namespace) -> bool: ...

    async def start(self, args: argparse.Namespace, settings: Settings) -> None: ...

    async def stop(self) -> None: ...

    async def announce_ready(self, stop: asyncio.Event) -> None:
        """Print one line when the worker really reads the stream (at once for in-process ones)."""
        ...


def all_workers() -> list[Worker]:
    # The consumer first: workers stop in reverse order, so the aggregator's last emits still get stored.
    return [ConsumerWorker(), AggregatorWorker()]


class ConsumerWorker:
    name = "consumer"

    def __init__(self) -> None:
        self._local: Any = None  # consumer.local.LocalConsumer, imported when started
        self._daemon: Any = None
        self._standin: web.AppRunner | None = None
        self._settings: Settings | None = None
        self._baseline: dict[str, int] = {}

    async def announce_ready(self, stop: asyncio.Event) -> None:
        if self._daemon is not None and self._settings is not None:
            await _announce_daemon_ready(
                "consumer",
                self._settings,
                self._settings.consumer_application_name,
                CONSUMER_WORKER_ID,
                self._baseline,
                stop,
            )

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
            print(f"  consumer: KCL MultiLangDaemon {DAEMON_START_NOTE}", flush=True)
            self._settings = settings
            self._baseline = await asyncio.to_thread(
                _lease_counters, settings, settings.consumer_application_name
            )
            self._daemon = await asyncio.to_thread(_start_daemon, settings)
        else:
            from consumer.local import LocalConsumer  # lazily: the gateway alone never loads it

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
        from devstack.newrelic_standin import LOG_PATH, start_standin  # lazily: only with the flag

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


CONSUMER_WORKER_ID = "make-run-consumer"
AGGREGATOR_WORKER_ID = "make-run-aggregator"


def _lease_counters(settings: Settings, application: str) -> dict[str, int]:
    """leaseCounter per shard of an application's lease table now ({} when it has none yet)."""
    from devops_core.aws import boto_client
    from devops_core.kcl.leases import LeaseTable

    table = LeaseTable(application, owner="make-run-observer")
    shards = boto_client("kinesis").list_shards(StreamName=settings.devops_stream_name)["Shards"]
    counters = {}
    for shard in shards:
        try:
            lease = table.get(shard["ShardId"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            return {}  # no lease table yet: every lease the daemon takes is new
        if lease is not None:
            counters[shard["ShardId"]] = lease.counter
    return counters


def _daemon_reads(settings: Settings, application: str, worker_id: str, baseline: dict[str, int]) -> int:
    """How many open shards the daemon holds now: its worker id owns the lease and renewed it since
    make run started (a lease kept from the last run does not count until renewed)."""
    from devops_core.aws import boto_client
    from devops_core.kcl.leases import LeaseTable

    table = LeaseTable(application, owner="make-run-observer")
    shards = [
        s["ShardId"]
        for s in boto_client("kinesis").list_shards(StreamName=settings.devops_stream_name)["Shards"]
        if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
    ]
    held = 0
    for shard_id in shards:
        lease = table.get(shard_id)
        if lease is not None and lease.owner == worker_id and lease.counter > baseline.get(shard_id, 0):
            held += 1
    return held if held == len(shards) else 0


async def _announce_daemon_ready(
    name: str,
    settings: Settings,
    application: str,
    worker_id: str,
    baseline: dict[str, int],
    stop: asyncio.Event,
) -> None:
    started = time.monotonic()
    while not stop.is_set():
        try:
            shards = await asyncio.to_thread(_daemon_reads, settings, application, worker_id, baseline)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            shards = 0  # the daemon has not made its lease table yet
        elapsed = time.monotonic() - started
        if shards:
            print(f"  {name}: KCL daemon ready after {elapsed:.0f} s (reading {shards} shard(s))", flush=True)
            logger.info("kcl daemon ready", extra={"worker": name, "seconds": elapsed, "shards": shards})
            return
        if elapsed > _READY_GIVE_UP_SECONDS:
            print(f"  {name}: KCL daemon not reading after {elapsed:.0f} s; see its log lines", flush=True)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _READY_POLL_SECONDS)


def _start_daemon(settings: Settings) -> Any:
    """The daemon child reads settings from the environment: pass the ones make run decided."""
    from consumer.daemon import start_consumer_daemon

    env = dict(os.environ)
    env.setdefault("DEVOPS_STREAM_NAME", settings.devops_stream_name)
    env.setdefault("CONSUMER_APPLICATION_NAME", settings.consumer_application_name)
    env.setdefault("KCL_SHARD_SYNC_INTERVAL_MILLIS", "5000")
    env.setdefault("KCL_IDLE_TIME_BETWEEN_READS_MILLIS", "200")
    return start_consumer_daemon(args=["--worker-id", CONSUMER_WORKER_ID, "--log-level", "WARN"], env=env)


class AggregatorWorker:
    """Registered in devstack.workers.all_workers(); started by ``make run``."""

    name = "aggregator"

    def __init__(self) -> None:
        self._local: Any = None  # aggregator.local.LocalAggregator, imported when started
        self._daemon: subprocess.Popen[bytes] | None = None
        self._settings: Settings | None = None
        self._baseline: dict[str, int] = {}

    async def announce_ready(self, stop: asyncio.Event) -> None:
        if self._daemon is not None and self._settings is not None:
            await _announce_daemon_ready(
                "aggregator",
                self._settings,
                self._settings.aggregator_application_name,
                AGGREGATOR_WORKER_ID,
                self._baseline,
                stop,
            )

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
            print(f"  aggregator: KCL MultiLangDaemon {DAEMON_START_NOTE}", flush=True)
            self._settings = settings
            self._baseline = await asyncio.to_thread(
                _lease_counters, settings, settings.aggregator_application_name
            )
            command = [sys.executable, "-m", "aggregator", "--worker-id", AGGREGATOR_WORKER_ID]
            self._daemon = await asyncio.to_thread(subprocess.Popen, command, env=dict(os.environ))
            logger.info("aggregator started", extra={"driver": "daemon", "pid": self._daemon.pid})
            return
        from aggregator.local import LocalAggregator  # lazily: the gateway alone never loads it

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
