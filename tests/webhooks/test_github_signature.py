"""X-Hub-Signature-256 against the test vector in GitHub's "Validating webhook deliveries"."""

from __future__ import annotations

from producer.github.dedupe import DeliveryCache
from producer.github.secret import parse_webhook_secret
from producer.github.signature import sign, verify

DOC_SECRET = "It's a Secret to Everybody"
DOC_PAYLOAD = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_documented_vector() -> None:
    assert sign(DOC_PAYLOAD, DOC_SECRET) == DOC_SIGNATURE


def test_verify_accepts_any_configured_secret_and_nothing_else() -> None:
    assert verify(DOC_PAYLOAD, DOC_SIGNATURE, [DOC_SECRET])
    assert verify(DOC_PAYLOAD, DOC_SIGNATURE, ["rotated-out", DOC_SECRET])
    assert not verify(DOC_PAYLOAD, DOC_SIGNATURE, ["another secret"])
    assert not verify(DOC_PAYLOAD, DOC_SIGNATURE, [])
    assert not verify(b"Hello, World?", DOC_SIGNATURE, [DOC_SECRET])
    assert not verify(DOC_PAYLOAD, DOC_SIGNATURE.removeprefix("sha256="), [DOC_SECRET])
    assert not verify(DOC_PAYLOAD, "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", [DOC_SECRET])
    assert not verify(DOC_PAYLOAD, "sha256=ünïcode", [DOC_SECRET])


def test_webhook_secret_is_read_from_the_secret_json() -> None:
    assert parse_webhook_secret('{"token": "t", "github_webhook_secret": "w"}') == "w"
    assert parse_webhook_secret('{"token": "t"}') is None
    assert parse_webhook_secret("bare-token") is None
    assert parse_webhook_secret('{"github_webhook_secret": ""}') is None


def test_delivery_cache_is_bounded_and_recency_ordered() -> None:
    cache = DeliveryCache(max_size=2)
    cache.remember("a", ("a:1",))
    cache.remember("b", ("b:1",))
    assert cache.get("a") == ("a:1",)  # touch a: b is now the oldest
    cache.remember("c", ("c:1",))
    assert cache.get("b") is None
    assert cache.get("a") == ("a:1",)
    assert cache.get("c") == ("c:1",)
    assert len(cache) == 2
    disabled = DeliveryCache(max_size=0)
    disabled.remember("a", ("a:1",))
    assert disabled.get("a") is None
