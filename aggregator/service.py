"""The aggregator's one job, independent of how records arrive: keep the event log, re-derive the day
facts of every repo a batch touched from its logged events, and emit the DORA metrics of the scopes
whose facts changed (and, periodically, of every scope, so that values decay when deploys stop).

Nothing is counted incrementally: a touched repo's facts are recomputed by the pure function in
devops_core.dora from the log, so arrival order, batch boundaries and redelivery cannot change them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from aggregator.emitter import StreamEmitter
from aggregator.event_log import AppendResult, Conflict, EventLog
from aggregator.facts import FactsWriter
from devops_core.dora.history import daily_facts, derive, environments_of
from devops_core.dora.model import DayFacts, DoraConfig, FactKey, day_of
from devops_core.dora.summary import METRIC_EVENTS
from devops_core.events import MAX_FUTURE_SKEW, MAX_METADATA_BYTES, REPO_ALL, DevOpsEvent, EventType
from devops_core.metrics_read import ReadModel, Scope
from devops_core.metrics_store import MetricsStore, OpenFailure, RepoInfo

__all__ = ["METRIC_EVENTS", "SOURCE", "Aggregator", "HandleOutcome", "metric_event_id"]

logger = logging.getLogger(__name__)

SOURCE = "aggregator"
_ID_NAMESPACE = uuid.UUID("5a0c3d7e-6c1b-4b7e-9a43-2f1d8c6b1a90")


def metric_event_id(metric: EventType, scope: str, cause: str) -> str:
    """Deterministic: the same cause (trigger event or emit period) always yields the same id, so a
    redelivered batch re-emits records the sinks already hold instead of new ones."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{metric.value}|{scope}|{cause}"))


@dataclass
class HandleOutcome:
    appended: AppendResult
    internal_ignored: int = 0
    recomputed_days: int = 0
    changed_days: int = 0
    emitted: int = 0
    emitted_scopes: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Conflict]:
        return self.appended.conflicts


