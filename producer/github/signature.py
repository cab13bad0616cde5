"""GitHub's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.

The HMAC is computed over the exact bytes received (never re-serialized JSON) and compared in
constant time. SHA-1 ``X-Hub-Signature`` is legacy and never accepted on its own. ``Verifier``
computes the HMAC while the body streams in, so the route never needs a second pass over it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["LEGACY_SIGNATURE_HEADER", "SIGNATURE_HEADER", "SIGNATURE_PREFIX", "Verifier", "sign", "verify"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"
SIGNATURE_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value GitHub sends for ``body`` (for tests and for replaying deliveries by hand)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


class Verifier:
    """HMAC-SHA256 of a body fed in chunks, under every accepted secret (rotation: current and previous)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._macs = [hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256) for secret in secrets]

    def update(self, chunk: bytes) -> None:
        for mac in self._macs:
            mac.update(chunk)

    def matches(self, header: str) -> bool:
        """True when ``header`` is the signature under any of the secrets (all are compared)."""
        presented = header.strip().encode("ascii", errors="replace")
        matched = False
        for mac in self._macs:
            expected = (SIGNATURE_PREFIX + mac.hexdigest()).encode("ascii")
            matched |= hmac.compare_digest(presented, expected)
        return matched


def verify(body: bytes, header: str, secrets: Iterable[str]) -> bool:
    """True when ``header`` is the signature of ``body`` under any of ``secrets`` (all are compared)."""
    verifier = Verifier(secrets)
    verifier.update(body)
    return verifier.matches(header)
