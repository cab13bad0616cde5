"""Run N gateway processes on one port: ``python -m producer.multiworker [--workers N]``.

One aiohttp process is bound by one core; the container image runs this entry point so a Fargate task
with more vCPUs can use them. gunicorn's arbiter (with aiohttp's own worker class) forks the workers,
restarts one that dies and drains them on SIGTERM; each worker builds its own Settings, event loop,
Kinesis client and batcher, so nothing is shared between processes.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Any

from aiohttp import web
from gunicorn.app.base import BaseApplication

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from devops_core.startup_heap import freeze_startup_heap
from producer.server import gateway_runner

__all__ = ["build_options", "main"]

logger = logging.getLogger("producer.multiworker")


async def app_factory(shutdown_timeout: float) -> web.AppRunner:
    """Called once in every worker process, after the fork. Returning the runner (rather than the app)
    makes the worker serve exactly as ``python -m producer`` does (producer/server.py)."""
    settings = Settings()
    setup_logging(settings.log_level)
    runner = gateway_runner(settings, shutdown_timeout=shutdown_timeout)
    runner.app.on_startup.append(_freeze_startup_heap)  # after the cleanup contexts: clients made
    return runner


async def _freeze_startup_heap(app: web.Application) -> None:
    logger.info("worker ready", extra={"pid": os.getpid(), "startup_objects_frozen": freeze_startup_heap()})


def build_options(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    host = args.host or settings.gateway_host
    port = args.port if args.port is not None else settings.gateway_port
    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": args.workers or settings.gateway_workers,
        # aiohttp's worker on uvloop, as python -m producer runs (docs/performance.md).
        "worker_class": "aiohttp.GunicornUVLoopWebWorker",
        # On SIGTERM a worker lets in-flight requests finish, then the batcher drains (cleanup_ctx).
        "graceful_timeout": max(1, round(args.shutdown_timeout)),
        "timeout": 60,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "devops-gateway",
        # gunicorn >= 25 opens a control socket under $HOME; the container user's home is read-only
        # and nothing manages the arbiter at run time.
        "control_socket_disable": True,
    }


class _GatewayApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key == "control_socket_disable" and key not in self.cfg.settings:
                continue  # older gunicorn: no control socket to disable
            self.cfg.set(key, value)

    def load(self) -> Any:
        # As aiohttp's worker does with its own runner: leave 5% of the graceful timeout for the exit.
        return functools.partial(app_factory, self._options["graceful_timeout"] * 0.95)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m producer.multiworker",
        description="Run the gateway in several processes sharing one port (gunicorn + aiohttp worker). "
        "Everything else is configured by environment variables, as for python -m producer.",
    )
    parser.add_argument("--workers", type=int, help="processes (default: GATEWAY_WORKERS or 1)")
    parser.add_argument("--host", help="address to bind (default: GATEWAY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: GATEWAY_PORT or 8000)")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=15.0,
        help="seconds each worker gets on SIGTERM to finish requests and drain (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level)
    options = build_options(settings, args)
    logger.info(
        "gateway starting",
        extra={"bind": options["bind"], "workers": options["workers"], "stream": settings.devops_stream_name},
    )
    _GatewayApplication(options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
