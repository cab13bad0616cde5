"""``POST /webhooks/github``: verify GitHub's signature, map the payload, write the events to Kinesis.

This route is not behind the bearer token (GitHub cannot send one); the HMAC signature is its
authentication, and without a configured webhook secret every delivery is refused (503).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from devops_core.events import DevOpsEvent, describe_validation_error
from producer.batcher import KinesisUnavailable, PutResult
from producer.errors import ApiError
from producer.github.dedupe import DeliveryCache
from producer.github.intake import UnverifiedBytes, read_signed_body
from producer.github.models import WebhookResponse
from producer.github.parsers import (
    Delivery,
    Ignored,
    MappingConfig,
    PayloadError,
    describe_ping,
    parse_delivery,
)
from producer.github.secret import SECRET_KEY, WebhookSecretStore
from producer.github.signature import LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, Verifier
from producer.limits import body_deadline, refuse_content_encoding
from producer.state import BATCHER, LOG_THROTTLE, SECRET_READS, SETTINGS

__all__ = [
    "DELIVERIES",
    "UNVERIFIED_BYTES",
    "WEBHOOK_PATH",
    "WEBHOOK_SECRETS",
    "github_webhook",
    "setup_github_webhooks",
]

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/github"
WEBHOOK_SECRETS = web.AppKey("github_webhook_secrets", WebhookSecretStore)
DELIVERIES = web.AppKey("github_deliveries", DeliveryCache)
MAPPING = web.AppKey("github_mapping", MappingConfig)
UNVERIFIED_BYTES = web.AppKey("github_unverified_bytes", UnverifiedBytes)

# Checked before the body is read, so every value logged afterwards is bounded and printable.
_DELIVERY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_EVENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # digits too: projects_v2_item
_RETRY_AFTER = {"Retry-After": "5"}


def _signature_header(request: web.Request) -> str:
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        if LEGACY_SIGNATURE_HEADER in request.headers:
            raise ApiError(
                401,
                f"only the SHA-1 {LEGACY_SIGNATURE_HEADER} was sent; a SHA-256 signature "
                f"({SIGNATURE_HEADER}) is required",
            )
        raise ApiError(401, f"missing {SIGNATURE_HEADER}; set a secret in the webhook's settings")
    return header


def _delivery(request: web.Request) -> Delivery:
    event = request.headers.get("X-GitHub-Event", "").strip()
    delivery_id = request.headers.get("X-GitHub-Delivery", "").strip()
    if not _EVENT_RE.match(event):
        raise ApiError(400, "missing or invalid X-GitHub-Event header", error="bad_request")
    if not _DELIVERY_RE.match(delivery_id):
        raise ApiError(400, "missing or invalid X-GitHub-Delivery header", error="bad_request")
    return Delivery(id=delivery_id, event=event, received_at=datetime.now(UTC))


def _decode(request: web.Request, body: bytes) -> Any:
    """JSON from either content type GitHub offers (application/json, or form-encoded ``payload=``)."""
    if request.content_type not in {"application/json", "application/x-www-form-urlencoded"}:
        raise ApiError(415, "Content-Type must be application/json (set it in the webhook's settings)")
    try:
        text = body.decode("utf-8")
        if request.content_type == "application/x-www-form-urlencoded":
            # GitHub sends one field, payload=; more is refused before parse_qs walks them all.
            fields = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=1)
            text = fields.get("payload", [""])[0]
        if not text.strip():
            raise ApiError(400, "the delivery carries no payload", error="malformed_json")
        return json.loads(text)
    except json.JSONDecodeError as exc:
        detail = f"payload is not valid JSON: {exc.msg} at position {exc.pos}"
        raise ApiError(400, detail, error="malformed_json") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ApiError(
            400, f"payload is not acceptable JSON: {type(exc).__name__}", error="malformed_json"
        ) from None


def _answer(response: WebhookResponse, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(response.model_dump(exclude_none=True), status=status, headers=headers)


async def _send(request: web.Request, events: list[DevOpsEvent]) -> list[PutResult | BaseException]:
    batcher = request.app[BATCHER]
    futures: list[asyncio.Future[PutResult]] = []
    try:
        for event in events:
            futures.append(batcher.submit(event.to_record_data(), event.repo))
    except KinesisUnavailable as exc:
        # Records already queued still go out; a redelivery carries the same event ids.
        results: list[PutResult | BaseException] = list(
            await asyncio.gather(*futures, return_exceptions=True)
        )
        return results + [exc] * (len(events) - len(futures))
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def github_webhook(request: web.Request) -> web.Response:
    app = request.app
    store = app[WEBHOOK_SECRETS]
    if not store.configured:
        detail = (
            f"GitHub webhooks are not configured: set GITHUB_WEBHOOK_SECRET or a '{SECRET_KEY}' key in "
            f"the Secrets Manager secret {app[SETTINGS].secret_store_name}"
        )
        if store.last_error:
            detail += f" ({store.last_error})"
        raise ApiError(503, detail, error="not_configured", headers=_RETRY_AFTER)
    # Everything that needs no body is checked before a byte of it is read (and held).
    refuse_content_encoding(request)
    header = _signature_header(request)
    delivery = _delivery(request)
    log = {"delivery": delivery.id, "github_event": delivery.event}
    settings = app[SETTINGS]
    with app[UNVERIFIED_BYTES].hold() as hold:
        async with body_deadline(settings.body_read_timeout_seconds):
            signed = await read_signed_body(
                request,
                limit=settings.github_webhook_max_body_bytes,
                verifier=Verifier(store.secrets),
                hold=hold,
            )
        if not signed.matches(header):
            if refused := app[LOG_THROTTLE].due("github webhook signature mismatch"):  # anyone can cause it
                extra = {**log, "remote": request.remote, "refused": refused}
                logger.warning("github webhook signature mismatch", extra=extra)
            raise ApiError(401, f"{SIGNATURE_HEADER} does not match the body signed with the webhook secret")
    body = signed.join()

    if delivery.event == "ping":
        reason = describe_ping(_decode(request, body))
        logger.info("github webhook ping", extra={**log, "note": reason})
        return _answer(WebhookResponse(status="pong", reason=reason, delivery=delivery.id), 200)
    if (seen := app[DELIVERIES].get(delivery.id)) is not None:
        logger.info("github redelivery answered from cache", extra=log)
        reason = "this delivery was already accepted"
        return _answer(
            WebhookResponse(status="duplicate", event_ids=list(seen), reason=reason, delivery=delivery.id),
            202,
        )

    payload = _decode(request, body)
    if not isinstance(payload, dict):
        raise ApiError(422, [{"field": "body", "reason": "must be a JSON object"}])
    try:
        outcome = parse_delivery(payload, delivery, app[MAPPING])
    except ValidationError as exc:
        raise ApiError(422, describe_validation_error(exc)) from None
    except PayloadError as exc:
        raise ApiError(422, exc.details) from None
    except UnicodeEncodeError:  # a \ud800-style escape without its pair: JSON allows it, Unicode not
        reason = "holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), which is not text"
        raise ApiError(422, [{"field": "body", "reason": reason}]) from None
    if isinstance(outcome, Ignored):
        logger.info("github delivery ignored", extra={**log, "reason": outcome.reason})
        return _answer(WebhookResponse(status="ignored", reason=outcome.reason, delivery=delivery.id), 202)

    results = await _send(request, outcome)
    failed = [r for r in results if not isinstance(r, PutResult)]
    event_ids = [event.event_id for event in outcome]
    if failed:
        logger.warning("github delivery not fully written", extra={**log, "failed": len(failed)})
        raise ApiError(
            503,
            f"Kinesis did not accept {len(failed)} of {len(outcome)} events ({failed[0]}); "
            "redeliver this delivery, its events keep their ids",
            headers=_RETRY_AFTER,
        )
    app[DELIVERIES].remember(delivery.id, tuple(event_ids))
    logger.info(
        "github delivery accepted",
        extra={**log, "repo": outcome[0].repo, "event": outcome[0].event.value, "events": len(outcome)},
    )
    return _answer(WebhookResponse(status="accepted", event_ids=event_ids, delivery=delivery.id), 202)


async def _secret_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.github_webhook_secret is not None:
        app[WEBHOOK_SECRETS] = WebhookSecretStore(
            static_secret=settings.github_webhook_secret.get_secret_value()
        )
        logger.info("github webhooks enabled", extra={"secret_source": "environment"})
        yield
        return
    store = WebhookSecretStore(
        secret_id=settings.secret_store_name,
        fetch_secret=app[SECRET_READS],  # shared with the token store: one call per version and refresh
        refresh_seconds=settings.token_refresh_seconds,
    )
    await store.start()
    app[WEBHOOK_SECRETS] = store
    logger.info(
        "github webhooks " + ("enabled" if store.configured else "disabled until a secret is set"),
        extra={
            "secret_source": "secretsmanager",
            "secret_id": settings.secret_store_name,
            "key": SECRET_KEY,
        },
    )
    yield
    await store.stop()


def setup_github_webhooks(app: web.Application) -> None:
    """Add the route, its secret store (a cleanup_ctx), its redelivery cache and its budget of
    unverified bytes to the gateway."""
    settings = app[SETTINGS]
    if settings.github_deploy_environment_pattern is not None:
        logger.warning(
            "GITHUB_DEPLOY_ENVIRONMENT_PATTERN is no longer used and has no effect: deployments of every "
            "environment are forwarded, and the metrics decide which environments are production "
            "(docs/github-webhooks.md)"
        )
    if settings.github_webhook_unverified_bytes < settings.github_webhook_max_body_bytes:
        raise ValueError(
            f"GITHUB_WEBHOOK_UNVERIFIED_BYTES ({settings.github_webhook_unverified_bytes}) must be at least "
            f"GITHUB_WEBHOOK_MAX_BODY_BYTES ({settings.github_webhook_max_body_bytes}), or the largest "
            "deliveries could never be received"
        )
    app[MAPPING] = MappingConfig.from_settings(settings)
    app[DELIVERIES] = DeliveryCache(settings.github_delivery_cache_size)
    app[UNVERIFIED_BYTES] = UnverifiedBytes(settings.github_webhook_unverified_bytes)
    app.cleanup_ctx.append(_secret_store)
    app.router.add_post(WEBHOOK_PATH, github_webhook)
