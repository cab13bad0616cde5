"""POST /webhooks/github on the real gateway, writing to a real (moto) Kinesis stream over HTTP, fed
GitHub's own example payloads (@octokit/webhooks-examples)."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from devops_core.aws import boto_client
from devops_core.events import DevOpsEvent, EventType
from devops_core.settings import Settings
from devstack.inspect import read_stream_events
from producer.app import create_app
from producer.auth_middleware import SELF_AUTHENTICATED_PATHS
from producer.github import WEBHOOK_PATH, sign
from producer.github.routes import UNVERIFIED_BYTES, WEBHOOK_SECRETS
from producer.state import OPENAPI
from tests.support import unique_settings
from tests.webhooks.examples import all_examples, example

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "It's a Secret to Everybody"
BEARER = "bearer-token-for-ci-scripts"
SHA_1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
EXAMPLE_REPO = "Codertocat/Hello-World"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def push_body() -> bytes:
    """Hand-written: a push of two commits (octokit's examples have one at most)."""
    return (PAYLOADS / "push.json").read_bytes()


def deployment(state: str = "success", **deployment_fields: Any) -> dict[str, Any]:
    payload = example("deployment_status", lambda p: p["deployment_status"]["state"] == "success")
    payload["deployment_status"]["state"] = state
    payload["deployment"].update(deployment_fields)
    return payload


def headers(
    event: str, body: bytes, *, delivery: str | None = None, secret: str | None = SECRET
) -> dict[str, str]:
    values = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/0f1e2d3",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "109948940",
    }
    if secret is not None:
        values["X-Hub-Signature-256"] = sign(body, secret)
    return values


