"""From request bytes to Kinesis record bytes with one model: ``EventIn`` validates, the record is written
straight from it.

The general path (``json.loads``, ``parse_client_body``, ``EventIn.to_wire`` building a validated
``DevOpsEvent``, ``to_record_data``) costs ~45 µs per event; this one ~12 µs (docs/performance.md):

- ``EventIn.model_validate_json`` validates straight from the bytes. It is tried first; anything it
  does not accept (the seed's ``{"Time","Repo",...}`` body, invalid JSON, an invalid event) goes the
  general way, so every answer other than an accepted event (each 400/422 and its wording) is exactly
  the general path's;
- the record is the dictionary ``DevOpsEvent.to_record_data()`` would serialize, built from the
  already-validated ``EventIn`` (``tests/producer/test_intake.py`` checks both give the same bytes
  for generated events).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from devops_core.events import SCHEMA_VERSION, EventIn, new_event_id, parse_client_body

__all__ = [
    "MAX_BATCH_EVENTS",
    "MalformedJson",
    "WireRecord",
    "iso_time",
    "parse_event",
    "parse_events",
    "read_json_value",
    "wire_record",
]

MAX_BATCH_EVENTS = 500
# The /events fast path; a batch it refuses (empty, too long, any invalid item) takes the general path,
# which says why.
_EVENTS = TypeAdapter(Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH_EVENTS)])


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One event ready for PutRecords."""

    event_id: str
    repo: str
    data: bytes


class MalformedJson(ValueError):
    """The body is not (acceptable) JSON; the message says where or why."""


def iso_time(value: datetime) -> str:
    """The wire format's time: UTC, milliseconds, ``Z`` (as ``DevOpsEvent`` serializes it)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_json_value(raw: bytes) -> Any:
    """The general path's JSON parse (``MalformedJson`` with the position or the reason)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"body is not acceptable JSON: {type(exc).__name__}") from None


def parse_event(raw: bytes, now: datetime) -> EventIn:
    """One event from a request body; ``MalformedJson`` or ``ValidationError`` as the general path."""
    context = {"now": now, "trusted_source": False}
    try:
        return EventIn.model_validate_json(raw, context=context)
    except ValidationError:
        pass
    return parse_client_body(read_json_value(raw), now=now)


def parse_events(raw: bytes, now: datetime) -> list[EventIn] | None:
    """A batch body's events when every item is a valid wire-shaped event (one validation from the
    bytes), else None: the caller then takes the general path item by item."""
    try:
        return _EVENTS.validate_json(raw, context={"now": now, "trusted_source": False})
    except ValidationError:
        return None


def wire_record(event: EventIn, *, received_at: str, source: str = "api") -> WireRecord:
    """The record ``event.to_wire(source=..., received_at=...).to_record_data()`` would give, where
    ``received_at`` is the receive time already formatted by ``iso_time``."""
    event_id = event.event_id or new_event_id()
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "event_id": event_id,
        "time": received_at if event.time is None else iso_time(event.time),
        "repo": event.repo,
        "event": event.event,
        "metadata": event.metadata,
        "source": event.source if "source" in event.model_fields_set else source,
        "received_at": received_at,
    }
    if event.sha is not None:
        record["sha"] = event.sha.lower()
    if event.before is not None:  # already lower-cased (and a null sha dropped) by EventIn
        record["before"] = event.before
    if event.environment is not None:
        record["environment"] = event.environment
    outcome = event.outcome
    if event.event == "deploy_failed":
        outcome = "failure"
    elif event.event == "deploy":
        outcome = outcome or "success"
    if outcome is not None:
        record["outcome"] = outcome
    for name in ("remediation", "deployment_id", "incident_id"):
        value = getattr(event, name)
        if value is not None:
            record[name] = value
    if event.commits:
        record["commits"] = [
            {"sha": commit.sha} if commit.time is None else {"sha": commit.sha, "time": iso_time(commit.time)}
            for commit in event.commits
        ]
    if event.team is not None:
        record["team"] = event.team
    if event.service is not None:
        record["service"] = event.service
    return WireRecord(event_id, event.repo, to_json(record))
