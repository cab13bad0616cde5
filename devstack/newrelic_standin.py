"""A local stand-in for the New Relic Log API, shared by the tests, the benchmark and ``make run``.

It checks each request the way the Log API documents it (docs.newrelic.com, "Introduction to the
Log API"): POST; a license key in the ``Api-Key`` / ``X-License-Key`` / ``License-Key`` header or the
``Api-Key`` query parameter; Content-Type application/json (or json, application/gzip, gzip);
Content-Encoding gzip accepted; at most 1 MB (10^6 bytes) per POST as sent; UTF-8 JSON that is either
the detailed shape ``[{"common": {...}, "logs": [{...}]}]``, a single log object, or an array of log
objects. Valid requests get ``202 {"requestId": ...}``; violations get 400 (shape), 403 (no key),
413 (size) or 415 (content type).

Faults are steered over HTTP so tests in other processes can use it:
``POST /__standin__/faults {"status": 429, "count": 3, "retry_after": 1}`` (or ``"seconds": 2``),
optionally scoped to one ``api_key``. Received logs (common attributes merged in, as New Relic
stores them) are read back with ``GET /__standin__/logs[?api_key=...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import signal
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

__all__ = ["MAX_PAYLOAD_BYTES", "FaultRule", "StandinState", "create_standin_app", "main", "start_standin"]

MAX_PAYLOAD_BYTES = 1_000_000
LOG_PATH = "/log/v1"
_CONTENT_TYPES = {"application/json", "json", "application/gzip", "gzip"}
_KEY_HEADERS = ("Api-Key", "X-License-Key", "License-Key")
# Decompressed bodies are bounded too, so a gzip bomb cannot exhaust memory.
_MAX_INFLATED_BYTES = 64 * 1024 * 1024


class FaultRule(BaseModel):
    """Answer ``status`` to the next ``count`` requests and/or for ``seconds`` (from when it is set)."""

    status: int = Field(ge=400, le=599)
    count: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)
    retry_after: float | None = Field(default=None, ge=0, description="Retry-After header, seconds")
    api_key: str | None = Field(default=None, description="only requests with this key; None = all")


@dataclass
class _ActiveFault:
    rule: FaultRule
    remaining: int | None
    until: float | None

    def applies(self, api_key: str | None, now: float) -> bool:
        if self.rule.api_key is not None and self.rule.api_key != api_key:
            return False
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0


@dataclass
class StandinState:
    logs: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    faults: list[_ActiveFault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


STATE = web.AppKey("state", StandinState)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _api_key(request: web.Request) -> str | None:
    for header in _KEY_HEADERS:
        if value := request.headers.get(header, "").strip():
            return value
    return request.query.get("Api-Key") or request.query.get("License-Key") or None


def _normalize(payload: Any) -> list[dict[str, Any]]:
    """Flatten the three documented body shapes into stored logs; ValueError on anything else."""
    if isinstance(payload, dict):
        if "logs" in payload:
            raise ValueError("a detailed body must be a JSON array of {common, logs} objects")
        return [_log_entry(payload, {}, "body")]
    if not isinstance(payload, list) or not payload:
        raise ValueError("body must be a JSON object or a non-empty JSON array")
    stored: list[dict[str, Any]] = []
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise ValueError(f"body[{index}] must be an object")
        if "logs" not in item:  # an array of simplified log objects
            stored.append(_log_entry(item, {}, f"body[{index}]"))
            continue
        common = item.get("common", {})
        if not isinstance(common, dict):
            raise ValueError(f"body[{index}].common must be an object")
        common_attributes = common.get("attributes", {})
        if not isinstance(common_attributes, dict):
            raise ValueError(f"body[{index}].common.attributes must be an object")
        defaults = dict(common_attributes)
        if "timestamp" in common:
            defaults["timestamp"] = _timestamp(common["timestamp"], f"body[{index}].common.timestamp")
        logs = item["logs"]
        if not isinstance(logs, list):
            raise ValueError(f"body[{index}].logs must be an array")
        for position, entry in enumerate(logs):
            if not isinstance(entry, dict):
                raise ValueError(f"body[{index}].logs[{position}] must be an object")
            stored.append(_log_entry(entry, defaults, f"body[{index}].logs[{position}]"))
    return stored


def _timestamp(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be an integer (seconds or milliseconds since epoch)")
    return int(value)


def _log_entry(entry: dict[str, Any], defaults: dict[str, Any], where: str) -> dict[str, Any]:
    attributes = entry.get("attributes", {})
    if not isinstance(attributes, dict):
        raise ValueError(f"{where}.attributes must be an object")
    stored = {**defaults, **attributes, **{k: v for k, v in entry.items() if k != "attributes"}}
    if "timestamp" in stored:
        stored["timestamp"] = _timestamp(stored["timestamp"], f"{where}.timestamp")
    if len(stored) > 255:
        raise ValueError(f"{where} has {len(stored)} attributes; at most 255")
    for name in stored:
        if len(name) > 255:
            raise ValueError(f"{where}: attribute name longer than 255 characters")
    return stored


def _active_fault(state: StandinState, api_key: str | None) -> _ActiveFault | None:
    now = time.monotonic()
    state.faults = [f for f in state.faults if f.until is None or now < f.until]
    state.faults = [f for f in state.faults if f.remaining is None or f.remaining > 0]
    for fault in state.faults:
        if fault.applies(api_key, now):
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
    return None


async def ingest(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.counts["requests"] += 1
    api_key = _api_key(request)
    if not api_key:
        state.counts["rejected_403"] += 1
        return _error(403, "missing Api-Key (or X-License-Key) header or Api-Key query parameter")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in _CONTENT_TYPES:
        state.counts["rejected_415"] += 1
        return _error(415, f"Content-Type must be one of {sorted(_CONTENT_TYPES)}")
    if request.content_length is not None and request.content_length > MAX_PAYLOAD_BYTES:
        state.counts["rejected_413"] += 1
        return _error(413, f"payload is {request.content_length} bytes; at most {MAX_PAYLOAD_BYTES}")
    raw = await request.read()
    if len(raw) > MAX_PAYLOAD_BYTES:
        state.counts["rejected_413"] += 1
        return _error(413, f"payload is {len(raw)} bytes; at most {MAX_PAYLOAD_BYTES}")
    if fault := _active_fault(state, api_key):
        state.counts[f"injected_{fault.rule.status}"] += 1
        headers = (
            {"Retry-After": f"{fault.rule.retry_after:g}"} if fault.rule.retry_after is not None else None
        )
        return _error(fault.rule.status, "injected by the stand-in", headers)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    gzipped = encoding == "gzip" or content_type in {"application/gzip", "gzip"}
    if encoding not in {"", "gzip", "identity"}:
        state.counts["rejected_400"] += 1
        return _error(400, f"unsupported Content-Encoding {encoding!r}")
    try:
        body = _inflate(raw) if gzipped else raw
        logs = _normalize(json.loads(body.decode("utf-8")))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        state.counts["rejected_400"] += 1
        return _error(400, f"bad payload: {exc}")
    state.logs.extend((api_key, log) for log in logs)
    state.counts["accepted_requests"] += 1
    state.counts["accepted_logs"] += len(logs)
    return web.json_response({"requestId": str(uuid.uuid4())}, status=202)


def _inflate(raw: bytes) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    body = decompressor.decompress(raw, _MAX_INFLATED_BYTES)
    if decompressor.unconsumed_tail:
        raise ValueError("decompressed payload is too large")
    if not decompressor.eof:
        raise EOFError("truncated gzip stream")
    return body


async def get_logs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    api_key = request.query.get("api_key")
    logs = [log for key, log in state.logs if api_key is None or key == api_key]
    return web.json_response({"logs": logs, "count": len(logs)})


async def set_fault(request: web.Request) -> web.Response:
    rule = FaultRule.model_validate(await request.json())
    until = time.monotonic() + rule.seconds if rule.seconds else None
    remaining = rule.count if rule.count is not None else (None if until else 1)
    request.app[STATE].faults.append(_ActiveFault(rule, remaining, until))
    return web.json_response(rule.model_dump())


async def clear(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.faults.clear()
    if request.query.get("logs") == "1":
        state.logs.clear()
    return web.json_response({"cleared": True})


async def get_counts(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[STATE].counts))


def create_standin_app() -> web.Application:
    # The body limit is enforced by the handler (413), so aiohttp's own cap sits above it.
    app = web.Application(client_max_size=4 * MAX_PAYLOAD_BYTES)
    app[STATE] = StandinState()
    app.router.add_post(LOG_PATH, ingest)
    app.router.add_get("/__standin__/logs", get_logs)
    app.router.add_post("/__standin__/faults", set_fault)
    app.router.add_delete("/__standin__/faults", clear)
    app.router.add_get("/__standin__/counts", get_counts)
    return app


async def start_standin(host: str, port: int) -> web.AppRunner:
    """Serve the stand-in on ``host:port`` in the running loop; ``await runner.cleanup()`` stops it.

    aiohttp's automatic request decompression is off so the 1 MB limit applies to the bytes as
    sent and gzip is checked, as the real API does.
    """
    runner = web.AppRunner(create_standin_app(), access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def gzip_json(payload: Any) -> bytes:
    """Helper for clients and tests: compact UTF-8 JSON, gzipped."""
    return gzip.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), compresslevel=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.newrelic_standin",
        description="Local New Relic Log API stand-in: validates requests as the Log API documents them, "
        f"answers 202, stores logs (GET /__standin__/logs), injects 429/5xx on demand. Log URL: {LOG_PATH}",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    args = parser.parse_args(argv)

    async def serve() -> None:
        # Port 0 is bound by the OS here and read back: no window in which another process takes it.
        runner = await start_standin(args.host, args.port)
        url = f"http://{args.host}:{runner.addresses[0][1]}"
        # One JSON line on stdout tells a parent process where we are (bound and serving).
        print(json.dumps({"ready": True, "url": url, "log_url": url + LOG_PATH}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
