"""Who may call what: only the documented public paths answer without a token; each token is rate
limited (a batch counts its events) with a 429 and Retry-After; tokens never reach the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from producer.app import create_app
from producer.auth_middleware import PUBLIC_PATHS, PUBLIC_PREFIXES, SELF_AUTHENTICATED_PATHS, is_public
from producer.log_throttle import LogThrottle
from producer.rate_limit import RateLimiter, token_key
from tests.hardening.conftest import start_gateway_process
from tests.producer.conftest import bearer, open_gateway
from tests.support import Stack, unique_settings


def _routes() -> list[tuple[str, str]]:
    app = create_app(unique_settings())
    return sorted(
        {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    )


ROUTES = _routes()


def test_public_set_is_exactly_the_documented_one() -> None:
    paths = {path for _, path in ROUTES}
    assert {"/", "/healthz", "/readyz", "/openapi.json", "/dashboard"} == PUBLIC_PATHS
    assert paths >= PUBLIC_PATHS
    # The dashboard's static files (no data) are the only public prefix.
    assert PUBLIC_PREFIXES == ("/dashboard/static/",)
    assert not is_public("/dashboard/static/../../metrics")
    # Routes with their own authentication (GitHub's HMAC) are listed explicitly, not by accident.
    assert {"/webhooks/github"} >= SELF_AUTHENTICATED_PATHS


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token"])
async def test_no_route_but_the_public_ones_answers_without_a_valid_token(
    gateway: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await gateway.request(method, path, headers=headers, json={"repo": "r", "event": "push"})
    if is_public(path) or path.startswith(PUBLIC_PREFIXES):
        assert response.status in {200, 404, 405, 503}, "public route must not need a token"
    elif path in SELF_AUTHENTICATED_PATHS:
        # Refused by its own check: no signature (401), or no webhook secret configured (503).
        assert response.status in {401, 403, 503}
    else:
        assert response.status == 401
        if method != "HEAD":  # a HEAD answer has no body
            assert (await response.json())["error"] == "unauthorized"


def test_token_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10, burst=20, clock=lambda: now[0])
    assert limiter.take("a", 20) == 0
    assert limiter.take("a", 1) == pytest.approx(0.1)
    assert limiter.take("b", 5) == 0  # buckets are per key
    now[0] = 1.0
    assert limiter.take("a", 10) == 0
    assert limiter.take("a", 1) > 0
    now[0] = 100.0
    assert limiter.take("a", 500) == 0  # a cost above the burst is charged as the burst
    assert RateLimiter(rate=0, burst=1).take("a", 10**6) == 0  # rate 0: off


def test_a_request_above_the_burst_passes_once_the_bucket_is_full() -> None:
    """Authentication takes 1, then a /events batch its other events: a batch above the burst was
    charged the burst on top of that 1, so with a burst of 3 a 4-event batch could never pass."""
    now = [0.0]
    limiter = RateLimiter(rate=1, burst=3, clock=lambda: now[0])
    assert limiter.take("a", 1) == 0  # authentication
    assert limiter.take("a", 3, charged=1) == 0  # the batch's 3 other events: the burst in all
    assert limiter.take("a", 1) > 0
    now[0] = 3.0
    assert limiter.take("a", 1) == 0
    assert limiter.take("a", 499, charged=1) == 0


def test_a_refusal_is_logged_once_per_kind_per_second_with_its_count() -> None:
    """A client ignoring its 429s, or anyone sending unsigned webhooks, wrote one warning per request."""
    now = [0.0]
    throttle = LogThrottle(clock=lambda: now[0])
    reported = []
    for step in range(30):  # 30 refusals over 1.5 s
        now[0] = step * 0.05
        reported.append(throttle.due("rate limited abc"))
    assert [count for count in reported if count] == [1, 20]  # 0 s: the first; 1 s: the 20 since
    assert throttle.due("another kind") == 1  # kinds are counted apart


def test_token_key_is_a_short_hash_not_the_token() -> None:
    assert token_key("secret-token") == token_key("secret-token")
    assert "secret" not in token_key("secret-token")
    assert len(token_key("secret-token")) == 16


async def test_over_the_limit_gets_429_with_retry_after_and_batches_count_their_events(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = stack.settings.model_copy(update={"rate_limit_per_second": 2.0, "rate_limit_burst": 10})
    event = {"repo": "r", "event": "push"}
    async with open_gateway(settings) as client:
        assert (await client.post("/events", json=[event] * 8, headers=bearer(stack.token))).status == 202
        with caplog.at_level(logging.INFO):
            too_big = await client.post("/events", json=[event] * 8, headers=bearer(stack.token))
            assert too_big.status == 429  # 2 left in the bucket, 8 asked
            assert int(too_big.headers["Retry-After"]) >= 3  # ~6 missing at 2/s
            assert (await too_big.json())["error"] == "rate_limited"
            assert (
                await client.post("/process-event", json=event, headers=bearer(stack.token))
            ).status == 202
            refused = await client.post("/process-event", json=event, headers=bearer(stack.token))
            assert refused.status == 429
            assert int(refused.headers["Retry-After"]) >= 1
        assert (await client.get("/healthz")).status == 200  # probes are not limited
    limited = [record for record in caplog.records if record.getMessage() == "rate limited"]
    assert {getattr(record, "token_key", None) for record in limited} == {token_key(stack.token)}


async def test_tokens_never_reach_the_logs(emulator: str, tmp_path: Path) -> None:
    """The production process at LOG_LEVEL=DEBUG, fed good, wrong and rate-limited requests."""
    gateway = start_gateway_process(
        tmp_path / "gateway.log", LOG_LEVEL="DEBUG", RATE_LIMIT_PER_SECOND="1", RATE_LIMIT_BURST="1"
    )
    wrong = "wrong-token-that-must-not-be-logged"
    try:
        async with aiohttp.ClientSession(gateway.url) as session:
            for token in (gateway.token, gateway.token, wrong):
                async with session.post(
                    "/process-event", json={"repo": "r", "event": "push"}, headers=bearer(token)
                ):
                    pass
            async with session.post(
                "/process-event", data=b"{", headers={**bearer(wrong), "Content-Type": "application/json"}
            ):
                pass
    finally:
        gateway.process.terminate()
        gateway.process.wait(20)
    logged = gateway.log.read_text()
    assert "events accepted" in logged
    assert "rate limited" in logged
    assert gateway.token not in logged
    assert wrong not in logged
