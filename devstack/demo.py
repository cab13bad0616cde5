"""``make demo``: a realistic, deterministic delivery history, sent through the real gateway.

Five repositories of four teams over the last 35 days (the days before today, UTC): pushes with their
commits (each commit with its own time) and the head each moved the branch from (``before``),
deployments with an environment, an outcome and the commits they ship, failed deployments and how each
ended (a restore, a hotfix or a rollback), production incidents opened and resolved (most naming the
deployment that caused them), and staging deployments that the production metrics do not count. Every
repository has its own rhythm, so the dashboard shows every DORA level:

| repository | team | production deploys | what stands out |
|---|---|---|---|
| acme/checkout | payments | several a day | short lead times, rare failures restored in minutes |
| acme/payments-api | payments | about daily | failures fixed by hotfixes, an incident |
| acme/web-frontend | web | a few a week, staging first | rollbacks |
| acme/search | discovery | weekly | long lead times, slow recoveries, incidents |
| acme/data-pipeline | data | none (staging only) | pushes and staging deploys only |

The history is a pure function of ``(seed, days, anchor)``: the same seed on the same UTC day gives the
same events with the same ``event_id``s (``demo-<day>-<seed>-<n>``), so running ``make demo`` twice on a
day sends duplicates the pipeline stores once; on a later day it adds a second history shifted to that
day (``make run ARGS=--clean`` first for a fresh one). ``--seed`` picks another history.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DAYS", "DEFAULT_SEED", "REPOS", "RepoProfile", "build_history", "load_demo", "main"]

DEFAULT_SEED = 7
DEFAULT_DAYS = 35
_BATCH = 500  # POST /events takes 1-500 events
_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class RepoProfile:
    repo: str
    team: str
    service: str
    pushes_per_day: float  # on a weekday; weekends have a fifth of it
    deploys_per_day: float  # production, on a weekday
    failure_rate: float  # of production deployments
    commit_age_hours: tuple[float, float]  # a commit's age when it is pushed
    recovery_minutes: tuple[int, int]  # from a failure to its end
    incident_rate: float  # of successful production deployments that cause an incident
    remediation: str  # how failures end: restore | hotfix | rollback
    staging_first: bool = False
    production: bool = True
    # Days (before today) whose first production deployment fails whatever the dice say, so that every
    # history shows each way a failure ends.
    failures_on: tuple[int, ...] = ()


REPOS: tuple[RepoProfile, ...] = (
    RepoProfile(
        "acme/checkout",
        "payments",
        "checkout",
        pushes_per_day=5.0,
        deploys_per_day=3.5,
        failure_rate=0.04,
        commit_age_hours=(0.2, 6),
        recovery_minutes=(10, 45),
        incident_rate=0.02,
        remediation="restore",
        failures_on=(15,),
    ),
    RepoProfile(
        "acme/payments-api",
        "payments",
        "payments",
        pushes_per_day=2.5,
        deploys_per_day=1.4,
        failure_rate=0.12,
        commit_age_hours=(2, 30),
        recovery_minutes=(40, 300),
        incident_rate=0.08,
        remediation="hotfix",
        failures_on=(20, 6),
    ),
    RepoProfile(
        "acme/web-frontend",
        "web",
        "storefront",
        pushes_per_day=3.0,
        deploys_per_day=0.8,
        failure_rate=0.15,
        commit_age_hours=(4, 60),
        recovery_minutes=(20, 240),
        incident_rate=0.05,
        remediation="rollback",
        staging_first=True,
        failures_on=(12,),
    ),
    RepoProfile(
        "acme/search",
        "discovery",
        "search",
        pushes_per_day=1.2,
        deploys_per_day=0.25,
        failure_rate=0.25,
        commit_age_hours=(24, 240),
        recovery_minutes=(600, 3000),
        incident_rate=0.3,
        remediation="restore",
        failures_on=(25, 9),
    ),
    RepoProfile(
        "acme/data-pipeline",
        "data",
        "etl",
        pushes_per_day=1.5,
        deploys_per_day=0.6,
        failure_rate=0.0,
        commit_age_hours=(1, 48),
        recovery_minutes=(30, 120),
        incident_rate=0.0,
        remediation="restore",
        production=False,
    ),
)


@dataclass
class _Repo:
    profile: RepoProfile
    pending: list[dict[str, str]] = field(default_factory=list)  # pushed, not shipped to production
    staged: list[dict[str, str]] = field(default_factory=list)  # pushed, not shipped to staging
    deployments: int = 0
    live_sha: str | None = None  # what production runs (a rollback goes back to it)
    head: str | None = None  # the branch's head after the last push (the next push's before)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _count(rng: random.Random, mean: float) -> int:
    """A small whole number with the given mean (Poisson by inversion; deterministic per rng)."""
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _times(rng: random.Random, day: datetime, count: int, start_h: float, end_h: float) -> list[datetime]:
    return sorted(day + timedelta(hours=rng.uniform(start_h, end_h)) for _ in range(count))


def build_history(
    *, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS, anchor: datetime
) -> list[dict[str, Any]]:
    """The demo's client events (wire field names), oldest first, for the ``days`` before ``anchor``
    (a UTC midnight): a pure function of its arguments."""
    if anchor.tzinfo is None or anchor != anchor.replace(hour=0, minute=0, second=0, microsecond=0):
        raise ValueError("anchor must be a UTC midnight")
    rng = random.Random(f"devops-metrics-demo/{seed}")
    stamp = anchor.strftime("%Y%m%d")
    events: list[tuple[datetime, dict[str, Any]]] = []

    def add(when: datetime, body: dict[str, Any]) -> None:
        if when < anchor:  # a follow-up that would fall on today or later is left out
            events.append((when, {**body, "time": _iso(when), "source": "demo"}))

    repos = [_Repo(profile) for profile in REPOS]
    incidents = 0
    for offset in range(days, 0, -1):
        day = anchor - timedelta(days=offset)
        weekend = day.weekday() >= 5
        for state in repos:
            p = state.profile
            scope = {"repo": p.repo, "team": p.team, "service": p.service}
            forced = offset in p.failures_on
            pushes = _count(rng, p.pushes_per_day * (0.2 if weekend else 1))
            for pushed in _times(rng, day, max(pushes, int(forced)), 8, 9.5 if forced else 19):
                commits = [
                    {
                        "sha": _sha(rng),
                        "time": _iso(pushed - timedelta(hours=rng.uniform(*p.commit_age_hours))),
                    }
                    for _ in range(rng.randint(1, 4))
                ]
                commits.sort(key=lambda c: c["time"])
                push = {**scope, "event": "push", "sha": commits[-1]["sha"], "commits": commits}
                if state.head is not None:  # the history's first push of a repository has none
                    push["before"] = state.head
                add(pushed, push)
                state.head = commits[-1]["sha"]
                state.pending += commits
                state.staged += commits
            deploys = _count(rng, p.deploys_per_day * (0.1 if weekend else 1))
            for deployed in _times(rng, day, max(deploys, int(forced)), 10, 20):
                shipped = [c for c in state.pending if c["time"] < _iso(deployed)]
                if not shipped:
                    continue
                if p.staging_first or not p.production:
                    staged = [c for c in state.staged if c["time"] < _iso(deployed)]
                    state.deployments += 1
                    at = deployed - timedelta(minutes=30) if p.production else deployed
                    if staged and at > max(datetime.fromisoformat(c["time"]) for c in staged):
                        add(
                            at,
                            {
                                **scope,
                                "event": "deploy",
                                "environment": "staging",
                                "sha": staged[-1]["sha"],
                                "deployment_id": f"{p.service}-stg-{state.deployments}",
                                "commits": staged,
                            },
                        )
                        state.staged = [c for c in state.staged if c not in staged]
                    if not p.production:
                        state.pending.clear()
                        continue
                state.deployments += 1
                deployment_id = f"{p.service}-{state.deployments}"
                head = shipped[-1]["sha"]
                base = {**scope, "environment": "production", "sha": head, "deployment_id": deployment_id}
                fails = rng.random() < p.failure_rate
                was_forced, forced = forced, False
                fails = fails or was_forced
                if fails:
                    # A failed deployment ships nothing; how it ends depends on the team's habits.
                    failed = {**base, "event": "deploy", "outcome": "failure"}
                    if p.remediation == "hotfix" and (was_forced or rng.random() < 0.3):
                        failed = {**base, "event": "deploy_failed"}  # the seed service's name for it
                    add(deployed, failed)
                    ended = deployed + timedelta(minutes=rng.randint(*p.recovery_minutes))
                    if p.remediation == "restore":
                        add(ended, {**scope, "event": "service_restored", "environment": "production"})
                    elif p.remediation == "hotfix":
                        # The fix ships the failed changes plus the fix commit.
                        fix = {"sha": _sha(rng), "time": _iso(ended - timedelta(minutes=5))}
                        state.deployments += 1
                        add(
                            ended,
                            {
                                **scope,
                                "event": "deploy",
                                "environment": "production",
                                "sha": fix["sha"],
                                "deployment_id": f"{p.service}-{state.deployments}",
                                "remediation": "hotfix",
                                "commits": [*shipped, fix],
                            },
                        )
                        state.pending = [c for c in state.pending if c not in shipped]
                        state.live_sha = fix["sha"]
                    else:
                        # Back to what ran before; the failed changes wait for a later deployment.
                        state.deployments += 1
                        add(
                            ended,
                            {
                                **scope,
                                "event": "deploy",
                                "environment": "production",
                                "sha": state.live_sha or shipped[0]["sha"],
                                "remediation": "rollback",
                                "deployment_id": f"{p.service}-{state.deployments}",
                            },
                        )
                    continue
                add(deployed, {**base, "event": "deploy", "outcome": "success", "commits": shipped})
                state.pending = [c for c in state.pending if c not in shipped]
                state.live_sha = head
                if rng.random() < p.incident_rate:
                    incidents += 1
                    incident = f"INC-{stamp}-{incidents}"
                    opened = deployed + timedelta(hours=rng.uniform(0.5, 6))
                    add(
                        opened,
                        {
                            **scope,
                            "event": "incident_opened",
                            "incident_id": incident,
                            "environment": "production",
                            "deployment_id": deployment_id,
                        },
                    )
                    closed = opened + timedelta(minutes=rng.randint(*p.recovery_minutes))
                    if rng.random() < 0.3:  # the service is back before the incident is closed
                        add(
                            closed - timedelta(minutes=5),
                            {**scope, "event": "service_restored", "environment": "production"},
                        )
                    add(
                        closed,
                        {
                            **scope,
                            "event": "incident_resolved",
                            "incident_id": incident,
                            "environment": "production",
                        },
                    )
    events.sort(key=lambda pair: pair[0])
    return [{**body, "event_id": f"demo-{stamp}-{seed}-{n:05d}"} for n, (_, body) in enumerate(events, 1)]


def describe(history: list[dict[str, Any]]) -> str:
    kinds = Counter(e["event"] for e in history)
    production = [
        e
        for e in history
        if e["event"] in ("deploy", "deploy_failed") and e.get("environment") == "production"
    ]
    failed = sum(1 for e in production if e["event"] == "deploy_failed" or e.get("outcome") == "failure")
    remediations = Counter(e["remediation"] for e in production if e.get("remediation"))
    first = min(e["time"] for e in history)[:10] if history else "-"
    last = max(e["time"] for e in history)[:10] if history else "-"
    return (
        f"{len(history)} events from {first} to {last}: {len({e['repo'] for e in history})} repos of "
        f"{len({e['team'] for e in history})} teams, {kinds['push']} pushes "
        f"({sum(len(e['commits']) for e in history if e['event'] == 'push')} commits), {len(production)} "
        f"production deploys ({failed} failed, {remediations['hotfix']} hotfixes, {remediations['rollback']} "
        f"rollbacks), {sum(1 for e in history if e.get('environment') == 'staging')} staging deploys, "
        f"{kinds['incident_opened']} incidents, {kinds['service_restored']} restores"
    )


# --- sending ---------------------------------------------------------------------------------------


class DemoError(RuntimeError):
    pass


def _post(url: str, token: str, batch: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(  # noqa: S310 - the local gateway's URL
        url,
        data=json.dumps(batch).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        return error.code, dict(error.headers), parsed


def _batches(items: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def send(gateway: str, token: str, history: list[dict[str, Any]]) -> int:
    """POST the history to ``/events`` in batches; resend what got 429/503 (honouring Retry-After).
    Returns the number of events accepted (202); raises DemoError on anything else."""
    url = f"{gateway.rstrip('/')}/events"
    accepted = 0
    for batch in _batches(history):
        waiting = batch
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                status, headers, body = _post(url, token, waiting)
            except urllib.error.URLError as error:
                raise DemoError(
                    f"the gateway at {gateway} does not answer ({error.reason}); is make run running?"
                ) from None
            if status in (429, 503):
                time.sleep(float(headers.get("Retry-After", "1")))
                continue
            if status == 401:
                raise DemoError("the gateway refused the token (401): use the token make run printed")
            if status not in (202, 207):
                raise DemoError(f"POST /events answered {status}: {str(body)[:500]}")
            results = body.get("results", []) if isinstance(body, dict) else []
            refused = [r for r in results if r.get("status") == 422]
            if refused:
                raise DemoError(f"the gateway refused demo events: {refused[:3]}")
            retry = {r.get("index") for r in results if r.get("status") == 503}
            accepted += len(waiting) - len(retry)
            waiting = [event for i, event in enumerate(waiting) if i in retry]
            if not waiting:
                break
            time.sleep(min(2.0, 0.2 * attempt))
        else:
            raise DemoError(f"{len(waiting)} events were still not accepted after {_MAX_ATTEMPTS} attempts")
    return accepted


def _production_deploys_since(history: list[dict[str, Any]], since: datetime) -> int:
    return sum(
        1
        for e in history
        if e["event"] in ("deploy", "deploy_failed")
        and e.get("environment") == "production"
        and e["time"] >= _iso(since)
    )


def wait_for_metrics(gateway: str, token: str, expected: int, timeout: float) -> int | None:
    """Poll GET /metrics until ALL counts at least ``expected`` deploys in 30 days (the aggregator has
    caught up); returns the count, or None if it did not within ``timeout``."""
    request = urllib.request.Request(  # noqa: S310
        f"{gateway.rstrip('/')}/metrics?window=30", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + timeout
    count = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                body = json.load(response)
            overall = next((r for r in body.get("repos", []) if r.get("scope") == "all"), {})
            count = overall.get("deployment_frequency", {}).get("count")
        except (urllib.error.URLError, ValueError):
            count = None
        if isinstance(count, int) and count >= expected:
            return count
        time.sleep(1.0)
    return None


def load_demo(
    gateway: str,
    token: str,
    *,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    wait_seconds: float = 120.0,
) -> str:
    """Build the history for today (UTC), send it, wait for the metrics; returns a one-line summary."""
    now = now or datetime.now(UTC)
    anchor = now.replace(hour=0, minute=0, second=0, microsecond=0)
    history = build_history(seed=seed, days=days, anchor=anchor)
    accepted = send(gateway, token, history)
    summary = f"sent {accepted} of {describe(history)}"
    if wait_seconds > 0:
        expected = _production_deploys_since(history, anchor - timedelta(days=29))
        counted = wait_for_metrics(gateway, token, expected, wait_seconds)
        summary += (
            f"; metrics ready (ALL: {counted} production deploys in 30 days)"
            if counted is not None
            else f"; the metrics had not counted the {expected} deploys after {wait_seconds:.0f} s"
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from devops_core.settings import Settings
    from devstack.state import DEFAULT_STATE_DIR, StateDir

    parser = argparse.ArgumentParser(
        prog="make demo ARGS=... (python -m devstack.demo)",
        description="Send a realistic delivery history (5 repos, 4 teams, pushes with commits, deployments "
        "with environments and outcomes, failures, hotfixes, rollbacks, incidents, restores) through the "
        "running gateway's POST /events, then wait until the metrics count it. Deterministic: the same "
        "--seed on the same UTC day sends the same events (same event_ids, stored once).",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="which history (default: %(default)s)")
    parser.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help="days of history before today, 1-365 (default: %(default)s)",
    )
    parser.add_argument(
        "--gateway", help="gateway URL (default: the running make run's, from the state directory)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="make run's state directory, where the running stack and its token are found "
        "(default: .devstack/)",
    )
    parser.add_argument(
        "--print", action="store_true", help="print the events as JSON lines instead of sending them"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait for the aggregator to count the history"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 365:
        parser.error("--days must be between 1 and 365")
    if args.print:
        anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            for event in build_history(seed=args.seed, days=args.days, anchor=anchor):
                print(json.dumps(event, sort_keys=True))
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (| head): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    try:
        settings = Settings()
    except ValidationError as error:
        parser.exit(2, f"{parser.prog}: invalid setting in the environment: {error}\n")
    state = StateDir(args.state_dir)
    stack = state.read_stack()
    gateway = args.gateway or (stack.gateway_url if stack else None)
    if gateway is None:
        parser.exit(
            2, f"{parser.prog}: no running stack on {state.path}: start make run, or pass --gateway URL\n"
        )
    token = (
        settings.devops_events_secret_token.get_secret_value()
        if settings.devops_events_secret_token
        else state.read_token()
    )
    if not token:
        parser.exit(2, f"{parser.prog}: no token: export DEVOPS_EVENTS_SECRET_TOKEN (make run prints it)\n")
    print(f"make demo: sending {args.days} days of history (seed {args.seed}) to {gateway} ...", flush=True)
    try:
        summary = load_demo(
            gateway, token, seed=args.seed, days=args.days, wait_seconds=0 if args.no_wait else 120
        )
    except DemoError as error:
        parser.exit(1, f"{parser.prog}: {error}\n")
    print(f"make demo: {summary}")
    if stack is not None:
        print(f"make demo: open {stack.dashboard_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
