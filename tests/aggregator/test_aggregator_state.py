"""The DynamoDB state repository against the real moto server: exactly once, restarts, windows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from aggregator.metrics import Window, WindowTotals
from aggregator.state import StateRepository
from tests.aggregator.helpers import NOW, make_event

HOUR = 3600.0
DAY = 86400.0


def totals(state: StateRepository, scope: str, days: int = 30) -> WindowTotals:
    window = Window.ending_at(NOW, days)
    return WindowTotals.of(state.buckets(scope, window), window)


def test_redelivered_records_are_counted_once(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    batch = [make_event("deploy", ago=timedelta(days=d)) for d in (0, 1, 2)]
    state.apply(batch)
    state.apply(batch)  # the same records again, as after a lost checkpoint
    state.apply(batch[1:])  # or part of them, with different batch boundaries
    assert totals(state, "demo").deploys == 3
    assert totals(state, "ALL").deploys == 3
    # Duplicates inside one batch count once too.
    again = make_event("deploy")
    state.apply([again, again])
    assert totals(state, "demo").deploys == 4


def test_a_restarted_aggregator_keeps_its_state(new_state: Callable[..., StateRepository]) -> None:
    before = new_state()
    batch = [make_event("deploy", ago=timedelta(hours=h)) for h in (1, 2)]
    before.apply(batch)
    after = new_state()  # a new process: nothing carried over but the table
    after.apply(batch)  # redelivered after the restart
    after.apply([make_event("deploy")])
    assert totals(after, "demo").deploys == 3


def test_two_tasks_racing_on_the_same_records_count_them_once(
    new_state: Callable[..., StateRepository],
) -> None:
    """Lease handover: two workers process the same batch at the same time."""
    batch = [make_event("deploy", repo=f"r{i % 3}", ago=timedelta(minutes=i)) for i in range(60)]
    states = [new_state(), new_state()]
    threads = [threading.Thread(target=s.apply, args=(batch,)) for s in states]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert totals(states[0], "ALL").deploys == 60
    assert sum(totals(states[0], f"r{i}").deploys for i in range(3)) == 60


def test_window_edges_and_late_events(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    first_day = NOW.replace(hour=0, minute=0) - timedelta(days=29)
    inside = make_event("deploy", at=first_day)  # first instant of the window's first day
    outside = make_event("deploy", at=first_day - timedelta(seconds=1))
    late = make_event("deploy", ago=timedelta(days=20))  # arrives now, belongs 20 days back
    result = state.apply([inside, outside, late])
    assert (result.counted, result.too_old) == (2, 1)
    assert result.too_old_event_ids == [outside.event_id]
    assert state.too_old_total() == 1
    assert totals(state, "demo").deploys == 2
    # The late event sits in its own day's bucket: a 10-day window does not see it.
    assert totals(state, "demo", days=10).deploys == 0


def test_lead_time_from_sha_matched_push_and_deploy(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    state.apply(
        [
            make_event("push", sha="aaaaaaa1", ago=timedelta(hours=5)),
            make_event("push", sha="aaaaaaa1", ago=timedelta(hours=3)),  # later push of same sha
            make_event("push", sha="bbbbbbb2", ago=timedelta(hours=2)),
            make_event("push", sha="ccccccc3", repo="other", ago=timedelta(hours=9)),
        ]
    )
    state.apply(
        [
            make_event("deploy", sha="aaaaaaa1", ago=timedelta(hours=1)),  # 4 h after earliest push
            make_event("deploy", sha="ccccccc3", ago=timedelta(hours=1)),  # sha pushed to another repo
            make_event("deploy"),  # no sha: counts as a deploy, not for lead time
            # push and deploy in one batch:
            make_event("push", sha="ddddddd4", ago=timedelta(hours=2)),
            make_event("deploy", sha="ddddddd4"),
        ]
    )
    state.apply([make_event("deploy", sha="bbbbbbb2")])  # 2 h
    result = totals(state, "demo")
    assert result.deploys == 5
    assert sorted(result.lead_seconds) == [2 * HOUR, 2 * HOUR, 4 * HOUR]


def test_change_failures_and_recovery_time(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    state.apply([make_event("deploy", ago=timedelta(days=3)) for _ in range(4)])
    state.apply([make_event("deploy_failed", ago=timedelta(days=2))])
    restore = make_event("service_restored", ago=timedelta(days=2) - timedelta(minutes=30))
    state.apply([restore])
    state.apply([restore])  # redelivered: closes nothing twice
    # A failure and its restore in one batch, and a failure still open.
    state.apply(
        [
            make_event("deploy_failed", ago=timedelta(hours=5)),
            make_event("service_restored", ago=timedelta(hours=3)),
            make_event("deploy_failed", ago=timedelta(hours=1)),
        ]
    )
    result = totals(state, "demo")
    assert (result.deploys, result.failures) == (4, 3)
    assert sorted(result.recovery_seconds) == [1800.0, 2 * HOUR]
    # The open failure is closed by the next restore.
    state.apply([make_event("service_restored")])
    assert sorted(totals(state, "demo").recovery_seconds) == [1800.0, HOUR, 2 * HOUR]


def test_all_aggregates_every_repo(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    state.apply(
        [
            make_event("deploy", repo="a"),
            make_event("deploy", repo="a"),
            make_event("deploy", repo="b"),
            make_event("deploy_failed", repo="b"),
            make_event("deploy", repo="ALL"),  # an event about no one repo counts once, in ALL
        ]
    )
    assert totals(state, "a").deploys == 2
    assert (totals(state, "b").deploys, totals(state, "b").failures) == (1, 1)
    assert (totals(state, "ALL").deploys, totals(state, "ALL").failures) == (4, 1)
    assert set(state.known_repos()) == {"a", "b", "ALL"}


def test_calc_and_test_pass_events_are_not_counted(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    result = state.apply([make_event("calc_deployment_freq"), make_event("test_pass"), make_event("push")])
    assert (result.counted, result.ignored, result.writes) == (0, 3, 0)
    assert totals(state, "demo").deploys == 0


def test_a_batch_becomes_one_write_per_scope_and_day(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    batch = [make_event("deploy", repo=f"r{i % 7}", ago=timedelta(seconds=i)) for i in range(450)]
    result = state.apply(batch)
    assert result.counted == 450
    # 7 repo buckets + 8 ALL shards (all today) + 1 BatchWriteItem registering the 7 repos.
    assert result.writes == 7 + 8 + 1
    assert totals(state, "ALL").deploys == 450
    assert totals(state, "r0").deploys == 65


def test_an_earlier_push_arriving_late_still_wins(new_state: Callable[..., StateRepository]) -> None:
    state = new_state()
    state.apply([make_event("push", sha="eeeeeee5", ago=timedelta(hours=3))])
    state.apply([make_event("push", sha="eeeeeee5", ago=timedelta(hours=5))])  # late, but earlier
    state.apply([make_event("push", sha="eeeeeee5", ago=timedelta(hours=4))])  # not the earliest
    state.apply([make_event("deploy", sha="eeeeeee5")])
    assert totals(state, "demo").lead_seconds == [5 * HOUR]


def test_a_push_arriving_after_its_deploy_still_gives_the_lead_time(
    new_state: Callable[..., StateRepository],
) -> None:
    state = new_state()
    deploy = make_event("deploy", sha="fffffff6", ago=timedelta(hours=1))
    first = state.apply([deploy])
    assert first.late_lead_samples == 0
    assert totals(state, "demo").lead_seconds == []  # no push seen yet
    push = make_event("push", sha="fffffff6", ago=timedelta(hours=4))
    late = state.apply([push])  # out of order: the push of the deployed commit comes last
    assert late.late_lead_samples == 1
    assert late.lead_pushes == {"demo": push.event_id}
    assert totals(state, "demo").lead_seconds == [3 * HOUR]
    assert totals(state, "ALL").lead_seconds == [3 * HOUR]
    assert totals(state, "demo").deploys == 1  # the late push counts no deploy
    # Redelivery of either record changes nothing.
    state.apply([push])
    state.apply([deploy])
    assert totals(state, "demo").lead_seconds == [3 * HOUR]
    # A push of the sha after the deploy (e.g. to another branch) re-derives the same sample.
    assert state.apply([make_event("push", sha="fffffff6", ago=timedelta(minutes=5))]).late_lead_samples == 1
    assert totals(state, "demo").lead_seconds == [3 * HOUR]


def test_an_earlier_push_arriving_after_the_deploy_replaces_the_sample(
    new_state: Callable[..., StateRepository],
) -> None:
    state = new_state()
    state.apply([make_event("push", sha="1111111a", ago=timedelta(hours=2))])
    state.apply([make_event("deploy", sha="1111111a", ago=timedelta(hours=1))])
    assert totals(state, "demo").lead_seconds == [1 * HOUR]
    state.apply([make_event("push", sha="1111111a", ago=timedelta(hours=6))])  # the first push, late
    assert totals(state, "demo").lead_seconds == [5 * HOUR]
    # Every deploy of the sha is matched (a redeploy, and one in another repo is not).
    state.apply([make_event("deploy", sha="1111111a", ago=timedelta(minutes=30))])
    state.apply([make_event("deploy", sha="1111111a", repo="other", ago=timedelta(minutes=30))])
    assert sorted(totals(state, "demo").lead_seconds) == [5 * HOUR, 5.5 * HOUR]
    assert totals(state, "other").lead_seconds == []


def test_a_late_push_ignores_deploys_older_than_the_window(new_state: Callable[..., StateRepository]) -> None:
    thirty_days = new_state(window_days=30)
    thirty_days.apply([make_event("push", sha="2222222b", ago=timedelta(days=10))])
    thirty_days.apply([make_event("deploy", sha="2222222b", ago=timedelta(days=9))])
    seven_days = new_state(window_days=7)  # the deploy is outside this window
    result = seven_days.apply([make_event("push", sha="2222222b", ago=timedelta(hours=1))])
    assert result.late_lead_samples == 0
    assert result.lead_pushes == {}


def test_a_sample_recorded_twice_for_one_deploy_counts_once() -> None:
    from aggregator.state import _samples

    # Two values for one deploy: the one measured from the earlier push (the larger) wins.
    assert _samples({"d1=7200.0", "d1=3600.0", "d2=60.0"}) == [60.0, 7200.0]
