"""Lead time from real GitHub deliveries: push and deployment_status webhooks -> gateway -> Kinesis ->
aggregator (in-process KCL driver) -> state and calc_lead_time, and GET /metrics shows the same."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from aggregator.local import LocalAggregator
from devops_core.events import EventType
from devops_core.metrics_read import Scope, ScopeMetrics, build_read_model
from devstack.inspect import read_stream_events
from producer.app import create_app
from producer.github import WEBHOOK_PATH, sign
from tests.support import Stack

PAYLOADS = Path(__file__).parent.parent / "webhooks" / "payloads"
SECRET = "lead-time-webhook-secret"
REPO = "octo-org/octo-service"  # repository.full_name of the fixtures


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def push(commits: list[tuple[str, datetime]]) -> dict[str, Any]:
    """The fixture push with our commits (sha, commit time); the last one is the head."""
    payload = load("push.json")
    template = payload["commits"][0]
    payload["commits"] = [
        {**copy.deepcopy(template), "id": sha, "timestamp": stamp(at)} for sha, at in commits
    ]
    payload["head_commit"] = payload["commits"][-1]
    payload["after"] = commits[-1][0]
    # One push event per push (producer.github.parsers.parse_push): its time is repository.pushed_at,
    # and (ref, before, after) identify it, so each push here starts from its own `before`.
    payload["repository"]["pushed_at"] = int(commits[-1][1].timestamp())
    payload["before"] = uuid.uuid4().hex + "0" * 8
    return payload


def deployment_status(sha: str, at: datetime, state: str = "success") -> dict[str, Any]:
    payload = load("deployment_status.json")
    payload["deployment"]["sha"] = sha
    payload["deployment_status"].update({"state": state, "created_at": stamp(at), "updated_at": stamp(at)})
    # The event id is the status id (producer.github.parsers): each deployment status has its own.
    payload["deployment_status"]["id"] = uuid.uuid4().int % 10**12
    return payload


@pytest.fixture
async def webhook_gateway(stack: Stack) -> AsyncIterator[TestClient]:
    settings = stack.settings.model_copy(update={"github_webhook_secret": SecretStr(SECRET)})
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def deliver(
    client: TestClient, event: str, payload: dict[str, Any], delivery: str | None = None
) -> None:
    body = json.dumps(payload).encode()
    response = await client.post(
        WEBHOOK_PATH,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body, SECRET),
        },
    )
    assert response.status == 202, await response.text()


async def repo_metrics_once(stack: Stack, ready: Callable[[dict[str, Any]], bool]) -> ScopeMetrics:
    """The repo's stored 30-day metrics once ``ready`` holds for them (the aggregator runs apart)."""
    read_model = build_read_model(stack.settings)
    async with asyncio.timeout(30):
        while True:
            result = await asyncio.to_thread(read_model.metrics, Scope.repo(REPO), 30)
            if ready(result.values):
                return result
            await asyncio.sleep(0.3)


