"""Create the pipeline's resources on an emulator: ``python -m devstack.provision [--shards N]``.

The init step of docker-compose.localstack.yml runs this against LocalStack (and moto for Timestream),
through AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>. In AWS the CDK app owns these resources. It
prints one JSON line (never the token) and exits 0 once everything exists, so it can be re-run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from devstack.resources import provision

__all__ = ["main"]

logger = logging.getLogger("devstack.provision")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.provision",
        description="Create (idempotently) the stream, Timestream database/table, secret, DLQ and "
        "DynamoDB state table named by the environment, on the endpoint boto3 is configured for.",
    )
    parser.add_argument("--shards", type=int, default=2, help="shards of the stream (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level)
    result = provision(settings, shard_count=args.shards)
    summary = {
        "ready": True,
        "stream_arn": result.stream_arn,
        "dead_letter_queue_url": result.dead_letter_queue_url,
        "secret_id": settings.secret_store_name,
        "token_generated": result.token_generated,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
