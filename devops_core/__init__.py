"""Code shared by the gateway, consumer and aggregator: the event model, settings, AWS clients, logs."""

from devops_core.aws import aio_client, boto_client
from devops_core.events import DevOpsEvent, EventIn, EventType, parse_client_body
from devops_core.logs import setup_logging
from devops_core.settings import Settings

__all__ = [
    "DevOpsEvent",
    "EventIn",
    "EventType",
    "Settings",
    "aio_client",
    "boto_client",
    "parse_client_body",
    "setup_logging",
]
