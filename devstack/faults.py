"""A fault-injecting HTTP proxy in front of the emulator, for tests and the chaos benchmark.

moto never throttles or rejects, so real failure paths are provoked here, over real HTTP, with
the error shapes AWS documents: a PutRecords whose entries partly fail
(ProvisionedThroughputExceededException per entry, FailedRecordCount), whole calls throttled or
answered 5xx, and WriteRecords answered with RejectedRecordsException after the other records were
written, Firehose PutRecordBatch entries failed inside a 200 (FailedPutCount). Point a client at it
with AWS_ENDPOINT_URL_<SERVICE>; steer it with
``POST /__faults__`` (a JSON ``FaultPlan``) and read what it did with ``GET /__faults__``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, Field

__all__ = ["FaultPlan", "create_proxy_app", "main"]

_PLAN = web.AppKey("plan", dict)
_UPSTREAM = web.AppKey("upstream", str)
_SESSION = web.AppKey("session", aiohttp.ClientSession)
_COUNTS = web.AppKey("counts", Counter)
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class FaultPlan(BaseModel):
    """What to break. Ratios are probabilities per entry or per call."""

    put_records_entry_failure_ratio: float = Field(0.0, ge=0, le=1)
    kinesis_throttle_ratio: float = Field(0.0, ge=0, le=1, description="whole Kinesis calls throttled")
    kinesis_unavailable: bool = Field(False, description="every Kinesis call answered 503")
    kinesis_latency_ms: float = Field(0.0, ge=0, description="every Kinesis call answered this much later")
    timestream_reject_ratio: float = Field(0.0, ge=0, le=1)
    timestream_reject_reason: str = (
        "The record timestamp is outside the time range of the data ingestion window."
    )
    timestream_throttle_ratio: float = Field(0.0, ge=0, le=1)
    timestream_unavailable: bool = False
    # Firehose PutRecordBatch: records answered ServiceUnavailableException inside a 200 (FailedPutCount).
    firehose_entry_failure_ratio: float = Field(0.0, ge=0, le=1)
    # Any service by its X-Amz-Target prefix (e.g. "DynamoDB", "Timestream", "Kinesis", "AmazonSQS"):
    unavailable_services: list[str] = Field(default_factory=list, description="answered 503")
    access_denied_services: list[str] = Field(
        default_factory=list, description="answered 400 AccessDeniedException (a missing IAM grant)"
    )
    black_hole_services: list[str] = Field(
        default_factory=list,
        description="never answered: the request is read and held until the client gives up (a network "
        "black hole, e.g. a security group dropping packets)",
    )
    seed: int | None = None


def _json_response(status: int, body: dict[str, Any], *, amz_json: str = "1.1") -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": f"application/x-amz-json-{amz_json}", "x-amzn-RequestId": "fault-proxy"},
    )


async def _forward(request: web.Request, body: bytes) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    async with request.app[_SESSION].request(
        request.method, request.app[_UPSTREAM] + request.path_qs, headers=headers, data=body
    ) as upstream:
        payload = await upstream.read()
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        return upstream.status, out_headers, payload


async def _put_records(
    request: web.Request, body: bytes, plan: FaultPlan, rng: random.Random
) -> web.Response:
    counts = request.app[_COUNTS]
    payload = json.loads(body)
    entries = payload["Records"]
    failing = [rng.random() < plan.put_records_entry_failure_ratio for _ in entries]
    if not any(failing):
        status, headers, data = await _forward(request, body)
        return web.Response(status=status, headers=headers, body=data)
    kept = [entry for entry, fail in zip(entries, failing, strict=True) if not fail]
    results: list[dict[str, Any]] = []
    if kept:
        status, headers, data = await _forward(request, json.dumps({**payload, "Records": kept}).encode())
        if status != 200:
            return web.Response(status=status, headers=headers, body=data)
        results = json.loads(data)["Records"]
    merged, upstream_results = [], iter(results)
    for fail in failing:
        if fail:
            counts["put_records_entries_failed"] += 1
            merged.append(
                {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard shardId-000000000000 (injected).",
                }
            )
        else:
            merged.append(next(upstream_results))
    failed = sum(1 for item in merged if "ErrorCode" in item)
    return _json_response(200, {"FailedRecordCount": failed, "Records": merged})


async def _write_records(
    request: web.Request, body: bytes, plan: FaultPlan, rng: random.Random
) -> web.Response:
    counts = request.app[_COUNTS]
    payload = json.loads(body)
    records = payload.get("Records", [])
    rejected = [i for i in range(len(records)) if rng.random() < plan.timestream_reject_ratio]
    if not rejected:
        status, headers, data = await _forward(request, body)
        return web.Response(status=status, headers=headers, body=data)
    kept = [record for i, record in enumerate(records) if i not in set(rejected)]
    if kept:  # Timestream writes the valid records of a batch that has rejected ones.
        status, headers, data = await _forward(request, json.dumps({**payload, "Records": kept}).encode())
        if status != 200:
            return web.Response(status=status, headers=headers, body=data)
    counts["timestream_records_rejected"] += len(rejected)
    return _json_response(
        419,
        {
            "__type": "com.amazonaws.timestream.v20181101#RejectedRecordsException",
            "message": "One or more records have been rejected. See RejectedRecords for details.",
            "RejectedRecords": [
                {"RecordIndex": i, "Reason": plan.timestream_reject_reason} for i in rejected
            ],
        },
        amz_json="1.0",
    )


async def _put_record_batch(
    request: web.Request, body: bytes, plan: FaultPlan, rng: random.Random
) -> web.Response:
    """Firehose writes the other records of a batch and reports the failed ones per entry."""
    counts = request.app[_COUNTS]
    payload = json.loads(body)
    entries = payload["Records"]
    failing = [rng.random() < plan.firehose_entry_failure_ratio for _ in entries]
    kept = [entry for entry, fail in zip(entries, failing, strict=True) if not fail]
    results: list[dict[str, Any]] = []
    if kept:
        status, headers, data = await _forward(request, json.dumps({**payload, "Records": kept}).encode())
        if status != 200:
            return web.Response(status=status, headers=headers, body=data)
        results = json.loads(data)["RequestResponses"]
    merged, upstream_results = [], iter(results)
    for fail in failing:
        if fail:
            counts["firehose_entries_failed"] += 1
            merged.append(
                {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down (injected)."}
            )
        else:
            merged.append(next(upstream_results))
    failed = sum(1 for item in merged if "ErrorCode" in item)
    return _json_response(200, {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": merged})


async def proxy(request: web.Request) -> web.StreamResponse:
    plan = FaultPlan.model_validate(request.app[_PLAN])
    rng: random.Random = request.app[_PLAN]["_rng"]
    counts = request.app[_COUNTS]
    body = await request.read()
    target = request.headers.get("X-Amz-Target", "")
    service, _, action = target.partition(".")
    counts[f"calls:{action or request.path}"] += 1
    if any(service.startswith(prefix) for prefix in plan.black_hole_services):
        counts["black_holed"] += 1
        await asyncio.Event().wait()  # until the client gives up: handler_cancellation ends this
    if any(service.startswith(prefix) for prefix in plan.access_denied_services):
        counts["access_denied"] += 1
        return _json_response(
            400,
            {"__type": "AccessDeniedException", "message": f"not authorized to perform {action} (injected)"},
            amz_json="1.0",
        )
    if any(service.startswith(prefix) for prefix in plan.unavailable_services):
        counts["unavailable"] += 1
        return _json_response(
            503, {"__type": "ServiceUnavailable", "message": "injected outage"}, amz_json="1.0"
        )
    if service.startswith("Kinesis"):
        if plan.kinesis_latency_ms:
            await asyncio.sleep(plan.kinesis_latency_ms / 1000)
        if plan.kinesis_unavailable:
            counts["kinesis_unavailable"] += 1
            return _json_response(503, {"__type": "ServiceUnavailable", "message": "injected outage"})
        if rng.random() < plan.kinesis_throttle_ratio:
            counts["kinesis_throttled"] += 1
            return _json_response(
                400,
                {"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded (injected)."},
            )
        if action == "PutRecords" and plan.put_records_entry_failure_ratio:
            return await _put_records(request, body, plan, rng)
    if service.startswith("Timestream") and action == "WriteRecords":
        if plan.timestream_unavailable:
            counts["timestream_unavailable"] += 1
            return _json_response(
                503, {"__type": "InternalServerException", "message": "injected outage"}, amz_json="1.0"
            )
        if rng.random() < plan.timestream_throttle_ratio:
            counts["timestream_throttled"] += 1
            return _json_response(
                400, {"__type": "ThrottlingException", "message": "Rate exceeded (injected)."}, amz_json="1.0"
            )
        if plan.timestream_reject_ratio:
            return await _write_records(request, body, plan, rng)
    if service.startswith("Firehose") and action == "PutRecordBatch" and plan.firehose_entry_failure_ratio:
        return await _put_record_batch(request, body, plan, rng)
    status, headers, data = await _forward(request, body)
    return web.Response(status=status, headers=headers, body=data)


async def set_plan(request: web.Request) -> web.Response:
    plan = FaultPlan.model_validate(await request.json())
    request.app[_PLAN].clear()
    request.app[_PLAN].update(plan.model_dump())
    request.app[_PLAN]["_rng"] = random.Random(plan.seed)
    return web.json_response(plan.model_dump())


async def get_counts(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[_COUNTS]))


async def _session_ctx(app: web.Application) -> Any:
    app[_SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=60)
    )
    yield
    await app[_SESSION].close()


def create_proxy_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_UPSTREAM] = upstream.rstrip("/")
    app[_PLAN] = {**FaultPlan().model_dump(), "_rng": random.Random()}
    app[_COUNTS] = Counter()
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/__faults__", set_plan)
    app.router.add_get("/__faults__", get_counts)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.faults", description="Fault-injecting proxy in front of an AWS emulator."
    )
    parser.add_argument("--upstream", required=True, help="emulator URL, e.g. http://127.0.0.1:4566")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 (default) picks a free one")
    args = parser.parse_args(argv)

    async def serve() -> None:
        # handler_cancellation: a handler whose client went away (a black-holed call) is cancelled.
        runner = web.AppRunner(create_proxy_app(args.upstream), access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        # "ready" only once the socket listens (on_startup runs before it does: callers were refused).
        # Port 0 is bound by the OS and read back: no window in which another process takes it.
        port = runner.addresses[0][1]
        print(json.dumps({"ready": True, "url": f"http://{args.host}:{port}"}), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
