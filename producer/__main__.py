"""Run the gateway: ``python -m producer`` (configuration from the environment, see README)."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from producer.app import create_app
from producer.limits import server_kwargs

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level)
    host = args.host or settings.gateway_host
    port = args.port if args.port is not None else settings.gateway_port
    logger.info("gateway starting", extra={"host": host, "port": port, "stream": settings.devops_stream_name})
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=args.shutdown_timeout,
        **server_kwargs(settings),
    )
    logger.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
