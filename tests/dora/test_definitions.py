"""The definitions on worked examples (the ones docs/aggregator.md shows), and every wrong number
the trustworthy-metrics issue found, each as the case that used to be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devops_core.dora import DoraConfig, Window, derive, metrics
from devops_core.events import DevOpsEvent

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
_ids = iter(range(10**6))


def ev(kind: str, at: datetime, repo: str = "shop", **fields: Any) -> DevOpsEvent:
    return DevOpsEvent.model_validate(
        {
            "event_id": fields.pop("event_id", f"{kind}-{next(_ids)}"),
            "time": at,
            "repo": repo,
            "event": kind,
            "received_at": NOW,
            "source": "test",
            **fields,
        }
    )


def run(events: list[DevOpsEvent], days: int = 30, **config: Any) -> dict[str, dict[str, Any]]:
    return metrics(events, Window.ending_at(NOW, days), DoraConfig(**config), now=NOW)


def commits(*pairs: tuple[str, datetime | None]) -> list[dict[str, Any]]:
    return [{"sha": sha, "time": at} for sha, at in pairs]


# -- lead time ---------------------------------------------------------------------------------------
def test_every_commit_of_a_deployed_push_is_a_change() -> None:
    """3 commits at 09:00, 10:00, 11:00, pushed at 11:00 with head c3, deployed at 13:00: three samples
    of 4 h, 3 h and 2 h (median 3 h). The old aggregator saw one sample of 2 h (push to deploy)."""
    t = NOW - 3 * D
    push = ev(
        "push",
        t.replace(hour=11),
        sha="ccccccc3",
        commits=commits(
            ("ccccccc1", t.replace(hour=9)),
            ("ccccccc2", t.replace(hour=10)),
            ("ccccccc3", t.replace(hour=11)),
        ),
    )
    deploy = ev("deploy", t.replace(hour=13), sha="ccccccc3")
    lead = run([deploy, push])["calc_lead_time"]
    assert (lead["samples"], lead["median_s"], lead["p90_s"]) == (3, 3 * 3600.0, 4 * 3600.0)


def test_a_push_and_a_deploy_at_the_same_instant_give_a_zero_sample_in_any_order() -> None:
    push = ev("push", NOW - H, sha="aaaaaaa1", event_id="z-push")
    deploy = ev("deploy", NOW - H, sha="aaaaaaa1", event_id="a-deploy")  # sorts before the push by id
    for events in ([push, deploy], [deploy, push]):
        lead = run(events)["calc_lead_time"]
        assert (lead["samples"], lead["median_s"]) == (1, 0.0)


def test_a_change_counts_once_at_its_first_production_deployment() -> None:
    """Redeploying a sha, or deploying it to staging first, adds no sample."""
    push = ev("push", NOW - 10 * H, sha="aaaaaaa1")
    staging = ev("deploy", NOW - 9 * H, sha="aaaaaaa1", environment="staging")
    first = ev("deploy", NOW - 8 * H, sha="aaaaaaa1")
    again = ev("deploy", NOW - 2 * H, sha="aaaaaaa1")
    result = run([push, staging, first, again])
    assert result["calc_lead_time"]["samples"] == 1
    assert result["calc_lead_time"]["median_s"] == 2 * 3600.0
    assert result["calc_deployment_freq"]["count"] == 2  # staging is shown, not counted
    assert result["calc_deployment_freq"]["other_environments"] == 1


def test_a_failed_deployment_ships_nothing_the_fix_ships_it() -> None:
    push = ev("push", NOW - 5 * H, sha="aaaaaaa1")
    failed = ev("deploy", NOW - 4 * H, sha="aaaaaaa1", outcome="failure")
    fixed = ev("deploy", NOW - 3 * H, sha="aaaaaaa1")
    lead = run([push, failed, fixed])["calc_lead_time"]
    assert (lead["samples"], lead["median_s"]) == (1, 2 * 3600.0)


def test_a_push_older_than_the_window_still_starts_the_lead_time() -> None:
    """Backfilled history: pushed 40 days ago, deployed today; the old aggregator dropped the push."""
    push = ev("push", NOW - 40 * D, sha="aaaaaaa1")
    deploy = ev("deploy", NOW - H, sha="aaaaaaa1")
    lead = run([push, deploy])["calc_lead_time"]
    assert (lead["samples"], lead["median_s"]) == (1, (40 * 24 - 1) * 3600.0)


def test_windows_of_7_30_and_90_days_see_their_own_history() -> None:
    events = [ev("deploy", NOW - n * D) for n in (0, 5, 20, 60)]
    counts = {days: run(events, days)["calc_deployment_freq"]["count"] for days in (7, 30, 90)}
    assert counts == {7: 2, 30: 3, 90: 4}


# -- change failure rate and recovery -------------------------------------------------------------------
def test_a_failed_deployment_counts_as_a_deployment_and_as_a_failure() -> None:
    """GitHub: one successful and one failed deployment status: rate 0.5, not 1.0."""
    result = run([ev("deploy", NOW - 3 * H), ev("deploy", NOW - 2 * H, outcome="failure")])
    cfr = result["calc_change_failure_rate"]
    assert (cfr["failures"], cfr["deploys"], cfr["rate"]) == (1, 2, 0.5)


def test_a_later_successful_deployment_restores_a_failed_one() -> None:
    """No service_restored needed: webhook-only repos get a recovery time."""
    failed = ev("deploy", NOW - 5 * H, outcome="failure", environment="production")
    fixed = ev("deploy", NOW - 3 * H, environment="production", remediation="hotfix")
    result = run([failed, fixed])
    assert result["calc_recovery_time"]["median_s"] == 2 * 3600.0
    assert result["calc_rework_rate"]["rework"] == 1


def test_a_restore_that_arrives_before_its_failure_still_ends_it() -> None:
    """Paired by event time: failure on day 1 at noon, restore a day later (sent first)."""
    restore = ev("service_restored", NOW - 2 * D)
    failure = ev("deploy_failed", NOW - 3 * D)
    rec = run([restore, failure])["calc_recovery_time"]
    assert (rec["samples"], rec["median_s"], rec["open_failures"]) == (1, 86400.0, 0)


def test_a_failure_resent_after_its_restore_is_one_failure() -> None:
    failure = ev("deploy_failed", NOW - 3 * D, event_id="fail-1")
    restore = ev("service_restored", NOW - 2 * D)
    resent = failure.model_copy(update={"received_at": NOW + H})
    rec = run([failure, restore, resent])["calc_recovery_time"]
    assert (rec["samples"], rec["median_s"]) == (1, 86400.0)


def test_an_incident_names_the_deployment_that_caused_it() -> None:
    """Incidents fail the deployment that first shipped the named change, and recover on resolve."""
    deploy_a = ev("deploy", NOW - 10 * H, sha="aaaaaaa1")
    deploy_b = ev("deploy", NOW - 8 * H, sha="bbbbbbb1")
    opened = ev("incident_opened", NOW - 6 * H, incident_id="INC-7", sha="aaaaaaa1")
    resolved = ev("incident_resolved", NOW - 5 * H, incident_id="INC-7")
    result = run([deploy_a, deploy_b, opened, resolved])
    assert result["calc_change_failure_rate"]["failures"] == 1
    assert result["calc_recovery_time"]["median_s"] == 3600.0
    history = derive([deploy_a, deploy_b, opened, resolved], DoraConfig())
    assert [d.change_failure for d in history.deployments] == [True, False]


def test_an_incident_without_a_cause_counts_for_recovery_not_for_the_rate() -> None:
    result = run([ev("deploy", NOW - 5 * H), ev("incident_opened", NOW - 4 * H, incident_id="X")])
    assert result["calc_change_failure_rate"]["failures"] == 0
    assert result["calc_recovery_time"]["open_failures"] == 1


def test_deploying_while_a_failure_is_open_is_rework() -> None:
    opened = ev("incident_opened", NOW - 6 * H, incident_id="INC-1")
    during = ev("deploy", NOW - 5 * H)
    resolved = ev("incident_resolved", NOW - 4 * H, incident_id="INC-1")
    after = ev("deploy", NOW - 3 * H)
    rework = run([opened, during, resolved, after])["calc_rework_rate"]
    assert (rework["rework"], rework["deploys"], rework["rate"]) == (1, 2, 0.5)


def test_production_is_configurable_and_case_insensitive() -> None:
    events = [ev("deploy", NOW - H, environment="PROD"), ev("deploy", NOW - H, environment="eu-live")]
    assert run(events)["calc_deployment_freq"]["count"] == 1
    assert (
        run(events, production=__import__("re").compile(r"(?i)prod|live"))["calc_deployment_freq"]["count"]
        == 2
    )


def test_no_deployment_no_level() -> None:
    result = run([ev("push", NOW - H, sha="aaaaaaa1")])
    assert result["calc_deployment_freq"]["level"] is None
    assert result["calc_change_failure_rate"]["rate"] is None


# -- found by an independent audit (2026-11-29): each was a wrong number ------------------------------
def test_a_change_deployed_before_any_report_of_it_is_not_counted_again_by_a_later_deployment() -> None:
    """CI reported the deploy of aaaa (10:00) a minute before its push (10:01); a rollback to aaaa at
    14:00 used to credit it a 4 h sample. Its first deployment came before any report: no sample."""
    t = NOW - 2 * D
    events = [
        ev("deploy", t.replace(hour=10), sha="aaaaaaa1"),
        ev("push", t.replace(hour=10, minute=1), sha="aaaaaaa1"),
        ev("push", t.replace(hour=11), sha="bbbbbbb1"),
        ev("deploy", t.replace(hour=12), sha="bbbbbbb1"),
        ev("deploy", t.replace(hour=14), sha="aaaaaaa1", remediation="rollback"),
    ]
    lead = run(events)["calc_lead_time"]
    assert (lead["samples"], lead["median_s"]) == (1, 3600.0)


FULL = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


def test_a_short_sha_stands_for_the_full_sha_it_starts() -> None:
    """'Root cause: 1a2b3c4' names the deployment of the full sha; a deploy reported with
    `git rev-parse --short` ships the push of the full sha."""
    t = NOW - 2 * D
    push = ev("push", t.replace(hour=9), sha=FULL)
    deploy = ev("deploy", t.replace(hour=10), sha=FULL)
    incident = ev("incident_opened", t.replace(hour=11), incident_id="I1", sha=FULL[:7])
    assert run([push, deploy, incident])["calc_change_failure_rate"]["failures"] == 1
    short_deploy = ev("deploy", t.replace(hour=10), sha=FULL[:7])
    lead = run([push, short_deploy])["calc_lead_time"]
    assert (lead["samples"], lead["median_s"]) == (1, 3600.0)


def test_an_ambiguous_short_sha_matches_nothing() -> None:
    t = NOW - 2 * D
    other = FULL[:7] + "f" * 33
    events = [
        ev("push", t.replace(hour=8), sha=FULL),
        ev("push", t.replace(hour=8), sha=other),
        ev("deploy", t.replace(hour=10), sha=FULL),
        ev("incident_opened", t.replace(hour=11), incident_id="I1", sha=FULL[:7]),
    ]
    assert run(events)["calc_change_failure_rate"]["failures"] == 0


def test_failures_of_one_service_pair_with_that_service_only() -> None:
    """A monorepo: svc-a fails at 10:00, svc-b deploys at 10:05, svc-a deploys again at 15:00. svc-a
    recovered at 15:00 (that deploy is rework); svc-b's deploy is neither a restore nor rework."""
    t = NOW - 2 * D
    events = [
        ev("deploy_failed", t.replace(hour=10), repo="mono", sha="1111111a", service="svc-a"),
        ev("deploy", t.replace(hour=10, minute=5), repo="mono", sha="2222222b", service="svc-b"),
        ev("deploy", t.replace(hour=15), repo="mono", sha="1111111c", service="svc-a"),
    ]
    history = derive(events, DoraConfig())
    assert [f.recovery_s for f in history.failures] == [5 * 3600.0]
    assert [d.rework for d in history.deployments] == [False, False, True]