async def test_lead_time_is_deploy_minus_earliest_push_of_the_sha_through_the_aggregator(
    stack: Stack, webhook_gateway: TestClient
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    hour = timedelta(hours=1)
    sha_a, sha_b, sha_c, sha_orphan = (uuid.uuid4().hex + "0" * 8 for _ in range(4))
    aggregator = LocalAggregator(stack.settings, poll_interval=0.2)
    await asyncio.to_thread(aggregator.start)
    try:
        # Pair 1: one push of sha_a (committed 2 h ago) and sha_b (90 min ago, the head), deployed 30 min
        # ago: every commit of the push is credited (as fourkeys does) -> 1.5 h and 1 h.
        await deliver(webhook_gateway, "push", push([(sha_a, now - 2 * hour), (sha_b, now - 1.5 * hour)]))
        # Pair 2: sha_c pushed 5 h ago, pushed again (later) 2 h ago, deployed 1 h ago -> 4 h (earliest push).
        await deliver(webhook_gateway, "push", push([(sha_c, now - 5 * hour)]))
        await deliver(webhook_gateway, "push", push([(sha_c, now - 2 * hour)]))
        await asyncio.sleep(1.0)  # pushes before deploys, as GitHub sends them
        deploy_b = deployment_status(sha_b, now - 0.5 * hour)
        await deliver(webhook_gateway, "deployment_status", deploy_b, delivery="dlv-deploy-b")
        await deliver(webhook_gateway, "deployment_status", deploy_b, delivery="dlv-deploy-b")  # redelivery
        await deliver(webhook_gateway, "deployment_status", deployment_status(sha_c, now - hour))
        # A deploy whose sha was never pushed counts for frequency only.
        await deliver(webhook_gateway, "deployment_status", deployment_status(sha_orphan, now - hour))

        result = await repo_metrics_once(
            stack,
            lambda values: (
                values["calc_deployment_freq"]["count"] >= 3 and values["calc_lead_time"]["samples"] >= 3
            ),
        )
        lead = result.values["calc_lead_time"]
        assert (lead["samples"], lead["median_s"], lead["p90_s"]) == (3, 5400.0, 14400.0)
        assert result.values["calc_deployment_freq"]["count"] == 3

        async with asyncio.timeout(30):
            while True:
                events = await asyncio.to_thread(read_stream_events, stack.settings.devops_stream_name)
                lead = [
                    json.loads(e.metadata or "{}")
                    for e in events
                    if e.event == EventType.CALC_LEAD_TIME and e.repo == REPO
                ]
                if any(m["samples"] == 3 for m in lead):
                    break
                await asyncio.sleep(0.3)
        final = next(m for m in lead if m["samples"] == 3)
        assert (final["median_s"], final["p90_s"], final["level"]) == (5400.0, 14400.0, "elite")

        response = await webhook_gateway.get(
            f"/metrics/{REPO}", headers={"Authorization": f"Bearer {stack.token}"}
        )
        body = await response.json()
        assert response.status == 200
        assert {k: body["lead_time"][k] for k in ("samples", "median_s", "p90_s", "level")} == {
            "samples": 3,
            "median_s": 5400.0,
            "p90_s": 14400.0,
            "level": "elite",
        }
        assert body["deployment_frequency"]["count"] == 3
    finally:
        assert await asyncio.to_thread(aggregator.stop)


async def test_deploying_the_last_of_two_pushes_credits_the_commits_of_both(
    stack: Stack, webhook_gateway: TestClient
) -> None:
    """Two merges pushed one on top of the other (the second push's `before` is the first's head), and
    one deployment_status of the last head: every commit of both pushes is a change of that deploy."""
    now = datetime.now(UTC).replace(microsecond=0)
    hour = timedelta(hours=1)
    sha_a, sha_b, sha_c = (uuid.uuid4().hex + "0" * 8 for _ in range(3))
    aggregator = LocalAggregator(stack.settings, poll_interval=0.2)
    await asyncio.to_thread(aggregator.start)
    try:
        first = push([(sha_a, now - 4 * hour), (sha_b, now - 3 * hour)])
        second = push([(sha_c, now - 2 * hour)])
        second["before"] = sha_b
        await deliver(webhook_gateway, "push", first)
        await deliver(webhook_gateway, "push", second)
        await asyncio.sleep(1.0)
        await deliver(webhook_gateway, "deployment_status", deployment_status(sha_c, now - hour))

        result = await repo_metrics_once(stack, lambda values: values["calc_lead_time"]["samples"] >= 3)
        lead = result.values["calc_lead_time"]
        # 3 h, 2 h and 1 h: the median is 2 h (without `before`: one sample of 1 h).
        assert (lead["samples"], lead["median_s"], lead["p90_s"]) == (3, 7200.0, 10800.0)
    finally:
        assert await asyncio.to_thread(aggregator.stop)
