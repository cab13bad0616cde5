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
from producer.rotating_secret import SharedSecretReads
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


async def test_the_token_and_webhook_stores_read_through_one_shared_reader(stack: Stack) -> None:
    """Both stores read the secret through the app's one SharedSecretReads (its sharing rules are
    tested below with a clock of their own: timing-based counts here flaked under load), and a
    rotation reaches the token store through it."""
    settings = stack.settings.model_copy(update={"token_refresh_seconds": 0.5, "github_webhook_secret": None})
    async with open_gateway(settings) as client:
        reads = client.server.app[SECRET_READS]
        assert reads.reads >= 4  # AWSCURRENT and AWSPREVIOUS, for both stores, at start
        assert 1 <= reads.calls <= reads.reads
        rotate(settings.secret_store_name, "rotated-token-456")
        for _ in range(200):  # the next rounds; bounded so a broken refresh fails, not hangs
            if await status_with(client, "rotated-token-456") == 202:
                break
            await asyncio.sleep(0.1)
        assert await status_with(client, "rotated-token-456") == 202


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_shared_reads_join_one_call_per_version_and_ttl() -> None:
    calls: list[tuple[str, str]] = []
    release = asyncio.Event()

    async def fetch(*, SecretId: str, VersionStage: str) -> dict[str, str]:
        calls.append((SecretId, VersionStage))
        await release.wait()
        return {"SecretString": f"{VersionStage}-{len(calls)}"}

    clock = _Clock()
    reads = SharedSecretReads(fetch, ttl_seconds=1.0, clock=clock)
    # Two readers of each version while the first call is in flight: one call per version.
    pending = [
        asyncio.ensure_future(reads(SecretId="s", VersionStage=stage))
        for stage in ("AWSCURRENT", "AWSPREVIOUS", "AWSCURRENT", "AWSPREVIOUS")
    ]
    await asyncio.sleep(0)
    release.set()
    answers = [answer["SecretString"] for answer in await asyncio.gather(*pending)]
    assert calls == [("s", "AWSCURRENT"), ("s", "AWSPREVIOUS")]
    assert answers == ["AWSCURRENT-1", "AWSPREVIOUS-2", "AWSCURRENT-1", "AWSPREVIOUS-2"]
    # Within the ttl a later read shares the finished call; past it, a new call is made.
    clock.now = 1.0
    assert (await reads(SecretId="s", VersionStage="AWSCURRENT"))["SecretString"] == "AWSCURRENT-1"
    clock.now = 1.01
    assert (await reads(SecretId="s", VersionStage="AWSCURRENT"))["SecretString"] == "AWSCURRENT-3"
    assert (reads.reads, reads.calls) == (6, 3)


async def test_a_failed_shared_read_fails_every_reader_of_that_call_then_is_retried() -> None:
    attempts: list[int] = []

    async def fetch(*, SecretId: str, VersionStage: str) -> dict[str, str]:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("Secrets Manager unavailable")
        return {"SecretString": "ok"}

    clock = _Clock()
    reads = SharedSecretReads(fetch, ttl_seconds=1.0, clock=clock)
    outcomes = await asyncio.gather(
        reads(SecretId="s", VersionStage="AWSCURRENT"),
        reads(SecretId="s", VersionStage="AWSCURRENT"),
        return_exceptions=True,
    )
    assert [type(outcome) for outcome in outcomes] == [RuntimeError, RuntimeError]
    clock.now = 2.0
    assert (await reads(SecretId="s", VersionStage="AWSCURRENT"))["SecretString"] == "ok"
    assert len(attempts) == 2
    await reads.close()


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
