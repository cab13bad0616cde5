"""Where the webhook secret comes from: GITHUB_WEBHOOK_SECRET, or the ``github_webhook_secret`` key of
the gateway's Secrets Manager secret (SECRET_STORE_NAME, the same JSON that holds the bearer token).

The secret is re-read every ``refresh_seconds`` (as ``producer.auth.TokenStore`` does for tokens), and
the value in both the AWSCURRENT and AWSPREVIOUS versions is accepted, so a secret can be rotated in
Secrets Manager first and in GitHub's webhook settings second without refusing deliveries in between.
"""

from __future__ import annotations

import json

from producer.rotating_secret import FetchSecret, RotatingSecret

__all__ = ["SECRET_KEY", "WebhookSecretStore", "parse_webhook_secret"]

SECRET_KEY = "github_webhook_secret"  # noqa: S105 - the JSON key's name, not a secret


def parse_webhook_secret(secret_string: str) -> str | None:
    """The webhook secret held by one secret version, if any (a bare-string secret holds none)."""
    text = secret_string.strip()
    if not text.startswith("{"):
        return None
    value = json.loads(text).get(SECRET_KEY)
    return value if isinstance(value, str) and value else None


class WebhookSecretStore(RotatingSecret):
    """The webhook secret(s) a delivery's signature may be made with."""

    def __init__(
        self,
        *,
        static_secret: str | None = None,
        secret_id: str | None = None,
        fetch_secret: FetchSecret | None = None,
        refresh_seconds: float = 60.0,
    ) -> None:
        super().__init__(
            what="github webhook secret",
            parse=lambda text: [value] if (value := parse_webhook_secret(text)) else [],
            static_value=static_secret,
            secret_id=secret_id,
            fetch_secret=fetch_secret,
            refresh_seconds=refresh_seconds,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.values

    @property
    def configured(self) -> bool:
        return bool(self.values)