def test_an_event_naming_no_service_is_about_the_whole_repo() -> None:
    t = NOW - 2 * D
    events = [
        ev("deploy_failed", t.replace(hour=10), repo="mono", service="svc-a"),
        ev("service_restored", t.replace(hour=11), repo="mono"),
    ]
    assert run(events)["calc_recovery_time"]["median_s"] == 3600.0


def test_an_event_naming_no_environment_pairs_with_every_production_environment() -> None:
    """A repo whose production environment is called 'prod': a restore from the CI script without
    --environment ends its failed deployment, and an incident from a GitHub issue (no environment)
    makes a deploy to 'prod' rework. Two production environments still never pair with each other."""
    t = NOW - 2 * D
    restored = run(
        [
            ev("deploy_failed", t.replace(hour=10), environment="prod"),
            ev("service_restored", t.replace(hour=11)),
        ]
    )["calc_recovery_time"]
    assert (restored["samples"], restored["median_s"], restored["open_failures"]) == (1, 3600.0, 0)
    rework = run(
        [
            ev("incident_opened", t.replace(hour=10), incident_id="I9"),
            ev("deploy", t.replace(hour=11), environment="prod"),
            ev("incident_resolved", t.replace(hour=12), incident_id="I9"),
        ]
    )["calc_rework_rate"]
    assert (rework["rework"], rework["deploys"]) == (1, 1)
    apart = run(
        [
            ev("deploy_failed", t.replace(hour=10), environment="prod-eu"),
            ev("service_restored", t.replace(hour=11), environment="prod-us"),
        ],
        production=__import__("re").compile(r"^prod"),
    )["calc_recovery_time"]
    assert (apart["samples"], apart["open_failures"]) == (0, 1)