async def deliver(client: TestClient, event: str, body: bytes, **kwargs: Any) -> tuple[int, Any]:
    response = await client.post(WEBHOOK_PATH, data=body, headers=headers(event, body, **kwargs))
    return response.status, await response.json()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a state change that has no event to await (a refresh loop, bytes read by the server)."""
    async with asyncio.timeout(30):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def stream_events(settings: Settings) -> list[DevOpsEvent]:
    return await asyncio.to_thread(read_stream_events, settings.devops_stream_name)


async def open_gateway(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


def create_stream(settings: Settings) -> None:
    kinesis = boto_client("kinesis")
    kinesis.create_stream(StreamName=settings.devops_stream_name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=settings.devops_stream_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )


@pytest.fixture
def settings(emulator: str) -> Settings:
    """A fresh stream (only what this route needs, so tests stay fast); no Secrets Manager secret yet."""
    values = unique_settings(devops_events_secret_token=SecretStr(BEARER))
    create_stream(values)
    return values


@pytest.fixture
async def webhook(settings: Settings) -> AsyncIterator[TestClient]:
    """The gateway with GITHUB_WEBHOOK_SECRET set."""
    client = await open_gateway(settings.model_copy(update={"github_webhook_secret": SecretStr(SECRET)}))
    yield client
    await client.close()


# -- events land in the stream, with ids from the payload -------------------------------------------
async def test_signed_push_lands_one_event_with_every_commit_without_a_bearer_token(
    webhook: TestClient, settings: Settings
) -> None:
    status, body = await deliver(webhook, "push", push_body(), delivery="dlv-push-1")

    assert status == 202
    (event,) = await stream_events(settings)
    assert body == {"status": "accepted", "event_ids": [event.event_id], "delivery": "dlv-push-1"}
    assert event.event_id.startswith("github:push:")
    assert (event.event, event.sha, event.repo, event.source) == (
        EventType.PUSH,
        SHA_2,
        "octo-org/octo-service",
        "github",
    )
    assert [(c.sha, c.time.isoformat() if c.time else None) for c in event.commits or ()] == [
        (SHA_1, "2026-11-27T08:05:06+00:00"),
        (SHA_2, "2026-11-27T08:15:00+00:00"),
    ]


async def test_a_replay_under_a_new_delivery_id_is_the_same_event(settings: Settings) -> None:
    """Issue 10: a signed delivery replayed with a new X-GitHub-Delivery was counted again. The
    delivery cache is off here (as on another gateway task): correctness must not depend on it."""
    client = await open_gateway(
        settings.model_copy(
            update={"github_webhook_secret": SecretStr(SECRET), "github_delivery_cache_size": 0}
        )
    )
    try:
        answers = [
            await deliver(client, name, encode(payload), delivery=str(uuid.uuid4()))
            for name, payload in [
                ("push", example("push", lambda p: bool(p["commits"]))),
                ("deployment_status", deployment()),
            ]
            for _ in range(2)
        ]
    finally:
        await client.close()
    assert [status for status, _ in answers] == [202] * 4
    assert answers[0][1]["event_ids"] == answers[1][1]["event_ids"]
    assert answers[2][1]["event_ids"] == answers[3][1]["event_ids"] == ["github:deployment_status:209916254"]
    records = await stream_events(settings)
    assert len(records) == 4  # written again, and identical: every sink keeps one
    by_id: dict[str, set[str]] = {}
    for record in records:
        by_id.setdefault(record.event_id, set()).add(record.content_digest())
    assert {key: len(digests) for key, digests in by_id.items()} == {
        answers[0][1]["event_ids"][0]: 1,
        "github:deployment_status:209916254": 1,
    }


async def test_deployments_of_every_outcome_and_environment_land_as_deploys(
    webhook: TestClient, settings: Settings
) -> None:
    failed = deployment("error")
    failed["deployment_status"].update(id=8801, environment="staging")
    assert (await deliver(webhook, "deployment_status", encode(deployment())))[0] == 202
    assert (await deliver(webhook, "deployment_status", encode(failed)))[0] == 202

    events = {e.event_id: e for e in await stream_events(settings)}
    assert {key: (e.event, e.outcome, e.environment, e.deployment_id) for key, e in events.items()} == {
        "github:deployment_status:209916254": (EventType.DEPLOY, "success", "production", "145988746"),
        "github:deployment_status:8801": (EventType.DEPLOY, "failure", "staging", "145988746"),
    }


async def test_workflow_runs_and_incident_issues_land_with_their_types(settings: Settings) -> None:
    client = await open_gateway(
        settings.model_copy(
            update={"github_webhook_secret": SecretStr(SECRET), "github_incident_label": "bug"}
        )
    )
    test_run = example(
        "workflow_run", lambda p: p["workflow_run"].get("path") == ".github/workflows/test.yml"
    )
    deploy_run = json.loads(json.dumps(test_run))
    deploy_run["workflow_run"].update(name="Deploy production", conclusion="failure", run_attempt=2)
    opened = example("issues", lambda p: p["action"] == "opened" and bool(p["issue"]["body"]))
    opened["issue"]["body"] = "Root cause: f95f852bd8fca8fc"
    try:
        for event, payload in [
            ("workflow_run", test_run),
            ("workflow_run", deploy_run),
            ("issues", opened),
        ]:
            status, answer = await deliver(client, event, encode(payload))
            assert (status, answer["status"]) == (202, "accepted"), answer
    finally:
        await client.close()

    events = {
        e.event_id.rsplit(":", 1)[0] if "issues" in e.event_id else e.event_id: e
        for e in await stream_events(settings)
    }
    assert {key: (e.event, e.outcome, e.sha) for key, e in events.items()} == {
        "github:workflow_run:289782451:1": (
            EventType.TEST_PASS,
            None,
            "3484a3fb816e0859fd6e1cea078d76385ff50625",
        ),
        "github:workflow_run:289782451:2": (
            EventType.DEPLOY,
            "failure",
            "3484a3fb816e0859fd6e1cea078d76385ff50625",
        ),
        "github:issues:444500041:opened": (EventType.INCIDENT_OPENED, None, "f95f852bd8fca8fc"),
    }
    assert events["github:issues:444500041:opened"].incident_id == "github-issue-444500041"


async def test_every_github_example_is_accepted_or_politely_ignored(webhook: TestClient) -> None:
    """Every payload GitHub documents, through the real route: never a 4xx or 5xx (issue 10: event
    names with digits such as projects_v2_item were refused)."""
    answers: dict[str, list[str]] = {}
    for name, index, payload in all_examples():
        status, body = await deliver(webhook, name, encode(payload))
        assert status in {200, 202}, (name, index, body)
        answers.setdefault(body["status"], []).append(name)
    assert "projects_v2_item" in answers["ignored"]
    assert set(answers["accepted"]) == {"deployment_status", "push", "workflow_run"}
    assert set(answers["pong"]) == {"ping"}


async def test_a_repository_of_140_characters_is_accepted(webhook: TestClient, settings: Settings) -> None:
    payload = deployment()
    payload["repository"]["full_name"] = "o" * 39 + "/" + "n" * 100
    status, _ = await deliver(webhook, "deployment_status", encode(payload))
    assert status == 202
    assert [e.repo for e in await stream_events(settings)] == ["o" * 39 + "/" + "n" * 100]


async def test_form_encoded_deliveries_are_accepted(webhook: TestClient, settings: Settings) -> None:
    """GitHub's default content type is application/x-www-form-urlencoded (payload=<json>)."""
    body = urllib.parse.urlencode({"payload": encode(deployment()).decode()}).encode()
    request_headers = headers("deployment_status", body)
    request_headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await webhook.post(WEBHOOK_PATH, data=body, headers=request_headers)
    assert response.status == 202
    assert [e.event_id for e in await stream_events(settings)] == ["github:deployment_status:209916254"]


