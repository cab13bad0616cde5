"""A realistic, reproducible delivery history for the dashboard's screenshot: several teams and repos,
four months of pushes with their commits, staging and production deployments with outcomes, failed
deployments, rollbacks and hotfixes, incidents naming the deployment that caused them, restores, and a
repo that only ever pushed. The same ``seed`` and ``now`` always give the same events.

Used by tests/dashboard/screenshot.py (the README's picture); the browser test uses a small history it
can check by hand instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["PROFILES", "Profile", "realistic_history"]


@dataclass(frozen=True)
class Profile:
    repo: str
    team: str
    service: str | None  # None: the repo is the service
    deploys_per_weekday: float  # mean production deployments per working day
    lead_hours: tuple[float, float]  # median lead time at the start and at the end of the history
    failure_rate: float  # share of deployments that fail outright
    incident_rate: float  # share of successful deployments that later cause an incident
    recovery_hours: float  # median time to restore
    staging: bool  # deploys to staging before production


PROFILES = (
    Profile("web-shop", "storefront", "shop", 3.0, (20.0, 5.0), 0.05, 0.02, 1.5, True),
    Profile("checkout-ui", "storefront", "shop", 1.2, (30.0, 16.0), 0.08, 0.03, 3.0, True),
    Profile("payments-api", "payments", None, 0.6, (60.0, 70.0), 0.10, 0.06, 9.0, True),
    Profile("ledger", "payments", None, 0.25, (160.0, 120.0), 0.12, 0.0, 30.0, False),
    Profile("octo-org/api-gateway", "platform", None, 0.9, (12.0, 8.0), 0.03, 0.02, 0.7, True),
    Profile("docs-site", "platform", None, 0.4, (3.0, 3.0), 0.0, 0.0, 1.0, False),
)
PUSH_ONLY = ("design-tokens", "platform")  # a repo that only ever sent pushes: it must still appear


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _lognormal_hours(rng: random.Random, median: float, sigma: float = 0.7) -> timedelta:
    return timedelta(hours=median * math.exp(rng.gauss(0.0, sigma)))


def realistic_history(now: datetime, *, days: int = 120, seed: int = 13) -> list[dict[str, Any]]:
    """The events of ``days`` days ending at ``now`` (none later than ``now``), oldest first."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    latest = now - timedelta(minutes=2)

    def add(at: datetime, **fields: Any) -> None:
        if at <= latest:
            events.append({"time": at.astimezone(UTC).isoformat(), **fields})

    for profile in PROFILES:
        common = {"repo": profile.repo, "team": profile.team}
        if profile.service:
            common["service"] = profile.service
        counter = 0
        for offset in range(days + 1):
            day = start + timedelta(days=offset)
            progress = offset / days
            lead_median = profile.lead_hours[0] + (profile.lead_hours[1] - profile.lead_hours[0]) * progress
            weekday = day.weekday() < 5
            expected = profile.deploys_per_weekday if weekday else profile.deploys_per_weekday * 0.1
            deploys = sum(1 for _ in range(8) if rng.random() < expected / 8)
            for _ in range(deploys):
                counter += 1
                at = day + timedelta(hours=rng.uniform(8.5, 18.0))
                commits = []
                for _ in range(rng.randint(1, 4)):
                    lead = _lognormal_hours(rng, lead_median)
                    commits.append({"sha": _sha(rng), "time": (at - lead).isoformat()})
                commits.sort(key=lambda c: c["time"])
                head = commits[-1]["sha"]
                pushed = datetime.fromisoformat(commits[-1]["time"]) + timedelta(minutes=rng.uniform(1, 20))
                add(min(pushed, at - timedelta(minutes=5)), event="push", sha=head, commits=commits, **common)
                if profile.staging:
                    add(at - timedelta(minutes=40), event="deploy", sha=head, environment="staging", **common)
                deployment_id = f"{profile.repo.replace('/', '-')}-{counter}"
                if rng.random() < profile.failure_rate:
                    add(
                        at, event="deploy", outcome="failure", sha=head, deployment_id=deployment_id, **common
                    )
                    fixed = at + _lognormal_hours(rng, profile.recovery_hours, 0.5)
                    if rng.random() < 0.5:  # rolled back: a remediation deployment ends the failure
                        add(
                            fixed,
                            event="deploy",
                            remediation="rollback",
                            deployment_id=deployment_id + "-rb",
                            **common,
                        )
                    else:
                        add(fixed, event="service_restored", **common)
                    continue
                add(at, event="deploy", sha=head, deployment_id=deployment_id, **common)
                if rng.random() < profile.incident_rate:
                    opened = at + timedelta(hours=rng.uniform(0.5, 6))
                    incident = f"INC-{profile.repo.replace('/', '-')}-{counter}"
                    add(
                        opened,
                        event="incident_opened",
                        incident_id=incident,
                        deployment_id=deployment_id,
                        **common,
                    )
                    resolved = opened + _lognormal_hours(rng, profile.recovery_hours, 0.5)
                    if rng.random() < 0.5:
                        hotfix = _sha(rng)
                        add(resolved - timedelta(minutes=10), event="push", sha=hotfix, **common)
                        add(resolved, event="deploy", remediation="hotfix", sha=hotfix, **common)
                    add(
                        resolved + timedelta(minutes=5),
                        event="incident_resolved",
                        incident_id=incident,
                        **common,
                    )
    repo, team = PUSH_ONLY
    for offset in range(0, days, 3):
        at = start + timedelta(days=offset, hours=rng.uniform(9, 17))
        add(at, repo=repo, team=team, event="push", sha=_sha(rng))
    events.sort(key=lambda e: e["time"])
    return events
