"""From one repo's events to its deployments, changes and failures: the DORA definitions, as one pure
function (no I/O, no clock). docs/aggregator.md states every rule with a worked example.

Events are identified by ``event_id`` and ordered by ``(time, event_id)``, so the result never depends
on arrival order, batch boundaries or duplicates. Every pairing looks back at most
``config.lookback`` from the later event of the pair, which is what lets the aggregator recompute a
day from the events of the lookback before it and nothing older.

- A *deployment* is a ``deploy`` or ``deploy_failed`` (outcome failure). Only deployments to a
  production environment count; the others are kept as ``other_deploys``. The same definitions can be
  applied to one other environment (``target``): then its deployments and incidents are the counted
  ones, as if it were production (the dashboard's environment filter).
- A sha shorter than a full one (git's short form, 7+ hex digits) stands for the one full sha that
  starts with it among those the repo's events report within the lookback before it; when none or
  several do, it stays as it is (and matches only itself).
- A deployment *ships* its own ``sha``, the ``commits`` it lists, and the commits (and head) of every
  push of its ``sha`` within the lookback before it; a successful production deployment also ships
  the pushes those pushes built on (``before``), and theirs, back to a head that an earlier one
  shipped (so deploying the last of several pushes ships them all).
- A change's *start* for a deployment is the earliest time known from the reports within the
  lookback before the deployment: a commit's own time, else the time of the push that carried it.
- *Lead time* of a change: from its start to the first successful production deployment (within the
  lookback) that ships it; one sample per change, on the deployment's day. A change whose first
  deployment came before any report of it has no sample (its start is unknown), and later
  deployments of it add none.
- *Same place*: two events pair (a failure and what ends it, a failure and a deployment made while it
  is open) when their environments are the same, or one names none and the other is a production
  environment (an event without an environment is about every production environment of the repo);
  and their services are the same, or one names none (it is about the whole repo).
- A *failure* is a failed production deployment or a production incident. A failed deployment ends
  at the first ``service_restored`` of its place at or after it, or the first successful deployment
  to its place after it; an incident at its ``incident_resolved`` or the first ``service_restored``
  of its place. A failure not ended within the lookback stays open.
- *Recovery time*: a failure's end minus its start, one sample on the day it ended.
- A deployment is a *change failure* if it failed, or if a production incident names it as its cause
  (by ``deployment_id``, or by ``sha``: the first successful deployment that shipped that change).
  An incident's cause is the first ``deployment_id`` its ``incident_opened`` reports name, else the
  first ``sha`` any of its reports (opened or resolved) names: a root cause written down before the
  close counts.
- A deployment is *rework* if it is flagged ``remediation`` (hotfix, rollback) or deploys while a
  failure of its place is open (the deployment that ends a failure is rework).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from devops_core.dora.model import DayFacts, DoraConfig, FactKey, day_of
from devops_core.events import DevOpsEvent, EventType

__all__ = [
    "FULL_SHA_LENGTH",
    "Deployment",
    "Failure",
    "Place",
    "RepoHistory",
    "ShippedChange",
    "daily_facts",
    "derive",
    "environments_of",
    "failures_open_at",
    "sha_resolver",
]


# A full commit id: SHA-1 (40 hex digits) or SHA-256 (64); anything shorter is git's short form.
FULL_SHA_LENGTH = 40
FULL_SHA_LENGTHS = frozenset({40, 64})


@dataclass(frozen=True)
class ShippedChange:
    sha: str
    start: datetime
    lead_s: float


@dataclass(frozen=True)
class Place:
    """Where an event happened, for pairing: its environment (normalized; None when it names none),
    whether that is a production environment, and its service (None: the whole repo)."""

    environment: str | None
    production: bool
    service: str | None

    @classmethod
    def of(cls, event: DevOpsEvent, config: DoraConfig) -> Place:
        named = event.environment is not None and event.environment.strip() != ""
        return cls(
            config.environment(event.environment) if named else None,
            config.is_production(event.environment),
            event.service,
        )

    def meets(self, other: Place) -> bool:
        """Do the two pair? One environment, or an unnamed one and a production one; one service, or
        either names none."""
        if self.service is not None and other.service is not None and self.service != other.service:
            return False
        if self.environment is None or other.environment is None:
            return self.environment == other.environment or (self.production and other.production)
        return self.environment == other.environment


@dataclass
class Deployment:
    event: DevOpsEvent
    place: Place  # where it happened, for pairing (normalized environment, service)
    counted: bool  # in the environment the metrics are about (production, or the target)
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


@dataclass
class Failure:
    kind: Literal["deployment", "incident"]
    event: DevOpsEvent  # the failed deployment, or the incident's first incident_opened
    place: Place
    start: datetime
    end: datetime | None = None

    @property
    def recovery_s(self) -> float | None:
        return None if self.end is None else _seconds(self.end - self.start)


@dataclass
class RepoHistory:
    repo: str
    deployments: list[Deployment]  # every deployment, in (time, event_id) order
    failures: list[Failure]  # failures in the counted environment, by start
    target: str | None = None  # None: production; else the one environment counted

    def key(self, event: DevOpsEvent) -> FactKey:
        return FactKey(event.service or event.repo, event.team, self.target)


def environments_of(events: Iterable[DevOpsEvent], config: DoraConfig) -> set[str]:
    """The non-production environments the events name (each can be a ``target``)."""
    return {
        config.environment(event.environment)
        for event in events
        if event.environment is not None
        and (event.is_deploy or event.incident_id)
        and not config.is_production(event.environment)
    }


def _seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


class _ByPlace:
    """Times of events, grouped by their exact place and sorted: the first one at or after a moment
    whose place meets a given one is a bisection per group (a handful of groups: environments x
    services), not a scan over every event of other places."""

    def __init__(self, items: Iterable[tuple[Place, datetime]]) -> None:
        groups: dict[Place, list[datetime]] = defaultdict(list)
        for place, moment in items:  # in time order: each list comes out sorted
            groups[place].append(moment)
        self._groups = dict(groups)

    def first_meeting(
        self, place: Place, start: datetime, lookback: timedelta, *, strictly_after: bool = False
    ) -> datetime | None:
        found: datetime | None = None
        search = bisect.bisect_right if strictly_after else bisect.bisect_left
        for other, times in self._groups.items():
            if not other.meets(place):
                continue
            index = search(times, start)
            if (
                index < len(times)
                and times[index] - start <= lookback
                and (found is None or times[index] < found)
            ):
                found = times[index]
        return found


def _unique(events: Iterable[DevOpsEvent]) -> list[DevOpsEvent]:
    """One event per event_id (the first given; the caller has excluded conflicts), in (time,
    event_id) order."""
    by_id: dict[str, DevOpsEvent] = {}
    for event in events:
        by_id.setdefault(event.event_id, event)
    return sorted(by_id.values(), key=lambda e: (e.time, e.event_id))


def sha_resolver(events: Sequence[DevOpsEvent], lookback: timedelta) -> Callable[[str, datetime], str]:
    """``resolve(sha, at)``: a short sha stands for the one full sha that starts with it among the
    shas these events report within the lookback before ``at`` (else it stays as it is). Bounded by
    the lookback like every pairing, so a recomputation from the lookback's events finds the same."""
    reported: dict[str, list[datetime]] = defaultdict(list)
    for event in events:  # in time order: each list comes out sorted
        for sha in (event.sha, event.before, *(commit.sha for commit in event.commits or ())):
            if sha is not None and len(sha) in FULL_SHA_LENGTHS:
                reported[sha].append(event.time)
    full = sorted(reported)

    def resolve(sha: str, at: datetime) -> str:
        if len(sha) >= FULL_SHA_LENGTH or not full:
            return sha
        index = bisect.bisect_left(full, sha)
        found: list[str] = []
        while index < len(full) and full[index].startswith(sha) and len(found) < 2:
            times = reported[full[index]]
            first = bisect.bisect_left(times, at - lookback)
            if first < len(times) and times[first] <= at:
                found.append(full[index])
            index += 1
        return found[0] if len(found) == 1 else sha

    return resolve


