"""Run the gateway: ``python -m producer`` (configuration from the environment, see README)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import uvloop
from aiohttp import web

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from devops_core.startup_heap import freeze_startup_heap
from producer.server import start_gateway

logger = logging.getLogger("producer")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="DevOps event gateway: POST /process-event and /events -> Kinesis. "
        "Everything else is configured by environment variables (see README).",
    )
    parser.add_argument("--host", help="address to bind (default: GATEWAY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: GATEWAY_PORT or 8000)")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=15.0,
        help="seconds to let in-flight requests finish on SIGTERM before the batcher drains "
        "(default: %(default)s)",
    )
    return parser.parse_args(argv)


async def serve(
    settings: Settings, host: str, port: int, shutdown_timeout: float, app: web.Application | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then stop accepting, finish requests and drain the batcher.
    ``app`` defaults to ``create_app(settings)`` (bench/gateway's in-memory gateway passes its own)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = await start_gateway(settings, host, port, shutdown_timeout=shutdown_timeout, app=app)
    frozen = freeze_startup_heap()
    # The bound port: with --port 0 the OS picks a free one, and this line says which (tests read it).
    logger.info(
        "gateway listening",
        extra={"host": host, "port": runner.addresses[0][1], "startup_objects_frozen": frozen},
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run the gateway's main coroutine on uvloop: the event loop in C (libuv), which roughly halves
    what the loop and the socket writes cost a request (docs/performance.md)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level)
    host = args.host or settings.gateway_host
    port = args.port if args.port is not None else settings.gateway_port
    logger.info("gateway starting", extra={"host": host, "port": port, "stream": settings.devops_stream_name})
    run(serve(settings, host, port, args.shutdown_timeout))
    logger.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
