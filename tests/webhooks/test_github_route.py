"""POST /webhooks/github on the real gateway, writing to a real (moto) Kinesis stream over HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid
from collections.abc import AsyncIterator
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
from producer.github.routes import WEBHOOK_SECRETS
from producer.state import OPENAPI
from tests.support import unique_settings

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "It's a Secret to Everybody"
BEARER = "bearer-token-for-ci-scripts"
SHA_1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"


def raw(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


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


# -- events land in the stream ---------------------------------------------------------------------
async def test_signed_push_lands_one_event_per_commit_without_a_bearer_token(
    webhook: TestClient, settings: Settings
) -> None:
    status, body = await deliver(webhook, "push", raw("push.json"), delivery="dlv-push-1")

    assert status == 202
    assert body == {
        "status": "accepted",
        "event_ids": [f"dlv-push-1:{SHA_1}", f"dlv-push-1:{SHA_2}"],
        "delivery": "dlv-push-1",
    }
    events = sorted(await stream_events(settings), key=lambda e: e.time)
    assert [(e.event_id, e.event, e.sha, e.repo, e.source) for e in events] == [
        (f"dlv-push-1:{SHA_1}", EventType.PUSH, SHA_1, "octo-org/octo-service", "github"),
        (f"dlv-push-1:{SHA_2}", EventType.PUSH, SHA_2, "octo-org/octo-service", "github"),
    ]
    assert [e.time.isoformat() for e in events] == ["2026-11-27T08:05:06+00:00", "2026-11-27T08:15:00+00:00"]
    assert json.loads(events[0].metadata)["message"] == "Add order export endpoint"


async def test_push_and_deployment_status_pair_on_the_same_sha(
    webhook: TestClient, settings: Settings
) -> None:
    """What lead time needs: the push's commit sha and time, and the deploy of that sha."""
    assert (await deliver(webhook, "push", raw("push.json"), delivery="p-1"))[0] == 202
    status, body = await deliver(webhook, "deployment_status", raw("deployment_status.json"), delivery="d-1")
    assert (status, body["event_ids"]) == (202, ["d-1"])

    events = {e.event_id: e for e in await stream_events(settings)}
    deploy, commit = events["d-1"], events[f"p-1:{SHA_2}"]
    assert (deploy.event, deploy.sha, deploy.repo) == (EventType.DEPLOY, SHA_2, commit.repo)
    assert (deploy.time - commit.time).total_seconds() == 31 * 60 + 31  # 08:15:00 -> 08:46:31


async def test_failed_deployment_and_workflow_runs_land_with_their_types(
    webhook: TestClient, settings: Settings
) -> None:
    failed = json.loads(raw("deployment_status.json"))
    failed["deployment_status"]["state"] = "failure"
    deploy_run = json.loads(raw("workflow_run_completed.json"))
    deploy_run["workflow_run"].update(name="Deploy production", path=".github/workflows/deploy.yml")
    deliveries = [
        ("deployment_status", json.dumps(failed).encode(), "df-1"),
        ("workflow_run", raw("workflow_run_completed.json"), "wr-test"),
        ("workflow_run", json.dumps(deploy_run).encode(), "wr-deploy"),
    ]
    for event, body, delivery_id in deliveries:
        status, answer = await deliver(webhook, event, body, delivery=delivery_id)
        assert (status, answer["event_ids"]) == (202, [delivery_id])

    events = {e.event_id: e for e in await stream_events(settings)}
    assert {key: (e.event, e.sha) for key, e in events.items()} == {
        "df-1": (EventType.DEPLOY_FAILED, SHA_2),
        "wr-test": (EventType.TEST_PASS, SHA_2),
        "wr-deploy": (EventType.DEPLOY, SHA_2),
    }


async def test_form_encoded_deliveries_are_accepted(webhook: TestClient, settings: Settings) -> None:
    """GitHub's default content type is application/x-www-form-urlencoded (payload=<json>)."""
    body = urllib.parse.urlencode({"payload": raw("deployment_status.json").decode()}).encode()
    request_headers = headers("deployment_status", body, delivery="form-1")
    request_headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await webhook.post(WEBHOOK_PATH, data=body, headers=request_headers)
    assert response.status == 202
    assert [e.event_id for e in await stream_events(settings)] == ["form-1"]


