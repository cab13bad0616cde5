"""``make run``: the whole pipeline on the embedded emulator; no AWS account, no Docker.

Starts moto (served by hypercorn) in-process, creates the stream, tables, secret and queue, then
runs the gateway and the pipeline's workers until Ctrl-C / SIGTERM, and stops them in order:
gateway (drains its batcher), workers (checkpoint), emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from devstack.emulator import Emulator
from devstack.resources import provision
from devstack.workers import Worker, all_workers
from producer.server import start_gateway

logger = logging.getLogger("devstack")


def parse_args(argv: list[str] | None, workers: list[Worker]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make run ARGS=... (python -m devstack)",
        description="Run the devops-metrics pipeline locally on an embedded AWS emulator (moto). "
        "Pipeline settings (stream, table, New Relic...) come from the environment, see README.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address for emulator and gateway (default: %(default)s)"
    )
    parser.add_argument(
        "--emulator-port",
        type=int,
        default=4566,
        help="AWS emulator port; AWS_ENDPOINT_URL points here (default: %(default)s)",
    )
    parser.add_argument("--gateway-port", type=int, default=8000, help="gateway port (default: %(default)s)")
    parser.add_argument(
        "--shards", type=int, default=2, help="shards of the local Kinesis stream (default: %(default)s)"
    )
    parser.add_argument(
        "--only-gateway",
        action="store_true",
        help="run only the emulator and the gateway (no consumer/aggregator)",
    )
    for worker in workers:
        worker.add_arguments(parser)
    return parser.parse_args(argv)


def _point_boto_at(url: str) -> None:
    """Everything in this process (and its children) talks to the emulator via boto3's own variables."""
    os.environ["AWS_ENDPOINT_URL"] = url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _banner(token: str, generated: bool, gateway_url: str, emulator_url: str) -> str:
    lines = [
        "",
        "devops-metrics is running locally.",
        f"  gateway:  {gateway_url}",
        f"  emulator: {emulator_url}",
    ]
    if generated:
        lines.append(
            "  A token was generated for this run. Paste this into the shell that runs the CI scripts:"
        )
    else:
        lines.append("  Using the token from DEVOPS_EVENTS_SECRET_TOKEN. Shell setup for the CI scripts:")
    lines += [
        f"    export DEVOPS_EVENTS_SECRET_TOKEN={token}"
        if generated
        else "    (DEVOPS_EVENTS_SECRET_TOKEN as set)",
        f"    export API_DEVOPS_EVENT_CATCHER={gateway_url}/process-event",
        f"    export AWS_ENDPOINT_URL={emulator_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1",
        "  Try: python cicd_script/report_devops_event.py demo deploy --metadata v1",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


async def serve(args: argparse.Namespace, available: list[Worker]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    emulator = Emulator(args.host, args.emulator_port)
    await asyncio.to_thread(emulator.start)
    _point_boto_at(emulator.url)
    settings = Settings()
    setup_logging(settings.log_level)
    resources = await asyncio.to_thread(provision, settings, shard_count=args.shards)

    # The gateway reads its token from Secrets Manager, as in production (rotation included).
    gateway_settings = settings.model_copy(update={"devops_events_secret_token": None})
    # The production limits and error handling (producer/server.py), as python -m producer serves.
    runner = await start_gateway(gateway_settings, args.host, args.gateway_port, shutdown_timeout=10)
    gateway_url = f"http://{args.host}:{args.gateway_port}"

    workers: list[Worker] = [] if args.only_gateway else [w for w in available if w.enabled(args)]
    for worker in workers:
        await worker.start(args, settings)

    print(_banner(resources.token, resources.token_generated, gateway_url, emulator.url), flush=True)
    logger.info(
        "local stack ready",
        extra={"gateway": gateway_url, "emulator": emulator.url, "workers": [w.name for w in workers]},
    )
    await stop.wait()

    logger.info("stopping")
    await runner.cleanup()  # stops accepting, finishes requests, drains the batcher
    for worker in reversed(workers):
        await worker.stop()
    await asyncio.to_thread(emulator.stop)
    logger.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    workers = all_workers()
    args = parse_args(argv, workers)
    setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
    return asyncio.run(serve(args, workers))


if __name__ == "__main__":
    sys.exit(main())
