"""At most one warning line per kind of refusal per second, whoever causes it.

A client that ignores its 429s, or anyone sending unsigned webhooks, can cause a refusal per request:
one line each wrote 10,417 WARNING lines in 10 s from one anonymous client (a logging bill and an
alarm-noise generator). Each line now stands for the refusals since the previous one (``refused``).
Written here rather than taken from ``logging``: its filters see records, not per-key counts."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """Counts occurrences per key; ``due(key)`` says how many to report now (0: not yet)."""

    def __init__(self, every_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every_seconds
        self._clock = clock
        # key -> (when the last line was written, occurrences since). Keys are fixed kinds of refusal,
        # or a valid token's hash: bounded.
        self._state: dict[str, tuple[float, int]] = {}

    def due(self, key: str) -> int:
        """Count one occurrence of ``key``; the occurrences a log line should report now, else 0."""
        now = self._clock()
        last, pending = self._state.get(key, (float("-inf"), 0))
        pending += 1
        if now - last < self._every:
            self._state[key] = (last, pending)
            return 0
        self._state[key] = (now, 0)
        return pending