def derive(events: Iterable[DevOpsEvent], config: DoraConfig, target: str | None = None) -> RepoHistory:
    """Deployments with their changes, change failures and rework; failures with their ends. The
    counted environment is production, or ``target`` (a normalized environment name)."""
    ordered = _unique(events)
    repos = {event.repo for event in ordered}
    if len(repos) > 1:
        raise ValueError(f"derive() takes the events of one repo, not {sorted(repos)}")
    lookback = config.lookback
    resolve = sha_resolver(ordered, lookback)
    deployments = [
        Deployment(
            event=event,
            place=Place.of(event, config),
            counted=config.counts(event.environment, target),
            success=not event.failed,
        )
        for event in ordered
        if event.is_deploy
    ]
    _ship(deployments, ordered, lookback, resolve)
    failures = _failures(deployments, ordered, config, target)
    _attribute_incidents(deployments, failures, ordered, lookback, resolve)
    _mark_rework(deployments, failures, lookback)
    return RepoHistory(next(iter(repos), ""), deployments, failures, target)


def _ship(
    deployments: list[Deployment],
    ordered: list[DevOpsEvent],
    lookback: timedelta,
    resolve: Callable[[str, datetime], str],
) -> None:
    """What each deployment ships, and the lead time of the changes it ships first."""
    # Reports of a change: (reported at, start) from pushes and from deployments' commit lists.
    reports: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    # Per head: (pushed at, the shas the push brought, the head it built on).
    pushes_of_head: dict[str, list[tuple[datetime, frozenset[str], str | None]]] = defaultdict(list)
    for event in ordered:
        if event.event == EventType.PUSH:
            listed = [(resolve(commit.sha, event.time), commit.time) for commit in event.commits or ()]
            shas = {sha for sha, _ in listed}
            for sha, at in listed:
                reports[sha].append((event.time, at or event.time))
            if event.sha:
                head = resolve(event.sha, event.time)
                if head not in shas:
                    reports[head].append((event.time, event.time))
                before = resolve(event.before, event.time) if event.before else None
                pushes_of_head[head].append((event.time, frozenset(shas | {head}), before))
        elif event.is_deploy:
            for commit in event.commits or ():
                if commit.time is not None:
                    reports[resolve(commit.sha, event.time)].append((event.time, commit.time))
    for items in reports.values():
        items.sort()
    report_times = {sha: [at for at, _ in items] for sha, items in reports.items()}
    # Successful counted deployments that shipped each sha, in order (filled as they are walked).
    shippers: dict[str, list[tuple[datetime, str]]] = defaultdict(list)

    def shipped_earlier(sha: str, moment: datetime) -> bool:
        earlier = shippers.get(sha)
        return earlier is not None and len(earlier) > 0 and earlier[-1][0] >= moment - lookback

    def ships(deployment: Deployment, walk: bool) -> frozenset[str]:
        """Its sha and commits, the pushes of its sha, and (``walk``) the pushes they built on, back
        to a head an earlier counted deployment shipped: a deployment of the last of several pushes
        ships them all."""
        event = deployment.event
        moment = event.time
        shipped = {resolve(commit.sha, moment) for commit in event.commits or ()}
        if event.sha:
            head = resolve(event.sha, moment)
            shipped.add(head)
            if walk and shipped_earlier(head, moment):
                # A redeploy or a rollback: what its pushes brought was shipped by the first deployment
                # of this head (or, reported after it, has no known first deployment): nothing new.
                return frozenset(shipped)
            heads, seen = [head], {head}
            while heads:
                for at, shas, before in pushes_of_head.get(heads.pop(), ()):
                    if not moment - lookback <= at <= moment:
                        continue
                    shipped |= shas
                    if walk and before and before not in seen and not shipped_earlier(before, moment):
                        seen.add(before)
                        heads.append(before)
        return frozenset(shipped)

    def start(sha: str, deployment: Deployment) -> datetime | None:
        times = report_times.get(sha)
        if not times:
            return None
        low = bisect.bisect_left(times, deployment.time - lookback)
        high = bisect.bisect_right(times, deployment.time)
        starts = [reports[sha][i][1] for i in range(low, high)]
        return min(starts) if starts else None

    for deployment in deployments:  # in (time, event_id) order
        counted_success = deployment.success and deployment.counted
        deployment.ships = ships(deployment, walk=counted_success)
        if counted_success:
            for sha in deployment.ships:
                shippers[sha].append(deployment.order)
    for deployment in deployments:
        if not (deployment.success and deployment.counted):
            continue
        for sha in sorted(deployment.ships):
            earlier = shippers[sha]
            first = bisect.bisect_left(earlier, (deployment.time - lookback, ""))
            if earlier[first] != deployment.order:  # shipped by an earlier deployment in range
                continue
            began = start(sha, deployment)
            if began is None or began > deployment.time:
                continue
            deployment.changes.append(ShippedChange(sha, began, _seconds(deployment.time - began)))


