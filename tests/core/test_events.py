"""The event model: the contract between CI jobs, the gateway and every reader of the stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from devops_core.events import (
    MAX_METADATA_BYTES,
    DevOpsEvent,
    EventType,
    describe_validation_error,
    parse_client_body,
    parse_event_time,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def errors_of(body: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse_client_body(body, now=NOW)
    return {item["field"]: item["reason"] for item in describe_validation_error(caught.value)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.250", datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
    ],
)
def test_time_formats_are_normalized_to_utc(text: str, expected: datetime) -> None:
    assert parse_event_time(text) == expected


def test_seed_body_maps_to_wire_fields() -> None:
    event = parse_client_body(
        {"Time": "2026-01-01 00:00:00", "Repo": "test_repo", "Event": "push", "Metadata": "{}"}, now=NOW
    )
    wire = event.to_wire(source="api", received_at=NOW)
    data = json.loads(wire.to_record_data())
    assert data == {
        "schema": 1,
        "event_id": wire.event_id,
        "time": "2026-01-01T00:00:00.000Z",
        "repo": "test_repo",
        "event": "push",
        "metadata": "{}",
        "source": "api",
        "received_at": "2026-06-01T12:00:00.000Z",
    }


def test_defaults_time_to_receipt_and_generates_event_id() -> None:
    first = parse_client_body({"repo": "r", "event": "deploy"}, now=NOW).to_wire(
        source="api", received_at=NOW
    )
    second = parse_client_body({"repo": "r", "event": "deploy"}, now=NOW).to_wire(
        source="api", received_at=NOW
    )
    assert first.time == NOW
    assert first.event_id != second.event_id


def test_client_event_id_sha_and_source_are_kept() -> None:
    event = parse_client_body(
        {
            "repo": "acme/api",
            "event": "deploy",
            "event_id": "job-42",
            "sha": "ABCDEF1",
            "source": "cicd_script",
        },
        now=NOW,
    ).to_wire(source="api", received_at=NOW)
    assert (event.event_id, event.sha, event.source) == ("job-42", "abcdef1", "cicd_script")


def test_metadata_object_is_serialized_compactly() -> None:
    event = parse_client_body({"repo": "r", "event": "push", "metadata": {"b": 1, "a": "x"}}, now=NOW)
    assert event.metadata == '{"a":"x","b":1}'


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        ({"repo": "r", "event": "calc_deployment_freq"}, "event", "internal event"),
        ({"repo": "r", "event": "merge"}, "event", "must be one of push, deploy, test_pass"),
        ({"repo": "-bad", "event": "push"}, "repo", "must start with a letter or digit"),
        ({"repo": "", "event": "push"}, "repo", "at least 1 character"),
        ({"repo": "a" * 141, "event": "push"}, "repo", "at most 140 characters"),
        ({"repo": "r", "event": "push", "time": "tomorrow"}, "time", "ISO-8601"),
        ({"repo": "r", "event": "push", "time": "2026-06-01T12:16:00Z"}, "time", "future"),
        ({"repo": "r", "event": "push", "metadata": "x" * (MAX_METADATA_BYTES + 1)}, "metadata", "bytes"),
        ({"repo": "r", "event": "push", "metadata": [1, 2]}, "metadata", "string or a JSON object"),
        ({"repo": "r", "event": "push", "colour": "red"}, "colour", "unknown field"),
        ({"repo": "r", "event": "push", "sha": "not-a-sha"}, "sha", "pattern"),
        ({"event": "push"}, "repo", "Field required"),
    ],
)
def test_invalid_events_name_the_field_and_the_reason(body: dict, field: str, reason_part: str) -> None:
    assert reason_part in errors_of(body)[field]


def test_time_within_future_skew_is_accepted() -> None:
    event = parse_client_body({"repo": "r", "event": "push", "time": "2026-06-01T12:14:00Z"}, now=NOW)
    assert event.time == NOW + timedelta(minutes=14)


def test_metadata_limit_counts_utf8_bytes() -> None:
    assert (
        "bytes"
        in errors_of({"repo": "r", "event": "push", "metadata": "é" * (MAX_METADATA_BYTES // 2 + 1)})[
            "metadata"
        ]
    )


def test_wire_record_round_trips_and_tolerates_new_fields() -> None:
    event = parse_client_body({"repo": "ALL", "event": "test_pass"}, now=NOW).to_wire(
        source="api", received_at=NOW
    )
    data = json.loads(event.to_record_data())
    data["added_in_a_later_version"] = True
    assert DevOpsEvent.from_record_data(json.dumps(data)) == event


def test_wire_record_rejects_unknown_schema_version() -> None:
    with pytest.raises(ValidationError):
        DevOpsEvent.from_record_data(
            json.dumps(
                {
                    "schema": 2,
                    "event_id": "e",
                    "time": "2026-01-01T00:00:00Z",
                    "repo": "r",
                    "event": "push",
                    "received_at": "2026-01-01T00:00:00Z",
                }
            )
        )


WIRE = {
    "event_id": "e-1",
    "time": "2026-01-01T00:00:00Z",
    "repo": "r",
    "event": "deploy",
    "received_at": "2026-01-01T00:00:05Z",
}


@pytest.mark.parametrize(
    ("change", "reason_part"),
    [
        ({"time": "9999-12-31T23:59:59Z"}, "future"),
        ({"time": "1970-01-01T00:00:00Z"}, "before 2000"),
        ({"received_at": "9999-01-01T00:00:00Z", "time": "9999-01-01T00:00:00Z"}, "received_at"),
        ({"metadata": "x" * 900_000}, "metadata is 900000 bytes"),
        ({"team": "t" * 3000}, "at most 100"),
        ({"service": "bad\u0000name"}, "pattern"),
        ({"environment": "e" * 101}, "at most 100"),
        ({"event_id": "has spaces"}, "pattern"),
        ({"sha": "not-hex"}, "pattern"),
        ({"commits": [{"sha": "abcdef1", "time": "9999-01-01T00:00:00Z"}]}, "future"),
        ({"event": "calc_deployment_freq", "source": "api"}, "the aggregator's event"),
        ({"source": "x" * 101}, "at most 100"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_a_record_without_the_gateways_bounds_is_refused_at_decoding(
    change: dict[str, object], reason_part: str
) -> None:
    """Records another writer put on the stream without the gateway's checks: each once failed a
    store on every retry and stalled its shard; refused here, they are dead-lettered as poison."""
    with pytest.raises(ValidationError) as refused:
        DevOpsEvent.from_record_data(json.dumps({**WIRE, **change}))
    assert reason_part in str(refused.value)


def test_the_aggregators_own_metric_events_and_replays_decode() -> None:
    metric = {**WIRE, "event": "calc_deployment_freq", "source": "aggregator", "repo": "ALL"}
    assert DevOpsEvent.from_record_data(json.dumps(metric)).source == "aggregator"
    late = {**WIRE, "time": "2026-01-01T00:14:00Z"}  # within the skew of its receive time, years ago
    assert DevOpsEvent.from_record_data(json.dumps(late)).time.minute == 14


def test_internal_events_are_known_to_readers() -> None:
    assert EventType("calc_deployment_freq").is_internal
    assert not EventType.DEPLOY.is_internal


# -- the fields the DORA metrics read (issue: trustworthy metrics) ----------------------------------
def wire(body: dict[str, object]) -> DevOpsEvent:
    return parse_client_body(body, now=NOW).to_wire(source="api", received_at=NOW)


def test_deploy_outcome_is_normalized() -> None:
    assert wire({"repo": "r", "event": "deploy"}).outcome == "success"
    assert wire({"repo": "r", "event": "deploy", "outcome": "failure"}).failed
    failed = wire({"repo": "r", "event": "deploy_failed"})
    assert failed.outcome == "failure"
    assert failed.failed
    assert wire({"repo": "r", "event": "push"}).outcome is None


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        ({"repo": "r", "event": "deploy_failed", "outcome": "success"}, "outcome", "outcome failure"),
        ({"repo": "r", "event": "push", "outcome": "failure"}, "outcome", "only deploy"),
        ({"repo": "r", "event": "test_pass", "environment": "prod"}, "environment", "only deploy"),
        ({"repo": "r", "event": "service_restored", "commits": []}, "commits", "only deploy"),
        ({"repo": "r", "event": "incident_opened"}, "incident_id", "required"),
        ({"repo": "r", "event": "incident_resolved"}, "incident_id", "required"),
        ({"repo": "r", "event": "deploy", "incident_id": "x1"}, "incident_id", "only incident"),
        ({"repo": "r", "event": "deploy", "remediation": "revert"}, "remediation", "hotfix"),
        ({"repo": "r", "event": "push", "commits": [{"sha": "xyz"}]}, "commits.0.sha", "pattern"),
        ({"repo": "r", "event": "push", "commits": [{"sha": "abcdef1", "x": 1}]}, "commits.0.x", "unknown"),
        ({"repo": "r", "event": "push", "time": "0001-01-01T00:00:00Z"}, "time", "before 2000-01-01"),
        ({"repo": "r", "event": "push", "source": "aggregator"}, "source", "reserved"),
        ({"repo": "r", "event": "push", "source": "github"}, "source", "reserved"),
        ({"repo": "r", "event": "deploy", "environment": "bad\nname"}, "environment", "pattern"),
        ({"repo": "r", "event": "deploy", "before": "abcdef1"}, "before", "only push events carry before"),
        ({"repo": "r", "event": "deploy", "before": "0" * 40}, "before", "only push events carry before"),
        ({"repo": "r", "event": "service_restored", "before": "abcdef1"}, "before", "only push"),
        ({"repo": "r", "event": "push", "before": "abcdefg"}, "before", "pattern"),
        ({"repo": "r", "event": "push", "before": "abc"}, "before", "pattern"),
    ],
)
def test_fields_are_checked_against_the_event(body: dict[str, object], field: str, reason_part: str) -> None:
    errors = errors_of(body)
    assert field in errors, errors
    assert reason_part in errors[field]


def test_commits_are_lower_cased_and_keep_their_times() -> None:
    event = wire(
        {
            "repo": "r",
            "event": "push",
            "sha": "ABCDEF2",
            "commits": [{"sha": "ABCDEF1", "time": "2026-05-01 10:00:00"}, {"sha": "abcdef2"}],
        }
    )
    assert event.commits is not None
    assert [(c.sha, c.time) for c in event.commits] == [
        ("abcdef1", datetime(2026, 5, 1, 10, tzinfo=UTC)),
        ("abcdef2", None),
    ]
    assert DevOpsEvent.from_record_data(event.to_record_data()) == event


def test_a_push_carries_its_previous_head_lower_cased() -> None:
    event = wire({"repo": "r", "event": "push", "sha": "ABCDEF2", "before": " ABCDEF1 "})
    assert (event.sha, event.before) == ("abcdef2", "abcdef1")
    assert b'"sha":"abcdef2","before":"abcdef1"' in event.to_record_data()
    assert DevOpsEvent.from_record_data(event.to_record_data()) == event
    assert wire({"repo": "r", "event": "push"}).before is None


@pytest.mark.parametrize("null_sha", ["0" * 40, "0" * 64])
def test_the_null_sha_is_no_previous_head(null_sha: str) -> None:
    """git's all-zero sha is what a new branch's push has as its before: it is not stored."""
    event = wire({"repo": "r", "event": "push", "sha": "abcdef2", "before": null_sha})
    assert event.before is None
    assert b"before" not in event.to_record_data()


def test_too_many_commits_are_refused() -> None:
    commits = [{"sha": f"{n:07x}"} for n in range(2049)]
    assert "commits" in errors_of({"repo": "r", "event": "push", "commits": commits})


def test_incident_carries_its_cause() -> None:
    event = wire(
        {
            "repo": "r",
            "event": "incident_opened",
            "incident_id": "INC-7",
            "sha": "abcdef1",
            "deployment_id": "d-1",
        }
    )
    assert (event.incident_id, event.sha, event.deployment_id) == ("INC-7", "abcdef1", "d-1")


def test_content_digest_ignores_only_the_receive_time() -> None:
    body = {"repo": "r", "event": "deploy", "event_id": "e-1", "time": "2026-05-01T00:00:00Z"}
    first = parse_client_body(body, now=NOW).to_wire(source="api", received_at=NOW)
    resent = parse_client_body(body, now=NOW).to_wire(source="api", received_at=NOW + timedelta(hours=1))
    other_day = parse_client_body({**body, "time": "2026-05-02T00:00:00Z"}, now=NOW).to_wire(
        source="api", received_at=NOW
    )
    failed = parse_client_body({**body, "event": "deploy_failed"}, now=NOW).to_wire(
        source="api", received_at=NOW
    )
    assert first.content_digest() == resent.content_digest()
    assert len({first.content_digest(), other_day.content_digest(), failed.content_digest()}) == 3


def test_new_event_id_is_a_random_version_4_uuid() -> None:
    import uuid

    from devops_core.events import new_event_id

    ids = [new_event_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert (str(parsed), parsed.version, parsed.variant) == (event_id, 4, uuid.RFC_4122)
