"""The metrics a reader asks for, through the read model (devops_core.metrics_read: the same numbers
as the aggregator's calc_* events), shaped for the API, behind a short cache.

The read model is synchronous boto3, so reads run in threads (``asyncio.to_thread``); the cache keeps
a dashboard that refreshes often, or many viewers, from re-reading the table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from devops_core.dora.history import derive
from devops_core.dora.model import FactKey, Window, day_of
from devops_core.events import REPO_ALL
from devops_core.metrics_read import ReadModel, Scope, ScopeMetrics
from devops_core.metrics_store import RepoInfo
from producer.metrics_models import MetricsOverview, RepoActivity, RepoMetrics

__all__ = ["MetricsReader", "activity_of", "to_model"]

T = TypeVar("T")
# The environment filter's default: the production environments (DORA_PRODUCTION_ENVIRONMENTS).
PRODUCTION = "production"

# Per metric: the headline value and whether more of it is better (for the trend's direction).
_HEADLINES: dict[str, tuple[str, str, bool]] = {
    "deployment_frequency": ("calc_deployment_freq", "per_day", True),
    "lead_time": ("calc_lead_time", "median_s", False),
    "change_failure_rate": ("calc_change_failure_rate", "rate", False),
    "recovery_time": ("calc_recovery_time", "median_s", False),
    "rework_rate": ("calc_rework_rate", "rate", False),
}


def _trend(now: float | None, before: float | None, more_is_better: bool) -> dict[str, Any]:
    change = None if now is None or not before else round((now - before) / before, 6)
    direction = None
    if now is not None and before is not None:
        moved = "better" if (now > before) == more_is_better else "worse"
        direction = "same" if now == before else moved
    return {"previous": before, "change": change, "direction": direction}


def to_model(result: ScopeMetrics, environment: str | None = None) -> RepoMetrics:
    body: dict[str, Any] = {
        "repo": result.scope.name,
        "scope": result.scope.kind,
        "environment": environment or PRODUCTION,
        "window_days": result.window.days,
        "window_start": result.window.first_day.isoformat(),
        "window_end": result.window.last_day.isoformat(),
        "daily": result.daily,
    }
    for name, (event, headline, more_is_better) in _HEADLINES.items():
        values = {k: v for k, v in result.values[event].items() if k not in ("window_days", "window_start")}
        before = result.previous[event].get(headline) if result.previous else None
        values["trend"] = _trend(values.get(headline), before, more_is_better)
        body[name] = values
    return RepoMetrics.model_validate(body)


class MetricsReader:
    """The read model behind a short cache, per (what, window)."""

    def __init__(
        self,
        model: ReadModel,
        *,
        cache_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.model = model
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._loading: dict[tuple[str, ...], asyncio.Future[Any]] = {}

    async def _cached(self, key: tuple[str, ...], load: Callable[[], T]) -> T:
        """The cached value, else one load per key however many requests ask for it meanwhile
        (single flight: concurrent misses share the first one's read)."""
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]  # type: ignore[no-any-return]
        running = self._loading.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await asyncio.to_thread(load)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        else:
            self._cache[key] = (time.monotonic() + self._cache_seconds, value)
            future.set_result(value)
            return value
        finally:
            del self._loading[key]

    async def environments(self) -> set[str]:
        """The non-production environments any stored event names (normalized)."""
        _, _, environments = await self._cached(("#names",), self.model.names)
        return set(environments)

    async def repos(self) -> dict[str, RepoInfo]:
        return await self._cached(("#repos",), self.model.store.repos)

    async def _members(
        self, scope: Scope, repos: dict[str, RepoInfo]
    ) -> dict[str, Callable[[FactKey], bool]] | None:
        """A team's or a service's repos (None for ALL and a repo), read in a thread and cached: the
        index queries once ran on the event loop, stalling every request behind them. A name no
        stored event or teams file gives is answered without a read (and without a cache entry)."""
        if scope.kind not in ("team", "service"):
            return None
        teams, services, _ = await self._cached(("#names",), self.model.names)
        if scope.name not in (teams if scope.kind == "team" else services):
            return {}
        return await self._cached(
            ("#members", scope.kind, scope.name), lambda: self.model.members(scope, repos)
        )

    async def scope(self, scope: Scope, days: int, environment: str | None = None) -> RepoMetrics | None:
        """A scope's metrics; None when it has no stored event at all."""
        repos = await self.repos()
        if not self.model.known(scope, repos, await self._members(scope, repos)):
            return None
        return await self._cached(
            (scope.kind, scope.name, str(days), environment or ""),
            lambda: to_model(
                self.model.metrics(scope, days, repos=repos, environment=environment), environment
            ),
        )

    async def overview(
        self,
        days: int,
        *,
        team: str | None = None,
        service: str | None = None,
        environment: str | None = None,
    ) -> MetricsOverview:
        repos = await self.repos()
        first = day_of(self._clock()) - timedelta(days=days - 1)
        in_window = sorted(repo for repo, info in repos.items() if any(day >= first for day in info.days))
        head = Scope("team", team) if team else Scope("service", service) if service else Scope.all()
        members = await self._members(head, repos)
        if members is not None:
            in_window = [repo for repo in in_window if repo in members]
        found = await asyncio.gather(
            self.scope(head, days, environment),
            *(self.scope(Scope.repo(repo), days, environment) for repo in in_window if repo != REPO_ALL),
        )
        teams, services, environments = await self._cached(("#names",), self.model.names)
        return MetricsOverview(
            generated_at=self._clock(),
            window_days=days,
            scope=head.kind,
            name=head.name,
            environment=environment or PRODUCTION,
            repos=[metrics for metrics in found if metrics is not None],
            teams=teams,
            services=services,
            environments=[PRODUCTION, *environments],
        )

    async def activity(self, repo: str, days: int) -> RepoActivity | None:
        repos = await self.repos()
        if repo not in repos:
            return None

        def load() -> RepoActivity:
            return activity_of(self.model, repo, Window.ending_at(self._clock(), days))

        return await self._cached(("#activity", repo, str(days)), load)


def activity_of(model: ReadModel, repo: str, window: Window) -> RepoActivity:
    """A repo's deployments and failures in ``window``, derived from its logged events."""
    first = datetime.combine(window.first_day, datetime.min.time(), UTC)
    history = derive(model.store.events(repo, first - model.config.lookback), model.config)
    deployments = [d for d in history.deployments if window.contains(day_of(d.time))]
    failures = [f for f in history.failures if window.contains(day_of(f.start))]
    return RepoActivity.model_validate(
        {
            "repo": repo,
            "window_days": window.days,
            "deployments": [
                {
                    "event_id": d.event.event_id,
                    "time": d.time,
                    "environment": d.event.environment or "production",
                    "counted": d.counted,
                    "outcome": "success" if d.success else "failure",
                    "sha": d.event.sha,
                    "change_failure": d.change_failure,
                    "rework": d.rework,
                    "changes": [{"sha": c.sha, "lead_time_s": c.lead_s} for c in d.changes],
                }
                for d in reversed(deployments)
            ],
            "failures": [
                {
                    "kind": f.kind,
                    "event_id": f.event.event_id,
                    "started": f.start,
                    "ended": f.end,
                    "recovery_s": f.recovery_s,
                    "environment": f.event.environment or "production",
                }
                for f in reversed(failures)
            ],
        }
    )
