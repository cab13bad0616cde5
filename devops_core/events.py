"""The one event model: what clients may send, and what travels on the Kinesis stream.

Two shapes meet here. ``EventIn`` is what the gateway accepts from a CI job (strict: unknown
fields are refused so typos surface as a 422). ``DevOpsEvent`` is the normalized wire record every
other component reads; it is tolerant of unknown fields so that older consumers survive newer
producers (schema evolution).

What each event means for the DORA metrics is defined once, in ``devops_core.dora`` and
docs/aggregator.md. In short:

- ``push``: changes reached the repository; ``sha`` is the head, ``commits`` the changes it brought
  (each with its own time when known), ``before`` the head the ref had before the push (links a
  push to the earlier ones, so a deploy of the last head also ships their commits).
- ``deploy``: a deployment of ``sha`` to ``environment`` (unset: production) with an ``outcome``
  (success unless said otherwise); ``deploy_failed`` is the seed's name for a deploy whose outcome is
  failure, and is normalized to ``outcome="failure"``. ``remediation`` flags a hotfix or rollback.
- ``service_restored``: the environment works again (ends its open failures).
- ``incident_opened`` / ``incident_resolved``: an incident, paired by ``incident_id``, optionally naming
  the deployment (``deployment_id``) or change (``sha``) that caused it.
- ``test_pass``: kept and stored; no DORA metric reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

__all__ = [
    "CLIENT_EVENTS",
    "DEPLOY_EVENTS",
    "EARLIEST_EVENT_TIME",
    "INTERNAL_EVENTS",
    "MAX_COMMITS",
    "MAX_FUTURE_SKEW",
    "MAX_METADATA_BYTES",
    "REPO_ALL",
    "REPO_PATTERN",
    "RESERVED_SOURCES",
    "SCHEMA_VERSION",
    "ClientEventName",
    "Commit",
    "DevOpsEvent",
    "EventIn",
    "EventType",
    "WireCommit",
    "conflict_reason",
    "describe_validation_error",
    "is_valid_repo",
    "new_event_id",
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
# git's null sha (40 zeros; 64 in a SHA-256 repository): a push's "before" when the ref is new.
_NULL_SHA_RE = re.compile(r"^0+$")
SOURCE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
# Environments, teams and services are names people choose ("Production - EU"): printable, no
# control characters, short enough to be a Timestream dimension and a DynamoDB key part.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,100}$"
# Timestream caps a record at 2 KB; dimensions, measure names and the event_id take ~400 bytes.
MAX_METADATA_BYTES = 1024
MAX_FUTURE_SKEW = timedelta(minutes=15)
# GitHub's push payload lists at most 2,048 commits; a bigger push is cut there too.
MAX_COMMITS = 2048
# No CI event predates this; an earlier time is a bug in the reporter (year 0001, epoch 0...).
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_RECEIVED_AT = datetime(2100, 1, 1, tzinfo=UTC)
# Sources only the pipeline itself writes: a client token may not claim them.
RESERVED_SOURCES = frozenset({"aggregator", "github"})


def new_event_id() -> str:
    """A random (version 4) UUID string for an event sent without an id: what ``str(uuid.uuid4())``
    gives, at a quarter of its cost (no ``UUID`` object; it was 3 % of a gateway request)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class EventType(StrEnum):
    """Every event name the pipeline knows. Clients may send only ``CLIENT_EVENTS``."""

    PUSH = "push"
    DEPLOY = "deploy"
    TEST_PASS = "test_pass"  # noqa: S105 - an event name, not a password
    DEPLOY_FAILED = "deploy_failed"
    SERVICE_RESTORED = "service_restored"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_RESOLVED = "incident_resolved"
    CALC_DEPLOYMENT_FREQ = "calc_deployment_freq"
    CALC_LEAD_TIME = "calc_lead_time"
    CALC_CHANGE_FAILURE_RATE = "calc_change_failure_rate"
    CALC_RECOVERY_TIME = "calc_recovery_time"
    CALC_REWORK_RATE = "calc_rework_rate"

    @property
    def is_internal(self) -> bool:
        return self.value.startswith("calc_")


