"""Hypothesis against the event model: any JSON value in, a valid EventIn or a ValidationError out.

Accepted events must survive the wire (to_record_data -> from_record_data) and fit the 2 KB a
Timestream record allows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devops_core.events import (
    CLIENT_EVENTS,
    INTERNAL_EVENTS,
    MAX_METADATA_BYTES,
    DevOpsEvent,
    EventIn,
    parse_client_body,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MAX_RECORD_BYTES = 2048

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**4000, max_value=10**4400)  # beyond int-from-str limits
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
any_json = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5)
)
# Plausible values for the known fields, so many bodies get past the first field.
times = (
    st.datetimes(timezones=st.timezones() | st.just(UTC)).map(lambda t: t.isoformat())
    | st.datetimes().map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
    | st.sampled_from(["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00Z", ""])
)
field_values = {
    "repo": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._/-]{0,130}\Z") | st.sampled_from(["ALL", " x ", "-x"]),
    "event": st.sampled_from([*CLIENT_EVENTS, *INTERNAL_EVENTS, "PUSH", ""]),
    "time": times,
    "metadata": st.text(max_size=1100)
    | st.text(alphabet='"\\\x00\x1f', min_size=300, max_size=1024)
    | st.dictionaries(st.text(max_size=20), any_json, max_size=8),
    "event_id": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,130}\Z") | st.uuids().map(str),
    "sha": st.from_regex(r"\A[0-9a-fA-F]{5,66}\Z"),
    "before": st.from_regex(r"\A[0-9a-fA-F]{5,66}\Z") | st.sampled_from(["0" * 40, "0" * 64]),
    "source": st.from_regex(r"\A[a-z][a-z0-9_-]{0,33}\Z"),
}
seed_names = {"repo": "Repo", "event": "Event", "time": "Time", "metadata": "Metadata"}


@st.composite
def event_bodies(draw: st.DrawFn) -> dict[str, object]:
    """Lower-case or seed-style bodies with a random subset of fields, plus the odd stranger."""
    seed_style = draw(st.booleans())
    body: dict[str, object] = {}
    for name, values in field_values.items():
        if draw(st.integers(0, 9)) < 8:
            key = seed_names.get(name, name) if seed_style else name
            body[key] = draw(values | any_json) if draw(st.integers(0, 9)) == 0 else draw(values)
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=8))] = draw(any_json)
    return body


def _check(body: object) -> None:
    try:
        event = parse_client_body(body, now=NOW)
    except ValidationError:
        return
    assert isinstance(event, EventIn)
    wire = event.to_wire(source="api", received_at=NOW)
    data = wire.to_record_data()
    # Timestream counts raw bytes; on the wire, JSON escaping of the metadata adds to that (Kinesis
    # allows 1 MiB, so only the raw size is a limit). Without that escaping the record fits 2 KB.
    assert len(wire.metadata.encode("utf-8")) <= MAX_METADATA_BYTES
    escaping = (
        len(json.dumps(wire.metadata, ensure_ascii=False).encode("utf-8"))
        - 2
        - len(wire.metadata.encode("utf-8"))
    )
    assert len(data) - escaping <= MAX_RECORD_BYTES, len(data)
    back = DevOpsEvent.from_record_data(data)
    assert back.to_record_data() == data
    assert (back.event_id, back.repo, back.event, back.metadata, back.source, back.sha, back.before) == (
        wire.event_id,
        wire.repo,
        wire.event,
        wire.metadata,
        wire.source,
        wire.sha,
        wire.before,
    )
    assert abs(back.time - wire.time) < timedelta(milliseconds=1)
    json.loads(data)  # plain JSON for every other reader


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_bodies())
def test_event_shaped_bodies_validate_or_raise_validation_error(body: dict[str, object]) -> None:
    _check(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_json)
def test_any_json_value_validates_or_raises_validation_error(body: object) -> None:
    _check(body)


def test_deeply_nested_metadata_is_a_validation_error() -> None:
    nested: object = "x"
    for _ in range(100_000):
        nested = {"a": nested}
    _check({"repo": "r", "event": "push", "metadata": nested})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time", "9999-12-31T23:59:59-01:00"),
        ("time", "0001-01-01T00:00:00+01:00"),
        ("metadata", "\udafd lone surrogate"),
        ("metadata", {"k\udafd": 1}),
        ("metadata", {"x": float("inf")}),
    ],
)
def test_found_by_fuzzing_are_validation_errors(field: str, value: object) -> None:
    """Each of these once escaped as OverflowError, RecursionError or UnicodeEncodeError, or stored NaN."""
    with pytest.raises(ValidationError) as caught:
        parse_client_body({"repo": "r", "event": "push", field: value}, now=NOW)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]
