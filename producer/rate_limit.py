"""Per-token rate limit: one token bucket per bearer token, keyed by a hash of the token.

The key is a truncated SHA-256 of the token, so neither the limiter nor its logs ever hold a
secret. Buckets exist only for tokens that passed authentication, so their number is bounded by
the number of valid tokens (at most current + previous during a rotation).
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "token_key"]


@functools.lru_cache(maxsize=16)  # only valid tokens get here, so this holds the few we accept
def token_key(token: str) -> str:
    """A stable, non-reversible name for a token, safe to keep in memory and to log."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets refilled at ``rate`` per second up to ``burst``; ``rate == 0`` turns it off."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: int = 1, *, charged: int = 0) -> float:
        """Charge ``cost`` events to ``key``; 0.0 when allowed, else seconds until it would be.

        ``charged`` events of the same request were taken already (authentication takes one): a
        request above the burst is charged as the burst in all, so a maximal batch can always pass
        once the bucket is full. Nothing is charged when the answer is "wait".
        """
        if not self.enabled or cost <= 0:
            return 0.0
        cost = max(0, min(cost, self.burst - charged))
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """Retry-After wants whole seconds; never advertise 0 for a refusal."""
        return str(max(1, math.ceil(wait)))
