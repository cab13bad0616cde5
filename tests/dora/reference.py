"""A second, deliberately simple implementation of the DORA definitions (docs/aggregator.md), written
apart from devops_core.dora: brute-force loops over every event, no indexes, no bisection, no day
facts. The property tests check the real implementation (and the stored, incremental aggregator)
against it on generated histories.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from devops_core.events import DevOpsEvent

DEPLOYS = ("deploy", "deploy_failed")


@dataclass
class Reference:
    deploys: int
    failed_deploys: int
    change_failures: int
    rework: int
    other_deploys: int
    lead: list[float]
    recovery: list[float]
    open_now: int

    def numbers(self) -> dict[str, Any]:
        """What the reference computes, in the terms of ``observed`` below."""
        return {
            "deploys": self.deploys,
            "failed_deploys": self.failed_deploys,
            "change_failures": self.change_failures,
            "rework": self.rework,
            "other_deploys": self.other_deploys,
            "lead_samples": len(self.lead),
            "lead_median": round(statistics.median(self.lead), 6) if self.lead else None,
            "recovery_samples": len(self.recovery),
            "recovery_median": round(statistics.median(self.recovery), 6) if self.recovery else None,
            "open_now": self.open_now,
        }


def observed(result: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The same numbers, read from what summarize() (devops_core.dora) reports."""
    freq, lead, cfr = (
        result["calc_deployment_freq"],
        result["calc_lead_time"],
        result["calc_change_failure_rate"],
    )
    recovery, rework = result["calc_recovery_time"], result["calc_rework_rate"]
    return {
        "deploys": freq["count"],
        "failed_deploys": freq["failed"],
        "change_failures": cfr["failures"],
        "rework": rework["rework"],
        "other_deploys": freq["other_environments"],
        "lead_samples": lead["samples"],
        "lead_median": lead["median_s"],
        "recovery_samples": recovery["samples"],
        "recovery_median": recovery["median_s"],
        "open_now": recovery["open_failures"],
    }


def reference(
    events: list[DevOpsEvent],
    first_day: date,
    last_day: date,
    now: datetime,
    *,
    production: str = r"(?i)^(prod|production|live)$",
    lookback_days: int = 180,
    environment: str | None = None,
) -> Reference:
    """``environment``: count that one environment (normalized name) instead of production."""
    result = Reference(0, 0, 0, 0, 0, [], [], 0)
    first_given: dict[str, DevOpsEvent] = {}
    for e in events:
        if e.event_id not in first_given:
            first_given[e.event_id] = e
    events = list(first_given.values())
    for repo in sorted({e.repo for e in events}):
        mine = [e for e in events if e.repo == repo]
        _one_repo(mine, first_day, last_day, now, production, lookback_days, environment, result)
    return result


