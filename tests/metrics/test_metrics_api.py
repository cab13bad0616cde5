"""GET /metrics and GET /metrics/{repo} on the real gateway, reading a state table that the aggregator's
own repository filled on the real (moto) DynamoDB."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from aggregator.app import build_aggregator
from devops_core.events import DevOpsEvent
from producer.app import create_app
from producer.auth_middleware import is_public
from producer.state import METRICS_READER, OPENAPI
from tests.aggregator.helpers import make_event
from tests.support import Stack


def seed(stack: Stack, events: list[DevOpsEvent], clock: datetime | None = None) -> None:
    """The aggregator's own write path fills the state table the gateway reads."""
    aggregator = build_aggregator(stack.settings, clock=lambda: clock or datetime.now(UTC))
    assert aggregator.handle(events).conflicts == []


@pytest.fixture
def now() -> datetime:
    # Noon today (UTC), so "hours ago" stays today at any time of day; the state takes event times as
    # they are (only the gateway bounds clock skew).
    return datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def seeded(stack: Stack, now: datetime) -> datetime:
    """alpha: 3 deploys (today, 2 and 10 days ago), two with lead times of 1 h and 3 h.
    org/beta: 2 deploys today, 1 failure restored after 30 min."""
    day = timedelta(days=1)
    seed(
        stack,
        [
            make_event("push", "alpha", at=now - timedelta(hours=2), sha="5100001"),
            make_event("deploy", "alpha", at=now - timedelta(hours=1), sha="5100001"),  # lead 1 h, today
            make_event("push", "alpha", at=now - 2 * day - timedelta(hours=3), sha="5200002"),
            make_event("deploy", "alpha", at=now - 2 * day, sha="5200002"),  # lead 3 h, two days ago
            make_event("deploy", "alpha", at=now - 10 * day),  # no sha: frequency only
            make_event("deploy", "org/beta", at=now - timedelta(hours=3)),
            make_event("deploy", "org/beta", at=now - timedelta(hours=2)),
            make_event("deploy_failed", "org/beta", at=now - timedelta(hours=2)),
            make_event("service_restored", "org/beta", at=now - timedelta(hours=1, minutes=30)),
        ],
    )
    return now


METRIC_NAMES = ("deployment_frequency", "lead_time", "change_failure_rate", "recovery_time", "rework_rate")


def without_trend(metric: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metric.items() if key != "trend"}


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


async def get(gateway: TestClient, stack: Stack, path: str) -> tuple[int, Any]:
    response = await gateway.get(path, headers=auth(stack))
    return response.status, await response.json()


