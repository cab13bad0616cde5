"""The one retry policy: capped exponential backoff with jitter, honouring a server's Retry-After.

Every loop that waits before trying again (a stream batch whose sink is down, entries PutRecords
marked failed, DynamoDB's unprocessed items, a throttled checkpoint, a failing shard poll) takes its
delays from a ``Backoff``, so the shape of every wait in the system is the same and tested once.
Whole-call retries of AWS calls are botocore's own standard retry mode (devops_core.aws); this is for
what botocore cannot see: partial failures inside a successful call and outages longer than its budget.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(n)`` for the n-th consecutive failure (1-based): ``min(cap, base * 2**(n-1))`` times a
    jitter factor in [``jitter``, 1] ("equal jitter": never zero, so a retry storm still spreads out)."""

    base: float = 0.2
    cap: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 300.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        exponent = min(max(failures, 1) - 1, 30)
        delay = min(self.cap, self.base * 2.0**exponent) * random.uniform(self.jitter, 1.0)
        if retry_after is not None:  # the server knows better, within reason
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def delays(self) -> Iterator[float]:
        failures = 0
        while True:
            failures += 1
            yield self.delay(failures)
