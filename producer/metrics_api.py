"""GET /metrics and GET /metrics/{repo}: the four DORA metrics, their levels and a daily series, read
from the aggregator's DynamoDB state (never from Timestream), with the aggregator's own maths.

The state repository is synchronous boto3, so reads run in threads (``asyncio.to_thread``); a short
in-process cache keeps a dashboard that refreshes often, or many viewers, from re-reading the table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from aggregator.metrics import Window, WindowTotals, daily_series, summarize
from aggregator.state import READ_WINDOW_MAX_DAYS, StateRepository
from devops_core.aws import boto_client, client_config
from devops_core.events import REPO_ALL
from producer.api_models import FieldError
from producer.errors import ApiError
from producer.metrics_models import MetricsOverview, RepoMetrics
from producer.state import METRICS_READER, SETTINGS

__all__ = ["ALLOWED_WINDOWS", "MetricsReader", "setup_metrics"]

logger = logging.getLogger(__name__)

ALLOWED_WINDOWS = (7, 30, 90)
assert max(ALLOWED_WINDOWS) <= READ_WINDOW_MAX_DAYS  # the aggregator keeps its state that long
T = TypeVar("T")


class MetricsReader:
    """Read-only view of the aggregator's state, cached for ``cache_seconds`` per (what, window)."""

    def __init__(
        self,
        state: StateRepository,
        *,
        cache_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._state = state
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, int], tuple[float, Any]] = {}

    async def _cached(self, key: tuple[str, int], load: Callable[[], Awaitable[T]]) -> T:
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]  # type: ignore[no-any-return]
        value = await load()
        self._cache[key] = (time.monotonic() + self._cache_seconds, value)
        return value

    def _compute(self, scope: str, days: int) -> RepoMetrics:
        window = Window.ending_at(self._clock(), days)
        buckets = self._state.buckets(scope, window)
        values = summarize(WindowTotals.of(buckets, window), window)
        return RepoMetrics.model_validate(
            {
                "repo": scope,
                "window_days": days,
                "window_start": window.first_day.isoformat(),
                "window_end": window.today.isoformat(),
                "deployment_frequency": values["calc_deployment_freq"],
                "lead_time": values["calc_lead_time"],
                "change_failure_rate": values["calc_change_failure_rate"],
                "recovery_time": values["calc_recovery_time"],
                "daily": daily_series(buckets, window),
            }
        )

    async def known_repos(self, days: int) -> list[str]:
        async def load() -> list[str]:
            return sorted(await asyncio.to_thread(self._state.known_repos, days))

        return await self._cached(("#repos", days), load)

    async def repo(self, scope: str, days: int) -> RepoMetrics | None:
        """The metrics of one repo (or ALL); None if the state has never seen the repo."""
        if scope != REPO_ALL and scope not in await self.known_repos(READ_WINDOW_MAX_DAYS):
            return None

        async def load() -> RepoMetrics:
            return await asyncio.to_thread(self._compute, scope, days)

        return await self._cached((scope, days), load)

    async def overview(self, days: int) -> MetricsOverview:
        scopes = [REPO_ALL, *(r for r in await self.known_repos(days) if r != REPO_ALL)]
        found = await asyncio.gather(*(self.repo(scope, days) for scope in scopes))
        return MetricsOverview(
            generated_at=self._clock(),
            window_days=days,
            repos=[metrics for metrics in found if metrics is not None],
        )


def _window_days(request: web.Request) -> int:
    given = request.query.getall("window", [])
    if not given:
        return request.app[SETTINGS].deployment_freq_timeframe_day
    allowed = ", ".join(map(str, ALLOWED_WINDOWS))
    if len(given) > 1 or given[0] not in {str(days) for days in ALLOWED_WINDOWS}:
        shown = given[0] if len(given) == 1 else "&".join(given)
        reason = f"must be one of {allowed} (days), given once; not {shown!r}"
        raise ApiError(422, [FieldError(field="window", reason=reason).model_dump()])
    return int(given[0])


def _json(model: MetricsOverview | RepoMetrics) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


async def _read(request: web.Request, read: Awaitable[T]) -> T:
    """The state table's errors become an explicit 503 (the dashboard retries on its next refresh)."""
    try:
        return await read
    except (BotoCoreError, ClientError) as error:
        logger.warning(
            "metrics state unavailable",
            extra={"path": request.path, "error": type(error).__name__, "detail": str(error)[:200]},
        )
        raise ApiError(
            503, "the metrics state store is unavailable; retry shortly", headers={"Retry-After": "5"}
        ) from None


async def get_metrics(request: web.Request) -> web.Response:
    days = _window_days(request)
    return _json(await _read(request, request.app[METRICS_READER].overview(days)))


async def get_repo_metrics(request: web.Request) -> web.Response:
    repo = request.match_info["repo"]
    days = _window_days(request)
    metrics = await _read(request, request.app[METRICS_READER].repo(repo, days))
    if metrics is None:
        raise ApiError(404, f"no events of repo {repo!r} in the last {READ_WINDOW_MAX_DAYS} days")
    return _json(metrics)


async def _metrics_reader(app: web.Application) -> AsyncIterator[None]:
    """boto3's DynamoDB client (thread-safe; used from worker threads) for the read-only repository."""
    settings = app[SETTINGS]
    client = boto_client("dynamodb", config=client_config(max_attempts=2, connect_timeout=2, read_timeout=5))
    state = StateRepository(
        client, settings.aggregator_state_table, window_days=settings.deployment_freq_timeframe_day
    )
    app[METRICS_READER] = MetricsReader(state, cache_seconds=settings.metrics_cache_seconds)
    yield
    state.close()
    client.close()


def setup_metrics(app: web.Application) -> None:
    app.cleanup_ctx.append(_metrics_reader)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/metrics/{repo:.+}", get_repo_metrics)
