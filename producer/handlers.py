"""HTTP handlers of the gateway. Each one validates, hands records to the batcher and answers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from devops_core.events import DevOpsEvent, describe_validation_error, parse_client_body
from producer.api_models import Accepted, BatchItemResult, BatchResponse, FieldError, Health
from producer.auth_middleware import charge
from producer.batcher import KinesisUnavailable, PutResult
from producer.errors import ApiError
from producer.limits import read_body
from producer.state import BATCHER, HEALTH_CLIENT, OPENAPI, READY_CACHE, SETTINGS, TOKENS

__all__ = ["MAX_BATCH_EVENTS", "setup_routes"]

logger = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 500
_RETRY_AFTER = {"Retry-After": "1"}
_READY_CACHE_SECONDS = 1.0


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or the precise 400/408/413/415 that tells the client what to fix."""
    if request.content_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, not {request.content_type or 'missing'}")
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body is {request.content_length} bytes; the limit is {limit}")
    raw = await read_body(request, settings.body_read_timeout_seconds)
    if not raw:
        raise ApiError(400, "request body is empty; send a JSON object", error="malformed_json")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"body is not valid JSON: {exc.msg} at position {exc.pos}", error="malformed_json"
        ) from None
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, f"body is not acceptable JSON: {type(exc).__name__}", error="malformed_json"
        ) from None


def _field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(field=f"{prefix}{item['field']}" if prefix else item["field"], reason=item["reason"])
        for item in describe_validation_error(error)
    ]


def _log_accepted(event: DevOpsEvent, result: PutResult) -> None:
    logger.info(
        "event accepted",
        extra={
            "event_id": event.event_id,
            "repo": event.repo,
            "event": event.event.value,
            "shard_id": result.shard_id,
            "sequence_number": result.sequence_number,
        },
    )


async def process_event(request: web.Request) -> web.Response:
    body = await read_json(request)
    now = datetime.now(UTC)
    try:
        event = parse_client_body(body, now=now).to_wire(source="api", received_at=now)
    except ValidationError as exc:
        raise ApiError(422, [e.model_dump() for e in _field_errors(exc)]) from None
    try:
        result = await request.app[BATCHER].put(event.to_record_data(), event.repo)
    except KinesisUnavailable as exc:
        raise ApiError(503, str(exc), headers=_RETRY_AFTER) from None
    _log_accepted(event, result)
    accepted = Accepted(
        event_id=event.event_id, shard_id=result.shard_id, sequence_number=result.sequence_number
    )
    return web.json_response(accepted.model_dump(), status=202)


async def process_events(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, list):
        raise ApiError(422, [{"field": "body", "reason": "must be a JSON array of events"}])
    if not body:
        raise ApiError(422, [{"field": "body", "reason": "must hold at least one event"}])
    if len(body) > MAX_BATCH_EVENTS:
        raise ApiError(422, [{"field": "body", "reason": f"at most {MAX_BATCH_EVENTS} events per request"}])
    charge(request, len(body) - 1)  # the auth middleware charged one already
    now = datetime.now(UTC)
    batcher = request.app[BATCHER]
    results: list[BatchItemResult] = []
    waiting: list[tuple[BatchItemResult, DevOpsEvent, asyncio.Future[PutResult]]] = []
    for index, item in enumerate(body):
        try:
            event = parse_client_body(item, now=now).to_wire(source="api", received_at=now)
        except ValidationError as exc:
            results.append(
                BatchItemResult(index=index, status=422, error="validation_error", detail=_field_errors(exc))
            )
            continue
        result = BatchItemResult(index=index, status=202, event_id=event.event_id)
        results.append(result)
        try:
            waiting.append((result, event, batcher.submit(event.to_record_data(), event.repo)))
        except KinesisUnavailable as exc:
            result.status, result.error, result.detail = 503, "unavailable", str(exc)
    outcomes = await asyncio.gather(*(future for _, _, future in waiting), return_exceptions=True)
    for (result, event, _), outcome in zip(waiting, outcomes, strict=True):
        if isinstance(outcome, PutResult):
            _log_accepted(event, outcome)
        else:
            result.status, result.error, result.detail = 503, "unavailable", str(outcome)
    accepted = sum(1 for r in results if r.status == 202)
    response = BatchResponse(accepted=accepted, rejected=len(results) - accepted, results=results)
    status = 202 if accepted == len(results) else 207
    headers = _RETRY_AFTER if any(r.status == 503 for r in results) else None
    return web.json_response(response.model_dump(exclude_none=True), status=status, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(Health(status="ok").model_dump())


async def readyz(request: web.Request) -> web.Response:
    """Ready when a token is loaded and Kinesis answers for our stream (cached for a second)."""
    app = request.app
    cache = app[READY_CACHE]
    if cache and time.monotonic() - cache["at"] < _READY_CACHE_SECONDS:
        return web.json_response(cache["body"], status=cache["status"])
    checks: dict[str, str] = {}
    tokens = app[TOKENS]
    checks["token"] = "ok" if tokens.loaded else (tokens.last_error or "no token loaded")
    try:
        await app[HEALTH_CLIENT].describe_stream_summary(StreamName=app[SETTINGS].devops_stream_name)
        checks["kinesis"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
        checks["kinesis"] = f"unreachable: {type(exc).__name__}"
    checks["queue"] = "ok" if app[BATCHER].pending < app[SETTINGS].batch_max_pending else "full"
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks).model_dump()
    cache.update(at=time.monotonic(), body=body, status=200 if ok else 503)
    return web.json_response(body, status=cache["status"])


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/process-event", process_event)
    app.router.add_post("/events", process_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
