"""The read model of the metrics: a scope (ALL, a repo, a team, a service) over a window, from the
stored day facts. The aggregator's calc_* events and the gateway's GET /metrics both read here, so
the two can never disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from devops_core.aws import boto_client, client_config
from devops_core.dora.model import DayFacts, DoraConfig, FactKey, Window
from devops_core.dora.summary import daily_series, summarize
from devops_core.events import REPO_ALL
from devops_core.metrics_store import Keys, MetricsStore, RepoInfo
from devops_core.settings import Settings
from devops_core.teams import TeamMapping

__all__ = ["ReadModel", "Scope", "ScopeMetrics", "build_read_model"]

ScopeKind = Literal["all", "repo", "team", "service"]


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    name: str

    @classmethod
    def all(cls) -> Scope:
        return cls("all", REPO_ALL)

    @classmethod
    def repo(cls, name: str) -> Scope:
        return cls("all", REPO_ALL) if name == REPO_ALL else cls("repo", name)


@dataclass(frozen=True)
class ScopeMetrics:
    scope: Scope
    window: Window
    values: dict[str, dict[str, Any]]  # summarize(): calc_* name -> metric
    previous: dict[str, dict[str, Any]] | None  # the same for the window before (trends), if asked
    daily: list[dict[str, Any]]


class ReadModel:
    def __init__(
        self,
        store: MetricsStore,
        *,
        teams: TeamMapping,
        config: DoraConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.teams = teams
        self.config = config
        self._clock = clock

    # -- which keys of which repos a scope takes ---------------------------------------------------
    def _team_of(self, repo: str, key: FactKey) -> str | None:
        return key.team or self.teams.team_of(repo)

    def members(self, scope: Scope, repos: Mapping[str, RepoInfo]) -> dict[str, Callable[[FactKey], bool]]:
        """repo -> which of its fact keys belong to the scope."""
        if scope.kind == "repo":
            return {scope.name: lambda key: True}
        if scope.kind == "team":
            candidates = set(self.teams.teams().get(scope.name, [])) | self.store.repos_of(
                Keys.team(scope.name)
            )
            return {
                repo: (lambda key, repo=repo: self._team_of(repo, key) == scope.name)  # type: ignore[misc]
                for repo in sorted(candidates)
            }
        if scope.kind == "service":
            # Indexed by the aggregator for every service an event names, the repo's own name for
            # events naming none; a repo merely called like the service is not one of it.
            candidates = self.store.repos_of(Keys.service(scope.name))
            return {repo: (lambda key: key.service == scope.name) for repo in sorted(candidates)}
        raise ValueError(f"not a per-repo scope: {scope}")

    def facts(
        self,
        scope: Scope,
        first: date,
        last: date,
        repos: Mapping[str, RepoInfo],
        environment: str | None = None,
    ) -> dict[date, DayFacts]:
        """Day facts of the scope, counting production (None) or one named environment."""
        if scope.kind == "all":
            return self.store.all_facts(first, last, environment)
        totals: dict[date, DayFacts] = defaultdict(DayFacts)
        for repo, belongs in self.members(scope, repos).items():
            for day, items in self.store.repo_facts(repo, first, last).items():
                for key, value in items.items():
                    if key.environment == environment and belongs(key):
                        totals[day].add(value)
        return dict(totals)

    def open_now(
        self, scope: Scope, repos: Mapping[str, RepoInfo], now: datetime, environment: str | None = None
    ) -> int:
        """Failures open now (started within the lookback, not ended), of production or one environment."""
        oldest = now - self.config.lookback
        if scope.kind == "all":
            members: dict[str, Callable[[FactKey], bool]] = {repo: lambda key: True for repo in repos}
        else:
            members = self.members(scope, repos)
        count = 0
        for repo, belongs in members.items():
            info = repos.get(repo)
            if info is not None:
                count += sum(
                    1
                    for failure in info.open
                    if oldest <= failure.start <= now
                    and failure.key.environment == environment
                    and belongs(failure.key)
                )
        return count

    # -- what readers ask for ----------------------------------------------------------------------
    def names(self) -> tuple[list[str], list[str], list[str]]:
        """Every team (the mapping file and events), service and non-production environment named."""
        teams = sorted(set(self.teams.teams()) | set(self.store.names(Keys.TEAMS)))
        return teams, self.store.names(Keys.SERVICES), self.store.names(Keys.ENVIRONMENTS)

    def known(
        self,
        scope: Scope,
        repos: Mapping[str, RepoInfo],
        members: Mapping[str, Callable[[FactKey], bool]] | None = None,
    ) -> bool:
        """Has the scope any stored event (so a 404 can say so, and an empty scope shows no level)?
        ``members``: the scope's, when the caller has them already."""
        if scope.kind == "all":
            return True
        return any(repo in repos for repo in (members if members is not None else self.members(scope, repos)))

    def metrics(
        self,
        scope: Scope,
        days: int,
        *,
        repos: Mapping[str, RepoInfo] | None = None,
        environment: str | None = None,
        previous: bool = True,
    ) -> ScopeMetrics:
        """The scope's metrics over the ``days`` ending today, counting production (None) or one
        named environment, with a daily series and (``previous``) the window before, for trends."""
        now = self._clock()
        window = Window.ending_at(now, days)
        before = window.previous()
        known = repos if repos is not None else self.store.repos()
        first = before.first_day if previous else window.first_day
        facts = self.facts(scope, first, window.last_day, known, environment)
        return ScopeMetrics(
            scope=scope,
            window=window,
            values=summarize(facts, window, open_failures=self.open_now(scope, known, now, environment)),
            previous=summarize(facts, before) if previous else None,
            daily=daily_series(facts, window),
        )


def build_read_model(
    settings: Settings,
    client: Any | None = None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReadModel:
    """The read model over the state table, for the aggregator's emits and the gateway's API."""
    dynamodb = client or boto_client("dynamodb", config=client_config(max_attempts=6))
    return ReadModel(
        MetricsStore(dynamodb, settings.aggregator_state_table),
        teams=TeamMapping(settings.teams_file),
        config=settings.dora_config,
        clock=clock,
    )