async def test_overview_has_all_first_then_each_repo_with_values_levels_and_daily_series(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    status, body = await get(gateway, stack, "/metrics")

    assert status == 200
    assert body["window_days"] == 30
    by_repo = {m["repo"]: m for m in body["repos"]}
    assert [m["repo"] for m in body["repos"]] == ["ALL", "alpha", "org/beta"]

    alpha = by_repo["alpha"]
    assert without_trend(alpha["deployment_frequency"]) == {
        "count": 3,
        "per_day": 0.1,
        "failed": 0,
        "other_environments": 0,
        "level": "medium",
    }
    assert without_trend(alpha["lead_time"]) == {
        "samples": 2,
        "median_s": 7200.0,
        "p90_s": 10800.0,
        "level": "elite",
    }
    assert without_trend(alpha["change_failure_rate"]) == {
        "failures": 0,
        "deploys": 3,
        "rate": 0.0,
        "level": "elite",
    }
    assert without_trend(alpha["recovery_time"]) == {
        "samples": 0,
        "median_s": None,
        "p90_s": None,
        "level": None,
        "open_failures": 0,
    }
    assert without_trend(alpha["rework_rate"]) == {"rework": 0, "deploys": 3, "rate": 0.0, "level": None}

    beta = by_repo["org/beta"]
    # Two deploys and one failed deployment: three deployments, one of which failed.
    assert without_trend(beta["change_failure_rate"]) == {
        "failures": 1,
        "deploys": 3,
        "rate": 0.333333,
        "level": "low",
    }
    assert without_trend(beta["recovery_time"])["median_s"] == 1800.0
    assert beta["lead_time"]["median_s"] is None

    everything = by_repo["ALL"]
    assert everything["scope"] == "all"
    assert everything["deployment_frequency"]["count"] == 6
    assert everything["change_failure_rate"]["rate"] == round(1 / 6, 6)
    assert everything["lead_time"]["samples"] == 2

    today = seeded.date()
    daily = {point["day"]: point for point in alpha["daily"]}
    assert len(alpha["daily"]) == 30
    assert alpha["daily"][-1]["day"] == alpha["window_end"] == today.isoformat()
    assert alpha["daily"][0]["day"] == alpha["window_start"] == (today - timedelta(days=29)).isoformat()
    assert daily[today.isoformat()] == {
        "day": today.isoformat(),
        "deploys": 1,
        "failed_deploys": 0,
        "change_failures": 0,
        "rework": 0,
        "lead_time_samples": 1,
        "lead_time_median_s": 3600.0,
        "recoveries": 0,
        "recovery_time_median_s": None,
    }
    assert daily[(today - timedelta(days=2)).isoformat()]["lead_time_median_s"] == 10800.0
    assert daily[(today - timedelta(days=10)).isoformat()]["deploys"] == 1
    assert sum(p["deploys"] for p in alpha["daily"]) == 3
    assert daily[(today - timedelta(days=1)).isoformat()]["lead_time_median_s"] is None
    assert by_repo["org/beta"]["daily"][-1]["recoveries"] == 1


async def test_window_param_narrows_values_and_series(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    status, body = await get(gateway, stack, "/metrics/alpha?window=7")

    assert status == 200
    assert body["window_days"] == 7
    assert body["deployment_frequency"]["count"] == 2  # the deploy 10 days ago is outside
    assert body["deployment_frequency"]["per_day"] == round(2 / 7, 6)
    assert body["deployment_frequency"]["level"] == "high"
    assert len(body["daily"]) == 7

    status, body = await get(gateway, stack, "/metrics?window=90")
    assert status == 200
    assert {m["repo"]: len(m["daily"]) for m in body["repos"]} == {"ALL": 90, "alpha": 90, "org/beta": 90}


async def test_one_repo_with_a_slash_and_all(gateway: TestClient, stack: Stack, seeded: datetime) -> None:
    status, beta = await get(gateway, stack, "/metrics/org/beta")
    assert status == 200
    assert (beta["repo"], beta["deployment_frequency"]["count"]) == ("org/beta", 3)

    status, everything = await get(gateway, stack, "/metrics/ALL?window=30")
    assert status == 200
    assert everything["deployment_frequency"]["count"] == 6


async def test_token_is_required(gateway: TestClient, stack: Stack) -> None:
    for path in ("/metrics", "/metrics/alpha", "/metrics?window=7", "/metrics/ALL?window=oops"):
        anonymous = await gateway.get(path)
        wrong = await gateway.get(path, headers={"Authorization": "Bearer not-the-token"})

        assert (anonymous.status, wrong.status) == (401, 401), path
        assert (await anonymous.json())["error"] == "unauthorized"


async def test_unknown_repo_is_a_json_404(gateway: TestClient, stack: Stack, seeded: datetime) -> None:
    status, body = await get(gateway, stack, "/metrics/no-such-repo")

    assert status == 404
    assert body["error"] == "not_found"
    assert "no-such-repo" in body["detail"]


async def test_other_windows_are_422_naming_field_and_reason(gateway: TestClient, stack: Stack) -> None:
    for window in ("14", "abc", "", "-7", "7.0", "90&window=14"):
        for path in (f"/metrics?window={window}", f"/metrics/ALL?window={window}"):
            status, body = await get(gateway, stack, path)

            assert status == 422, path
            assert body["error"] == "validation_error"
            assert body["detail"][0]["field"] == "window"
            assert "7, 30, 90" in body["detail"][0]["reason"]


async def test_answers_are_cached_for_a_few_seconds(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    _, before = await get(gateway, stack, "/metrics/alpha")
    await asyncio.to_thread(seed, stack, [make_event("deploy", "alpha", at=seeded - timedelta(minutes=5))])

    _, cached = await get(gateway, stack, "/metrics/alpha")

    assert cached == before  # within METRICS_CACHE_SECONDS (5 s) the table is not read again
    assert stack.settings.metrics_cache_seconds == 5.0


async def test_empty_state_lists_only_all_with_no_level_at_all(gateway: TestClient, stack: Stack) -> None:
    status, body = await get(gateway, stack, "/metrics")

    assert status == 200
    assert [m["repo"] for m in body["repos"]] == ["ALL"]
    everything = body["repos"][0]
    assert (everything["deployment_frequency"]["count"], everything["deployment_frequency"]["level"]) == (
        0,
        None,
    )
    assert [everything[name]["level"] for name in METRIC_NAMES] == [None] * 5


async def test_openapi_describes_the_metrics_routes(gateway: TestClient) -> None:
    spec = gateway.app[OPENAPI]

    assert spec["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/metrics"]["get"]["parameters"][0]["schema"]["enum"] == [7, 30, 90]
    assert set(spec["paths"]["/metrics/{repo}"]["get"]["responses"]) == {"200", "401", "404", "422", "503"}
    assert {"MetricsOverview", "RepoMetrics", "DayPoint"} <= set(spec["components"]["schemas"])


async def test_dashboard_and_its_assets_are_public_but_nothing_else_under_them(gateway: TestClient) -> None:
    page = await gateway.get("/dashboard")
    script = await gateway.get("/dashboard/static/uPlot.iife.min.js")
    licence = await gateway.get("/dashboard/static/uPlot.LICENSE")

    assert page.status == 200
    assert page.content_type == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<title>DORA metrics</title>" in await page.text()
    assert script.status == 200
    assert "uPlot" in await script.text()
    assert licence.status == 200
    assert "MIT License" in await licence.text()
    missing = await gateway.get("/dashboard/static/missing.js")
    assert (missing.status, missing.content_type) == (404, "application/json")
    assert (await missing.json())["error"] == "not_found"  # errors are always JSON, here too
    assert script.content_type in {"application/javascript", "text/javascript"}
    assert not is_public("/dashboard/static/../../metrics")
    assert not is_public("/dashboard/static//x")
    assert not is_public("/dashboard/other")
    assert is_public("/dashboard/static/dashboard.js")


async def test_dashboard_files_answer_conditions_and_ranges_in_json_or_in_full(gateway: TestClient) -> None:
    """aiohttp's file response answered an unsatisfiable Range (416) and a failed If-Match (412) with
    an empty body; errors are JSON, and a Range is served as the whole file."""
    first = await gateway.get("/dashboard/static/dashboard.js")
    etag = first.headers["ETag"]
    whole = await first.read()
    cached = await gateway.get("/dashboard/static/dashboard.js", headers={"If-None-Match": etag})
    assert (cached.status, cached.headers["ETag"]) == (304, etag)
    ranged = await gateway.get("/dashboard", headers={"Range": "bytes=999999999-"})
    assert ranged.status == 200
    assert "<title>DORA metrics</title>" in await ranged.text()
    stale = await gateway.get("/dashboard/static/dashboard.js", headers={"If-Match": '"another"'})
    assert (stale.status, stale.content_type) == (412, "application/json")
    assert (await stale.json())["error"] == "precondition_failed"
    same = await gateway.get("/dashboard/static/dashboard.js", headers={"If-Match": etag})
    assert (same.status, await same.read()) == (200, whole)


async def test_a_repo_seen_40_days_ago_is_listed_for_90_days_and_never_a_404(
    gateway: TestClient, stack: Stack, now: datetime
) -> None:
    then = now - timedelta(days=40)
    seed(stack, [make_event("deploy", "old-repo", at=then)])  # backfilled today, listed by its event day

    _, month = await get(gateway, stack, "/metrics?window=30")
    _, quarter = await get(gateway, stack, "/metrics?window=90")
    status, week = await get(gateway, stack, "/metrics/old-repo?window=7")

    assert [m["repo"] for m in month["repos"]] == ["ALL"]
    assert [m["repo"] for m in quarter["repos"]] == ["ALL", "old-repo"]
    assert quarter["repos"][1]["deployment_frequency"]["count"] == 1
    assert status == 200
    assert week["deployment_frequency"]["count"] == 0


async def test_a_missing_state_table_is_a_503_with_retry_after(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"devops_events_secret_token": None, "aggregator_state_table": "no-such-table"}
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/metrics", headers=auth(stack))

        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.json())["error"] == "unavailable"


async def test_every_data_route_is_in_the_openapi_document(gateway: TestClient) -> None:
    """The dashboard's three reads are all documented (the schemathesis fuzz is driven from it)."""
    spec = gateway.app[OPENAPI]
    activity = spec["paths"]["/deployments/{repo}"]["get"]
    assert activity["security"] == [{"bearer": []}]
    assert "RepoActivity" in spec["components"]["schemas"]
    parameters = {
        path: [p["name"] for p in spec["paths"][path]["get"]["parameters"]]
        for path in ("/metrics", "/metrics/{repo}", "/deployments/{repo}")
    }
    assert parameters == {
        "/metrics": ["window", "team", "service", "environment"],
        "/metrics/{repo}": ["repo", "window", "environment"],
        "/deployments/{repo}": ["repo", "window"],
    }


async def test_a_parameter_a_route_does_not_take_is_a_422_naming_it(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    """?repo= on /metrics used to answer every repo's metrics, silently."""
    for path, name in (
        ("/metrics?repo=alpha", "repo"),
        ("/metrics/alpha?team=x", "team"),
        ("/deployments/alpha?environment=staging", "environment"),
    ):
        status, body = await get(gateway, stack, path)
        assert status == 422, path
        assert body["detail"][0]["field"] == name
        assert "not a parameter of" in body["detail"][0]["reason"]


async def test_an_environment_no_event_names_is_a_404_and_costs_no_read(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    """Any token holder could otherwise start a cold read per made-up name (0.8 s each at 90 days)."""
    reader = gateway.app[METRICS_READER]
    loads: list[tuple[str, ...]] = []
    cached = reader._cached

    async def counting(key: tuple[str, ...], load: Any) -> Any:
        loads.append(key)
        return await cached(key, load)

    reader._cached = counting  # type: ignore[method-assign]
    for path in ("/metrics?environment=qa-1", "/metrics/alpha?environment=qa-2"):
        status, body = await get(gateway, stack, path)
        assert status == 404, path
        assert "no deployment or incident of environment" in body["detail"]
    assert {key[0] for key in loads} <= {"#names", "#repos"}


async def test_team_and_service_lookups_never_run_on_the_event_loop(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    """The index queries behind ?team= and ?service= ran on the event loop: 20 clients asking for
    made-up teams held /healthz at 275 ms. A made-up name now costs no query; a known one runs in a
    worker thread."""
    store = gateway.app[METRICS_READER].model.store
    threads: list[str] = []
    repos_of = store.repos_of

    def recording(index_pk: str) -> set[str]:
        threads.append(threading.current_thread().name)
        return repos_of(index_pk)

    store.repos_of = recording  # type: ignore[method-assign]
    for path in ("/metrics?team=made-up-1", "/metrics?service=made-up-2"):
        status, body = await get(gateway, stack, path)
        assert status == 404, path
    assert threads == []
    status, body = await get(gateway, stack, "/metrics?service=alpha")
    assert status == 200
    assert body["repos"][0]["deployment_frequency"]["count"] == 3
    assert threads
    assert threading.main_thread().name not in threads


async def test_a_long_unknown_name_is_not_echoed_in_full(gateway: TestClient, stack: Stack) -> None:
    status, body = await get(gateway, stack, "/metrics/" + "x" * 5000)
    assert status == 404
    assert len(body["detail"]) < 300


async def test_concurrent_misses_of_one_answer_share_one_read(
    gateway: TestClient, stack: Stack, seeded: datetime
) -> None:
    reader = gateway.app[METRICS_READER]
    reads = 0
    original = reader.model.metrics

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return original(*args, **kwargs)

    reader.model.metrics = counted  # type: ignore[method-assign]
    answers = await asyncio.gather(*(get(gateway, stack, "/metrics/alpha?window=90") for _ in range(8)))
    assert {status for status, _ in answers} == {200}
    assert reads == 1
