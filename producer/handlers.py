"""HTTP handlers of the gateway. Each one validates, hands records to the batcher and answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import to_json

from devops_core.events import EventIn, describe_validation_error, parse_client_body
from producer.api_models import FieldError, Health
from producer.auth_middleware import charge
from producer.batcher import KinesisUnavailable, PutResult
from producer.errors import ApiError
from producer.intake import (
    MAX_BATCH_EVENTS,
    MalformedJson,
    WireRecord,
    iso_time,
    parse_event,
    parse_events,
    read_json_value,
    wire_record,
)
from producer.limits import read_body, refuse_content_encoding
from producer.query import only_known_parameters
from producer.readiness import PUT_FAILURE_WINDOW_SECONDS, Readiness
from producer.state import BATCHER, CALLER, HEALTH_CLIENT, OPENAPI, READINESS, SETTINGS, TOKENS

__all__ = [
    "MAX_BATCH_EVENTS",
    "accept_events",
    "event_accepted",
    "readiness_check",
    "setup_routes",
    "submit_event",
]

_RETRY_AFTER = {"Retry-After": "1"}
_JSON = "application/json"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer serialized by pydantic-core (a third of json_response's cost)."""
    return web.Response(body=to_json(payload), status=status, content_type=_JSON, headers=headers)


async def read_json_body(request: web.Request) -> bytes:
    """The body's bytes, or the precise 400/408/413/415 that tells the client what to fix."""
    if request.content_type != _JSON:
        raise ApiError(415, f"Content-Type must be application/json, not {request.content_type or 'missing'}")
    refuse_content_encoding(request)
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body is {request.content_length} bytes; the limit is {limit}")
    raw = await read_body(request, settings.body_read_timeout_seconds)
    if not raw:
        raise ApiError(400, "request body is empty; send a JSON object", error="malformed_json")
    return raw


def _field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(field=f"{prefix}{item['field']}" if prefix else item["field"], reason=item["reason"])
        for item in describe_validation_error(error)
    ]


def submit_event(app: web.Application, raw: bytes) -> tuple[str, asyncio.Future[PutResult]]:
    """One event's body validated and its record queued: (event_id, the put's future). ApiError
    400/422/503. ``POST /process-event`` on aiohttp and on the raw route (producer/fast_http.py)."""
    now = datetime.now(UTC)
    try:
        event = parse_event(raw, now)
    except MalformedJson as exc:
        raise ApiError(400, str(exc), error="malformed_json") from None
    except ValidationError as exc:
        raise ApiError(422, [e.model_dump() for e in _field_errors(exc)]) from None
    record = wire_record(event, received_at=iso_time(now))
    try:
        future = app[BATCHER].submit(record.data, record.repo, event_id=record.event_id)
    except KinesisUnavailable as exc:
        raise ApiError(503, str(exc), headers=_RETRY_AFTER) from None
    return record.event_id, future


def event_accepted(event_id: str, put: asyncio.Future[PutResult]) -> bytes:
    """The 202 body of a finished put, or ApiError 503 when Kinesis did not take the record."""
    try:
        result = put.result()
    except KinesisUnavailable as exc:
        raise ApiError(503, str(exc), headers=_RETRY_AFTER) from None
    accepted = {
        "status": "accepted",
        "event_id": event_id,
        "shard_id": result.shard_id,
        "sequence_number": result.sequence_number,
    }
    return to_json(accepted)


async def process_event(request: web.Request) -> web.Response:
    only_known_parameters(request, "/process-event")
    raw = await read_json_body(request)
    event_id, put = submit_event(request.app, raw)
    await asyncio.wait((put,))  # its outcome, success or not, is read by event_accepted
    return web.Response(body=event_accepted(event_id, put), status=202, content_type=_JSON)


def _batch_events(raw: bytes, now: datetime) -> list[EventIn | ValidationError]:
    """Each item of a /events body as an event or its validation error (422 for the body itself)."""
    events = parse_events(raw, now)
    if events is not None:
        return list(events)
    try:
        body = read_json_value(raw)
    except MalformedJson as exc:
        raise ApiError(400, str(exc), error="malformed_json") from None
    if not isinstance(body, list):
        raise ApiError(422, [{"field": "body", "reason": "must be a JSON array of events"}])
    if not body:
        raise ApiError(422, [{"field": "body", "reason": "must hold at least one event"}])
    if len(body) > MAX_BATCH_EVENTS:
        raise ApiError(422, [{"field": "body", "reason": f"at most {MAX_BATCH_EVENTS} events per request"}])
    items: list[EventIn | ValidationError] = []
    for item in body:
        try:
            items.append(parse_client_body(item, now=now))
        except ValidationError as exc:
            items.append(exc)
    return items


async def _settled(futures: list[asyncio.Future[PutResult]]) -> list[PutResult | BaseException]:
    """What ``asyncio.gather(*futures, return_exceptions=True)`` returns, for a quarter of its cost
    (0.7 against 2.7 µs per future: no gathering future, no callback per child). As with gather,
    a request cancelled while it waits cancels every put still waiting, so none of them is sent."""
    outcomes: list[PutResult | BaseException] = []
    for future in futures:
        try:
            outcomes.append(await future)
        except asyncio.CancelledError as cancelled:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                for other in futures:
                    other.cancel()
                raise
            outcomes.append(cancelled)
        except Exception as error:
            outcomes.append(error)
    return outcomes


