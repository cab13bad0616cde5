"""Production entry point: the KCL MultiLangDaemon running the consumer's record processor.

``python -m consumer`` renders the daemon's properties from the environment (DEVOPS_STREAM_NAME,
CONSUMER_APPLICATION_NAME, AWS_REGION, KCL_RETRIEVAL_MODE=POLLING|FANOUT, KCL_*; endpoints from
AWS_ENDPOINT_URL_KINESIS / _DYNAMODB / AWS_ENDPOINT_URL) and runs the Java daemon in the foreground;
SIGTERM is forwarded so every processor checkpoints before the task stops. The daemon starts
``python -m consumer.kcl_app`` for each shard lease.

``python -m consumer --driver local`` runs the same processor on the in-process KCL driver (no Java);
SIGTERM/SIGINT then ask every shard's processor to checkpoint what both sinks took, and exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from devops_core.logs import setup_logging
from devops_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description="Run the devops-metrics consumer (Kinesis -> Timestream + New Relic) under the KCL "
        "MultiLangDaemon. Configuration comes from the environment; see docs/consumer.md.",
    )
    parser.add_argument(
        "--driver",
        choices=["daemon", "local"],
        default="daemon",
        help="daemon: the KCL MultiLangDaemon (Java); local: in-process driver, no Java "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--print-properties", action="store_true", help="print the daemon's properties file and exit"
    )
    parser.add_argument(
        "--worker-id",
        help="stable KCL worker id (default: random per start; a restart with the same id "
        "takes its leases back at once)",
    )
    parser.add_argument(
        "--property", action="append", default=[], metavar="KEY=VALUE", help="any other KCL property"
    )
    parser.add_argument("--log-level", default="INFO", help="daemon (Java) log level (default: %(default)s)")
    args = parser.parse_args(argv)

    settings = Settings()
    setup_logging(settings.log_level)
    if args.driver == "local":
        return _run_local(settings)
    from consumer.daemon import daemon_config
    from devops_core.kcl.daemon import render_properties, run_daemon

    overrides: dict[str, object] = {}
    if args.worker_id:
        overrides["worker_id"] = args.worker_id
    if args.property:
        pairs = [item.split("=", 1) for item in args.property]
        overrides["extra_properties"] = {key.strip(): value.strip() for key, value in pairs}
    config = daemon_config(settings, **overrides)
    if args.print_properties:
        sys.stdout.write(render_properties(config))
        return 0
    return run_daemon(config, log_level=args.log_level)


def _run_local(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then stop like the daemon would: shutdown_requested, checkpoint."""
    from consumer.local import LocalConsumer

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    consumer = LocalConsumer(settings).start()
    stop.wait()
    return 0 if consumer.stop() else 1


if __name__ == "__main__":
    sys.exit(main())