# -- authentication --------------------------------------------------------------------------------
async def test_bad_signatures_are_refused_and_nothing_is_stored(
    webhook: TestClient, settings: Settings
) -> None:
    body = push_body()
    mis_signed = await deliver(webhook, "push", body, secret="not the secret")
    unsigned = await deliver(webhook, "push", body, secret=None)
    tampered_headers = headers("push", body)
    tampered = await webhook.post(WEBHOOK_PATH, data=body.replace(b"main", b"prod"), headers=tampered_headers)
    sha1_headers = headers("push", body, secret=None)
    sha1_headers["X-Hub-Signature"] = "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6"
    sha1_only = await webhook.post(WEBHOOK_PATH, data=body, headers=sha1_headers)
    bearer_headers = headers("push", body, secret=None)
    bearer_headers["Authorization"] = f"Bearer {BEARER}"
    bearer_only = await webhook.post(WEBHOOK_PATH, data=body, headers=bearer_headers)

    assert mis_signed == (401, {"error": "unauthorized", "detail": mis_signed[1]["detail"]})
    assert "does not match" in mis_signed[1]["detail"]
    assert unsigned[0] == 401
    assert "missing X-Hub-Signature-256" in unsigned[1]["detail"]
    assert tampered.status == 401
    assert sha1_only.status == 401
    assert "SHA-256" in (await sha1_only.json())["detail"]
    assert bearer_only.status == 401  # our bearer token is no substitute for GitHub's signature
    assert await stream_events(settings) == []
    assert webhook.app[UNVERIFIED_BYTES].in_use == 0


