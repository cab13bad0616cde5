"""Hypothesis strategies for event histories: few repos, shas, environments and incident ids, and a
coarse time grid, so that ties, redeploys, out-of-order pairs and reopened failures are common."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from devops_core.events import DevOpsEvent

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
# Full 40-digit shas, each also reported in git's short form (its first 7 digits) now and then, and
# one short sha that is the prefix of two full ones (ambiguous: it matches only itself).
FULL_SHAS = [f"{n:07x}" + "ab" * 16 + f"{n:x}" for n in range(1, 7)] + ["0000001" + "cd" * 16 + "1"]
SHAS = [*FULL_SHAS[:6], *[sha[:7] for sha in FULL_SHAS[1:4]], "0000001"]
REPOS = ["svc", "org/api"]
ENVIRONMENTS = [None, None, "production", "Prod", "staging"]
SERVICES = [None, None, None, "api", "web"]
INCIDENTS = ["INC-1", "INC-2"]
DEPLOYMENT_IDS = ["run-1", "run-2", "run-3"]
KINDS = [
    "push",
    "push",
    "deploy",
    "deploy",
    "deploy",
    "deploy_failed",
    "service_restored",
    "incident_opened",
    "incident_resolved",
    "test_pass",
]


def moments() -> st.SearchStrategy[datetime]:
    # Six-hour steps over 120 days (plus a few exact repeats): ties and window edges are frequent.
    return st.integers(min_value=0, max_value=120 * 4).map(lambda n: NOW - timedelta(hours=6 * n))


@st.composite
def events(draw: st.DrawFn, index: int) -> DevOpsEvent:
    kind = draw(st.sampled_from(KINDS))
    at = draw(moments())
    data: dict[str, Any] = {
        "event_id": f"e{index}",
        "time": at,
        "repo": draw(st.sampled_from(REPOS)),
        "event": kind,
        "received_at": NOW,
        "source": "test",
        "service": draw(st.sampled_from(SERVICES)),
    }
    if kind in ("push", "deploy", "deploy_failed"):
        data["sha"] = draw(st.sampled_from(SHAS))
        if draw(st.booleans()):
            commits = draw(st.lists(st.sampled_from(SHAS), max_size=3, unique=True))
            data["commits"] = [{"sha": sha, "time": draw(st.one_of(st.none(), moments()))} for sha in commits]
    if kind == "push" and draw(st.booleans()):
        data["before"] = draw(st.sampled_from(SHAS))  # the head it built on (chains, cycles, short forms)
    if kind in ("deploy", "deploy_failed", "service_restored", "incident_opened", "incident_resolved"):
        data["environment"] = draw(st.sampled_from(ENVIRONMENTS))
    if kind == "deploy":
        data["outcome"] = draw(st.sampled_from(["success", "success", "failure"]))
    if kind == "deploy_failed":
        data["outcome"] = "failure"
    if kind in ("deploy", "deploy_failed"):
        data["remediation"] = draw(st.sampled_from([None, None, None, "hotfix", "rollback"]))
        data["deployment_id"] = draw(st.sampled_from([None, *DEPLOYMENT_IDS]))
    if kind in ("incident_opened", "incident_resolved"):
        data["incident_id"] = draw(st.sampled_from(INCIDENTS))
    if kind == "incident_resolved" and draw(st.booleans()):
        data["sha"] = draw(st.sampled_from(SHAS))  # a root cause written down before the close
    if kind == "incident_opened":
        cause = draw(st.sampled_from(["none", "sha", "deployment"]))
        if cause == "sha":
            data["sha"] = draw(st.sampled_from(SHAS))
        elif cause == "deployment":
            data["deployment_id"] = draw(st.sampled_from(DEPLOYMENT_IDS))
    return DevOpsEvent.model_validate(data)


@st.composite
def histories(draw: st.DrawFn, max_size: int = 40) -> list[DevOpsEvent]:
    size = draw(st.integers(min_value=0, max_value=max_size))
    return [draw(events(index)) for index in range(size)]
