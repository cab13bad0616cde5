"""From one repo's events to its deployments, changes and failures: the DORA definitions, as one pure
function (no I/O, no clock). docs/aggregator.md states every rule with a worked example.

Events are identified by ``event_id`` and ordered by ``(time, event_id)``, so the result never depends
on arrival order, batch boundaries or duplicates. Every pairing looks back at most
``config.lookback`` from the later event of the pair, which is what lets the aggregator recompute a
day from the events of the lookback before it and nothing older.

- A *deployment* is a ``deploy`` or ``deploy_failed`` (outcome failure). Only deployments to a
  production environment count; the others are kept as ``other_deploys``.
- A deployment *ships* its own ``sha``, the ``commits`` it lists, and the commits (and head) of every
  push of its ``sha`` within the lookback before it.
- A change's *start* for a deployment is the earliest time known from the reports within the
  lookback before the deployment: a commit's own time, else the time of the push that carried it.
- *Lead time* of a change: from its start to the first successful production deployment (within the
  lookback) that ships it; one sample per change, on the deployment's day.
- A *failure* is a failed production deployment or a production incident. A failed deployment ends
  at the first ``service_restored`` of its environment at or after it, or the first successful
  deployment to its environment after it; an incident at its ``incident_resolved`` or the first
  ``service_restored`` of its environment. A failure not ended within the lookback stays open.
- *Recovery time*: a failure's end minus its start, one sample on the day it ended.
- A deployment is a *change failure* if it failed, or if a production incident names it as its cause
  (by ``deployment_id``, or by ``sha``: the first successful deployment that shipped that change).
- A deployment is *rework* if it is flagged ``remediation`` (hotfix, rollback) or deploys while a
  failure of its environment is open (the deployment that ends a failure is rework).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from devops_core.dora.model import DayFacts, DoraConfig, FactKey, day_of
from devops_core.events import DevOpsEvent, EventType

__all__ = [
    "Deployment",
    "Failure",
    "RepoHistory",
    "ShippedChange",
    "daily_facts",
    "derive",
    "failures_open_at",
]


@dataclass(frozen=True)
class ShippedChange:
    sha: str
    start: datetime
    lead_s: float


@dataclass
class Deployment:
    event: DevOpsEvent
    environment: str  # normalized (see DoraConfig.environment)
    production: bool
    success: bool
    ships: frozenset[str] = frozenset()
    changes: list[ShippedChange] = field(default_factory=list)  # first shipped here, with lead time
    change_failure: bool = False
    rework: bool = False

    @property
    def time(self) -> datetime:
        return self.event.time

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.event.time, self.event.event_id)

    @property
    def key(self) -> FactKey:
        return _key(self.event)


@dataclass
class Failure:
    kind: Literal["deployment", "incident"]
    event: DevOpsEvent  # the failed deployment, or the incident's first incident_opened
    environment: str
    start: datetime
    end: datetime | None = None

    @property
    def key(self) -> FactKey:
        return _key(self.event)

    @property
    def recovery_s(self) -> float | None:
        return None if self.end is None else _seconds(self.end - self.start)


@dataclass
class RepoHistory:
    repo: str
    deployments: list[Deployment]  # every deployment, in (time, event_id) order
    failures: list[Failure]  # production failures, by start


def _key(event: DevOpsEvent) -> FactKey:
    return FactKey(event.service or event.repo, event.team)


def _seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


def _first_at_or_after(times: Sequence[datetime], moment: datetime) -> datetime | None:
    index = bisect.bisect_left(times, moment)
    return times[index] if index < len(times) else None


def _first_after(times: Sequence[datetime], moment: datetime) -> datetime | None:
    index = bisect.bisect_right(times, moment)
    return times[index] if index < len(times) else None


def _unique(events: Iterable[DevOpsEvent]) -> list[DevOpsEvent]:
    """One event per event_id (the caller has excluded conflicts), in (time, event_id) order."""
    by_id: dict[str, DevOpsEvent] = {}
    for event in events:
        by_id.setdefault(event.event_id, event)
    return sorted(by_id.values(), key=lambda e: (e.time, e.event_id))


def derive(events: Iterable[DevOpsEvent], config: DoraConfig) -> RepoHistory:
    """Deployments with their changes, change failures and rework; failures with their ends."""
    ordered = _unique(events)
    repos = {event.repo for event in ordered}
    if len(repos) > 1:
        raise ValueError(f"derive() takes the events of one repo, not {sorted(repos)}")
    lookback = config.lookback
    deployments = [
        Deployment(
            event=event,
            environment=config.environment(event.environment),
            production=config.is_production(event.environment),
            success=not event.failed,
        )
        for event in ordered
        if event.is_deploy
    ]
    _ship(deployments, ordered, lookback)
    failures = _failures(deployments, ordered, config)
    _attribute_incidents(deployments, failures, lookback)
    _mark_rework(deployments, failures, lookback)
    return RepoHistory(next(iter(repos), ""), deployments, failures)


def _ship(deployments: list[Deployment], ordered: list[DevOpsEvent], lookback: timedelta) -> None:
    """What each deployment ships, and the lead time of the changes it ships first."""
    # Reports of a change: (reported at, start) from pushes and from deployments' commit lists.
    reports: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    pushes_of_head: dict[str, list[tuple[datetime, frozenset[str]]]] = defaultdict(list)
    for event in ordered:
        if event.event == EventType.PUSH:
            shas = {commit.sha for commit in event.commits or ()}
            for commit in event.commits or ():
                reports[commit.sha].append((event.time, commit.time or event.time))
            if event.sha:
                if event.sha not in shas:
                    reports[event.sha].append((event.time, event.time))
                pushes_of_head[event.sha].append((event.time, frozenset(shas | {event.sha})))
        elif event.is_deploy:
            for commit in event.commits or ():
                if commit.time is not None:
                    reports[commit.sha].append((event.time, commit.time))
    for items in reports.values():
        items.sort()
    report_times = {sha: [at for at, _ in items] for sha, items in reports.items()}

    def ships(deployment: Deployment) -> frozenset[str]:
        event = deployment.event
        shipped = {commit.sha for commit in event.commits or ()}
        if event.sha:
            shipped.add(event.sha)
            for at, shas in pushes_of_head.get(event.sha, ()):
                if event.time - lookback <= at <= event.time:
                    shipped |= shas
        return frozenset(shipped)

    def start(sha: str, deployment: Deployment) -> datetime | None:
        times = report_times.get(sha)
        if not times:
            return None
        low = bisect.bisect_left(times, deployment.time - lookback)
        high = bisect.bisect_right(times, deployment.time)
        starts = [reports[sha][i][1] for i in range(low, high)]
        return min(starts) if starts else None

    shippers: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for deployment in deployments:
        deployment.ships = ships(deployment)
        if deployment.success and deployment.production:
            for sha in deployment.ships:
                shippers[sha].append(deployment.order)
    for deployment in deployments:
        if not (deployment.success and deployment.production):
            continue
        for sha in sorted(deployment.ships):
            began = start(sha, deployment)
            if began is None or began > deployment.time:
                continue
            earlier = shippers[sha]
            first = bisect.bisect_left(earlier, (max(began, deployment.time - lookback), ""))
            if earlier[first] != deployment.order:  # shipped by an earlier deployment in range
                continue
            deployment.changes.append(ShippedChange(sha, began, _seconds(deployment.time - began)))


def _failures(deployments: list[Deployment], ordered: list[DevOpsEvent], config: DoraConfig) -> list[Failure]:
    """Production failures with their ends."""
    lookback = config.lookback
    restores: dict[str, list[datetime]] = defaultdict(list)
    successes: dict[str, list[datetime]] = defaultdict(list)
    resolved: dict[str, list[datetime]] = defaultdict(list)
    opened: dict[str, DevOpsEvent] = {}
    for event in ordered:  # in time order: the lists come out sorted
        if event.event == EventType.SERVICE_RESTORED:
            restores[config.environment(event.environment)].append(event.time)
        elif event.event == EventType.INCIDENT_RESOLVED and event.incident_id:
            resolved[event.incident_id].append(event.time)
        elif event.event == EventType.INCIDENT_OPENED and event.incident_id:
            opened.setdefault(event.incident_id, event)  # its first report says when it started
    for deployment in deployments:
        if deployment.success:
            successes[deployment.environment].append(deployment.time)

    failures: list[Failure] = [
        Failure("deployment", d.event, d.environment, d.time)
        for d in deployments
        if d.production and not d.success
    ]
    failures += [
        Failure("incident", event, config.environment(event.environment), event.time)
        for event in opened.values()
        if config.is_production(event.environment)
    ]
    for failure in failures:
        ends = [_first_at_or_after(restores[failure.environment], failure.start)]
        if failure.kind == "deployment":
            ends.append(_first_after(successes[failure.environment], failure.start))
        else:
            ends.append(_first_at_or_after(resolved[str(failure.event.incident_id)], failure.start))
        found = [end for end in ends if end is not None and end - failure.start <= lookback]
        failure.end = min(found) if found else None
    failures.sort(key=lambda f: (f.start, f.event.event_id))
    return failures


def _attribute_incidents(deployments: list[Deployment], failures: list[Failure], lookback: timedelta) -> None:
    """An incident that names its cause makes that production deployment a change failure."""
    production = [d for d in deployments if d.production]
    for deployment in production:
        if not deployment.success:
            deployment.change_failure = True
    for failure in failures:
        if failure.kind != "incident":
            continue
        event = failure.event
        candidates = [d for d in production if failure.start - lookback <= d.time <= failure.start]
        cause: Deployment | None = None
        if event.deployment_id:
            named = [d for d in candidates if d.event.deployment_id == event.deployment_id]
            cause = named[-1] if named else None
        elif event.sha:
            shipped = [d for d in candidates if d.success and event.sha in d.ships]
            cause = shipped[0] if shipped else None
        if cause is not None:
            cause.change_failure = True


def _mark_rework(deployments: list[Deployment], failures: list[Failure], lookback: timedelta) -> None:
    by_environment: dict[str, list[Failure]] = defaultdict(list)
    for failure in failures:
        by_environment[failure.environment].append(failure)
    for deployment in deployments:
        if not deployment.production:
            continue
        if deployment.event.remediation:
            deployment.rework = True
            continue
        deployment.rework = any(
            f.start < deployment.time
            and deployment.time - f.start <= lookback
            and (f.end is None or deployment.time <= f.end)
            for f in by_environment[deployment.environment]
        )


def daily_facts(history: RepoHistory, first_day: date, last_day: date) -> dict[date, dict[FactKey, DayFacts]]:
    """The facts of every day in [first_day, last_day] that has any, per (service, team)."""
    facts: dict[date, dict[FactKey, DayFacts]] = defaultdict(lambda: defaultdict(DayFacts))

    def in_range(day: date) -> bool:
        return first_day <= day <= last_day

    for deployment in history.deployments:
        day = day_of(deployment.time)
        if not in_range(day):
            continue
        item = facts[day][deployment.key]
        if not deployment.production:
            item.other_deploys += 1
            continue
        item.deploys += 1
        item.failed_deploys += 0 if deployment.success else 1
        item.change_failures += 1 if deployment.change_failure else 0
        item.rework += 1 if deployment.rework else 0
        item.lead_s += [change.lead_s for change in deployment.changes]
    for failure in history.failures:
        if failure.end is not None and in_range(day_of(failure.end)):
            facts[day_of(failure.end)][failure.key].recovery_s.append(_seconds(failure.end - failure.start))
    return {day: {key: value.normalized() for key, value in items.items()} for day, items in facts.items()}


def failures_open_at(history: RepoHistory, at: datetime, lookback: timedelta) -> list[Failure]:
    """Production failures started before ``at`` and not ended by then, within the lookback."""
    return [
        failure
        for failure in history.failures
        if failure.start <= at
        and at - failure.start <= lookback
        and (failure.end is None or failure.end > at)
    ]
