"""Typed keys for what the gateway keeps on its ``web.Application``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devops_core.settings import Settings
from producer.auth import TokenStore
from producer.batcher import KinesisBatcher

__all__ = [
    "BATCHER",
    "HEALTH_CLIENT",
    "KINESIS_CLIENT",
    "METRICS_READER",
    "OPENAPI",
    "READY_CACHE",
    "SETTINGS",
    "TOKENS",
]

SETTINGS = web.AppKey("settings", Settings)
TOKENS = web.AppKey("tokens", TokenStore)
BATCHER = web.AppKey("batcher", KinesisBatcher)
KINESIS_CLIENT = web.AppKey("kinesis_client", Any)
HEALTH_CLIENT = web.AppKey("health_client", Any)
OPENAPI = web.AppKey("openapi", dict)
READY_CACHE = web.AppKey("ready_cache", dict)
METRICS_READER = web.AppKey("metrics_reader", Any)  # producer.metrics_api.MetricsReader (no import cycle)
