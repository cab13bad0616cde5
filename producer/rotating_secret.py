"""Values held by a Secrets Manager secret that rotates: the one place that reads, re-reads and
keeps them, for both the bearer tokens and the GitHub webhook secret.

Both the AWSCURRENT and the AWSPREVIOUS version are read, so a rotation rolls out without refusing
clients (or GitHub deliveries) that still use the previous value. The secret is re-read every
``refresh_seconds``; when it cannot be read the last values are kept and ``last_error`` says why.
A fixed value from the environment replaces all of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["FetchSecret", "RotatingSecret", "SharedSecretReads"]

logger = logging.getLogger(__name__)

FetchSecret = Callable[..., Awaitable[dict[str, Any]]]


class SharedSecretReads:
    """One GetSecretValue per secret version and ``ttl_seconds`` for any number of readers.

    The token store and the webhook secret store read the same secret on the same schedule; without
    this each refresh costs two identical calls. Reads within ``ttl_seconds`` of a call share its
    outcome, value or error (far shorter than any refresh period, so a rotation is seen as soon).
    """

    def __init__(
        self, fetch: FetchSecret, *, ttl_seconds: float = 5.0, clock: Callable[[], float] | None = None
    ) -> None:
        """``clock``: monotonic seconds (default: the running loop's time)."""
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._reads: dict[tuple[str, str], tuple[float, asyncio.Task[dict[str, Any]]]] = {}
        self.calls = 0  # GetSecretValue calls made
        self.reads = 0  # reads answered

    async def __call__(self, *, SecretId: str, VersionStage: str) -> dict[str, Any]:  # boto's names
        self.reads += 1
        key = (SecretId, VersionStage)
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        cached = self._reads.get(key)
        if cached is None or now - cached[0] > self._ttl:
            self.calls += 1
            task = asyncio.ensure_future(self._fetch(SecretId=SecretId, VersionStage=VersionStage))
            cached = self._reads[key] = (now, task)
        return await asyncio.shield(cached[1])  # a reader cancelled on shutdown leaves the call to others

    async def close(self) -> None:
        """Cancel a call still in flight (before its client closes) and wait for it."""
        tasks = [task for _, task in self._reads.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reads.clear()


class RotatingSecret:
    def __init__(
        self,
        *,
        what: str,
        parse: Callable[[str], list[str]],
        static_value: str | None = None,
        secret_id: str | None = None,
        fetch_secret: FetchSecret | None = None,
        refresh_seconds: float = 60.0,
    ) -> None:
        """``parse`` turns one version's SecretString into the values it holds (maybe none)."""
        self._what = what
        self._parse = parse
        self._values: tuple[str, ...] = (static_value,) if static_value else ()
        self._secret_id = secret_id
        self._fetch = fetch_secret if static_value is None else None
        self._refresh_seconds = refresh_seconds
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def values(self) -> tuple[str, ...]:
        return self._values

    @property
    def source(self) -> str:
        return "secretsmanager" if self._fetch else "environment"

    def _changed(self, values: tuple[str, ...]) -> None:
        """Hook for subclasses that derive state from the values."""

    async def refresh(self) -> None:
        if self._fetch is None:
            return
        found: list[str] = []
        try:
            for stage in ("AWSCURRENT", "AWSPREVIOUS"):
                try:
                    version = await self._fetch(SecretId=self._secret_id, VersionStage=stage)
                except ClientError as error:
                    code = error.response["Error"]["Code"]
                    if stage == "AWSPREVIOUS" and code == "ResourceNotFoundException":
                        break  # never rotated
                    raise
                found += self._parse(version["SecretString"])
        except (ClientError, BotoCoreError, ValueError, KeyError) as error:
            # Keep serving with the values we have; readiness / the route report the problem.
            self.last_error = f"{type(error).__name__}: cannot read secret {self._secret_id}"
            logger.warning(
                f"{self._what} refresh failed", extra={"secret_id": self._secret_id, "error": self.last_error}
            )
            return
        values = tuple(dict.fromkeys(found))
        self.last_error = None
        if values != self._values:
            self._values = values
            self._changed(values)
            logger.info(f"{self._what} loaded", extra={"secret_id": self._secret_id, "versions": len(values)})

    async def start(self) -> None:
        await self.refresh()
        if self._fetch is not None:
            self._task = asyncio.create_task(self._refresh_forever(), name=f"{self._what} refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        # On multiples of the period (of the loop's clock), not period after period: readers with the
        # same period then refresh at the same moments forever, so SharedSecretReads joins them.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._refresh_seconds - loop.time() % self._refresh_seconds)
            await self.refresh()
