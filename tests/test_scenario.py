"""End to end through `make run` (gateway, stream, aggregator, consumer, Timestream, GET /metrics): a
realistic history sent late, resent, out of order and backfilled gives the numbers a hand calculation
gives, for windows of 7, 30 and 90 days. The calculation is written out beside each number."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import AWS_TEST_ENV, LocalStackProcess, start_local_stack

H = 3600.0
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def at(days_ago: int, hour: int, minute: int = 0) -> str:
    return (TODAY - timedelta(days=days_ago) + timedelta(hours=hour, minutes=minute)).isoformat()


def commit(sha: str, days_ago: int, hour: int) -> dict[str, str]:
    return {"sha": sha, "time": at(days_ago, hour)}


# The history, numbered as in the calculation below. Every event is sent with its own time.
E: dict[int, dict[str, Any]] = {
    # A. 60 days ago (backfilled): a push of two commits, deployed two hours later.
    1: {"event": "push", "time": at(60, 9), "sha": "a0a0a0a",
        "commits": [commit("a0c1c1c", 60, 8), commit("a0a0a0a", 60, 9)]},
    2: {"event": "deploy", "time": at(60, 11), "sha": "a0a0a0a"},
    # B. 20 days ago: three commits, deployed; a failed deployment restored two hours later.
    3: {"event": "push", "time": at(20, 10), "sha": "b3b3b3b",
        "commits": [commit("b1b1b1b", 20, 8), commit("b2b2b2b", 20, 9), commit("b3b3b3b", 20, 10)]},
    4: {"event": "deploy", "time": at(20, 12), "sha": "b3b3b3b"},
    5: {"event": "deploy_failed", "time": at(20, 14), "sha": "c1c1c1c"},
    6: {"event": "service_restored", "time": at(20, 16)},
    # C. 5 days ago: a change deployed, an incident naming it, a hotfix during the incident.
    7: {"event": "push", "time": at(5, 9, 30), "sha": "d1d1d1d", "commits": [commit("d1d1d1d", 5, 9)]},
    8: {"event": "deploy", "time": at(5, 10), "sha": "d1d1d1d", "event_id": "deploy-8"},
    9: {"event": "incident_opened", "time": at(5, 11), "incident_id": "INC-1", "sha": "d1d1d1d"},
    10: {"event": "deploy", "time": at(5, 12), "sha": "e1e1e1e", "remediation": "hotfix"},
    11: {"event": "incident_resolved", "time": at(5, 13), "incident_id": "INC-1"},
    # D. 2 days ago: a failed deployment, its restore sent first, the failure resent after it.
    12: {"event": "deploy_failed", "time": at(2, 10), "event_id": "fail-12"},
    13: {"event": "service_restored", "time": at(2, 12)},
    # E. Yesterday: a staging deploy, then production; the push (3 days old) arrives last.
    14: {"event": "deploy", "time": at(1, 9), "sha": "f1f1f1f", "environment": "staging"},
    15: {"event": "push", "time": at(3, 9), "sha": "f1f1f1f", "commits": [commit("f1f1f1f", 3, 8)]},
    16: {"event": "deploy", "time": at(1, 10), "sha": "f1f1f1f"},
    # F. One event_id for two different events: the first counts, the second is a conflict.
    17: {"event": "deploy", "time": at(1, 14), "event_id": "dup-17"},
    18: {"event": "deploy_failed", "time": at(1, 15), "event_id": "dup-17"},
}  # fmt: skip

# Delivery: batches out of order, a backfill, resends (byte-identical) and the conflict.
DELIVERY = [[16, 14, 17], [13, 8, 9, 10, 11, 7], [12], [15], [3, 4, 5, 6], [8, 12], [1, 2], [18]]

# The calculation (docs/aggregator.md's definitions), per window ending today:
# - 7 days (C, D, E, F): production deploys 8, 10, 12, 16, 17 = 5 (14 is staging: other 1).
#   Failed: 12. Change failures: 12 (failed) and 8 (INC-1 names d1d1d1d, first shipped by 8) = 2.
#   Rework: 10 (hotfix, and INC-1 open from 11:00 to 13:00) = 1.
#   Lead: 8 ships d1d1d1d committed 09:00 -> 1 h; 16 ships f1f1f1f committed 3 days ago 08:00, deployed
#   yesterday 10:00 -> 50 h; 10 and 17 ship nothing known (no push) -> [1 h, 50 h]: median 25.5 h.
#   Recovery: INC-1 11:00 -> 13:00 = 2 h; 12 at 10:00 restored 12:00 = 2 h -> median 2 h.
# - 30 days adds B: deploys 4 and 5 (failed) -> 7, failed 2, change failures 3, rework 1;
#   lead adds 4 h, 3 h, 2 h -> [1, 2, 3, 4, 50] h: median 3 h; recovery adds 5's 2 h.
# - 90 days adds A: deploy 2 -> 8; lead adds 3 h, 2 h -> [1, 2, 2, 3, 3, 4, 50] h: median 3 h.
EXPECTED = {
    7: {"count": 5, "failed": 1, "other": 1, "per_day": round(5 / 7, 6), "level": "high",
        "lead": (2, 25.5 * H, 50 * H), "cfr": (2, 5, 0.4), "rework": (1, 0.2), "recovery": (2, 2 * H)},
    30: {"count": 7, "failed": 2, "other": 1, "per_day": round(7 / 30, 6), "level": "high",
         "lead": (5, 3 * H, 50 * H), "cfr": (3, 7, round(3 / 7, 6)), "rework": (1, round(1 / 7, 6)),
         "recovery": (3, 2 * H)},
    90: {"count": 8, "failed": 2, "other": 1, "per_day": round(8 / 90, 6), "level": "medium",
         "lead": (7, 3 * H, 50 * H), "cfr": (3, 8, 0.375), "rework": (1, 0.125), "recovery": (3, 2 * H)},
}  # fmt: skip


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStackProcess]:
    stack = start_local_stack()
    yield stack
    stack.stop(signal.SIGKILL)


def call(stack: LocalStackProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.gateway}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def observed(metrics: dict[str, Any]) -> dict[str, Any]:
    freq, lead, cfr = metrics["deployment_frequency"], metrics["lead_time"], metrics["change_failure_rate"]
    rework, recovery = metrics["rework_rate"], metrics["recovery_time"]
    return {
        "count": freq["count"],
        "failed": freq["failed"],
        "other": freq["other_environments"],
        "per_day": freq["per_day"],
        "level": freq["level"],
        "lead": (lead["samples"], lead["median_s"], lead["p90_s"]),
        "cfr": (cfr["failures"], cfr["deploys"], cfr["rate"]),
        "rework": (rework["rework"], rework["rate"]),
        "recovery": (recovery["samples"], recovery["median_s"]),
    }


def test_a_late_resent_out_of_order_history_gives_the_hand_calculated_numbers(
    local_stack: LocalStackProcess,
) -> None:
    for batch in DELIVERY:
        events = [{"repo": "shop", "event_id": f"scenario-{n}", **E[n]} for n in batch]
        status, answer = call(local_stack, "POST", "/events", events)
        assert status == 202, answer
    deadline = time.monotonic() + 120
    while True:  # the aggregator works asynchronously; GET /metrics caches for 5 s
        status, body = call(local_stack, "GET", "/metrics/shop?window=90")
        if status == 200 and observed(body) == EXPECTED[90]:
            break
        assert time.monotonic() < deadline, (
            f"not the expected numbers: {observed(body) if status == 200 else body}"
        )
        time.sleep(1)
    for days in (7, 30):
        status, body = call(local_stack, "GET", f"/metrics/shop?window={days}")
        assert status == 200
        assert observed(body) == EXPECTED[days], days
    status, everything = call(local_stack, "GET", "/metrics/ALL?window=30")
    assert observed(everything) == EXPECTED[30]  # one repo: ALL is the same
    status, activity = call(local_stack, "GET", "/deployments/shop?window=7")
    by_id = {row["event_id"]: row for row in activity["deployments"]}
    assert by_id["deploy-8"]["change_failure"]
    assert by_id["deploy-8"]["changes"] == [{"sha": "d1d1d1d", "lead_time_s": 3600.0}]
    assert not by_id["scenario-14"]["counted"]
    assert by_id["dup-17"]["outcome"] == "success"  # the conflicting deploy_failed was not counted


def test_the_aggregator_put_the_same_numbers_back_on_the_stream(
    local_stack: LocalStackProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its calc_* events (window 30, the aggregator's default) carry what GET /metrics says."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_stack.emulator)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    from devstack.inspect import read_stream_events

    latest: dict[str, dict[str, Any]] = {}
    for event in read_stream_events("devops-events"):
        if event.repo == "shop" and event.source == "aggregator":
            latest[event.event.value] = json.loads(event.metadata)
    freq, lead = latest["calc_deployment_freq"], latest["calc_lead_time"]
    cfr, rework = latest["calc_change_failure_rate"], latest["calc_rework_rate"]
    assert (freq["count"], freq["failed"], freq["window_days"]) == (7, 2, 30)
    assert (lead["samples"], lead["median_s"]) == EXPECTED[30]["lead"][:2]
    assert (cfr["failures"], cfr["deploys"]) == EXPECTED[30]["cfr"][:2]
    assert (rework["rework"], rework["rate"]) == EXPECTED[30]["rework"]
    assert latest["calc_recovery_time"]["median_s"] == 2 * H
