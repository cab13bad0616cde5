"""``GET /readyz``: one check at a time, its answer shared.

The endpoint is public (a load balancer calls it without a token), so it must not let callers
multiply Kinesis control-plane calls: concurrent requests share the check in flight, and its answer
is reused for ``ttl`` seconds. Besides "a token is loaded" and "Kinesis answers for the stream", it
reports the batcher's recent put outcomes: Kinesis may describe the stream while refusing every
record (throughput, KMS, permissions), and a gateway that can write nothing is not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["PUT_FAILURE_WINDOW_SECONDS", "Readiness"]

# A final put failure (a request answered 503) keeps the gateway unready this long unless a later
# record is accepted.
PUT_FAILURE_WINDOW_SECONDS = 30.0

Check = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


class Readiness:
    def __init__(self, check: Check, *, ttl: float = 1.0) -> None:
        self._check = check
        self._ttl = ttl
        self._task: asyncio.Task[tuple[int, dict[str, Any]]] | None = None
        self._done_at = 0.0
        self.checks_run = 0

    async def __call__(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of the check in flight, or of one finished less than ``ttl`` s ago."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or (task.done() and loop.time() - self._done_at >= self._ttl):
            self.checks_run += 1
            task = self._task = loop.create_task(self._run())
        # A caller that disconnects does not cancel the check the others wait for.
        return await asyncio.shield(task)

    async def _run(self) -> tuple[int, dict[str, Any]]:
        try:
            return await self._check()
        finally:
            self._done_at = asyncio.get_running_loop().time()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
