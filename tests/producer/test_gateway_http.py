"""The gateway's HTTP contract: each status code a client can get, and what lands in the stream."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from devstack.inspect import read_stream_events
from producer.api_models import BatchResponse
from tests.producer.conftest import bearer, open_gateway
from tests.support import Stack


def documented_batch_body(raw: bytes) -> dict[str, object]:
    """A /events body, checked to be exactly what its documented model writes (the handler builds
    plain dicts for speed; this is where they are held to ``BatchResponse``)."""
    assert BatchResponse.model_validate_json(raw).model_dump_json(exclude_none=True).encode() == raw
    return dict(json.loads(raw))


async def test_accepted_event_is_in_the_stream_with_its_event_id(gateway: TestClient, stack: Stack) -> None:
    response = await gateway.post(
        "/process-event",
        json={"repo": "demo", "event": "deploy", "metadata": {"version": "v1"}},
        headers=bearer(stack.token),
    )
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "accepted"
    assert body["shard_id"].startswith("shardId-")
    [event] = read_stream_events(stack.settings.devops_stream_name)
    assert (event.event_id, event.repo, event.event, event.metadata) == (
        body["event_id"],
        "demo",
        "deploy",
        '{"version":"v1"}',
    )


async def test_seed_service_body_is_accepted(gateway: TestClient, stack: Stack) -> None:
    seed = {"Time": "2026-01-01 10:00:00", "Repo": "test_repo", "Event": "push", "Metadata": "{}"}
    response = await gateway.post("/process-event", json=seed, headers=bearer(stack.token))
    assert response.status == 202
    [event] = read_stream_events(stack.settings.devops_stream_name)
    assert event.time.isoformat() == "2026-01-01T10:00:00+00:00"
    assert event.repo == "test_repo"


async def test_partition_key_is_the_repo(gateway: TestClient, stack: Stack) -> None:
    from devstack.inspect import read_stream

    await gateway.post(
        "/process-event", json={"repo": "acme/web", "event": "push"}, headers=bearer(stack.token)
    )
    [record] = read_stream(stack.settings.devops_stream_name)
    assert record["PartitionKey"] == "acme/web"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-token"},
    ],
    ids=["missing", "wrong-scheme", "empty", "wrong-token"],
)
async def test_missing_or_wrong_token_is_401(gateway: TestClient, stack: Stack, headers: dict) -> None:
    response = await gateway.post("/process-event", json={"repo": "r", "event": "push"}, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "unauthorized"
    assert read_stream_events(stack.settings.devops_stream_name) == []


async def test_unknown_paths_do_not_answer_without_a_token(gateway: TestClient) -> None:
    assert (await gateway.get("/admin")).status == 401
    # OPTIONS was exempt from the token (no route takes it: there is no CORS), so its 405/404 told an
    # anonymous client which paths exist.
    for path in ("/metrics/x", "/admin", "/process-event"):
        assert (await gateway.request("OPTIONS", path)).status == 401, path


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_probes_and_spec_are_public(gateway: TestClient, path: str) -> None:
    assert (await gateway.get(path)).status == 200


async def test_malformed_json_is_400(gateway: TestClient, stack: Stack) -> None:
    response = await gateway.post(
        "/process-event",
        data=b'{"repo": "r",',
        headers={**bearer(stack.token), "Content-Type": "application/json"},
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "malformed_json"
    assert "position" in body["detail"]


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000 + b"]" * 100_000, b"1" * 10_000, b""],
    ids=["deep-nesting", "huge-integer", "empty"],
)
async def test_json_bombs_are_400(gateway: TestClient, stack: Stack, payload: bytes) -> None:
    response = await gateway.post(
        "/process-event", data=payload, headers={**bearer(stack.token), "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "malformed_json"


async def test_wrong_content_type_is_415(gateway: TestClient, stack: Stack) -> None:
    response = await gateway.post(
        "/process-event", data="repo=r", headers={**bearer(stack.token), "Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert "application/json" in (await response.json())["detail"]


async def test_validation_errors_are_422_with_field_and_reason(gateway: TestClient, stack: Stack) -> None:
    response = await gateway.post(
        "/process-event",
        json={"repo": "bad repo!", "event": "calc_deployment_freq", "time": "2999-01-01T00:00:00Z"},
        headers=bearer(stack.token),
    )
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "validation_error"
    fields = {item["field"]: item["reason"] for item in body["detail"]}
    assert set(fields) == {"repo", "event", "time"}
    assert "internal event" in fields["event"]
    assert "future" in fields["time"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/process-event?environment=staging", {"repo": "qp", "event": "deploy"}),
        ("/events?environment=staging&x=", [{"repo": "qp", "event": "deploy"}]),
    ],
)
async def test_a_query_parameter_on_an_event_route_is_a_422_and_nothing_is_sent(
    gateway: TestClient, stack: Stack, path: str, body: object
) -> None:
    """The event is the body; ?environment=staging used to be ignored, counting a staging deploy
    as production."""
    response = await gateway.post(path, json=body, headers=bearer(stack.token))
    assert response.status == 422
    detail = (await response.json())["detail"]
    assert detail[0]["field"] == "environment"
    assert "takes: no query parameters" in detail[0]["reason"]
    assert read_stream_events(stack.settings.devops_stream_name) == []


async def test_oversize_body_is_413_before_it_is_read(emulator: str, stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"max_body_bytes": 2048})
    async with open_gateway(settings) as client:
        big = json.dumps({"repo": "r", "event": "push", "metadata": "x" * 4096})
        response = await client.post(
            "/process-event", data=big, headers={**bearer(stack.token), "Content-Type": "application/json"}
        )
        assert response.status == 413
        assert (await response.json())["error"] == "payload_too_large"

        async def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(8):
                yield b" " * 1024

        chunked = await client.post(
            "/process-event",
            data=chunks(),
            headers={**bearer(stack.token), "Content-Type": "application/json"},
        )
        assert chunked.status == 413
        assert (await chunked.json())["error"] == "payload_too_large"


async def test_batch_endpoint_answers_per_event(gateway: TestClient, stack: Stack) -> None:
    events = [
        {"repo": "a", "event": "push"},
        {"repo": "b", "event": "nope"},
        {"Repo": "c", "Event": "deploy", "Metadata": "v2"},
    ]
    response = await gateway.post("/events", json=events, headers=bearer(stack.token))
    assert response.status == 207
    body = documented_batch_body(await response.read())
    assert (body["accepted"], body["rejected"]) == (2, 1)
    statuses = [item["status"] for item in body["results"]]
    assert statuses == [202, 422, 202]
    assert body["results"][1]["detail"][0]["field"] == "event"
    stored = {event.event_id for event in read_stream_events(stack.settings.devops_stream_name)}
    assert stored == {body["results"][0]["event_id"], body["results"][2]["event_id"]}


async def test_batch_of_500_is_accepted_and_501_refused(gateway: TestClient, stack: Stack) -> None:
    events = [{"repo": f"repo-{i % 7}", "event": "push", "event_id": f"evt-{i}"} for i in range(501)]
    too_many = await gateway.post("/events", json=events, headers=bearer(stack.token))
    assert too_many.status == 422
    assert "at most 500" in (await too_many.json())["detail"][0]["reason"]
    response = await gateway.post("/events", json=events[:500], headers=bearer(stack.token))
    assert response.status == 202
    assert (await response.json())["accepted"] == 500
    stored = read_stream_events(stack.settings.devops_stream_name)
    assert sorted(e.event_id for e in stored) == sorted(f"evt-{i}" for i in range(500))


@pytest.mark.parametrize("body", [{"repo": "a", "event": "push"}, []], ids=["object", "empty-array"])
async def test_batch_endpoint_wants_a_non_empty_array(
    gateway: TestClient, stack: Stack, body: object
) -> None:
    response = await gateway.post("/events", json=body, headers=bearer(stack.token))
    assert response.status == 422
    assert (await response.json())["detail"][0]["field"] == "body"


async def test_full_queue_sheds_load_with_503(emulator: str, stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"batch_max_pending": 2, "batch_linger_ms": 500.0})
    async with open_gateway(settings) as client:
        events = [{"repo": "r", "event": "push"} for _ in range(5)]
        response = await client.post("/events", json=events, headers=bearer(stack.token))
        body = documented_batch_body(await response.read())
        assert response.status == 207
        assert response.headers["Retry-After"] == "1"
        assert [item["status"] for item in body["results"]] == [202, 202, 503, 503, 503]
        assert len(read_stream_events(stack.settings.devops_stream_name)) == 2


async def test_a_repeat_of_a_refused_event_is_refused_with_it(emulator: str, stack: Stack) -> None:
    """The queue holds 2: the third event is refused (503), and its repeat later in the batch (same
    event_id and content) shares that answer rather than being written on its own."""
    settings = stack.settings.model_copy(update={"batch_max_pending": 2, "batch_linger_ms": 500.0})
    async with open_gateway(settings) as client:
        events = [{"repo": "r", "event": "push", "event_id": f"e{i}"} for i in range(3)]
        events.append(dict(events[2]))
        response = await client.post("/events", json=events, headers=bearer(stack.token))
        body = documented_batch_body(await response.read())
        assert response.status == 207
        results = body["results"]
        assert [item["status"] for item in results] == [202, 202, 503, 503]
        assert results[3]["error"] == results[2]["error"] == "unavailable"
        assert results[3]["detail"] == results[2]["detail"]
        stored = read_stream_events(stack.settings.devops_stream_name)
        assert sorted(event.event_id for event in stored) == ["e0", "e1"]


async def test_openapi_describes_the_event_model(gateway: TestClient) -> None:
    spec = await (await gateway.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert {"/process-event", "/events", "/healthz", "/readyz"} <= set(spec["paths"])
    event_schema = spec["components"]["schemas"]["EventIn"]
    assert event_schema["additionalProperties"] is False
    assert set(event_schema["required"]) == {"repo", "event"}
    before = event_schema["properties"]["before"]  # a push's previous head; the null sha is dropped
    assert {"type": "string", "pattern": "^[0-9a-fA-F]{7,64}$"} in before["anyOf"]
    assert "all-zero" in before["description"]
    responses = spec["paths"]["/process-event"]["post"]["responses"]
    assert {"202", "400", "401", "413", "415", "422", "503"} <= set(responses)


async def test_batch_items_sharing_an_event_id(gateway: TestClient, stack: Stack) -> None:
    """Two different events under one event_id cannot both be accepted: the second is a 409 naming the
    item that holds the first. A repeat of the same event is that event: accepted, written once."""
    deploy = {"repo": "a", "event": "deploy", "event_id": "dup-1", "sha": "abcdef1"}
    events = [
        deploy,
        {"repo": "a", "event": "deploy", "event_id": "dup-1", "sha": "1234567"},  # different content
        {"event_id": "dup-1", "sha": "ABCDEF1", "event": "deploy", "repo": "a"},  # the same event
        {"repo": "b", "event": "push", "event_id": "other"},
    ]
    response = await gateway.post("/events", json=events, headers=bearer(stack.token))
    assert response.status == 207
    body = documented_batch_body(await response.read())
    assert (body["accepted"], body["rejected"]) == (3, 1)
    results = body["results"]
    assert [item["status"] for item in results] == [202, 409, 202, 202]
    assert results[1]["error"] == "conflict"
    assert "item 0" in results[1]["detail"]
    assert [item.get("event_id") for item in results] == ["dup-1", "dup-1", "dup-1", "other"]
    stored = read_stream_events(stack.settings.devops_stream_name)
    assert sorted(event.event_id for event in stored) == ["dup-1", "other"]
    [first] = [event for event in stored if event.event_id == "dup-1"]
    assert first.sha == "abcdef1"
