"""The gateway's fast intake (producer/intake.py) gives exactly what the general path gives: the same
record bytes for every accepted event, and the general path's answer for everything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devops_core.events import CLIENT_EVENTS, parse_client_body
from producer.intake import MalformedJson, iso_time, parse_event, parse_events, wire_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=7, max_size=64)
_times = st.sampled_from(
    ["2026-03-01T11:00:00Z", "2026-02-28 10:00:00", "2025-12-31T23:59:59.123456+05:30", "bad", 7]
)
_names = st.text(min_size=0, max_size=12)
_fields = {
    "event_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True),
    "time": _times,
    "metadata": st.one_of(_names, st.dictionaries(_names, st.one_of(st.integers(), _names), max_size=3)),
    "sha": _hex,
    "before": st.one_of(_hex, st.sampled_from(["0" * 40, "0" * 64])),  # git's null sha is dropped
    "source": st.sampled_from(["cicd_script", "api", "github", "Bad Source"]),
    "environment": _names,
    "outcome": st.sampled_from(["success", "failure", "maybe"]),
    "remediation": st.sampled_from(["hotfix", "rollback"]),
    "deployment_id": st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True),
    "incident_id": st.from_regex(r"INC-[0-9]{1,4}", fullmatch=True),
    "commits": st.lists(
        st.fixed_dictionaries({"sha": _hex}, optional={"time": _times}), min_size=0, max_size=3
    ),
    "team": _names,
    "service": _names,
}
bodies = st.fixed_dictionaries(
    {
        "repo": st.sampled_from(["demo", "acme/web", "ALL", "bad repo"]),
        "event": st.sampled_from([*CLIENT_EVENTS, "calc_lead_time"]),
    },
    optional=_fields,
)

_valid_times = st.sampled_from(["2026-03-01T11:00:00Z", "2026-02-28 10:00:00", "2025-12-31T23:59:59.5+05:30"])
_valid_names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=12)
_EVENT_FIELDS = {
    "push": {"commits", "before"},
    "deploy": {"commits", "outcome", "remediation", "deployment_id", "environment"},
    "deploy_failed": {"commits", "remediation", "deployment_id", "environment"},
    "service_restored": {"environment"},
    "incident_opened": {"deployment_id", "environment"},
    "incident_resolved": {"environment"},
    "test_pass": set(),
}
_valid_fields = {
    **_fields,
    "time": _valid_times,
    "source": st.sampled_from(["cicd_script", "api"]),
    "environment": _valid_names,
    "outcome": st.sampled_from(["success", "failure"]),
    "commits": st.lists(
        st.fixed_dictionaries({"sha": _hex}, optional={"time": _valid_times}), min_size=1, max_size=3
    ),
    "team": _valid_names,
    "service": _valid_names,
}


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, object]:
    """Mostly acceptable events: only the fields each event may carry, with plausible values."""
    event = draw(st.sampled_from(sorted(_EVENT_FIELDS)))
    allowed = {"event_id", "time", "metadata", "sha", "source", "team", "service", *_EVENT_FIELDS[event]}
    body: dict[str, object] = {"repo": draw(st.sampled_from(["demo", "acme/web", "ALL"])), "event": event}
    for name in sorted(allowed):
        if draw(st.booleans()):
            body[name] = draw(_valid_fields[name])
    if event.startswith("incident"):
        body["incident_id"] = draw(_fields["incident_id"])
    return body


def _general(raw: bytes) -> bytes | str:
    """The general path: json.loads, parse_client_body, to_wire, to_record_data (or its error)."""
    try:
        event = parse_client_body(json.loads(raw), now=NOW)
    except ValidationError as exc:
        return f"invalid: {exc.errors(include_url=False)}"
    wire = event.to_wire(source="api", received_at=NOW)
    if event.event_id is None:  # a generated id: compare everything else
        wire = wire.model_copy(update={"event_id": "generated"})
    return wire.to_record_data()


def _fast(raw: bytes) -> bytes | str:
    try:
        event = parse_event(raw, NOW)
    except ValidationError as exc:
        return f"invalid: {exc.errors(include_url=False)}"
    record = wire_record(event, received_at=iso_time(NOW))
    if event.event_id is None:
        return record.data.replace(record.event_id.encode(), b"generated", 1)
    return record.data


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=st.one_of(bodies, valid_bodies()), seed_shape=st.booleans())
def test_fast_intake_equals_the_general_path(body: dict[str, object], seed_shape: bool) -> None:
    if seed_shape:  # the seed service's field names take the general path inside parse_event
        body = {
            {"repo": "Repo", "event": "Event", "time": "Time", "metadata": "Metadata"}.get(k, k): v
            for k, v in body.items()
        }
    raw = json.dumps(body).encode()
    assert _fast(raw) == _general(raw)


def test_a_valid_batch_is_validated_in_one_pass_and_anything_else_is_left_to_the_general_path() -> None:
    good = [{"repo": "a", "event": "push"}, {"repo": "b", "event": "deploy", "outcome": "failure"}]
    events = parse_events(json.dumps(good).encode(), NOW)
    assert events is not None
    assert [(e.repo, e.event) for e in events] == [("a", "push"), ("b", "deploy")]
    for other in ([], [{"repo": "a", "event": "nope"}], [{"Repo": "a", "Event": "push"}], {"repo": "a"}):
        assert parse_events(json.dumps(other).encode(), NOW) is None
    assert parse_events(json.dumps([{"repo": "a", "event": "push"}] * 501).encode(), NOW) is None


@pytest.mark.parametrize("raw", [b"{", b"[" * 100_000 + b"]" * 100_000, b'{"n": ' + b"9" * 5000 + b"}"])
def test_malformed_json_is_reported_as_by_the_general_path(raw: bytes) -> None:
    with pytest.raises(MalformedJson):
        parse_event(raw, NOW)
