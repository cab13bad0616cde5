"""GET /metrics, GET /metrics/{repo} and GET /deployments/{repo}: routes over the MetricsReader
(producer/metrics_reader.py): parameters in, the precise 404/422/503 out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from devops_core.aws import boto_client, client_config
from devops_core.metrics_read import Scope, build_read_model
from producer.api_models import FieldError
from producer.errors import ApiError
from producer.metrics_models import MetricsOverview, RepoActivity, RepoMetrics
from producer.metrics_reader import PRODUCTION, MetricsReader
from producer.query import only_known_parameters, shown
from producer.state import METRICS_READER, SETTINGS

__all__ = ["ALLOWED_WINDOWS", "setup_metrics"]

logger = logging.getLogger(__name__)

ALLOWED_WINDOWS = (7, 30, 90)
T = TypeVar("T")


# What each route reads from its query string; anything else is a 422 naming it (a typo such as
# ?repo= for /metrics/{repo} would otherwise answer every repo's metrics without a word).
_PARAMETERS = {
    "/metrics": ("window", "team", "service", "environment"),
    "/metrics/{repo}": ("window", "environment"),
    "/deployments/{repo}": ("window",),
}


def _no_repo(repo: str) -> str:
    return (
        f"no events of repo {shown(repo)!r} are counted (test_pass events never are, nor events "
        "older than AGGREGATOR_RETENTION_DAYS)"
    )


def _only_known_parameters(request: web.Request, route: str) -> None:
    only_known_parameters(request, route, _PARAMETERS[route])


def _one(request: web.Request, name: str) -> str | None:
    given = request.query.getall(name, [])
    if len(given) > 1 or (given and not given[0].strip()):
        raise ApiError(422, [FieldError(field=name, reason="give it once, not empty").model_dump()])
    return given[0] if given else None


async def _environment(request: web.Request) -> str | None:
    """None: the production environments; else one environment that stored events name, by its
    normalized name (an unknown one is a 404, not an empty read: every name would be a new read)."""
    given = _one(request, "environment")
    reader = request.app[METRICS_READER]
    config = reader.model.config
    if given is None or given.strip().casefold() == PRODUCTION or config.is_production(given.strip()):
        return None
    environment = config.environment(given)
    if environment not in await _read(request, reader.environments()):
        raise ApiError(
            404, f"no deployment or incident of environment {shown(given)!r} is stored; check the name"
        )
    return environment


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


def _json(model: MetricsOverview | RepoMetrics | RepoActivity) -> web.Response:
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
    _only_known_parameters(request, "/metrics")
    days = _window_days(request)
    team, service = _one(request, "team"), _one(request, "service")
    environment = await _environment(request)
    if team and service:
        raise ApiError(
            422, [FieldError(field="team", reason="filter by team or by service, not both").model_dump()]
        )
    reader = request.app[METRICS_READER]
    overview = await _read(
        request, reader.overview(days, team=team, service=service, environment=environment)
    )
    if (team or service) and not overview.repos:
        what = f"team {shown(team)!r}" if team else f"service {shown(service or '')!r}"
        raise ApiError(404, f"no events of {what} are stored; check the name or the teams file")
    return _json(overview)


async def get_repo_metrics(request: web.Request) -> web.Response:
    _only_known_parameters(request, "/metrics/{repo}")
    repo = request.match_info["repo"]
    days = _window_days(request)
    environment = await _environment(request)
    metrics = await _read(request, request.app[METRICS_READER].scope(Scope.repo(repo), days, environment))
    if metrics is None:
        raise ApiError(404, _no_repo(repo))
    return _json(metrics)


async def get_repo_activity(request: web.Request) -> web.Response:
    _only_known_parameters(request, "/deployments/{repo}")
    repo = request.match_info["repo"]
    days = _window_days(request)
    activity = await _read(request, request.app[METRICS_READER].activity(repo, days))
    if activity is None:
        raise ApiError(404, _no_repo(repo))
    return _json(activity)


async def _metrics_reader(app: web.Application) -> AsyncIterator[None]:
    """boto3's DynamoDB client (thread-safe; used from worker threads) for the read model."""
    settings = app[SETTINGS]
    client = boto_client("dynamodb", config=client_config(max_attempts=2, connect_timeout=2, read_timeout=5))
    app[METRICS_READER] = MetricsReader(
        build_read_model(settings, client), cache_seconds=settings.metrics_cache_seconds
    )
    yield
    client.close()


def setup_metrics(app: web.Application) -> None:
    app.cleanup_ctx.append(_metrics_reader)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/metrics/{repo:.+}", get_repo_metrics)
    app.router.add_get("/deployments/{repo:.+}", get_repo_activity)
