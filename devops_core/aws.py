"""The one AWS client factory (sync boto3 and async aiobotocore).

Endpoints follow boto3's own conventions: AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> are read
by botocore, so the same code talks to AWS, LocalStack or moto without a flag of ours. Whole-call
retries use botocore's "standard" retry mode; callers only handle what botocore cannot (per-record
failures inside a successful PutRecords or WriteRecords).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from aiobotocore.session import get_session
from botocore.config import Config

if TYPE_CHECKING:
    from aiobotocore.session import AioSession, ClientCreatorContext

__all__ = [
    "DEFAULT_REGION",
    "aio_client",
    "boto_client",
    "client_config",
    "error_code",
    "is_configuration_error",
    "region_name",
]

DEFAULT_REGION = "us-east-1"
# Services whose clients use endpoint discovery: botocore only skips discovery for an endpoint
# passed as an argument, so for these we pass the configured one explicitly.
_DISCOVERY_SERVICES = {"timestream-write", "timestream-query"}


# Errors an operator must fix (credentials, permissions, a resource that is not there): retried like
# any outage, and alarmed on; never a reason to give up on the data.
_CONFIGURATION_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def is_configuration_error(error: BaseException) -> bool:
    """Credentials, permissions or a missing resource: nothing a retry of the data can fix by itself."""
    return error_code(error) in _CONFIGURATION_ERROR_CODES or type(error).__name__ in {
        "NoCredentialsError",
        "PartialCredentialsError",
    }


def region_name() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def client_config(*, max_attempts: int = 4, **overrides: Any) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=overrides.pop("connect_timeout", 3),
        read_timeout=overrides.pop("read_timeout", 10),
        max_pool_connections=overrides.pop("max_pool_connections", 32),
        tcp_keepalive=True,
        **overrides,
    )


def _configured_endpoint(service: str) -> str | None:
    """AWS_ENDPOINT_URL_<SERVICE> then AWS_ENDPOINT_URL, exactly as botocore resolves them."""
    specific = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return os.environ.get(specific) or os.environ.get("AWS_ENDPOINT_URL")


def _client_kwargs(service: str, config: Config | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"region_name": region_name(), "config": config or client_config()}
    if service in _DISCOVERY_SERVICES and (endpoint := _configured_endpoint(service)):
        kwargs["endpoint_url"] = endpoint
    return kwargs


_thread_sessions = threading.local()


def _thread_session() -> boto3.session.Session:
    """boto3 sessions are not thread-safe, but loading service models per client is slow (~100 ms):
    keep one session per thread."""
    session = getattr(_thread_sessions, "session", None)
    if session is None:
        session = _thread_sessions.session = boto3.session.Session()
    return session


def boto_client(service: str, *, config: Config | None = None) -> Any:
    """A boto3 client (clients are thread-safe once created)."""
    return _thread_session().client(service, **_client_kwargs(service, config))


def aio_client(
    service: str, *, config: Config | None = None, session: AioSession | None = None
) -> ClientCreatorContext:
    """An aiobotocore client context manager: ``async with aio_client("kinesis") as kinesis:``."""
    return (session or get_session()).create_client(service, **_client_kwargs(service, config))
