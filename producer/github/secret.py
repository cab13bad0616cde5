"""Where the webhook secret comes from: GITHUB_WEBHOOK_SECRET, or the ``github_webhook_secret`` key of
the gateway's Secrets Manager secret (SECRET_STORE_NAME, the same JSON that holds the bearer token).

The secret is re-read every ``refresh_seconds`` (as ``producer.auth.TokenStore`` does for tokens), and
the value in both the AWSCURRENT and AWSPREVIOUS versions is accepted, so a secret can be rotated in
Secrets Manager first and in GitHub's webhook settings second without refusing deliveries in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["SECRET_KEY", "WebhookSecretStore", "parse_webhook_secret"]

logger = logging.getLogger(__name__)

SECRET_KEY = "github_webhook_secret"  # noqa: S105 - the JSON key's name, not a secret


def parse_webhook_secret(secret_string: str) -> str | None:
    """The webhook secret held by one secret version, if any (a bare-string secret holds none)."""
    text = secret_string.strip()
    if not text.startswith("{"):
        return None
    value = json.loads(text).get(SECRET_KEY)
    return value if isinstance(value, str) and value else None


class WebhookSecretStore:
    def __init__(
        self,
        *,
        static_secret: str | None = None,
        secret_id: str | None = None,
        fetch_secret: Callable[..., Awaitable[dict[str, Any]]] | None = None,
        refresh_seconds: float = 60.0,
    ) -> None:
        self._secrets: tuple[str, ...] = (static_secret,) if static_secret else ()
        self._secret_id = secret_id
        self._fetch = fetch_secret if static_secret is None else None
        self._refresh_seconds = refresh_seconds
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def source(self) -> str:
        return "secretsmanager" if self._fetch else "environment"

    @property
    def configured(self) -> bool:
        return bool(self._secrets)

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
                        break
                    raise
                if value := parse_webhook_secret(version["SecretString"]):
                    found.append(value)
        except (ClientError, BotoCoreError, ValueError, KeyError) as error:
            # Keep the secrets we have; the route answers 503 while none was ever loaded.
            self.last_error = f"{type(error).__name__}: cannot read secret {self._secret_id}"
            logger.warning(
                "webhook secret refresh failed",
                extra={"secret_id": self._secret_id, "error": self.last_error},
            )
            return
        secrets = tuple(dict.fromkeys(found))
        if secrets != self._secrets:
            logger.info(
                "github webhook secret loaded",
                extra={"secret_id": self._secret_id, "versions": len(secrets), "key": SECRET_KEY},
            )
        self._secrets = secrets
        self.last_error = None

    async def start(self) -> None:
        await self.refresh()
        if self._fetch is not None:
            self._task = asyncio.create_task(self._refresh_forever(), name="webhook-secret-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self.refresh()