CLIENT_EVENTS: tuple[str, ...] = tuple(e.value for e in EventType if not e.is_internal)
INTERNAL_EVENTS: tuple[str, ...] = tuple(e.value for e in EventType if e.is_internal)
ClientEventName = Literal[
    "push",
    "deploy",
    "test_pass",
    "deploy_failed",
    "service_restored",
    "incident_opened",
    "incident_resolved",
]
assert set(ClientEventName.__args__) == set(CLIENT_EVENTS)  # type: ignore[attr-defined]
DEPLOY_EVENTS = frozenset({EventType.DEPLOY, EventType.DEPLOY_FAILED})
_INCIDENT_EVENTS = frozenset({"incident_opened", "incident_resolved"})
# Which optional fields each event may carry (anything else is a 422 naming the field).
_FIELD_EVENTS: dict[str, frozenset[str]] = {
    "before": frozenset({"push"}),
    "commits": frozenset({"push", "deploy", "deploy_failed"}),
    "outcome": frozenset({"deploy", "deploy_failed"}),
    "remediation": frozenset({"deploy", "deploy_failed"}),
    "deployment_id": frozenset({"deploy", "deploy_failed", "incident_opened"}),
    "incident_id": _INCIDENT_EVENTS,
    "environment": frozenset({"deploy", "deploy_failed", "service_restored", *_INCIDENT_EVENTS}),
}


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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        raise ValueError("time is out of range") from None


def _metadata_to_text(value: Any) -> str:
    """Metadata is stored as one string; a JSON object is serialized compactly."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        try:
            return json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False
            )
        except RecursionError:
            raise ValueError("metadata is nested too deeply") from None
        except (TypeError, ValueError):  # NaN/Infinity, or keys of mixed types that cannot be sorted
            raise ValueError("metadata object must hold only finite numbers and plain JSON values") from None
    raise ValueError("metadata must be a string or a JSON object")


def _check_metadata_size(value: str) -> str:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("metadata must be valid Unicode (it holds a lone surrogate)") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} bytes (UTF-8) fit a Timestream record"
        )
    return value


def _check_time(value: datetime, now: datetime) -> datetime:
    if value < EARLIEST_EVENT_TIME:
        raise ValueError(f"time is before {EARLIEST_EVENT_TIME.date().isoformat()}; send the real event time")
    if value - now > MAX_FUTURE_SKEW:
        raise ValueError("time is more than 15 minutes in the future")
    return value


def _now(info: ValidationInfo) -> datetime:
    return (info.context or {}).get("now") or datetime.now(UTC)


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
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=EVENT_ID_PATTERN)]
Sha = Annotated[str, Field(pattern=SHA_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Outcome = Literal["success", "failure"]
Remediation = Literal["hotfix", "rollback"]


class WireCommit(BaseModel):
    """A change as it travels on the stream (tolerant of fields a newer producer adds)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sha: Sha
    time: EventTime | None = None

    @field_serializer("time")
    def _iso(self, value: datetime | None) -> str | None:
        return None if value is None else _iso(value)


