"""GitHub as an event source: signed webhook deliveries mapped to DevOps events (docs/github-webhooks.md)."""

from producer.github.parsers import (
    PARSERS,
    Delivery,
    Ignored,
    MappingConfig,
    PayloadError,
    parse_delivery,
    parse_deployment_status,
    parse_issues,
    parse_push,
    parse_workflow_run,
)
from producer.github.routes import WEBHOOK_PATH, setup_github_webhooks
from producer.github.signature import sign, verify

__all__ = [
    "PARSERS",
    "WEBHOOK_PATH",
    "Delivery",
    "Ignored",
    "MappingConfig",
    "PayloadError",
    "parse_delivery",
    "parse_deployment_status",
    "parse_issues",
    "parse_push",
    "parse_workflow_run",
    "setup_github_webhooks",
    "sign",
    "verify",
]
