"""The one backoff policy: capped exponential growth, jitter that never reaches zero, and a server's
Retry-After honoured (within reason)."""

from __future__ import annotations

from devops_core.retry import Backoff


def test_delays_double_up_to_the_cap() -> None:
    exact = Backoff(base=0.2, cap=3.0, jitter=1.0)
    assert [exact.delay(n) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 3.0, 3.0]
    assert exact.delay(10_000) == 3.0  # no overflow after a long outage


def test_jitter_stays_between_half_and_the_full_delay() -> None:
    jittered = Backoff(base=1.0, cap=100.0, jitter=0.5)
    delays = [jittered.delay(3) for _ in range(500)]
    assert all(2.0 <= delay <= 4.0 for delay in delays)
    assert len(set(delays)) > 100  # spread, so a fleet does not retry in step


def test_retry_after_wins_when_longer_and_is_bounded() -> None:
    policy = Backoff(base=0.2, cap=0.5, jitter=1.0, max_retry_after=300.0)
    assert policy.delay(1, retry_after=0.7) == 0.7
    assert policy.delay(5, retry_after=0.1) == 0.5  # shorter than our own delay: ours
    assert policy.delay(1, retry_after=10_000) == 300.0
