"""Bearer tokens: from DEVOPS_EVENTS_SECRET_TOKEN, or from Secrets Manager with rotation (the
AWSCURRENT and AWSPREVIOUS versions are both accepted; see ``producer.rotating_secret``). A secret
value is either the bare token or JSON ``{"token": ..., "previous": ...}``.
"""

from __future__ import annotations

import hmac
import json

from producer.rotating_secret import FetchSecret, RotatingSecret

__all__ = ["TokenStore", "parse_secret_tokens"]


def parse_secret_tokens(secret_string: str) -> list[str]:
    """Tokens held by one secret version (bare string, or JSON with token/current/previous/tokens)."""
    text = secret_string.strip()
    if not text.startswith("{"):
        return [text] if text else []
    data = json.loads(text)
    tokens = [data.get(key) for key in ("token", "current", "previous")]
    tokens += list(data.get("tokens", []))
    return [token for token in tokens if isinstance(token, str) and token]


class TokenStore(RotatingSecret):
    """The bearer tokens the gateway accepts."""

    def __init__(
        self,
        *,
        static_token: str | None = None,
        secret_id: str | None = None,
        fetch_secret: FetchSecret | None = None,
        refresh_seconds: float = 60.0,
    ) -> None:
        super().__init__(
            what="tokens",
            parse=parse_secret_tokens,
            static_value=static_token,
            secret_id=secret_id,
            fetch_secret=fetch_secret,
            refresh_seconds=refresh_seconds,
        )
        self._encoded: tuple[bytes, ...] = tuple(v.encode() for v in self.values)

    def _changed(self, values: tuple[str, ...]) -> None:
        self._encoded = tuple(v.encode() for v in values)

    @property
    def loaded(self) -> bool:
        return bool(self._encoded)

    def is_valid(self, presented: str) -> bool:
        """Constant-time against every accepted token (no early exit on the first mismatch).
        Any string is safe here: one that UTF-8 cannot encode (a lone surrogate) matches no token."""
        candidate = presented.encode("utf-8", "surrogatepass")
        matched = False
        for token in self._encoded:
            matched |= hmac.compare_digest(candidate, token)
        return matched