async def test_an_unauthenticated_request_logs_only_validated_values(
    webhook: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: a bad-signature request logged its unvalidated delivery header (up to 8 KB a line)."""
    body = push_body()
    junk = "A" * 8000 + "\u2028{forged}"
    junk_headers = headers("push", body, secret="wrong")
    junk_headers["X-GitHub-Delivery"] = junk.encode("utf-8").decode("latin-1")
    with caplog.at_level(logging.DEBUG):
        refused = await webhook.post(WEBHOOK_PATH, data=body, headers=junk_headers)
        mis_signed = await deliver(webhook, "push", body, secret="wrong", delivery="dlv-bad-sig-1")

    assert refused.status == 400
    assert "X-GitHub-Delivery" in (await refused.json())["detail"]
    assert mis_signed[0] == 401
    logged = [json.dumps(vars(record), default=str) for record in caplog.records]
    assert not any("AAAAAAAA" in line for line in logged)
    mismatch = [r for r in caplog.records if r.getMessage() == "github webhook signature mismatch"]
    assert [vars(r)["delivery"] for r in mismatch] == ["dlv-bad-sig-1"]


async def test_the_exemption_from_bearer_auth_is_only_this_route(webhook: TestClient) -> None:
    assert frozenset({WEBHOOK_PATH}) == SELF_AUTHENTICATED_PATHS
    response = await webhook.post("/process-event", json={"repo": "r", "event": "push"})
    assert response.status == 401


async def test_without_a_webhook_secret_every_delivery_is_refused(settings: Settings) -> None:
    manager = boto_client("secretsmanager")
    manager.create_secret(Name=settings.secret_store_name, SecretString=json.dumps({"token": BEARER}))
    client = await open_gateway(settings)  # the secret holds only the bearer token
    try:
        for secret in (SECRET, None):
            status, body = await deliver(client, "push", push_body(), secret=secret)
            assert status == 503
            assert body["error"] == "not_configured"
            assert "GITHUB_WEBHOOK_SECRET" in body["detail"]
    finally:
        await client.close()
    assert await stream_events(settings) == []


async def test_secret_from_secrets_manager_with_rotation(settings: Settings) -> None:
    settings = settings.model_copy(update={"token_refresh_seconds": 0.2})
    manager = boto_client("secretsmanager")
    secret_id = settings.secret_store_name
    manager.create_secret(
        Name=secret_id, SecretString=json.dumps({"token": BEARER, "github_webhook_secret": "s1"})
    )
    ping = encode(example("ping"))
    client = await open_gateway(settings)
    store = client.app[WEBHOOK_SECRETS]
    try:
        assert (await deliver(client, "ping", ping, secret="s1"))[0] == 200
        assert (await deliver(client, "ping", ping, secret="s2"))[0] == 401

        # Rotate: the new value becomes AWSCURRENT, the old one AWSPREVIOUS; both are accepted.
        manager.put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"token": BEARER, "github_webhook_secret": "s2"})
        )
        await until(lambda: len(store.secrets) == 2)  # the periodic refresh picks it up
        assert (await deliver(client, "ping", ping, secret="s2"))[0] == 200
        assert (await deliver(client, "ping", ping, secret="s1"))[0] == 200
        assert (await deliver(client, "ping", ping, secret="s3"))[0] == 401

        # Secrets Manager unreadable: keep serving with the secrets already loaded, and say why.
        manager.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
        await until(lambda: store.last_error is not None)
        assert "ResourceNotFoundException" in store.last_error
        assert (await deliver(client, "ping", ping, secret="s2"))[0] == 200
    finally:
        await client.close()


# -- ping, ignored, malformed ----------------------------------------------------------------------
async def test_ping_answers_200_and_stores_nothing(webhook: TestClient, settings: Settings) -> None:
    status, body = await deliver(webhook, "ping", encode(example("ping")), delivery="ping-1")
    assert status == 200
    assert body == {
        "status": "pong",
        "event_ids": [],
        "delivery": "ping-1",
        "reason": "webhook reached the gateway; mapped events: deployment_status, issues, push, "
        "workflow_run (others are ignored)",
    }
    assert await stream_events(settings) == []


async def test_unmapped_events_and_states_are_ignored(webhook: TestClient, settings: Settings) -> None:
    issue = await deliver(webhook, "issues", encode(example("issues", lambda p: p["action"] == "opened")))
    in_progress = await deliver(webhook, "deployment_status", encode(deployment("in_progress")))
    deleted = await deliver(webhook, "push", encode(example("push", lambda p: p["deleted"])))
    project = await deliver(webhook, "projects_v2_item", encode(example("projects_v2_item")))

    for status, body in (issue, in_progress, deleted, project):
        assert status == 202
        assert body["status"] == "ignored"
        assert body["event_ids"] == []
    assert "not labelled 'incident'" in issue[1]["reason"]
    assert "'in_progress' is not mapped" in in_progress[1]["reason"]
    assert "'projects_v2_item' is not mapped" in project[1]["reason"]
    assert await stream_events(settings) == []


async def test_malformed_deliveries_say_why(webhook: TestClient, settings: Settings) -> None:
    no_sha = deployment()
    del no_sha["deployment"]["sha"]
    not_json = await deliver(webhook, "push", b'{"ref": "refs/heads/main",')
    array = await deliver(webhook, "push", b"[1, 2]")
    missing = await deliver(webhook, "deployment_status", encode(no_sha))
    body = push_body()
    no_delivery_headers = headers("push", body)
    del no_delivery_headers["X-GitHub-Delivery"]
    no_delivery = await webhook.post(WEBHOOK_PATH, data=body, headers=no_delivery_headers)
    plain_headers = headers("push", body)
    plain_headers["Content-Type"] = "text/plain"
    plain = await webhook.post(WEBHOOK_PATH, data=body, headers=plain_headers)

    assert not_json[0] == 400
    assert not_json[1]["error"] == "malformed_json"
    assert array == (
        422,
        {"error": "validation_error", "detail": [{"field": "body", "reason": "must be a JSON object"}]},
    )
    assert missing[0] == 422
    assert {"field": "deployment.sha", "reason": "Field required"} in missing[1]["detail"]
    assert no_delivery.status == 400
    assert "X-GitHub-Delivery" in (await no_delivery.json())["detail"]
    assert plain.status == 415
    assert await stream_events(settings) == []


@pytest.mark.parametrize(
    ("event", "mutate"),
    [
        ("push", lambda p: p["head_commit"].update(message="fix \ud800")),
        ("deployment_status", lambda p: p["deployment_status"].update(environment="e" * 101 + "\ud800")),
    ],
    ids=["commit-message", "long-environment"],
)
async def test_a_lone_surrogate_in_a_signed_payload_is_a_422_not_a_500(
    webhook: TestClient, settings: Settings, event: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    """JSON may escape half a UTF-16 pair (\\ud800); the mapping then failed to encode it: a 500."""
    payload = json.loads(push_body()) if event == "push" else deployment()
    mutate(payload)
    status, body = await deliver(webhook, event, json.dumps(payload).encode())
    assert status == 422, body
    assert "surrogate" in body["detail"][0]["reason"]
    assert await stream_events(settings) == []


async def test_form_deliveries_with_more_than_the_payload_field_are_refused_at_once(
    webhook: TestClient,
) -> None:
    """parse_qs walked every field on the event loop: 10 MiB of them held it 12.9 s."""
    body = b"payload=%7B%7D" + b"&ab" * 200_000
    request_headers = headers("ping", body)
    request_headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await webhook.post(WEBHOOK_PATH, data=body, headers=request_headers)
    assert response.status == 400
    assert (await response.json())["error"] == "malformed_json"


async def test_an_ignored_reason_quotes_at_most_300_characters_of_the_payload(webhook: TestClient) -> None:
    status, body = await deliver(webhook, "deployment_status", encode(deployment("x" * 100_000)))
    assert status == 202
    assert body["status"] == "ignored"
    assert len(body["reason"]) <= 301


async def test_signature_mismatches_are_logged_once_per_second_with_their_count(
    webhook: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone can send unsigned deliveries: one warning each was 10,417 lines in 10 s."""
    body = push_body()
    with caplog.at_level(logging.INFO):
        for n in range(20):
            assert (await deliver(webhook, "push", body, secret="wrong", delivery=f"dlv-{n}"))[0] == 401
    mismatch = [r for r in caplog.records if r.getMessage() == "github webhook signature mismatch"]
    assert 1 <= len(mismatch) < 20
    assert vars(mismatch[0])["refused"] == 1


@pytest.mark.parametrize(
    ("event", "payload", "field"),
    [
        (
            "deployment_status",
            {"deployment_status": {"created_at": "9999-12-31T23:59:59-01:00"}},
            "deployment_status.created_at",
        ),
        (
            "deployment_status",
            {"deployment_status": {"created_at": "1999-12-31T22:00:00Z"}},
            "deployment_status.created_at",
        ),
        ("push", {"repository": {"pushed_at": "9999-12-31T23:59:59-01:00"}}, "repository.pushed_at"),
        ("issues", {"issue": {"created_at": "0001-01-01T00:00:00+01:00"}}, "issue.created_at"),
    ],
)
async def test_times_out_of_range_are_422s_naming_the_field(
    settings: Settings, event: str, payload: dict[str, Any], field: str
) -> None:
    """Issue 12: webhook timestamps that overflow on conversion to UTC were 500s."""
    base = {
        "deployment_status": deployment(),
        "push": json.loads(push_body()),
        "issues": example("issues", lambda p: p["action"] == "opened"),
    }[event]
    for key, values in payload.items():
        base[key].update(values)
    client = await open_gateway(
        settings.model_copy(
            update={"github_webhook_secret": SecretStr(SECRET), "github_incident_label": "bug"}
        )
    )
    try:
        status, body = await deliver(client, event, encode(base))
    finally:
        await client.close()
    assert status == 422, body
    assert field in [detail["field"] for detail in body["detail"]]


async def test_oversized_delivery_gets_413(settings: Settings) -> None:
    client = await open_gateway(
        settings.model_copy(
            update={"github_webhook_secret": SecretStr(SECRET), "github_webhook_max_body_bytes": 2048}
        )
    )
    try:
        status, body = await deliver(client, "push", push_body())
    finally:
        await client.close()
    assert status == 413
    assert "2048" in body["detail"]


async def small_budget_gateway(settings: Settings) -> TestClient:
    """The webhook route with an 8 KiB body limit and unverified-bytes budget."""
    return await open_gateway(
        settings.model_copy(
            update={
                "github_webhook_secret": SecretStr(SECRET),
                "github_webhook_max_body_bytes": 8192,
                "github_webhook_unverified_bytes": 8192,
            }
        )
    )


async def test_deliveries_beyond_the_unverified_bytes_budget_get_503_once_they_do_not_fit(
    settings: Settings,
) -> None:
    """The budget is shared by bodies not verified yet and charged as bytes arrive: while one delivery
    holds it, the next is refused as soon as it does not fit (and the held bytes are returned whatever
    the outcome)."""
    client = await small_budget_gateway(settings)
    budget = client.app[UNVERIFIED_BYTES]
    body = push_body()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        request_headers = headers("push", body)
        head = "".join(f"{k}: {v}\r\n" for k, v in request_headers.items())
        writer.write(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:-1]
        )
        await writer.drain()
        await until(lambda: budget.in_use == len(body) - 1)
        refused = await client.post(WEBHOOK_PATH, data=body, headers=headers("push", body))
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "5"
        assert "too many unverified webhook deliveries" in (await refused.json())["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused once it outgrows the budget
            for start in range(0, len(body), 1024):
                yield body[start : start + 1024]

        chunked = await client.post(WEBHOOK_PATH, data=chunks(), headers=headers("push", body))
        assert chunked.status == 503
        assert chunked.request_info.headers.get("Transfer-Encoding") == "chunked"

        writer.write(body[-1:])  # the held delivery completes and is accepted
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert answer.startswith(b"HTTP/1.1 202")
    finally:
        writer.close()
        await client.close()
    assert (budget.in_use, budget.refused) == (0, 2)
    assert len(body) <= budget.peak <= 8192  # never more than the budget, whatever the chunking


async def test_idle_connections_announcing_large_bodies_hold_none_of_the_budget(settings: Settings) -> None:
    """Announcing 10+10+10+2 MiB in headers alone once reserved the whole budget for the body deadline:
    four idle anonymous connections made every genuine delivery a 503."""
    client = await small_budget_gateway(settings)
    body = push_body()
    idle = []
    try:
        for _ in range(4):
            _, writer = await asyncio.open_connection(client.host, client.port)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers("push", body).items())
            announced = f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 8192\r\n\r\n"
            writer.write(announced.encode())
            await writer.drain()
            idle.append(writer)
        await asyncio.sleep(0.3)
        assert client.app[UNVERIFIED_BYTES].in_use == 0
        status, answer = await deliver(client, "push", body)
        assert status == 202, answer
    finally:
        for writer in idle:
            writer.close()
        await client.close()


