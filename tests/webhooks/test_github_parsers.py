"""The GitHub parsers, called directly on payloads shaped as GitHub documents them."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devops_core.events import MAX_METADATA_BYTES, EventType
from devops_core.settings import Settings
from producer.github.parsers import (
    Delivery,
    Ignored,
    MappingConfig,
    compact_metadata,
    describe_ping,
    parse_delivery,
    parse_deployment_status,
    parse_push,
    parse_workflow_run,
)

PAYLOADS = Path(__file__).parent / "payloads"
RECEIVED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CONFIG = MappingConfig.default()
SHA_1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def delivery(event: str, delivery_id: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958") -> Delivery:
    return Delivery(id=delivery_id, event=event, received_at=RECEIVED)


def metadata(event: Any) -> dict[str, Any]:
    return json.loads(event.metadata)


# -- push ------------------------------------------------------------------------------------------
def test_push_yields_one_event_per_commit_with_sha_and_commit_time() -> None:
    events = parse_push(load("push.json"), delivery("push"), CONFIG)

    assert isinstance(events, list)
    assert [e.sha for e in events] == [SHA_1, SHA_2]
    assert [e.event_id for e in events] == [
        f"72d3162e-cc78-11e3-81ab-4c9367dc0958:{s}" for s in (SHA_1, SHA_2)
    ]
    assert {e.event for e in events} == {EventType.PUSH}
    assert {e.repo for e in events} == {"octo-org/octo-service"}
    assert {e.source for e in events} == {"github"}
    # "2026-11-27T04:05:06-04:00" is 08:05:06 UTC; the second commit is already in UTC.
    assert events[0].time == datetime(2026, 11, 27, 8, 5, 6, tzinfo=UTC)
    assert events[1].time == datetime(2026, 11, 27, 8, 15, tzinfo=UTC)
    assert {e.received_at for e in events} == {RECEIVED}
    first, second = metadata(events[0]), metadata(events[1])
    assert first == {
        "github_event": "push",
        "ref": "refs/heads/main",
        "head_sha": SHA_2,
        "author": "mona",
        "distinct": True,
        "message": "Add order export endpoint",
    }
    assert second["author"] == "Hubot"  # no username: the commit author's name
    assert second["message"] == "Fix rounding in export totals"


def test_push_event_ids_are_deterministic_per_delivery() -> None:
    payload = load("push.json")
    first = parse_push(payload, delivery("push", "d-1"), CONFIG)
    again = parse_push(payload, delivery("push", "d-1"), CONFIG)
    other = parse_push(payload, delivery("push", "d-2"), CONFIG)
    assert isinstance(first, list)
    assert isinstance(again, list)
    assert isinstance(other, list)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert not {e.event_id for e in first} & {e.event_id for e in other}


def test_push_message_is_cut_so_metadata_fits_one_kilobyte() -> None:
    payload = load("push.json")
    payload["commits"][0]["message"] = "ü" * 5000 + "\n\nbody"
    payload["commits"][0]["author"]["username"] = "x" * 700
    events = parse_push(payload, delivery("push"), CONFIG)
    assert isinstance(events, list)
    text = events[0].metadata
    assert len(text.encode("utf-8")) <= MAX_METADATA_BYTES
    data = json.loads(text)
    assert data["message"].startswith("üüü")
    assert data["message"].endswith("…")
    assert data["ref"] == "refs/heads/main"


def test_commit_time_far_in_the_future_is_clamped_to_receipt() -> None:
    payload = load("push.json")
    payload["commits"][0]["timestamp"] = (RECEIVED + timedelta(days=2)).isoformat()
    events = parse_push(payload, delivery("push"), CONFIG)
    assert isinstance(events, list)
    assert events[0].time == RECEIVED
    assert metadata(events[0])["clock_skew"] is True


def test_branch_deletion_and_pushes_without_commits_are_ignored() -> None:
    deleted = parse_push(load("push_branch_deleted.json"), delivery("push"), CONFIG)
    assert isinstance(deleted, Ignored)
    assert "deleted refs/heads/feature/old-export" in deleted.reason

    payload = load("push.json")
    payload.update(commits=[], created=True)
    empty = parse_push(payload, delivery("push"), CONFIG)
    assert isinstance(empty, Ignored)
    assert "no commits" in empty.reason


@pytest.mark.parametrize(
    ("path", "expected_loc"),
    [
        (("repository",), ("repository",)),
        (("repository", "full_name"), ("repository", "full_name")),
        (("commits", 0, "timestamp"), ("commits", 0, "timestamp")),
        (("commits", 1, "id"), ("commits", 1, "id")),
    ],
)
def test_push_missing_required_fields_name_the_field(
    path: tuple[Any, ...], expected_loc: tuple[Any, ...]
) -> None:
    payload = load("push.json")
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(ValidationError) as info:
        parse_push(payload, delivery("push"), CONFIG)
    assert expected_loc in [err["loc"] for err in info.value.errors()]


def test_push_with_a_non_hex_sha_is_refused() -> None:
    payload = load("push.json")
    payload["commits"][0]["id"] = "not-a-sha"
    with pytest.raises(ValidationError):
        parse_push(payload, delivery("push"), CONFIG)


# -- deployment_status ----------------------------------------------------------------------------
def test_successful_deployment_status_is_a_deploy_of_the_deployment_sha() -> None:
    events = parse_deployment_status(
        load("deployment_status.json"), delivery("deployment_status", "dep-1"), CONFIG
    )
    assert isinstance(events, list)
    assert len(events) == 1
    event = events[0]
    assert event.event == EventType.DEPLOY
    assert event.sha == SHA_2
    assert event.event_id == "dep-1"
    assert event.repo == "octo-org/octo-service"
    assert event.time == datetime(2026, 11, 27, 8, 46, 31, tzinfo=UTC)  # deployment_status.updated_at
    assert metadata(event) == {
        "github_event": "deployment_status",
        "environment": "production",
        "ref": "main",
        "deployment_id": 1401234567,
        "status_id": 8801234,
        "state": "success",
    }


@pytest.mark.parametrize("state", ["failure", "error"])
def test_failed_deployment_status_is_deploy_failed(state: str) -> None:
    payload = load("deployment_status.json")
    payload["deployment_status"]["state"] = state
    del payload["deployment_status"]["updated_at"]
    events = parse_deployment_status(payload, delivery("deployment_status"), CONFIG)
    assert isinstance(events, list)
    assert events[0].event == EventType.DEPLOY_FAILED
    assert events[0].time == datetime(2026, 11, 27, 8, 46, 30, tzinfo=UTC)  # falls back to created_at
    assert metadata(events[0])["state"] == state


@pytest.mark.parametrize("state", ["pending", "queued", "in_progress", "inactive"])
def test_other_deployment_states_are_ignored(state: str) -> None:
    payload = load("deployment_status.json")
    payload["deployment_status"]["state"] = state
    outcome = parse_deployment_status(payload, delivery("deployment_status"), CONFIG)
    assert isinstance(outcome, Ignored)
    assert f"'{state}'" in outcome.reason


def test_deployment_status_without_deployment_sha_is_refused() -> None:
    payload = load("deployment_status.json")
    del payload["deployment"]["sha"]
    with pytest.raises(ValidationError) as info:
        parse_deployment_status(payload, delivery("deployment_status"), CONFIG)
    assert ("deployment", "sha") in [err["loc"] for err in info.value.errors()]


def test_deploy_environment_pattern_leaves_out_other_environments() -> None:
    config = MappingConfig.from_settings(Settings(github_deploy_environment_pattern="^production$"))
    production = parse_deployment_status(
        load("deployment_status.json"), delivery("deployment_status"), config
    )
    preview = load("deployment_status.json")
    preview["deployment_status"]["environment"] = "preview-pr-42"
    outcome = parse_deployment_status(preview, delivery("deployment_status"), config)
    assert isinstance(production, list)
    assert production[0].event == EventType.DEPLOY
    assert isinstance(outcome, Ignored)
    assert "'preview-pr-42' does not match" in outcome.reason
    # without a pattern every environment counts
    assert isinstance(parse_deployment_status(preview, delivery("deployment_status"), CONFIG), list)


# -- workflow_run ---------------------------------------------------------------------------------
def workflow_run(name: str, conclusion: str = "success", path: str | None = None) -> dict[str, Any]:
    payload = load("workflow_run_completed.json")
    payload["workflow_run"].update(
        name=name, conclusion=conclusion, path=path or f".github/workflows/{name}.yml"
    )
    payload["workflow"].update(name=name, path=path or f".github/workflows/{name}.yml")
    return payload


def test_successful_test_workflow_is_a_test_pass_of_the_head_sha() -> None:
    events = parse_workflow_run(load("workflow_run_completed.json"), delivery("workflow_run", "wr-1"), CONFIG)
    assert isinstance(events, list)
    assert len(events) == 1
    event = events[0]
    assert (event.event, event.sha, event.event_id) == (EventType.TEST_PASS, SHA_2, "wr-1")
    assert event.time == datetime(2026, 11, 27, 8, 21, 44, tzinfo=UTC)  # workflow_run.updated_at
    assert metadata(event) == {
        "github_event": "workflow_run",
        "workflow": "CI",
        "run_id": 6123456789,
        "run_number": 412,
        "run_attempt": 1,
        "conclusion": "success",
        "branch": "main",
        "trigger": "push",
    }


@pytest.mark.parametrize(
    ("name", "conclusion", "expected"),
    [
        ("Deploy to production", "success", EventType.DEPLOY),
        ("deploy", "failure", EventType.DEPLOY_FAILED),
        ("Deploy", "timed_out", EventType.DEPLOY_FAILED),
        ("Unit tests", "success", EventType.TEST_PASS),
        ("Test and deploy", "success", EventType.DEPLOY),  # deploy wins when both patterns match
    ],
)
def test_workflow_runs_map_by_name_pattern(name: str, conclusion: str, expected: EventType) -> None:
    events = parse_workflow_run(workflow_run(name, conclusion), delivery("workflow_run"), CONFIG)
    assert isinstance(events, list)
    assert events[0].event == expected


@pytest.mark.parametrize(
    ("name", "conclusion", "reason"),
    [
        ("Deploy", "cancelled", "concluded 'cancelled'"),
        ("CI", "failure", "only success is a test_pass"),
        ("Lint", "success", "matches neither"),
    ],
)
def test_unmapped_workflow_runs_are_ignored(name: str, conclusion: str, reason: str) -> None:
    outcome = parse_workflow_run(workflow_run(name, conclusion), delivery("workflow_run"), CONFIG)
    assert isinstance(outcome, Ignored)
    assert reason in outcome.reason


def test_workflow_run_actions_other_than_completed_are_ignored() -> None:
    payload = load("workflow_run_completed.json")
    payload["action"] = "requested"
    outcome = parse_workflow_run(payload, delivery("workflow_run"), CONFIG)
    assert isinstance(outcome, Ignored)
    assert "'requested'" in outcome.reason


def test_workflow_name_falls_back_to_the_workflow_object_and_path() -> None:
    # octokit's example payload has an empty workflow_run.name; the workflow object carries it.
    payload = load("workflow_run_completed.json")
    payload["workflow_run"].update(name="", path=None)
    payload["workflow"].update(name="Nightly", path=".github/workflows/deploy-prod.yml")
    events = parse_workflow_run(payload, delivery("workflow_run"), CONFIG)
    assert isinstance(events, list)
    assert events[0].event == EventType.DEPLOY
    assert metadata(events[0])["workflow"] == "Nightly"


def test_workflow_patterns_come_from_settings() -> None:
    settings = Settings(github_test_workflow_pattern=r"^Verify$", github_deploy_workflow_pattern=r"^Ship ")
    config = MappingConfig.from_settings(settings)
    assert isinstance(
        parse_workflow_run(workflow_run("CI", path="ci.yml"), delivery("workflow_run"), config), Ignored
    )
    verify = parse_workflow_run(workflow_run("Verify", path="v.yml"), delivery("workflow_run"), config)
    ship = parse_workflow_run(workflow_run("Ship it", path="s.yml"), delivery("workflow_run"), config)
    assert isinstance(verify, list)
    assert verify[0].event == EventType.TEST_PASS
    assert isinstance(ship, list)
    assert ship[0].event == EventType.DEPLOY


def test_settings_refuse_an_invalid_pattern() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        Settings(github_deploy_workflow_pattern="(unclosed")


# -- dispatch and helpers -------------------------------------------------------------------------
def test_unmapped_events_are_ignored_with_the_reason() -> None:
    outcome = parse_delivery(load("issues_opened.json"), delivery("issues"), CONFIG)
    assert isinstance(outcome, Ignored)
    assert "'issues' is not mapped" in outcome.reason


def test_dispatch_uses_the_event_header() -> None:
    outcome = parse_delivery(load("deployment_status.json"), delivery("deployment_status"), CONFIG)
    assert isinstance(outcome, list)
    assert outcome[0].event == EventType.DEPLOY


def test_compact_metadata_drops_empty_fields_and_keeps_the_first_line() -> None:
    text = compact_metadata(
        {"ref": "refs/heads/main", "author": None, "env": ""}, message="  Title  \n\nBody"
    )
    assert text == '{"message":"Title","ref":"refs/heads/main"}'
    assert re.fullmatch(r"\{.*\}", compact_metadata({"k": "v" * 5000}))
    assert len(compact_metadata({"k": "v" * 5000}).encode()) <= MAX_METADATA_BYTES


def test_parsers_do_not_mutate_their_input() -> None:
    payload = load("push.json")
    snapshot = copy.deepcopy(payload)
    parse_push(payload, delivery("push"), CONFIG)
    assert payload == snapshot


def test_ping_note_shows_what_the_hook_subscription_means() -> None:
    payload = load("ping.json")
    assert describe_ping(payload) == (
        "webhook reached the gateway; mapped events: deployment_status, push, workflow_run"
    )
    payload["hook"]["events"] = ["push", "issues"]
    assert describe_ping(payload) == (
        "webhook reached the gateway; mapped events: deployment_status, push, workflow_run; "
        "not subscribed to deployment_status, workflow_run; issues will be ignored"
    )
    payload["hook"]["events"] = ["*"]
    assert "others are ignored" in describe_ping(payload)
    assert "others are ignored" in describe_ping({"hook": "not an object"})
