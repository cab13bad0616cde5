"""Bearer tokens: from DEVOPS_EVENTS_SECRET_TOKEN, or from Secrets Manager with rotation.

With Secrets Manager, both the AWSCURRENT and the AWSPREVIOUS version are accepted, so clients
holding the old token keep working while a rotation rolls out; the secret is re-read every
``refresh_seconds``. A secret value is either the bare token or JSON ``{"token": ..., "previous": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["TokenStore", "parse_secret_tokens"]

logger = logging.getLogger(__name__)


def parse_secret_tokens(secret_string: str) -> list[str]:
    """Tokens held by one secret version (bare string, or JSON with token/current/previous/tokens)."""
    text = secret_string.strip()
    if not text.startswith("{"):
        return [text] if text else []
    data = json.loads(text)
    tokens = [data.get(key) for key in ("token", "current", "previous")]
    tokens += list(data.get("tokens", []))
    return [token for token in tokens if isinstance(token, str) and token]


class TokenStore:
    def __init__(
        self,
        *,
        static_token: str | None = None,
        secret_id: str | None = None,
        fetch_secret: Callable[..., Awaitable[dict[str, Any]]] | None = None,
        refresh_seconds: float = 60.0,
    ) -> None:
        self._tokens: tuple[bytes, ...] = (static_token.encode(),) if static_token else ()
        self._secret_id = secret_id
        self._fetch = fetch_secret if static_token is None else None
        self._refresh_seconds = refresh_seconds
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def loaded(self) -> bool:
        return bool(self._tokens)

    @property
    def source(self) -> str:
        return "secretsmanager" if self._fetch else "environment"

    def is_valid(self, presented: str) -> bool:
        """Constant-time against every accepted token (no early exit on the first mismatch)."""
        candidate = presented.encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched

    async def refresh(self) -> None:
        if self._fetch is None:
            return
        tokens: list[str] = []
        try:
            current = await self._fetch(SecretId=self._secret_id, VersionStage="AWSCURRENT")
            tokens += parse_secret_tokens(current["SecretString"])
            try:
                previous = await self._fetch(SecretId=self._secret_id, VersionStage="AWSPREVIOUS")
                tokens += parse_secret_tokens(previous["SecretString"])
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
        except (ClientError, BotoCoreError, ValueError, KeyError) as error:
            # Keep serving with the tokens we have; readiness reports the problem.
            self.last_error = f"{type(error).__name__}: cannot read secret {self._secret_id}"
            logger.warning(
                "token refresh failed", extra={"secret_id": self._secret_id, "error": self.last_error}
            )
            return
        changed = {t.encode() for t in tokens} != set(self._tokens)
        self._tokens = tuple(dict.fromkeys(t.encode() for t in tokens))
        self.last_error = None
        if changed:
            logger.info("tokens loaded", extra={"secret_id": self._secret_id, "count": len(self._tokens)})

    async def start(self) -> None:
        await self.refresh()
        if self._fetch is not None:
            self._task = asyncio.create_task(self._refresh_forever(), name="token-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self.refresh()
