"""The New Relic stand-in checks requests as the Log API documents them, and fails on demand."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid

import aiohttp
import pytest

from devstack.newrelic_standin import MAX_PAYLOAD_BYTES


@pytest.fixture
def key() -> str:
    return f"standin-{uuid.uuid4().hex[:10]}"


def _gz(payload: object) -> bytes:
    return gzip.compress(json.dumps(payload).encode())


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict[str, str]]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(f"{url}/log/v1", data=body, headers=headers) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


async def _logs(url: str, key: str) -> list[dict]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/__standin__/logs", params={"api_key": key}) as response,
    ):
        return (await response.json())["logs"]


def _headers(key: str, **extra: str) -> dict[str, str]:
    return {"Api-Key": key, "Content-Type": "application/json", "Content-Encoding": "gzip", **extra}


async def test_detailed_body_is_accepted_with_common_attributes_merged(newrelic_standin, key):
    body = [
        {
            "common": {"attributes": {"service": "devops-metrics", "logtype": "event"}},
            "logs": [
                {"timestamp": 1_700_000_000_000, "message": "deploy svc", "attributes": {"repo": "svc"}},
                {"message": "push svc"},
            ],
        }
    ]
    status, answer, _ = await _post(newrelic_standin, _gz(body), _headers(key))
    assert status == 202
    assert "requestId" in answer
    logs = await _logs(newrelic_standin, key)
    assert logs[0] == {
        "service": "devops-metrics",
        "logtype": "event",
        "repo": "svc",
        "timestamp": 1_700_000_000_000,
        "message": "deploy svc",
    }
    assert logs[1]["message"] == "push svc"


async def test_simplified_and_uncompressed_bodies_and_license_key_header(newrelic_standin, key):
    status, _, _ = await _post(
        newrelic_standin,
        json.dumps({"message": "one", "service": "x"}).encode(),
        {"X-License-Key": key, "Content-Type": "application/json"},
    )
    assert status == 202
    status, _, _ = await _post(
        newrelic_standin, json.dumps([{"message": "two"}]).encode(), {"Api-Key": key, "Content-Type": "json"}
    )
    assert status == 202
    assert [log["message"] for log in await _logs(newrelic_standin, key)] == ["one", "two"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (_gz([{"logs": []}]), {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 403),
        (_gz([{"logs": []}]), {"Api-Key": "k", "Content-Type": "text/plain"}, 415),
        (b"not gzip", {"Api-Key": "k", "Content-Type": "application/json", "Content-Encoding": "gzip"}, 400),
        (_gz({"logs": [{"message": "x"}]}), _headers("k"), 400),  # detailed shape must be an array
        (_gz([{"logs": "nope"}]), _headers("k"), 400),
        (_gz([{"logs": [{"timestamp": "yesterday"}]}]), _headers("k"), 400),
        (_gz([]), _headers("k"), 400),
        (b"[{", {"Api-Key": "k", "Content-Type": "application/json"}, 400),
    ],
)
async def test_violations_are_refused(newrelic_standin, body, headers, status):
    got, answer, _ = await _post(newrelic_standin, body, headers)
    assert got == status, answer


async def test_payload_over_one_megabyte_is_413(newrelic_standin, key):
    import os

    incompressible = os.urandom(MAX_PAYLOAD_BYTES).hex()[: MAX_PAYLOAD_BYTES + 10]
    body = json.dumps([{"logs": [{"message": incompressible}]}]).encode()
    status, _, _ = await _post(newrelic_standin, body, {"Api-Key": key, "Content-Type": "application/json"})
    assert status == 413


async def test_injected_429_with_retry_after_then_500_for_a_duration(newrelic_standin, key):
    async with aiohttp.ClientSession() as session:
        await session.post(
            f"{newrelic_standin}/__standin__/faults",
            json={"status": 429, "count": 2, "retry_after": 3, "api_key": key},
        )
    body = _gz([{"logs": [{"message": "m"}]}])
    first = await _post(newrelic_standin, body, _headers(key))
    second = await _post(newrelic_standin, body, _headers(key))
    third = await _post(newrelic_standin, body, _headers(key))
    assert [first[0], second[0], third[0]] == [429, 429, 202]
    assert first[2]["Retry-After"] == "3"
    other = await _post(newrelic_standin, body, _headers(key + "-other"))
    assert other[0] == 202  # scoped to the key

    async with aiohttp.ClientSession() as session:
        await session.post(
            f"{newrelic_standin}/__standin__/faults", json={"status": 500, "seconds": 0.5, "api_key": key}
        )
    assert (await _post(newrelic_standin, body, _headers(key)))[0] == 500
    assert (await _post(newrelic_standin, body, _headers(key)))[0] == 500
    await asyncio.sleep(0.6)
    assert (await _post(newrelic_standin, body, _headers(key)))[0] == 202
    assert len(await _logs(newrelic_standin, key)) == 2
