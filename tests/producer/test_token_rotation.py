"""Tokens from Secrets Manager: rotation is picked up without a restart, the previous token keeps
working during the rollout, and a token never reaches the logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from pydantic import SecretStr

from devops_core.aws import boto_client
from devops_core.logs import setup_logging
from producer.state import SECRET_READS
from tests.producer.conftest import bearer, open_gateway
from tests.support import Stack


def rotate(secret_id: str, token: str) -> None:
    boto_client("secretsmanager").put_secret_value(
        SecretId=secret_id, SecretString=json.dumps({"token": token})
    )


async def status_with(client, token: str) -> int:
    response = await client.post("/process-event", json={"repo": "r", "event": "push"}, headers=bearer(token))
    return response.status


async def test_rotated_secret_is_picked_up_and_previous_token_honoured(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"token_refresh_seconds": 0.2})
    first, second, third = stack.token, "second-token-xyz", "third-token-abc"
    async with open_gateway(settings) as client:
        assert await status_with(client, first) == 202
        assert await status_with(client, second) == 401

        rotate(settings.secret_store_name, second)
        await asyncio.sleep(0.6)
        assert await status_with(client, second) == 202
        assert await status_with(client, first) == 202, "AWSPREVIOUS must stay valid during rotation"

        rotate(settings.secret_store_name, third)
        await asyncio.sleep(0.6)
        assert await status_with(client, third) == 202
        assert await status_with(client, second) == 202
        assert await status_with(client, first) == 401


async def test_the_token_and_webhook_stores_share_each_secret_read(stack: Stack) -> None:
    """Both stores read the same secret on the same schedule: one GetSecretValue serves both."""
    # A period of 2 s shares reads for 1 s: wide enough for the two stores' starts on a loaded machine
    # (with 0.3 s, a start 150 ms late made a third call).
    settings = stack.settings.model_copy(update={"token_refresh_seconds": 2.0, "github_webhook_secret": None})
    async with open_gateway(settings) as client:
        reads = client.server.app[SECRET_READS]
        assert (reads.reads, reads.calls) == (4, 2)  # AWSCURRENT and AWSPREVIOUS, for both stores
        await asyncio.sleep(4.5)  # two refresh rounds
        assert reads.reads >= 12
        # Every round's two reads share one call (allowing for a store caught mid-round); with no
        # sharing, calls would equal reads.
        assert reads.calls * 2 <= reads.reads + 2
        rotate(settings.secret_store_name, "rotated-token-456")
        await asyncio.sleep(3.2)  # the next round, and a shared read is never older than half a period
        assert await status_with(client, "rotated-token-456") == 202


async def test_secret_holding_current_and_previous_tokens(stack: Stack) -> None:
    name = stack.settings.secret_store_name + "-json"
    boto_client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"current": "new-one", "previous": "old-one"})
    )
    async with open_gateway(stack.settings.model_copy(update={"secret_store_name": name})) as client:
        assert await status_with(client, "new-one") == 202
        assert await status_with(client, "old-one") == 202
        assert await status_with(client, stack.token) == 401


async def test_environment_token_overrides_secrets_manager(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"devops_events_secret_token": SecretStr("env-token-123")})
    async with open_gateway(settings) as client:
        assert await status_with(client, "env-token-123") == 202
        assert await status_with(client, stack.token) == 401


async def test_unreadable_secret_means_not_ready(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"secret_store_name": "does-not-exist"})
    async with open_gateway(settings) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "does-not-exist" in (await ready.json())["checks"]["token"]
        assert (await client.post("/process-event", json={}, headers=bearer("x"))).status == 503


async def test_tokens_never_reach_the_logs(stack: Stack) -> None:
    """With the production logging setup at DEBUG, neither a good nor a bad token is written."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("DEBUG", stream=stream)
    try:
        async with open_gateway(stack.settings) as client:
            assert await status_with(client, stack.token) == 202
            assert await status_with(client, "wrong-" + stack.token) == 401
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    rendered = stream.getvalue()
    assert "events accepted" in rendered
    assert stack.token not in rendered
