"""Typed keys for what the gateway keeps on its ``web.Application`` (and on each request)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devops_core.settings import Settings
from producer.auth import TokenStore
from producer.batcher import KinesisBatcher
from producer.log_throttle import LogThrottle
from producer.metrics_reader import MetricsReader
from producer.rate_limit import RateLimiter
from producer.readiness import Readiness
from producer.rotating_secret import SharedSecretReads

__all__ = [
    "BATCHER",
    "CALLER",
    "HEALTH_CLIENT",
    "KINESIS_CLIENT",
    "LOG_THROTTLE",
    "METRICS_READER",
    "OPENAPI",
    "RATE_LIMITER",
    "READINESS",
    "SECRET_READS",
    "SETTINGS",
    "TOKENS",
]

SETTINGS = web.AppKey("settings", Settings)
TOKENS = web.AppKey("tokens", TokenStore)
BATCHER = web.AppKey("batcher", KinesisBatcher)
KINESIS_CLIENT: web.AppKey[Any] = web.AppKey("kinesis_client")
HEALTH_CLIENT: web.AppKey[Any] = web.AppKey("health_client")
OPENAPI = web.AppKey("openapi", dict)
READINESS = web.AppKey("readiness", Readiness)
SECRET_READS = web.AppKey("secret_reads", SharedSecretReads)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
LOG_THROTTLE = web.AppKey("log_throttle", LogThrottle)
# Per request: the hash naming the caller's token (never the token itself).
CALLER = web.RequestKey("caller", str)
METRICS_READER = web.AppKey("metrics_reader", MetricsReader)