def test_the_budget_must_fit_the_largest_delivery() -> None:
    with pytest.raises(ValueError, match="GITHUB_WEBHOOK_UNVERIFIED_BYTES"):
        create_app(unique_settings(github_webhook_max_body_bytes=4096, github_webhook_unverified_bytes=2048))


def test_the_old_environment_filter_is_a_documented_no_op(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        create_app(unique_settings(github_deploy_environment_pattern="^production$"))
    assert any(
        "GITHUB_DEPLOY_ENVIRONMENT_PATTERN is no longer used" in r.getMessage() for r in caplog.records
    )


# -- redeliveries ----------------------------------------------------------------------------------
async def test_redelivery_is_answered_from_the_cache_without_resending(
    webhook: TestClient, settings: Settings
) -> None:
    first = await deliver(webhook, "push", push_body(), delivery="re-1")
    again = await deliver(webhook, "push", push_body(), delivery="re-1")

    assert first[0] == again[0] == 202
    assert again[1]["status"] == "duplicate"
    assert again[1]["event_ids"] == first[1]["event_ids"]
    assert len(await stream_events(settings)) == 1


async def test_kinesis_refusal_answers_503_and_the_delivery_can_be_retried(emulator: str) -> None:
    missing_stream = unique_settings(
        devops_events_secret_token=SecretStr(BEARER),
        github_webhook_secret=SecretStr(SECRET),
        batch_retry_deadline_seconds=0.5,
    )
    client = await open_gateway(missing_stream)  # its stream was never created
    try:
        first = await deliver(client, "deployment_status", encode(deployment()), delivery="k-1")
        again = await deliver(client, "deployment_status", encode(deployment()), delivery="k-1")
    finally:
        await client.close()
    assert first[0] == 503
    assert "redeliver" in first[1]["detail"]
    assert again[0] == 503  # not remembered as accepted, so not answered as a duplicate


def test_openapi_documents_the_route() -> None:
    document = create_app(unique_settings())[OPENAPI]
    operation = document["paths"][WEBHOOK_PATH]["post"]
    assert operation["security"] == [{"githubSignature": []}]
    assert {"200", "202", "400", "401", "422", "503"} <= set(operation["responses"])
    assert document["components"]["schemas"]["WebhookResponse"]["properties"]["status"]["enum"] == [
        "accepted",
        "ignored",
        "duplicate",
        "pong",
    ]