def test_a_root_cause_written_down_before_the_close_counts() -> None:
    """GitHub: the 'Root cause: <sha>' line added while the incident was open reaches us on its
    incident_resolved only."""
    t = NOW - 2 * D
    events = [
        ev("deploy", t.replace(hour=9), sha="aaaaaaa1"),
        ev("deploy", t.replace(hour=10), sha="bbbbbbb1"),
        ev("incident_opened", t.replace(hour=11), incident_id="I3"),
        ev("incident_resolved", t.replace(hour=12), incident_id="I3", sha="aaaaaaa1"),
    ]
    assert [d.change_failure for d in derive(events, DoraConfig()).deployments] == [True, False]


def test_one_event_id_is_one_event_across_repos() -> None:
    """The event log keeps the first event written under an id, whatever repo the second names; the
    pure function agrees (it used to keep one per repo)."""
    first = ev("deploy", NOW - H, sha="aaaaaaa1", event_id="x")
    second = ev("deploy", NOW - H, repo="other", sha="bbbbbbb1", event_id="x")
    assert run([first, second])["calc_deployment_freq"]["count"] == 1


def test_deploying_the_last_of_several_pushes_ships_them_all() -> None:
    """Two merges land (a0, a1 at 08:00 and 09:00, pushed at 09:00; b1 at 11:00, pushed on top of a1),
    then only b1 is deployed at 12:00: three samples (4 h, 3 h, 1 h), not one of 1 h."""
    t = NOW - 2 * D
    events = [
        ev(
            "push",
            t.replace(hour=9),
            sha="aaaaaaa1",
            commits=commits(("aaaaaaa0", t.replace(hour=8)), ("aaaaaaa1", t.replace(hour=9))),
        ),
        ev(
            "push",
            t.replace(hour=11),
            sha="bbbbbbb1",
            before="aaaaaaa1",
            commits=commits(("bbbbbbb1", t.replace(hour=11))),
        ),
        ev("deploy", t.replace(hour=12), sha="bbbbbbb1"),
    ]
    lead = run(events)["calc_lead_time"]
    assert (lead["samples"], lead["median_s"], lead["p90_s"]) == (3, 3 * 3600.0, 4 * 3600.0)