def _failures(
    deployments: list[Deployment], ordered: list[DevOpsEvent], config: DoraConfig, target: str | None
) -> list[Failure]:
    """Failures in the counted environment, with their ends."""
    lookback = config.lookback
    restores = _ByPlace(
        (Place.of(event, config), event.time)
        for event in ordered
        if event.event == EventType.SERVICE_RESTORED
    )
    successes = _ByPlace((d.place, d.time) for d in deployments if d.success)
    resolved: dict[str, list[datetime]] = defaultdict(list)
    opened: dict[str, DevOpsEvent] = {}
    for event in ordered:  # in time order: the lists come out sorted
        if event.event == EventType.INCIDENT_RESOLVED and event.incident_id:
            resolved[event.incident_id].append(event.time)
        elif event.event == EventType.INCIDENT_OPENED and event.incident_id:
            opened.setdefault(event.incident_id, event)  # its first report says when it started

    failures: list[Failure] = [
        Failure("deployment", d.event, d.place, d.time) for d in deployments if d.counted and not d.success
    ]
    failures += [
        Failure("incident", event, Place.of(event, config), event.time)
        for event in opened.values()
        if config.counts(event.environment, target)
    ]
    for failure in failures:
        ends = [restores.first_meeting(failure.place, failure.start, lookback)]
        if failure.kind == "deployment":
            ends.append(successes.first_meeting(failure.place, failure.start, lookback, strictly_after=True))
        else:
            times = resolved[str(failure.event.incident_id)]
            index = bisect.bisect_left(times, failure.start)
            if index < len(times) and times[index] - failure.start <= lookback:
                ends.append(times[index])
        found = [end for end in ends if end is not None]
        failure.end = min(found) if found else None
    failures.sort(key=lambda f: (f.start, f.event.event_id))
    return failures