class Commit(BaseModel):
    """One change: a commit, with its time when the reporter knows it (lead time starts there)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    sha: Sha = Field(description="Commit SHA (7-64 hex digits).")
    time: EventTime | None = Field(
        default=None,
        description="Commit time (ISO-8601); unset: the time of the first push that carried it.",
        json_schema_extra={"type": "string"},
    )

    @field_validator("sha")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("time")
    @classmethod
    def _plausible(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if value is None else _check_time(value, _now(info))

    def to_wire(self) -> WireCommit:
        return WireCommit(sha=self.sha, time=self.time)


class EventIn(BaseModel):
    """A DevOps event as a CI job sends it (lower-case wire fields)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    repo: Repo
    event: ClientEventName = Field(description="One of: " + ", ".join(CLIENT_EVENTS) + ".")
    time: EventTime | None = Field(
        default=None,
        description="ISO-8601 or 'YYYY-MM-DD HH:MM:SS' (UTC assumed); defaults to now; "
        "from 2000-01-01 to at most 15 minutes in the future.",
        json_schema_extra={"type": "string"},
    )
    metadata: Metadata = Field(
        default="",
        description=f"Free text or a JSON object, at most {MAX_METADATA_BYTES} bytes once serialized.",
        json_schema_extra={"anyOf": [{"type": "string"}, {"type": "object"}]},
    )
    event_id: Identifier | None = Field(
        default=None, description="Optional idempotency key; a UUID is generated when absent."
    )
    sha: Sha | None = Field(
        default=None,
        description="Commit SHA the event is about: a push's head, the deployed commit, an incident's cause.",
    )
    before: Sha | None = Field(
        default=None,
        description="A push's previous head: the SHA the ref pointed to before this push (GitHub's "
        "push 'before', GitLab's CI_COMMIT_BEFORE_SHA); push only. An all-zero SHA (git's null SHA: "
        "a new branch, no previous head) is dropped, as if unset.",
    )
    source: str = Field(
        default="api",
        pattern=SOURCE_PATTERN,
        description="Who reported the event, e.g. cicd_script. 'aggregator' and 'github' are reserved.",
    )
    environment: Name | None = Field(
        default=None,
        description="Deployment environment of a deploy, restore or incident; unset means production.",
    )
    outcome: Outcome | None = Field(
        default=None, description="A deploy's outcome: success (default for deploy) or failure."
    )
    remediation: Remediation | None = Field(
        default=None, description="A deploy that remediates a production failure: hotfix or rollback."
    )
    deployment_id: Identifier | None = Field(
        default=None,
        description="A deploy's own id (GitHub deployment id, pipeline run); on incident_opened, the "
        "deployment that caused the incident.",
    )
    incident_id: Identifier | None = Field(
        default=None,
        validate_default=True,  # so that a missing one on an incident event is reported by name
        description="Pairs incident_opened with incident_resolved (required on both).",
    )
    commits: list[Commit] | None = Field(
        default=None,
        max_length=MAX_COMMITS,
        description="The changes a push brought or a deploy ships, oldest first (at most 2,048).",
    )
    team: Name | None = Field(default=None, description="Owning team (else the repo-to-team mapping).")
    service: Name | None = Field(default=None, description="Service the event is about (else the repo).")

    @field_validator("metadata")
    @classmethod
    def _metadata_fits(cls, value: str) -> str:
        return _check_metadata_size(value)

    @field_validator("time")
    @classmethod
    def _plausible_time(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if value is None else _check_time(value, _now(info))

    @field_validator("source")
    @classmethod
    def _not_reserved(cls, value: str, info: ValidationInfo) -> str:
        if value in RESERVED_SOURCES and not (info.context or {}).get("trusted_source"):
            raise ValueError(f"'{value}' is reserved for events the pipeline writes itself")
        return value

    @field_validator(*_FIELD_EVENTS)
    @classmethod
    def _allowed_for_event(cls, value: Any, info: ValidationInfo) -> Any:
        event = info.data.get("event")
        allowed = _FIELD_EVENTS[str(info.field_name)]
        if value is not None and event is not None and event not in allowed:
            raise ValueError(f"only {', '.join(sorted(allowed))} events carry {info.field_name}")
        if info.field_name == "outcome" and event == "deploy_failed" and value == "success":
            raise ValueError("a deploy_failed has outcome failure; send a deploy for a successful one")
        return value

    @field_validator("before")
    @classmethod
    def _previous_head(cls, value: str | None) -> str | None:
        """Lower-cased like ``sha``; the null SHA means "no previous head" and is not stored."""
        if value is None or _NULL_SHA_RE.match(value):
            return None
        return value.lower()

    @field_validator("incident_id")
    @classmethod
    def _incident_needs_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("event") in _INCIDENT_EVENTS:
            raise ValueError("required on incident_opened and incident_resolved (it pairs them)")
        return value

    def to_wire(self, *, source: str, received_at: datetime) -> DevOpsEvent:
        outcome = self.outcome
        if self.event == "deploy_failed":
            outcome = "failure"
        elif self.event == "deploy":
            outcome = outcome or "success"
        return DevOpsEvent(
            event_id=self.event_id or new_event_id(),
            time=self.time or received_at,
            repo=self.repo,
            event=EventType(self.event),
            metadata=self.metadata,
            source=self.source if "source" in self.model_fields_set else source,
            received_at=received_at,
            sha=self.sha.lower() if self.sha else None,
            before=self.before,
            environment=self.environment,
            outcome=outcome,
            remediation=self.remediation,
            deployment_id=self.deployment_id,
            incident_id=self.incident_id,
            commits=tuple(c.to_wire() for c in self.commits) if self.commits else None,
            team=self.team,
            service=self.service,
        )


_SEED_FIELDS = {"Time": "time", "Repo": "repo", "Event": "event", "Metadata": "metadata"}


def parse_client_body(body: Any, *, now: datetime | None = None, trusted_source: bool = False) -> EventIn:
    """Validate one client event, in either the wire shape or the seed's ``{"Time","Repo",...}``.

    Raises ``pydantic.ValidationError``; field names in errors are the lower-case wire names.
    ``trusted_source`` lets the pipeline's own parsers (GitHub webhooks) use a reserved source.
    """
    if isinstance(body, dict) and any(key in _SEED_FIELDS for key in body):
        body = {_SEED_FIELDS.get(key, key): value for key, value in body.items()}
    return EventIn.model_validate(
        body, context={"now": now or datetime.now(UTC), "trusted_source": trusted_source}
    )


class DevOpsEvent(BaseModel):
    """A record on the Kinesis stream; the single normalized event every component reads.

    It holds every bound the gateway checks (sizes, names, times relative to the receive time), so a
    record that another writer to the stream put there without them is poison, dead-lettered at
    decoding: a year-9999 time, 900 KB of metadata or a 3,000-character team once stalled a shard
    for good, each failing a store on every retry."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_: int = Field(default=SCHEMA_VERSION, alias="schema")
    event_id: Identifier
    time: EventTime
    repo: str = Field(min_length=1, max_length=140, pattern=REPO_PATTERN)
    event: EventType
    metadata: Annotated[str, AfterValidator(_check_metadata_size)] = ""
    source: str = Field(default="api", min_length=1, max_length=100, pattern=NAME_PATTERN)
    received_at: EventTime
    sha: Sha | None = None
    before: Sha | None = None
    environment: Name | None = None
    outcome: Outcome | None = None
    remediation: Remediation | None = None
    deployment_id: Identifier | None = None
    incident_id: Identifier | None = None
    commits: tuple[WireCommit, ...] | None = Field(default=None, max_length=MAX_COMMITS)
    team: Name | None = None
    service: Name | None = None

    @model_validator(mode="after")
    def _plausible(self) -> DevOpsEvent:
        """Times as the gateway bounds them, measured from the receive time (so a replay decodes as
        the first reading did); internal events only from the aggregator."""
        # Not the reader's clock (a decoding must not depend on when it runs): a bound that keeps every
        # date computation (retention, lookback) in range.
        if self.received_at >= LATEST_RECEIVED_AT:
            raise ValueError(f"received_at is after {LATEST_RECEIVED_AT.year}; it is the gateway's clock")
        for when in (self.time, *(c.time for c in self.commits or () if c.time is not None)):
            _check_time(when, self.received_at)
        if self.event.is_internal and self.source != "aggregator":
            who = f"source {self.source!r}"
            raise ValueError(f"{self.event.value} is the aggregator's event; {who} may not send it")
        return self

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {value}")
        return value

    @field_serializer("time", "received_at")
    def _iso(self, value: datetime) -> str:
        return _iso(value)

    def to_record_data(self) -> bytes:
        """UTF-8 JSON as documented in DESIGN.md's wire format."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")

    @classmethod
    def from_record_data(cls, data: bytes | str) -> DevOpsEvent:
        return cls.model_validate_json(data)

    @property
    def time_ms(self) -> int:
        return int(self.time.timestamp() * 1000)

    @property
    def is_deploy(self) -> bool:
        return self.event in DEPLOY_EVENTS

    @property
    def failed(self) -> bool:
        """A deploy whose outcome is failure (``deploy_failed`` or ``deploy`` with outcome failure)."""
        return self.is_deploy and (self.outcome == "failure" or self.event == EventType.DEPLOY_FAILED)

    def content_digest(self) -> str:
        """What makes two records with one event_id the same event: everything but ``received_at``
        (a resend arrives later) and the schema number. Equal digests = a duplicate; different = a
        conflict, never counted twice."""
        content = self.model_dump(mode="json", exclude={"received_at", "schema_"}, exclude_none=True)
        text = json.dumps(content, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def conflict_reason(event_id: str, where: str, *, outcome: str) -> str:
    """The one wording of an event_id conflict (``content_digest`` differs), for every dead letter
    with stage ``conflict``: ``where`` the first event came from, ``outcome`` for this one."""
    return (
        f"event_id {event_id!r} already names a different event ({where}); the first one is kept "
        f"and this one is {outcome}. Send a new event_id for a new event."
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
