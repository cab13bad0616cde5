"""The gateway's app factory: ``create_app(settings)`` is used by main() and by the tests alike."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.session import AioSession, get_session
from aiohttp import web

from devops_core.aws import aio_client, client_config
from devops_core.settings import Settings
from producer import put_records_wire
from producer.auth import TokenStore
from producer.auth_middleware import auth_middleware
from producer.batcher import KinesisBatcher
from producer.dashboard import setup_dashboard
from producer.errors import error_middleware
from producer.github import setup_github_webhooks
from producer.handlers import MAX_BATCH_EVENTS, setup_routes
from producer.log_throttle import LogThrottle
from producer.metrics_api import setup_metrics
from producer.openapi import build_openapi
from producer.rate_limit import RateLimiter
from producer.rotating_secret import SharedSecretReads
from producer.state import (
    BATCHER,
    HEALTH_CLIENT,
    KINESIS_CLIENT,
    LOG_THROTTLE,
    OPENAPI,
    RATE_LIMITER,
    READINESS,
    SECRET_READS,
    SETTINGS,
    TOKENS,
)

__all__ = ["create_app", "kinesis_writer"]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def kinesis_writer(session: AioSession | None = None) -> AsyncIterator[Any]:
    """The gateway's Kinesis write client: connection-pooled, short timeouts, and PutRecords written
    and read without botocore's per-record shape walk (producer/put_records_wire.py). bench/gateway's
    PutRecords ceiling opens the same one.

    No client-side parameter validation on the write path: the batcher builds every PutRecords from
    records the event model already bounded, Kinesis validates them again, and botocore's check of
    each entry cost about a tenth of the gateway's CPU per event into the emulator."""
    config = client_config(
        max_attempts=3, connect_timeout=2, read_timeout=5, max_pool_connections=16, parameter_validation=False
    )
    async with aio_client("kinesis", config=config, session=session) as kinesis:
        put_records_wire.install(kinesis)
        yield kinesis


async def _aws_clients(app: web.Application) -> AsyncIterator[None]:
    """One connection-pooled Kinesis client for writes, one fail-fast client for readiness probes, and
    one Secrets Manager client whose reads the token store and the webhook secret store share."""
    session = get_session()
    probe_config = client_config(max_attempts=1, connect_timeout=1, read_timeout=2)
    secrets_config = client_config(max_attempts=2, connect_timeout=2, read_timeout=5)
    async with (
        kinesis_writer(session) as kinesis,
        aio_client("kinesis", config=probe_config, session=session) as probe,
        aio_client("secretsmanager", config=secrets_config, session=session) as secrets,
    ):
        # Both stores refresh on the same period; half of it (at most 5 s) joins their reads.
        ttl = min(5.0, app[SETTINGS].token_refresh_seconds / 2)
        app[SECRET_READS] = SharedSecretReads(secrets.get_secret_value, ttl_seconds=ttl)
        app[KINESIS_CLIENT] = kinesis
        app[HEALTH_CLIENT] = probe
        yield
        await app[SECRET_READS].close()


async def _token_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.devops_events_secret_token is not None:
        store = TokenStore(static_token=settings.devops_events_secret_token.get_secret_value())
        await store.start()
        app[TOKENS] = store
        yield
        return
    store = TokenStore(
        secret_id=settings.secret_store_name,
        fetch_secret=app[SECRET_READS],
        refresh_seconds=settings.token_refresh_seconds,
    )
    await store.start()
    app[TOKENS] = store
    logger.info("auth configured", extra={"token_source": store.source, "loaded": store.loaded})
    yield
    await store.stop()


async def _batcher(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    batcher = KinesisBatcher(
        app[KINESIS_CLIENT],
        settings.devops_stream_name,
        max_records=settings.batch_max_records,
        max_bytes=settings.batch_max_bytes,
        linger=settings.batch_linger_ms / 1000,
        max_pending=settings.batch_max_pending,
        max_in_flight=settings.batch_max_in_flight,
        retry_deadline=settings.batch_retry_deadline_seconds,
    )
    batcher.start()
    app[BATCHER] = batcher
    yield
    # Runs before the Kinesis client closes (cleanup_ctx unwinds in reverse): drain first.
    pending = batcher.pending
    await batcher.close()
    logger.info("batcher drained", extra={"drained": pending, "sent": batcher.stats.records_sent})


async def _stop_lingering(app: web.Application) -> None:
    # aiohttp runs on_shutdown before it waits for the requests in flight, which wait for the batcher.
    app[BATCHER].stop_lingering()


async def _readiness(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[READINESS].close()  # a check still in flight ends before the clients close


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
    )
    app[SETTINGS] = settings
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[LOG_THROTTLE] = LogThrottle()
    app[OPENAPI] = build_openapi(max_body_bytes=settings.max_body_bytes, max_batch=MAX_BATCH_EVENTS)
    app.cleanup_ctx.extend([_aws_clients, _token_store, _batcher, _readiness])
    app.on_shutdown.append(_stop_lingering)
    setup_routes(app)
    setup_github_webhooks(app)
    setup_metrics(app)
    setup_dashboard(app)
    return app