# -- authentication --------------------------------------------------------------------------------
async def test_bad_signatures_are_refused_and_nothing_is_stored(
    webhook: TestClient, settings: Settings
) -> None:
    body = raw("push.json")
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
            status, body = await deliver(client, "push", raw("push.json"), secret=secret)
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
    client = await open_gateway(settings)
    try:
        assert (await deliver(client, "ping", raw("ping.json"), secret="s1"))[0] == 200
        assert (await deliver(client, "ping", raw("ping.json"), secret="s2"))[0] == 401

        # Rotate: the new value becomes AWSCURRENT, the old one AWSPREVIOUS; both are accepted.
        manager.put_secret_value(
            SecretId=secret_id, SecretString=json.dumps({"token": BEARER, "github_webhook_secret": "s2"})
        )
        await asyncio.sleep(0.6)  # the periodic refresh picks it up
        assert (await deliver(client, "ping", raw("ping.json"), secret="s2"))[0] == 200
        assert (await deliver(client, "ping", raw("ping.json"), secret="s1"))[0] == 200
        assert (await deliver(client, "ping", raw("ping.json"), secret="s3"))[0] == 401

        # Secrets Manager unreadable: keep serving with the secrets already loaded, and say why.
        manager.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
        store = client.app[WEBHOOK_SECRETS]
        await asyncio.sleep(0.6)
        assert store.last_error is not None
        assert "ResourceNotFoundException" in store.last_error
        assert (await deliver(client, "ping", raw("ping.json"), secret="s2"))[0] == 200
    finally:
        await client.close()


# -- ping, ignored, malformed ----------------------------------------------------------------------
async def test_ping_answers_200_and_stores_nothing(webhook: TestClient, settings: Settings) -> None:
    status, body = await deliver(webhook, "ping", raw("ping.json"), delivery="ping-1")
    assert status == 200
    assert body == {
        "status": "pong",
        "event_ids": [],
        "delivery": "ping-1",
        "reason": "webhook reached the gateway; mapped events: deployment_status, push, workflow_run",
    }
    assert await stream_events(settings) == []


async def test_unmapped_events_and_states_are_ignored(webhook: TestClient, settings: Settings) -> None:
    pending = json.loads(raw("deployment_status.json"))
    pending["deployment_status"]["state"] = "in_progress"
    issue = await deliver(webhook, "issues", raw("issues_opened.json"))
    in_progress = await deliver(webhook, "deployment_status", json.dumps(pending).encode())
    deleted = await deliver(webhook, "push", raw("push_branch_deleted.json"))

    for status, body in (issue, in_progress, deleted):
        assert status == 202
        assert body["status"] == "ignored"
        assert body["event_ids"] == []
    assert "'issues' is not mapped" in issue[1]["reason"]
    assert "'in_progress' is not mapped" in in_progress[1]["reason"]
    assert await stream_events(settings) == []


async def test_malformed_deliveries_say_why(webhook: TestClient, settings: Settings) -> None:
    no_sha = json.loads(raw("deployment_status.json"))
    del no_sha["deployment"]["sha"]
    not_json = await deliver(webhook, "push", b'{"ref": "refs/heads/main",')
    array = await deliver(webhook, "push", b"[1, 2]")
    missing = await deliver(webhook, "deployment_status", json.dumps(no_sha).encode())
    body = raw("push.json")
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


async def test_oversized_delivery_gets_413(settings: Settings) -> None:
    client = await open_gateway(
        settings.model_copy(
            update={"github_webhook_secret": SecretStr(SECRET), "github_webhook_max_body_bytes": 2048}
        )
    )
    try:
        status, body = await deliver(client, "push", raw("push.json"))
    finally:
        await client.close()
    assert status == 413
    assert "2048" in body["detail"]


# -- redeliveries ----------------------------------------------------------------------------------
async def test_redelivery_is_answered_from_the_cache_without_resending(
    webhook: TestClient, settings: Settings
) -> None:
    first = await deliver(webhook, "push", raw("push.json"), delivery="re-1")
    again = await deliver(webhook, "push", raw("push.json"), delivery="re-1")

    assert first[0] == again[0] == 202
    assert again[1]["status"] == "duplicate"
    assert again[1]["event_ids"] == first[1]["event_ids"]
    assert len(await stream_events(settings)) == 2


async def test_redelivery_past_the_cache_keeps_its_event_ids(settings: Settings) -> None:
    """With the cache off (or on another gateway task) a redelivery is resent with the same event ids,
    which the sinks' idempotency on event_id absorbs."""
    client = await open_gateway(
        settings.model_copy(
            update={"github_webhook_secret": SecretStr(SECRET), "github_delivery_cache_size": 0}
        )
    )
    try:
        first = await deliver(client, "push", raw("push.json"), delivery="re-2")
        again = await deliver(client, "push", raw("push.json"), delivery="re-2")
    finally:
        await client.close()
    assert first[1]["status"] == again[1]["status"] == "accepted"
    records = await stream_events(settings)
    assert len(records) == 4
    assert {e.event_id for e in records} == set(first[1]["event_ids"]) == set(again[1]["event_ids"])


async def test_kinesis_refusal_answers_503_and_the_delivery_can_be_retried(emulator: str) -> None:
    missing_stream = unique_settings(
        devops_events_secret_token=SecretStr(BEARER),
        github_webhook_secret=SecretStr(SECRET),
        batch_retry_deadline_seconds=0.5,
    )
    client = await open_gateway(missing_stream)  # its stream was never created
    try:
        first = await deliver(client, "deployment_status", raw("deployment_status.json"), delivery="k-1")
        again = await deliver(client, "deployment_status", raw("deployment_status.json"), delivery="k-1")
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