def _attribute_incidents(
    deployments: list[Deployment],
    failures: list[Failure],
    ordered: list[DevOpsEvent],
    lookback: timedelta,
    resolve: Callable[[str, datetime], str],
) -> None:
    """An incident that names its cause makes that production deployment a change failure. The cause
    is the first deployment id its openings name, else the first sha any of its reports names."""
    counted = [d for d in deployments if d.counted]  # in time order
    counted_times = [d.time for d in counted]
    for deployment in counted:
        if not deployment.success:
            deployment.change_failure = True
    named_deployment: dict[str, str] = {}
    named_sha: dict[str, str] = {}
    for event in ordered:
        if event.incident_id is None:
            continue
        if event.event == EventType.INCIDENT_OPENED and event.deployment_id:
            named_deployment.setdefault(event.incident_id, event.deployment_id)
        if event.sha:
            named_sha.setdefault(event.incident_id, resolve(event.sha, event.time))
    for failure in failures:
        if failure.kind != "incident":
            continue
        incident = str(failure.event.incident_id)
        low = bisect.bisect_left(counted_times, failure.start - lookback)
        high = bisect.bisect_right(counted_times, failure.start)
        candidates = counted[low:high]
        cause: Deployment | None = None
        if incident in named_deployment:
            named = [d for d in candidates if d.event.deployment_id == named_deployment[incident]]
            cause = named[-1] if named else None
        elif incident in named_sha:
            shipped = [d for d in candidates if d.success and named_sha[incident] in d.ships]
            cause = shipped[0] if shipped else None
        if cause is not None:
            cause.change_failure = True


def _mark_rework(deployments: list[Deployment], failures: list[Failure], lookback: timedelta) -> None:
    """One sweep in time order. Per exact place, the latest moment until which a failure started so
    far stays open (its end, or its start plus the lookback): a deployment is rework when a place
    that meets its own has a failure started before it and open until at least its time."""
    waiting = iter(failures)  # sorted by start
    upcoming = next(waiting, None)
    open_until: dict[Place, datetime] = {}
    for deployment in deployments:  # in time order
        if not deployment.counted:
            continue
        if deployment.event.remediation:
            deployment.rework = True
            continue
        moment = deployment.time
        while upcoming is not None and upcoming.start < moment:
            until = upcoming.start + lookback
            if upcoming.end is not None:
                until = min(until, upcoming.end)
            known = open_until.get(upcoming.place)
            if known is None or until > known:
                open_until[upcoming.place] = until
            upcoming = next(waiting, None)
        deployment.rework = any(
            until >= moment and place.meets(deployment.place) for place, until in open_until.items()
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
        if not deployment.counted:
            if history.target is None:  # shown once, with the production facts
                facts[day][history.key(deployment.event)].other_deploys += 1
            continue
        item = facts[day][history.key(deployment.event)]
        item.deploys += 1
        item.failed_deploys += 0 if deployment.success else 1
        item.change_failures += 1 if deployment.change_failure else 0
        item.rework += 1 if deployment.rework else 0
        item.lead_s += [change.lead_s for change in deployment.changes]
    for failure in history.failures:
        if failure.end is not None and in_range(day_of(failure.end)):
            key = history.key(failure.event)
            facts[day_of(failure.end)][key].recovery_s.append(_seconds(failure.end - failure.start))
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