async def accept_events(
    app: web.Application, caller: str, raw: bytes
) -> tuple[int, bytes, dict[str, str] | None]:
    """``POST /events`` once authenticated (one event charged): (status, body, headers), ApiError for
    the request as a whole. The aiohttp route and the raw route (producer/fast_http.py) share it.

    Results are plain dicts in ``BatchItemResult``'s field order, serialized without None fields:
    the body ``BatchResponse.model_dump_json(exclude_none=True)`` would write (tests compare them),
    without a model built and validated per event (2.7 µs each, docs/performance.md step four)."""
    now = datetime.now(UTC)
    items = _batch_events(raw, now)
    charge(app, caller, len(items) - 1, "/events", charged=1)  # authentication charged one
    received_at = iso_time(now)
    batcher = app[BATCHER]
    results: list[dict[str, Any]] = []
    # The first item of each event_id: its record, and its result (repeats follow its outcome).
    first: dict[str, tuple[int, WireRecord]] = {}
    groups: list[list[dict[str, Any]]] = []
    futures: list[asyncio.Future[PutResult]] = []
    shared: dict[int, list[dict[str, Any]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, ValidationError):
            detail = [error.model_dump() for error in _field_errors(item)]
            results.append({"index": index, "status": 422, "error": "validation_error", "detail": detail})
            continue
        record = wire_record(item, received_at=received_at)
        result: dict[str, Any] = {"index": index, "status": 202, "event_id": record.event_id}
        results.append(result)
        if record.event_id in first:
            first_index, first_record = first[record.event_id]
            if first_record.data == record.data:  # the same event sent twice: one record
                shared[first_index].append(result)
            else:
                result["status"], result["error"] = 409, "conflict"
                result["detail"] = (
                    f"event_id {record.event_id} is already used by item {first_index} of this batch, "
                    "with different content; an event_id names one event"
                )
            continue
        first[record.event_id] = (index, record)
        shared[index] = [result]
        try:
            future = batcher.submit(record.data, record.repo, event_id=record.event_id)
        except KinesisUnavailable as exc:
            result["status"], result["error"], result["detail"] = 503, "unavailable", str(exc)
            continue
        groups.append(shared[index])
        futures.append(future)
    for group, outcome in zip(groups, await _settled(futures), strict=True):
        if not isinstance(outcome, PutResult):
            for result in group:
                result["status"], result["error"], result["detail"] = 503, "unavailable", str(outcome)
    for group in shared.values():  # repeats of an item refused before it was queued
        head = group[0]
        if head["status"] != 202:
            for result in group[1:]:
                result.update(status=head["status"], error=head["error"], detail=head["detail"])
    accepted = sum(1 for r in results if r["status"] == 202)
    status = 202 if accepted == len(results) else 207
    headers = _RETRY_AFTER if any(r["status"] == 503 for r in results) else None
    body = {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
    return status, to_json(body), headers


async def process_events(request: web.Request) -> web.Response:
    only_known_parameters(request, "/events")
    raw = await read_json_body(request)
    status, body, headers = await accept_events(request.app, request[CALLER], raw)
    return web.Response(body=body, status=status, content_type=_JSON, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    return _json(Health(status="ok").model_dump(exclude_none=True))


async def readiness_check(app: web.Application) -> tuple[int, dict[str, Any]]:
    """Ready when a token is loaded, Kinesis answers for our stream, the queue has room and the
    latest records were not refused."""
    checks: dict[str, str] = {}
    tokens = app[TOKENS]
    checks["token"] = "ok" if tokens.loaded else (tokens.last_error or "no token loaded")
    try:
        await app[HEALTH_CLIENT].describe_stream_summary(StreamName=app[SETTINGS].devops_stream_name)
        checks["kinesis"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
        checks["kinesis"] = f"unreachable: {type(exc).__name__}"
    batcher = app[BATCHER]
    checks["queue"] = "ok" if batcher.pending < app[SETTINGS].batch_max_pending else "full"
    failing = batcher.stats.failing_since(asyncio.get_running_loop().time(), PUT_FAILURE_WINDOW_SECONDS)
    checks["puts"] = "ok" if failing is None else f"failing: {failing}; no record accepted since"
    ok = all(value == "ok" for value in checks.values())
    return (200 if ok else 503), Health(status="ok" if ok else "unavailable", checks=checks).model_dump(
        exclude_none=True
    )


async def readyz(request: web.Request) -> web.Response:
    status, body = await request.app[READINESS]()
    return _json({**body, "queued": request.app[BATCHER].pending}, status)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def setup_routes(app: web.Application) -> None:
    app[READINESS] = Readiness(lambda: readiness_check(app))
    app.router.add_post("/process-event", process_event)
    app.router.add_post("/events", process_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