class Aggregator:
    def __init__(
        self,
        store: MetricsStore,
        log: EventLog,
        facts: FactsWriter,
        emitter: StreamEmitter,
        read_model: ReadModel,
        *,
        window_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.log = log
        self._facts = facts
        self._emitter = emitter
        self.read_model = read_model
        self._config: DoraConfig = read_model.config
        self._window_days = window_days
        self._clock = clock
        # Per-repo derivations and per-scope emits of a batch run side by side (I/O bound).
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="aggregator")

    def handle(self, events: Sequence[DevOpsEvent]) -> HandleOutcome:
        """Log the batch (first write wins), re-derive the facts of the repos it touched, emit."""
        internal = sum(1 for e in events if e.event.is_internal)
        appended = self.log.append([e for e in events if not e.event.is_internal])
        outcome = HandleOutcome(appended, internal_ignored=internal)
        for conflict in appended.conflicts:
            logger.warning(
                "event_id conflict: not counted",
                extra={
                    "event_id": conflict.event.event_id,
                    "repo": conflict.event.repo,
                    "reason": conflict.reason,
                },
            )
        if appended.too_old:
            logger.warning(
                "events older than the retention ignored",
                extra={
                    "count": len(appended.too_old),
                    "event_ids": [e.event_id for e in appended.too_old][:20],
                },
            )
        touched: dict[str, list[DevOpsEvent]] = defaultdict(list)
        for event in [*appended.new, *appended.duplicates]:
            touched[event.repo].append(event)
        triggers: dict[str, DevOpsEvent] = {}
        # Repos are independent (pairing never crosses them): re-derived side by side.
        derived = list(
            self._pool.map(
                lambda item: self.recompute(item[0], self._first_affected_day(item[1])),
                sorted(touched.items()),
            )
        )
        for (repo, repo_events), (days, changed) in zip(sorted(touched.items()), derived, strict=True):
            outcome.recomputed_days += days
            outcome.changed_days += changed
            # A duplicate may be the redelivery of a batch whose emit never happened: emit again
            # (same cause, same ids) rather than risk a metric that never reaches the sinks.
            if changed or any(event in appended.duplicates for event in repo_events):
                triggers[repo] = max(repo_events, key=lambda e: (e.received_at, e.event_id))
        if triggers:
            cause_of_all = max(triggers.values(), key=lambda e: (e.received_at, e.event_id))
            scopes = [(repo, cause) for repo, cause in sorted(triggers.items())] + [(REPO_ALL, cause_of_all)]
            repos = self.store.repos()
            per_scope = self._pool.map(
                lambda item: self.metric_events(
                    item[0], cause=f"event:{item[1].event_id}", at=item[1].received_at, repos=repos
                ),
                scopes,
            )
            metric_events = [event for events_of_scope in per_scope for event in events_of_scope]
            self._emitter.emit(metric_events)
            outcome.emitted = len(metric_events)
            outcome.emitted_scopes = [scope for scope, _ in scopes]
        logger.info(
            "batch aggregated",
            extra={
                "records": len(events),
                "new": len(appended.new),
                "duplicates": len(appended.duplicates),
                "conflicts": len(appended.conflicts),
                "too_old": len(appended.too_old),
                "ignored": internal,
                "repos": len(touched),
                "recomputed_days": outcome.recomputed_days,
                "changed_days": outcome.changed_days,
                "emitted": outcome.emitted,
            },
        )
        return outcome

    def _first_affected_day(self, events: Sequence[DevOpsEvent]) -> date:
        """The earliest day whose facts these events can change (docs/aggregator.md, recomputation):
        an event's own day, except an incident report that names its cause (opened or resolved), which
        can make a deployment of the lookback before it a change failure, and a deployment with a
        deployment_id, which can take an incident's cause over from an earlier one of that id (up to a
        lookback before it) and so uncount that one's change failure."""
        days = []
        for event in events:
            day = day_of(event.time)
            if (event.incident_id and (event.sha or event.deployment_id)) or (
                event.is_deploy and event.deployment_id
            ):
                day = day_of(event.time - self._config.lookback)
            days.append(day)
        return min(days)

    def recompute(self, repo: str, first_day: date) -> tuple[int, int]:
        """Re-derive the repo's facts from ``first_day`` on; returns (days derived, days changed)."""
        info = self.store.repo(repo)
        version = info.version if info else 0
        now = self._clock()
        last_day = max(day_of(now + MAX_FUTURE_SKEW), max(info.days) if info and info.days else first_day)
        since = datetime.combine(first_day, datetime.min.time(), UTC) - self._config.lookback
        events = self.store.events(repo, since)
        # Production first, then every other environment the events name, each counted on its own
        # (their facts carry the environment in their key: the dashboard's environment filter).
        histories = [
            derive(events, self._config, target)
            for target in [None, *sorted(environments_of(events, self._config))]
        ]
        derived: dict[date, dict[FactKey, DayFacts]] = {}
        for history in histories:
            for day, items in daily_facts(history, first_day, last_day).items():
                derived.setdefault(day, {}).update(items)
        stored = self.store.repo_facts(repo, first_day, last_day)
        changed = 0
        keys: set[FactKey] = set()
        for day in sorted(set(derived) | set(stored)):
            new: dict[FactKey, DayFacts] = derived.get(day, {})
            keys |= set(new)
            if new != stored.get(day, {}) and self._facts.write_day(repo, day, new, version):
                changed += 1
        self._facts.index(repo, keys)
        still_open = [
            OpenFailure(f.start, history.key(f.event), f.event.event_id)
            for history in histories
            for f in history.failures
            if f.end is None
        ]
        if set(still_open) != set(info.open if info else ()):
            self._facts.write_open_failures(repo, still_open, version)
            changed += 0 if changed else 1  # the open count is part of what readers see
        return (last_day - first_day).days + 1, changed

    def metric_events(
        self, scope: str, *, cause: str, at: datetime, repos: Mapping[str, RepoInfo] | None = None
    ) -> list[DevOpsEvent]:
        """The calc_* events of ``scope`` (a repo or ALL), from the stored facts as they are now."""
        result = self.read_model.metrics(Scope.repo(scope), self._window_days, repos=repos, previous=False)
        now = self._clock()
        return [
            DevOpsEvent(
                event_id=metric_event_id(metric, scope, cause),
                time=at,
                repo=scope,
                event=metric,
                metadata=_metadata(result.values[metric.value]),
                source=SOURCE,
                received_at=now,
            )
            for metric in METRIC_EVENTS
        ]

    def emit_periodic(self, interval_seconds: float, *, claim: bool = True) -> int:
        """Emit for ALL and every repo with events in the window, once per period across all tasks (a
        claim item in the state table); time and ids derive from the period, so even a double emit
        would produce identical records."""
        now = self._clock()
        period = int(now.timestamp() // interval_seconds)
        at = datetime.fromtimestamp(period * interval_seconds, UTC)
        cause = f"period:{interval_seconds:g}:{period}"
        if claim and not self._claim(cause, ttl_seconds=int(interval_seconds) + 86400):
            return 0
        repos = self.store.repos()
        first = day_of(now) - timedelta(days=self._window_days - 1)
        active = [repo for repo, info in repos.items() if info.last_day and info.last_day >= first]
        scopes = sorted({REPO_ALL, *active})
        events = [
            event for scope in scopes for event in self.metric_events(scope, cause=cause, at=at, repos=repos)
        ]
        self._emitter.emit(events)
        logger.info("periodic metrics emitted", extra={"scopes": len(scopes), "emitted": len(events)})
        return len(events)

    def _claim(self, name: str, *, ttl_seconds: int) -> bool:
        return self._facts.claim(name, expires_at=int(self._clock().timestamp()) + ttl_seconds)


def _metadata(values: dict[str, object]) -> str:
    text = json.dumps(values, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_METADATA_BYTES:  # cannot happen with the fixed fields; guard anyway
        raise ValueError(f"metric metadata of {len(text)} bytes exceeds {MAX_METADATA_BYTES}")
    return text
