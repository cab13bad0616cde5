"""The one event model: what clients may send, and what travels on the Kinesis stream.

Two shapes meet here. ``EventIn`` is what the gateway accepts from a CI job (strict: unknown
fields are refused so typos surface as a 422). ``DevOpsEvent`` is the normalized wire record every
other component reads; it is tolerant of unknown fields so that older consumers survive newer
producers (schema evolution).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)

__all__ = [
    "CLIENT_EVENTS",
    "INTERNAL_EVENTS",
    "MAX_FUTURE_SKEW",
    "MAX_METADATA_BYTES",
    "REPO_ALL",
    "REPO_PATTERN",
    "SCHEMA_VERSION",
    "ClientEventName",
    "DevOpsEvent",
    "EventIn",
    "EventType",
    "describe_validation_error",
    "is_valid_repo",
    "parse_client_body",
    "parse_event_time",
]

SCHEMA_VERSION = 1
REPO_ALL = "ALL"
# GitHub/GitLab style names: letters, digits, '.', '_', '-', and '/' between owner and name
# (GitHub: owner <= 39 and name <= 100 characters, so owner/name fits in 140).
REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,139}$"
_REPO_RE = re.compile(REPO_PATTERN)
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SHA_PATTERN = r"^[0-9a-fA-F]{7,64}$"
SOURCE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
# Timestream caps a record at 2 KB; dimensions, measure names and the event_id take ~400 bytes.
MAX_METADATA_BYTES = 1024
MAX_FUTURE_SKEW = timedelta(minutes=15)


class EventType(StrEnum):
    """Every event name the pipeline knows. Clients may send only ``CLIENT_EVENTS``."""

    PUSH = "push"
    DEPLOY = "deploy"
    TEST_PASS = "test_pass"  # noqa: S105 - an event name, not a password
    DEPLOY_FAILED = "deploy_failed"
    SERVICE_RESTORED = "service_restored"
    CALC_DEPLOYMENT_FREQ = "calc_deployment_freq"
    CALC_LEAD_TIME = "calc_lead_time"
    CALC_CHANGE_FAILURE_RATE = "calc_change_failure_rate"
    CALC_RECOVERY_TIME = "calc_recovery_time"

    @property
    def is_internal(self) -> bool:
        return self.value.startswith("calc_")


CLIENT_EVENTS: tuple[str, ...] = tuple(e.value for e in EventType if not e.is_internal)
INTERNAL_EVENTS: tuple[str, ...] = tuple(e.value for e in EventType if e.is_internal)
ClientEventName = Literal["push", "deploy", "test_pass", "deploy_failed", "service_restored"]
assert set(ClientEventName.__args__) == set(CLIENT_EVENTS)  # type: ignore[attr-defined]


def parse_event_time(value: Any) -> datetime:
    """Accept ISO-8601 or the seed's ``YYYY-MM-DD HH:MM:SS``; a naive time is UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("time must not be empty")
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(
                "time must be ISO-8601 (2026-01-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS' (UTC)"
            ) from None
    else:
        raise ValueError("time must be a string")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _metadata_to_text(value: Any) -> str:
    """Metadata is stored as one string; a JSON object is serialized compactly."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    raise ValueError("metadata must be a string or a JSON object")


def _check_metadata_size(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} bytes (UTF-8) fit a Timestream record"
        )
    return value


EventTime = Annotated[datetime, BeforeValidator(parse_event_time)]
Repo = Annotated[
    str,
    Field(
        min_length=1,
        max_length=140,
        pattern=REPO_PATTERN,
        description="Repository name (letters, digits, '.', '_', '-', '/'; 1-140 chars) or ALL.",
        examples=["my-service", "acme/my-service", "ALL"],
    ),
]
Metadata = Annotated[str, BeforeValidator(_metadata_to_text)]


class EventIn(BaseModel):
    """A DevOps event as a CI job sends it (lower-case wire fields)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    repo: Repo
    event: ClientEventName = Field(description="One of: " + ", ".join(CLIENT_EVENTS) + ".")
    time: EventTime | None = Field(
        default=None,
        description="ISO-8601 or 'YYYY-MM-DD HH:MM:SS' (UTC assumed); defaults to now; "
        "at most 15 minutes in the future.",
        json_schema_extra={"type": "string"},
    )
    metadata: Metadata = Field(
        default="",
        description=f"Free text or a JSON object, at most {MAX_METADATA_BYTES} bytes once serialized.",
        json_schema_extra={"anyOf": [{"type": "string"}, {"type": "object"}]},
    )
    event_id: str | None = Field(
        default=None,
        pattern=EVENT_ID_PATTERN,
        description="Optional idempotency key; a UUID is generated when absent.",
    )
    sha: str | None = Field(
        default=None,
        pattern=SHA_PATTERN,
        description="Commit SHA the event is about (links pushes to deploys for lead time).",
    )
    source: str = Field(
        default="api",
        pattern=SOURCE_PATTERN,
        description="Who reported the event, e.g. cicd_script, github.",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_fits(cls, value: str) -> str:
        return _check_metadata_size(value)

    @field_validator("time")
    @classmethod
    def _not_in_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value is not None and value - now > MAX_FUTURE_SKEW:
            raise ValueError("time is more than 15 minutes in the future")
        return value

    def to_wire(self, *, source: str, received_at: datetime) -> DevOpsEvent:
        return DevOpsEvent(
            event_id=self.event_id or str(uuid.uuid4()),
            time=self.time or received_at,
            repo=self.repo,
            event=EventType(self.event),
            metadata=self.metadata,
            source=self.source if "source" in self.model_fields_set else source,
            received_at=received_at,
            sha=self.sha.lower() if self.sha else None,
        )


_SEED_FIELDS = {"Time": "time", "Repo": "repo", "Event": "event", "Metadata": "metadata"}


def parse_client_body(body: Any, *, now: datetime | None = None) -> EventIn:
    """Validate one client event, in either the wire shape or the seed's ``{"Time","Repo",...}``.

    Raises ``pydantic.ValidationError``; field names in errors are the lower-case wire names.
    """
    if isinstance(body, dict) and any(key in _SEED_FIELDS for key in body):
        body = {_SEED_FIELDS.get(key, key): value for key, value in body.items()}
    return EventIn.model_validate(body, context={"now": now or datetime.now(UTC)})


class DevOpsEvent(BaseModel):
    """A record on the Kinesis stream; the single normalized event every component reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_: int = Field(default=SCHEMA_VERSION, alias="schema")
    event_id: str = Field(min_length=1, max_length=128)
    time: EventTime
    repo: str = Field(min_length=1, max_length=140, pattern=REPO_PATTERN)
    event: EventType
    metadata: str = ""
    source: str = "api"
    received_at: EventTime
    sha: str | None = None

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {value}")
        return value

    @field_serializer("time", "received_at")
    def _iso(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_record_data(self) -> bytes:
        """UTF-8 JSON as documented in DESIGN.md's wire format."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")

    @classmethod
    def from_record_data(cls, data: bytes | str) -> DevOpsEvent:
        return cls.model_validate_json(data)

    @property
    def time_ms(self) -> int:
        return int(self.time.timestamp() * 1000)


def is_valid_repo(name: str) -> bool:
    return bool(_REPO_RE.match(name))


def describe_validation_error(error: ValidationError) -> list[dict[str, str]]:
    """Turn pydantic errors into ``[{"field": "repo", "reason": "..."}]`` for API responses."""
    details = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown field"
        elif item["type"] == "literal_error" and item["loc"] and item["loc"][-1] == "event":
            reason = f"must be one of {', '.join(CLIENT_EVENTS)}"
            value = item.get("input")
            if isinstance(value, str) and value in INTERNAL_EVENTS:
                reason = f"{value} is an internal event and cannot be sent by clients; " + reason
        elif item["type"] == "string_pattern_mismatch" and item["loc"] and item["loc"][-1] == "repo":
            reason = "must start with a letter or digit and contain only letters, digits, '.', '_', '-', '/'"
        details.append({"field": field, "reason": reason.removeprefix("Value error, ")})
    return details
