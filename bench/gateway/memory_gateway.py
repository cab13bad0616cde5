"""The real gateway app (auth, rate limit, validation, batching, logging, error handling), served as
``python -m producer`` serves it (uvloop, producer/server.py's runner), with Kinesis replaced by an
in-memory sink, for bench/gateway's comparison with a bare aiohttp handler: what is left is the
gateway's own cost per request.

    DEVOPS_EVENTS_SECRET_TOKEN=... GITHUB_WEBHOOK_SECRET=... \\
        python bench/gateway/memory_gateway.py --port 8003
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp import web

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from producer.__main__ import run, serve
from producer.app import create_app
from producer.state import HEALTH_CLIENT, KINESIS_CLIENT


class InMemoryKinesis:
    """Accepts every PutRecords entry at once, answering like Kinesis does."""

    def __init__(self) -> None:
        self.records = 0
        self._sequence = itertools.count(1)

    async def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.records += len(Records)
        return {
            "FailedRecordCount": 0,
            "Records": [
                {"ShardId": "shardId-000000000000", "SequenceNumber": str(next(self._sequence))}
                for _ in Records
            ],
        }

    async def describe_stream_summary(self, *, StreamName: str) -> dict[str, Any]:
        return {"StreamDescriptionSummary": {"StreamName": StreamName, "StreamStatus": "ACTIVE"}}


async def in_memory_clients(app: web.Application) -> AsyncIterator[None]:
    app[KINESIS_CLIENT] = app[HEALTH_CLIENT] = InMemoryKinesis()
    # No Secrets Manager reads: the token and the webhook secret come from the environment.
    yield


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 to listen on")
    args = parser.parse_args()
    settings = Settings()
    if settings.devops_events_secret_token is None:
        parser.error("set DEVOPS_EVENTS_SECRET_TOKEN (no Secrets Manager behind the in-memory sink)")
    if settings.github_webhook_secret is None:
        parser.error("set GITHUB_WEBHOOK_SECRET (no Secrets Manager behind the in-memory sink)")
    setup_logging(settings.log_level)
    logging.getLogger("producer").info("in-memory gateway starting", extra={"port": args.port})
    app = create_app(settings)
    if getattr(app.cleanup_ctx[0], "__name__", "") != "_aws_clients":
        raise RuntimeError("producer.app no longer opens its AWS clients first; update this benchmark")
    app.cleanup_ctx[0] = in_memory_clients
    run(serve(settings, "127.0.0.1", args.port, shutdown_timeout=5.0, app=app))


if __name__ == "__main__":
    main()