def test_the_walk_stops_at_the_last_deployed_head() -> None:
    """a1 deployed at 10:00; b1 pushed on top of it and deployed at 12:00: b1's deployment ships b1
    only, and a1's change keeps its one sample."""
    t = NOW - 2 * D
    events = [
        ev("push", t.replace(hour=9), sha="aaaaaaa1"),
        ev("deploy", t.replace(hour=10), sha="aaaaaaa1"),
        ev("push", t.replace(hour=11), sha="bbbbbbb1", before="aaaaaaa1"),
        ev("deploy", t.replace(hour=12), sha="bbbbbbb1"),
    ]
    history = derive(events, DoraConfig())
    assert [sorted(d.ships) for d in history.deployments] == [["aaaaaaa1"], ["bbbbbbb1"]]
    assert [[c.lead_s for c in d.changes] for d in history.deployments] == [[3600.0], [3600.0]]


def test_a_redeploy_ships_nothing_new_even_when_the_push_was_reported_after_the_first_deploy() -> None:
    """Deploy of X at 10:00, X's push (commit C of 09:00) reported at 10:01, a rollback to X at 14:00:
    C's first deployment was the 10:00 one, before any report of it: no sample (was: 5 h at 14:00)."""
    t = NOW - 2 * D
    events = [
        ev("deploy", t.replace(hour=10), sha="aaaaaaa9"),
        ev(
            "push",
            t.replace(hour=10, minute=1),
            sha="aaaaaaa9",
            commits=commits(("ccccccc0", t.replace(hour=9)), ("aaaaaaa9", t.replace(hour=10))),
        ),
        ev("deploy", t.replace(hour=14), sha="aaaaaaa9", remediation="rollback"),
    ]
    assert run(events)["calc_lead_time"]["samples"] == 0


def test_a_short_sha_resolves_to_a_full_before() -> None:
    """A push's before reports a full sha too: A is known in full only as a before, and a push of its
    7-digit form, deployed as A, is that deployment's change."""
    t = NOW - 2 * D
    full_a = "a" * 39 + "1"
    events = [
        ev("push", t.replace(hour=8), sha="b" * 40, before=full_a),
        ev("push", t.replace(hour=9), sha=full_a[:7]),
        ev("deploy", t.replace(hour=10), sha=full_a),
    ]
    lead = run(events)["calc_lead_time"]
    assert (lead["samples"], lead["median_s"]) == (1, 3600.0)