def _one_repo(
    events: list[DevOpsEvent],
    first_day: date,
    last_day: date,
    now: datetime,
    production_pattern: str,
    lookback_days: int,
    environment: str | None,
    out: Reference,
) -> None:
    lookback = timedelta(days=lookback_days)
    unique: dict[str, DevOpsEvent] = {}
    for e in events:
        if e.event_id not in unique:
            unique[e.event_id] = e
    events = list(unique.values())

    def env(e: DevOpsEvent) -> str:
        return (e.environment or "production").strip().casefold()

    def named(e: DevOpsEvent) -> bool:
        return e.environment is not None and e.environment.strip() != ""

    def production(e: DevOpsEvent) -> bool:
        return re.search(production_pattern, e.environment or "production") is not None

    def same_place(a: DevOpsEvent, b: DevOpsEvent) -> bool:
        if a.service and b.service and a.service != b.service:
            return False
        if named(a) and named(b):
            return env(a) == env(b)
        if not named(a) and not named(b):
            return True
        return production(a) and production(b)

    def full(sha: str, at: datetime) -> str:
        """A short sha (under 40 digits): the one full sha (40 or 64 digits) starting with it that an
        event reports (sha, before, commits) in the lookback before ``at``."""
        if len(sha) >= 40:
            return sha
        matching = {
            reported
            for e in events
            if at - lookback <= e.time <= at
            for reported in [e.sha, e.before, *[c.sha for c in e.commits or ()]]
            if reported is not None and len(reported) in (40, 64) and reported.startswith(sha)
        }
        return matching.pop() if len(matching) == 1 else sha

    def is_prod(e: DevOpsEvent) -> bool:
        if environment is not None:
            return env(e) == environment
        return re.search(production_pattern, e.environment or "production") is not None

    def failed(e: DevOpsEvent) -> bool:
        return e.event == "deploy_failed" or e.outcome == "failure"

    def day(moment: datetime) -> date:
        return moment.astimezone(UTC).date()

    def in_window(moment: datetime) -> bool:
        return first_day <= day(moment) <= last_day

    def before(a: DevOpsEvent, b: DevOpsEvent) -> bool:
        return (a.time, a.event_id) < (b.time, b.event_id)

    deploys = [e for e in events if e.event in DEPLOYS]
    pushes = [e for e in events if e.event == "push"]

    memo: dict[str, set[str]] = {}

    def ships(d: DevOpsEvent) -> set[str]:
        """Its sha, its commits, the pushes of its sha, and for a successful production deployment the
        pushes reached through ``before`` until a sha an earlier such deployment shipped."""
        if d.event_id in memo:
            return memo[d.event_id]
        shipped = {full(c.sha, d.time) for c in d.commits or ()}
        walk = is_prod(d) and not failed(d)
        if d.sha:
            heads = [full(d.sha, d.time)]
            shipped.add(heads[0])
            redeploy = walk and any(
                before(x, d) and x.time >= d.time - lookback and heads[0] in ships(x) for x in good
            )
            if redeploy:  # its pushes brought nothing the first deployment of this head did not ship
                heads = []
            for head in heads:  # grows while it is read
                for p in pushes:
                    if not (p.sha and full(p.sha, p.time) == head and d.time - lookback <= p.time <= d.time):
                        continue
                    shipped |= {full(c.sha, p.time) for c in p.commits or ()}
                    shipped.add(head)
                    if not (walk and p.before):
                        continue
                    before_sha = full(p.before, p.time)
                    earlier = any(
                        before(x, d) and x.time >= d.time - lookback and before_sha in ships(x) for x in good
                    )
                    if before_sha not in heads and not earlier:
                        heads.append(before_sha)
        memo[d.event_id] = shipped
        return shipped

    def start_of(change: str, d: DevOpsEvent) -> datetime | None:
        starts = []
        for p in pushes:
            if not d.time - lookback <= p.time <= d.time:
                continue
            listed = [c for c in p.commits or () if full(c.sha, p.time) == change]
            for c in listed:
                starts.append(c.time or p.time)
            if p.sha and full(p.sha, p.time) == change and not listed:
                starts.append(p.time)
        for other in deploys:
            if d.time - lookback <= other.time <= d.time:
                for c in other.commits or ():
                    if full(c.sha, other.time) == change and c.time is not None:
                        starts.append(c.time)
        return min(starts) if starts else None

    good = [d for d in deploys if is_prod(d) and not failed(d)]
    # failures: (kind, event, start, end)
    failures = []
    for d in deploys:
        if is_prod(d) and failed(d):
            ends = [
                r.time
                for r in events
                if r.event == "service_restored" and same_place(r, d) and r.time >= d.time
            ]
            ends += [s.time for s in deploys if not failed(s) and same_place(s, d) and s.time > d.time]
            ends = [t for t in ends if t - d.time <= lookback]
            failures.append(("deployment", d, d.time, min(ends) if ends else None))
    incident_ids = sorted({e.incident_id for e in events if e.event == "incident_opened" and e.incident_id})
    for incident in incident_ids:
        opened = sorted(
            (e for e in events if e.event == "incident_opened" and e.incident_id == incident),
            key=lambda e: (e.time, e.event_id),
        )
        first = opened[0]
        if not is_prod(first):
            continue
        ends = [
            r.time
            for r in events
            if r.event == "incident_resolved" and r.incident_id == incident and r.time >= first.time
        ]
        ends += [
            r.time
            for r in events
            if r.event == "service_restored" and same_place(r, first) and r.time >= first.time
        ]
        ends = [t for t in ends if t - first.time <= lookback]
        failures.append(("incident", first, first.time, min(ends) if ends else None))

    def reports_of(incident: str | None) -> list[DevOpsEvent]:
        return sorted(
            (
                e
                for e in events
                if e.event in ("incident_opened", "incident_resolved") and e.incident_id == incident
            ),
            key=lambda e: (e.time, e.event_id),
        )

    def caused(d: DevOpsEvent) -> bool:
        for kind, first, start, _ in failures:
            if kind != "incident":
                continue
            reports = reports_of(first.incident_id)
            deployment_ids = [
                r.deployment_id for r in reports if r.event == "incident_opened" and r.deployment_id
            ]
            shas = [full(r.sha, r.time) for r in reports if r.sha]
            if deployment_ids:
                with_id = [
                    x
                    for x in deploys
                    if is_prod(x)
                    and x.deployment_id == deployment_ids[0]
                    and start - lookback <= x.time <= start
                ]
                if with_id and max(with_id, key=lambda x: (x.time, x.event_id)) is d:
                    return True
            elif shas:
                shipped = [x for x in good if shas[0] in ships(x) and start - lookback <= x.time <= start]
                if shipped and min(shipped, key=lambda x: (x.time, x.event_id)) is d:
                    return True
        return False

    for d in deploys:
        if not in_window(d.time):
            continue
        if not is_prod(d):
            out.other_deploys += environment is None  # counted once, with production
            continue
        out.deploys += 1
        out.failed_deploys += failed(d)
        out.change_failures += failed(d) or caused(d)
        open_then = any(
            same_place(f, d)
            and start < d.time
            and d.time - start <= lookback
            and (end is None or d.time <= end)
            for _, f, start, end in failures
        )
        out.rework += bool(d.remediation) or open_then
        if failed(d):
            continue
        for change in ships(d):
            shipped_earlier = any(
                before(other, d) and other.time >= d.time - lookback and change in ships(other)
                for other in good
            )
            start = start_of(change, d)
            if shipped_earlier or start is None or start > d.time:
                continue
            out.lead.append(round((d.time - start).total_seconds(), 3))
    for _, _, start, end in failures:
        if end is not None and in_window(end):
            out.recovery.append(round((end - start).total_seconds(), 3))
        if start <= now and now - start <= lookback and (end is None or end > now):
            out.open_now += 1
