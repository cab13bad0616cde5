"""Production entry point: the KCL MultiLangDaemon running the consumer's record processor.

``python -m consumer`` renders the daemon's properties from the environment (DEVOPS_STREAM_NAME,
CONSUMER_APPLICATION_NAME, AWS_REGION, KCL_RETRIEVAL_MODE=POLLING|FANOUT, ...; endpoints from
AWS_ENDPOINT_URL_*), then runs the Java daemon in the foreground; SIGTERM is forwarded so every
processor checkpoints before the task stops. The daemon starts ``python -m consumer.kcl_app`` per shard.
"""

from __future__ import annotations

import argparse
import sys

from devops_core.logs import setup_logging
from devops_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description="Run the devops-metrics consumer (Kinesis -> Timestream + New Relic) under the KCL "
        "MultiLangDaemon. Configuration comes from the environment; see docs/consumer.md.",
    )
    parser.add_argument(
        "--print-properties", action="store_true", help="print the daemon's properties file and exit"
    )
    parser.add_argument("--log-level", default="INFO", help="daemon (Java) log level (default: %(default)s)")
    args = parser.parse_args(argv)

    settings = Settings()
    setup_logging(settings.log_level)
    from devops_core.kcl.daemon import render_properties, run_daemon

    from consumer.daemon import daemon_config

    config = daemon_config(settings)
    if args.print_properties:
        sys.stdout.write(render_properties(config))
        return 0
    return run_daemon(config, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
