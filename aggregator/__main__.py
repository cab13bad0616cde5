"""Production entry point: the aggregator under the KCL MultiLangDaemon.

    python -m aggregator                 # run the daemon (Java 17 + the jars bundled by kclpy-ext)
    python -m aggregator --driver local  # same processor, in-process driver, no Java
    python -m aggregator --print-properties

Configuration comes from the environment (Settings): DEVOPS_STREAM_NAME, AGGREGATOR_STATE_TABLE,
AGGREGATOR_APPLICATION_NAME (= the KCL lease table), DEPLOYMENT_FREQ_TIMEFRAME_DAY,
AGGREGATOR_EMIT_INTERVAL_SECONDS, DEAD_LETTER_QUEUE_NAME, the KCL_* knobs; endpoints from boto3's
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from devops_core.logs import setup_logging
from devops_core.settings import Settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aggregator",
        description="DORA-metrics aggregator: reads the event stream (KCL application "
        "AGGREGATOR_APPLICATION_NAME), keeps windowed state in DynamoDB (AGGREGATOR_STATE_TABLE) and puts "
        "calc_deployment_freq, calc_lead_time, calc_change_failure_rate and calc_recovery_time events "
        "back on the stream. Settings come from the environment.",
    )
    parser.add_argument(
        "--driver",
        choices=["daemon", "local"],
        default="daemon",
        help="daemon: the KCL MultiLangDaemon (Java); local: in-process, no Java (default: %(default)s)",
    )
    parser.add_argument("--worker-id", help="stable KCL worker id for the daemon (default: random per start)")
    parser.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other KCL property for the daemon (repeatable)",
    )
    parser.add_argument(
        "--print-properties", action="store_true", help="print the daemon's properties file and exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level)
    if args.driver == "local":
        from aggregator.local import LocalAggregator

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        with LocalAggregator(settings):
            stop.wait()
        return 0

    from devops_core.kcl.daemon import DaemonConfig, render_properties, run_daemon

    overrides: dict[str, Any] = {"worker_id": args.worker_id} if args.worker_id else {}
    if args.property:
        pairs = [item.split("=", 1) for item in args.property]
        overrides["extra_properties"] = {key.strip(): value.strip() for key, value in pairs}
    config = DaemonConfig.from_settings(
        settings,
        application_name=settings.aggregator_application_name,
        executable=f"{sys.executable} -m aggregator.child",
        **overrides,
    )
    if args.print_properties:
        sys.stdout.write(render_properties(config))
        return 0
    return run_daemon(config, log_level=settings.log_level)


if __name__ == "__main__":
    sys.exit(main())
