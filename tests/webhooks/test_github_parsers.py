"""The GitHub parsers, called directly on GitHub's own example payloads (@octokit/webhooks-examples),
and on hand-written ones only where the examples lack a case (a push of several commits with
offsets in their timestamps)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devops_core.events import MAX_COMMITS, MAX_METADATA_BYTES, DevOpsEvent, EventType
from devops_core.settings import Settings
from producer.github.parsers import (
    PARSERS,
    Delivery,
    Ignored,
    MappingConfig,
    PayloadError,
    compact_metadata,
    describe_ping,
    environment_name,
    parse_delivery,
    parse_deployment_status,
    parse_issues,
    parse_push,
    parse_workflow_run,
    push_event_id,
    root_cause_sha,
)
from tests.webhooks.examples import all_examples, example

PAYLOADS = Path(__file__).parent / "payloads"
RECEIVED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CONFIG = MappingConfig.default()
SHA_1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
EXAMPLE_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"  # the head of octokit's push example
OVERFLOWING = "9999-12-31T23:59:59-01:00"  # past datetime.max once converted to UTC


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def delivery(event: str, delivery_id: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958") -> Delivery:
    return Delivery(id=delivery_id, event=event, received_at=RECEIVED)


def metadata(event: DevOpsEvent) -> dict[str, Any]:
    return json.loads(event.metadata)


def events_of(outcome: list[DevOpsEvent] | Ignored) -> list[DevOpsEvent]:
    assert isinstance(outcome, list), outcome
    return outcome


def ignored(outcome: list[DevOpsEvent] | Ignored) -> str:
    assert isinstance(outcome, Ignored), outcome
    return outcome.reason


def pushed_commits() -> dict[str, Any]:
    """GitHub's example of a push with a commit (octokit: a new branch with one commit)."""
    return example("push", lambda p: bool(p["commits"]))


def wire(event: DevOpsEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True, exclude={"received_at", "schema_"})


# -- push ------------------------------------------------------------------------------------------
def test_push_is_one_event_with_the_head_sha_every_commit_and_the_push_time() -> None:
    (event,) = events_of(parse_push(pushed_commits(), delivery("push"), CONFIG))

    assert wire(event) == {
        "event_id": push_event_id("Codertocat/Hello-World", "refs/heads/master", "0" * 40, EXAMPLE_SHA),
        "time": "2019-05-15T15:20:57.000Z",  # repository.pushed_at (Unix seconds 1557933657)
        "repo": "Codertocat/Hello-World",
        "event": "push",
        "metadata": event.metadata,
        "source": "github",
        "sha": EXAMPLE_SHA,
        "commits": [{"sha": EXAMPLE_SHA, "time": "2019-05-15T15:19:25.000Z"}],
    }  # no before: the example creates the branch, its `before` is the null sha 000...0
    assert event.before is None
    assert event.event_id.startswith("github:push:")
    assert metadata(event) == {
        "github_event": "push",
        "ref": "refs/heads/master",
        "pusher": "Codertocat",
        "author": "Codertocat",
        "commit_count": 1,
        "message": "Initial commit",
    }


def test_push_of_several_commits_lists_each_with_its_time_in_utc() -> None:
    """Hand-written: octokit's examples have no push of several commits nor an offset in a timestamp."""
    (event,) = events_of(parse_push(load("push.json"), delivery("push"), CONFIG))

    assert event.sha == SHA_2  # `after`, the head
    assert event.before == EXAMPLE_SHA  # `before`, the branch's head before the push
    assert [(c.sha, c.time) for c in event.commits or ()] == [
        (SHA_1, datetime(2026, 11, 27, 8, 5, 6, tzinfo=UTC)),  # "2026-11-27T04:05:06-04:00"
        (SHA_2, datetime(2026, 11, 27, 8, 15, tzinfo=UTC)),
    ]
    assert event.time == datetime.fromtimestamp(1795597200, UTC)  # repository.pushed_at
    assert metadata(event)["message"] == "Fix rounding in export totals"  # the head commit's
    assert metadata(event)["commit_count"] == 2


def test_push_id_is_the_same_under_any_delivery_and_differs_per_push() -> None:
    payload = pushed_commits()
    first = events_of(parse_push(payload, delivery("push", "d-1"), CONFIG))[0]
    replayed = events_of(
        parse_push(
            payload, Delivery(id="d-2", event="push", received_at=RECEIVED + timedelta(days=3)), CONFIG
        )
    )[0]
    assert first.event_id == replayed.event_id
    assert first.content_digest() == replayed.content_digest()  # a replay is a duplicate, not a conflict

    for key, value in [("ref", "refs/heads/other"), ("before", "1" * 40), ("after", "2" * 40)]:
        changed = copy.deepcopy(payload)
        changed[key] = value
        assert events_of(parse_push(changed, delivery("push"), CONFIG))[0].event_id != first.event_id
    forked = copy.deepcopy(payload)
    forked["repository"]["full_name"] = "Codertocat/Hello-World-fork"
    assert events_of(parse_push(forked, delivery("push"), CONFIG))[0].event_id != first.event_id


def test_push_before_is_the_previous_head_unless_the_push_created_the_branch() -> None:
    """octokit's examples: every push that carries commits creates its branch (`before` is the null sha,
    `created` true), so none has a previous head; the same push to an existing branch has one."""
    pushes = [p for name, _, p in all_examples() if name == "push" and p["commits"]]
    assert pushes
    for payload in pushes:
        assert payload["before"] == "0" * 40
        (event,) = events_of(parse_push(payload, delivery("push"), CONFIG))
        assert event.before is None
        assert b"before" not in event.to_record_data()

        payload.update(before="A1B2C3D4E5F60718293A4B5C6D7E8F9012345678", created=False)
        (onto_existing,) = events_of(parse_push(payload, delivery("push"), CONFIG))
        assert (onto_existing.sha, onto_existing.before) == (EXAMPLE_SHA, SHA_1)  # lower-cased

        payload.update(forced=True)  # the head it names was thrown away, not built on
        (forced,) = events_of(parse_push(payload, delivery("push"), CONFIG))
        assert forced.before is None


def test_push_with_a_non_hex_before_names_the_payload_field() -> None:
    payload = pushed_commits()
    payload["before"] = "not-a-sha"
    with pytest.raises(PayloadError) as info:
        parse_push(payload, delivery("push"), CONFIG)
    assert [detail["field"] for detail in info.value.details] == ["before"]


def test_push_time_falls_back_to_the_head_commit_then_to_receipt() -> None:
    payload = load("push.json")
    del payload["repository"]["pushed_at"]
    (event,) = events_of(parse_push(payload, delivery("push"), CONFIG))
    assert event.time == datetime(2026, 11, 27, 8, 15, tzinfo=UTC)  # head_commit.timestamp

    payload["head_commit"]["timestamp"] = (RECEIVED + timedelta(days=2)).isoformat()
    (skewed,) = events_of(parse_push(payload, delivery("push"), CONFIG))
    assert skewed.time == RECEIVED  # a committer's clock ahead of ours
    assert metadata(skewed)["clock_skew"] is True


def test_implausible_commit_times_are_dropped_not_refused() -> None:
    """Imported history from 1995 or a committer's clock a day ahead: the commit counts from its push."""
    payload = load("push.json")
    payload["commits"][0]["timestamp"] = "1995-03-01T10:00:00+01:00"
    payload["commits"][1]["timestamp"] = (RECEIVED + timedelta(days=1)).isoformat()
    (event,) = events_of(parse_push(payload, delivery("push"), CONFIG))
    assert [(c.sha, c.time) for c in event.commits or ()] == [(SHA_1, None), (SHA_2, None)]


def test_a_push_of_more_than_2048_commits_keeps_the_newest() -> None:
    payload = load("push.json")
    template = payload["commits"][0]
    payload["commits"] = [{**template, "id": f"{n:040x}"} for n in range(MAX_COMMITS + 5)]
    (event,) = events_of(parse_push(payload, delivery("push"), CONFIG))
    assert event.commits is not None
    assert len(event.commits) == MAX_COMMITS
    assert event.commits[0].sha == f"{5:040x}"
    assert metadata(event)["commit_count"] == MAX_COMMITS + 5


def test_branch_deletions_and_pushes_without_commits_are_ignored() -> None:
    """octokit's examples: a tag created at an existing commit, and deletions."""
    reasons = [
        ignored(parse_push(payload, delivery("push"), CONFIG))
        for name, _, payload in all_examples()
        if name == "push" and not payload["commits"]
    ]
    assert len(reasons) >= 2
    assert any("push deleted refs/tags/simple-tag" in reason for reason in reasons)
    assert any("carries no commits" in reason for reason in reasons)


def test_a_repository_of_140_characters_is_accepted() -> None:
    payload = pushed_commits()
    payload["repository"]["full_name"] = "o" * 39 + "/" + "n" * 100
    (event,) = events_of(parse_push(payload, delivery("push"), CONFIG))
    assert len(event.repo) == 140


@pytest.mark.parametrize(
    ("path", "expected_loc"),
    [
        (("repository",), ("repository",)),
        (("repository", "full_name"), ("repository", "full_name")),
        (("commits", 0, "timestamp"), ("commits", 0, "timestamp")),
        (("commits", 0, "id"), ("commits", 0, "id")),
    ],
)
def test_push_missing_required_fields_name_the_field(
    path: tuple[Any, ...], expected_loc: tuple[Any, ...]
) -> None:
    payload = pushed_commits()
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(ValidationError) as info:
        parse_push(payload, delivery("push"), CONFIG)
    assert expected_loc in [err["loc"] for err in info.value.errors()]


def test_push_with_a_non_hex_sha_is_refused() -> None:
    payload = pushed_commits()
    payload["commits"][0]["id"] = "not-a-sha"
    with pytest.raises(ValidationError):
        parse_push(payload, delivery("push"), CONFIG)


@pytest.mark.parametrize(
    ("path", "value", "loc"),
    [
        (("commits", 0, "timestamp"), OVERFLOWING, ("commits", 0, "timestamp")),
        (("head_commit", "timestamp"), "0001-01-01T00:00:00+01:00", ("head_commit", "timestamp")),
        (("repository", "pushed_at"), OVERFLOWING, ("repository", "pushed_at")),
    ],
)
def test_a_time_that_overflows_in_utc_names_its_field(
    path: tuple[Any, ...], value: str, loc: tuple[Any, ...]
) -> None:
    payload = pushed_commits()
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValidationError) as info:
        parse_push(payload, delivery("push"), CONFIG)
    errors = {err["loc"]: err["msg"] for err in info.value.errors()}
    assert "out of range once converted to UTC" in errors[loc]


def test_push_message_is_cut_so_metadata_fits_one_kilobyte() -> None:
    payload = load("push.json")
    payload["head_commit"]["message"] = "ü" * 5000 + "\n\nbody"
    payload["head_commit"]["author"]["username"] = "x" * 700
    (event,) = events_of(parse_push(payload, delivery("push"), CONFIG))
    assert len(event.metadata.encode("utf-8")) <= MAX_METADATA_BYTES
    data = metadata(event)
    assert data["message"].startswith("üüü")
    assert data["message"].endswith("…")
    assert data["ref"] == "refs/heads/main"


# -- deployment_status ----------------------------------------------------------------------------
def deployment_status(state: str = "success") -> dict[str, Any]:
    payload = example("deployment_status", lambda p: p["deployment_status"]["state"] == "success")
    payload["deployment_status"]["state"] = state
    return payload


def test_successful_deployment_status_is_a_successful_deploy_in_its_environment() -> None:
    (event,) = events_of(parse_deployment_status(deployment_status(), delivery("deployment_status"), CONFIG))
    assert wire(event) == {
        "event_id": "github:deployment_status:209916254",
        "time": "2019-05-15T15:20:55.000Z",  # deployment_status.created_at
        "repo": "Codertocat/Hello-World",
        "event": "deploy",
        "metadata": event.metadata,
        "source": "github",
        "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        "environment": "production",
        "outcome": "success",
        "deployment_id": "145988746",
    }
    assert metadata(event) == {
        "github_event": "deployment_status",
        "ref": "master",
        "task": "deploy",
        "state": "success",
        "status_id": 209916254,
    }


@pytest.mark.parametrize("state", ["failure", "error"])
def test_failed_deployment_is_a_deploy_that_failed(state: str) -> None:
    """It counts once as a deployment and once as a failure (not as a deploy_failed without a deploy)."""
    (event,) = events_of(
        parse_deployment_status(deployment_status(state), delivery("deployment_status"), CONFIG)
    )
    assert (event.event, event.outcome, event.failed, event.is_deploy) == (
        EventType.DEPLOY,
        "failure",
        True,
        True,
    )
    assert event.event_id == "github:deployment_status:209916254"
    assert metadata(event)["state"] == state


def test_other_deployment_states_are_ignored_with_the_reason() -> None:
    in_progress = example("deployment_status", lambda p: p["deployment_status"]["state"] == "in_progress")
    assert "'in_progress' is not mapped" in ignored(
        parse_deployment_status(in_progress, delivery("deployment_status"), CONFIG)
    )
    for state in ("pending", "queued", "inactive"):
        reason = ignored(
            parse_deployment_status(deployment_status(state), delivery("deployment_status"), CONFIG)
        )
        assert f"'{state}'" in reason


def test_every_environment_is_forwarded_and_the_old_filter_is_a_no_op() -> None:
    config = MappingConfig.from_settings(Settings(github_deploy_environment_pattern="^production$"))
    preview = deployment_status()
    preview["deployment_status"]["environment"] = "preview-pr-42"
    (event,) = events_of(parse_deployment_status(preview, delivery("deployment_status"), config))
    assert event.environment == "preview-pr-42"

    from_deployment = deployment_status()
    del from_deployment["deployment_status"]["environment"]
    from_deployment["deployment"]["environment"] = "staging"
    (event,) = events_of(parse_deployment_status(from_deployment, delivery("deployment_status"), CONFIG))
    assert event.environment == "staging"


def test_environment_names_beyond_the_model_limit_stay_distinct() -> None:
    long_a, long_b = "e" * 200 + "a", "e" * 200 + "b"
    short_a, short_b = environment_name(long_a), environment_name(long_b)
    assert short_a is not None
    assert short_b is not None
    assert len(short_a) == len(short_b) == 100
    assert short_a != short_b
    assert environment_name(long_a) == short_a
    assert environment_name("Production - EU") == "Production - EU"
    assert environment_name("  ") is None
    payload = deployment_status()
    payload["deployment_status"]["environment"] = long_a
    (event,) = events_of(parse_deployment_status(payload, delivery("deployment_status"), CONFIG))
    assert event.environment == short_a


def test_deployment_status_without_deployment_sha_is_refused() -> None:
    payload = deployment_status()
    del payload["deployment"]["sha"]
    with pytest.raises(ValidationError) as info:
        parse_deployment_status(payload, delivery("deployment_status"), CONFIG)
    assert ("deployment", "sha") in [err["loc"] for err in info.value.errors()]


def test_deployment_times_out_of_range_name_the_payload_field() -> None:
    overflowing = deployment_status()
    overflowing["deployment_status"]["created_at"] = OVERFLOWING
    with pytest.raises(ValidationError) as overflow:
        parse_deployment_status(overflowing, delivery("deployment_status"), CONFIG)
    assert ("deployment_status", "created_at") in [err["loc"] for err in overflow.value.errors()]

    ancient = deployment_status()
    ancient["deployment_status"]["created_at"] = "1999-12-31T23:00:00Z"
    with pytest.raises(PayloadError) as before_2000:
        parse_deployment_status(ancient, delivery("deployment_status"), CONFIG)
    assert before_2000.value.details == [
        {
            "field": "deployment_status.created_at",
            "reason": "time is before 2000-01-01; send the real event time",
        }
    ]


# -- workflow_run ---------------------------------------------------------------------------------
def workflow_run(name: str, conclusion: str = "success", attempt: int = 1) -> dict[str, Any]:
    payload = example("workflow_run", lambda p: p["workflow_run"].get("path") == ".github/workflows/test.yml")
    payload["workflow_run"].update(
        name=name, conclusion=conclusion, path=f".github/workflows/{name}.yml", run_attempt=attempt
    )
    payload["workflow"].update(name=name, path=f".github/workflows/{name}.yml")
    return payload


def test_successful_test_workflow_is_a_test_pass_of_the_head_sha() -> None:
    """octokit's example: workflow_run.name is empty, the workflow object is named 'test'."""
    payload = example("workflow_run", lambda p: p["workflow_run"].get("path") == ".github/workflows/test.yml")
    (event,) = events_of(parse_workflow_run(payload, delivery("workflow_run"), CONFIG))
    assert wire(event) == {
        "event_id": "github:workflow_run:289782451:1",
        "time": "2020-10-05T16:33:49.000Z",  # workflow_run.updated_at
        "repo": "octo-org/octo-repo",
        "event": "test_pass",
        "metadata": event.metadata,
        "source": "github",
        "sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
    }
    assert metadata(event) == {
        "github_event": "workflow_run",
        "workflow": "test",
        "run_id": 289782451,
        "run_number": 163,
        "run_attempt": 1,
        "conclusion": "success",
        "branch": "master",
        "trigger": "repository_dispatch",
    }


@pytest.mark.parametrize(
    ("name", "conclusion", "event", "outcome"),
    [
        ("Deploy to production", "success", EventType.DEPLOY, "success"),
        ("deploy", "failure", EventType.DEPLOY, "failure"),
        ("Deploy", "timed_out", EventType.DEPLOY, "failure"),
        ("Unit tests", "success", EventType.TEST_PASS, None),
        ("Test and deploy", "success", EventType.DEPLOY, "success"),  # deploy wins when both match
    ],
)
def test_workflow_runs_map_by_name_pattern(
    name: str, conclusion: str, event: EventType, outcome: str | None
) -> None:
    (mapped,) = events_of(
        parse_workflow_run(workflow_run(name, conclusion), delivery("workflow_run"), CONFIG)
    )
    assert (mapped.event, mapped.outcome) == (event, outcome)
    assert mapped.deployment_id == ("run-289782451-1" if event == EventType.DEPLOY else None)


def test_a_rerun_is_a_new_deployment_with_its_own_ids() -> None:
    (failed,) = events_of(
        parse_workflow_run(workflow_run("Deploy", "failure", 1), delivery("workflow_run"), CONFIG)
    )
    (rerun,) = events_of(
        parse_workflow_run(workflow_run("Deploy", "success", 2), delivery("workflow_run"), CONFIG)
    )
    assert (failed.event_id, failed.deployment_id) == ("github:workflow_run:289782451:1", "run-289782451-1")
    assert (rerun.event_id, rerun.deployment_id) == ("github:workflow_run:289782451:2", "run-289782451-2")
    assert (failed.outcome, rerun.outcome) == ("failure", "success")


@pytest.mark.parametrize(
    ("name", "conclusion", "reason"),
    [
        ("Deploy", "cancelled", "concluded 'cancelled'"),
        ("CI", "failure", "only success is a test_pass"),
        ("Lint", "success", "matches neither"),
    ],
)
def test_unmapped_workflow_runs_are_ignored(name: str, conclusion: str, reason: str) -> None:
    assert reason in ignored(
        parse_workflow_run(workflow_run(name, conclusion), delivery("workflow_run"), CONFIG)
    )


def test_octokit_examples_of_other_runs_are_ignored() -> None:
    requested = example("workflow_run", lambda p: p["action"] == "requested")
    manual = example("workflow_run", lambda p: p["workflow_run"]["name"] == "Manually triggered workflow")
    assert "'requested' is not mapped" in ignored(
        parse_workflow_run(requested, delivery("workflow_run"), CONFIG)
    )
    assert "matches neither" in ignored(parse_workflow_run(manual, delivery("workflow_run"), CONFIG))


def test_workflow_name_falls_back_to_the_workflow_object_and_path() -> None:
    payload = workflow_run("ignored")
    payload["workflow_run"].update(name="", path=None)
    payload["workflow"].update(name="Nightly", path=".github/workflows/deploy-prod.yml")
    (event,) = events_of(parse_workflow_run(payload, delivery("workflow_run"), CONFIG))
    assert event.event == EventType.DEPLOY
    assert metadata(event)["workflow"] == "Nightly"


def test_workflow_patterns_come_from_settings() -> None:
    settings = Settings(github_test_workflow_pattern=r"^Verify$", github_deploy_workflow_pattern=r"^Ship ")
    config = MappingConfig.from_settings(settings)
    assert isinstance(parse_workflow_run(workflow_run("CI"), delivery("workflow_run"), config), Ignored)
    (verify,) = events_of(parse_workflow_run(workflow_run("Verify"), delivery("workflow_run"), config))
    (ship,) = events_of(parse_workflow_run(workflow_run("Ship it"), delivery("workflow_run"), config))
    assert (verify.event, ship.event) == (EventType.TEST_PASS, EventType.DEPLOY)


def test_settings_refuse_an_invalid_pattern() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        Settings(github_deploy_workflow_pattern="(unclosed")


# -- issues (incidents) ----------------------------------------------------------------------------
BUG_IS_INCIDENT = dataclasses.replace(CONFIG, incident_label="bug")  # octokit's issues carry 'bug'
ISSUE_ID = 444500041


def issue(action: str) -> dict[str, Any]:
    return example("issues", lambda p: p["action"] == action and p["issue"]["id"] == ISSUE_ID)


def closed_issue(body: str | None = None) -> dict[str, Any]:
    """octokit has no 'closed' example; its 'deleted' one is a closed issue (state, closed_at)."""
    payload = issue("deleted")
    payload["action"] = "closed"
    if body is not None:
        payload["issue"]["body"] = body
    return payload


def test_an_incident_issue_opens_an_incident_at_its_creation() -> None:
    (event,) = events_of(parse_issues(issue("opened"), delivery("issues"), BUG_IS_INCIDENT))
    assert re.fullmatch(rf"github:issues:{ISSUE_ID}:opened:[0-9a-f]{{12}}", event.event_id)
    assert wire(event) == {
        "event_id": event.event_id,
        "time": "2019-05-15T15:20:18.000Z",  # issue.created_at
        "repo": "Codertocat/Hello-World",
        "event": "incident_opened",
        "metadata": event.metadata,
        "source": "github",
        "incident_id": f"github-issue-{ISSUE_ID}",
    }
    assert metadata(event)["message"] == "Spelling error in the README file"


def test_issues_without_the_incident_label_are_ignored() -> None:
    assert "not labelled 'incident'" in ignored(parse_issues(issue("opened"), delivery("issues"), CONFIG))


def test_the_label_is_compared_case_insensitively_and_comes_from_settings() -> None:
    config = MappingConfig.from_settings(Settings(github_incident_label="BUG"))
    assert isinstance(parse_issues(issue("opened"), delivery("issues"), config), list)
    assert MappingConfig.default().incident_label == "incident"


def test_adding_the_label_opens_the_incident_and_other_labels_are_ignored() -> None:
    (event,) = events_of(parse_issues(issue("labeled"), delivery("issues"), BUG_IS_INCIDENT))
    assert event.event == EventType.INCIDENT_OPENED
    assert event.event_id.startswith(f"github:issues:{ISSUE_ID}:opened:")
    other = issue("labeled")
    other["label"]["name"] = "enhancement"
    assert "'enhancement' is not the incident label" in ignored(
        parse_issues(other, delivery("issues"), BUG_IS_INCIDENT)
    )


def test_closing_resolves_and_labelling_a_closed_issue_records_both() -> None:
    (resolved,) = events_of(parse_issues(closed_issue(), delivery("issues"), BUG_IS_INCIDENT))
    closed_at = datetime(2021, 7, 5, 18, 7, 10, tzinfo=UTC)
    assert (resolved.event, resolved.time, resolved.incident_id) == (
        EventType.INCIDENT_RESOLVED,
        closed_at,
        f"github-issue-{ISSUE_ID}",
    )
    assert re.fullmatch(
        rf"github:issues:{ISSUE_ID}:resolved:{int(closed_at.timestamp())}:[0-9a-f]{{12}}", resolved.event_id
    )

    late_label = closed_issue()
    late_label["action"] = "labeled"
    late_label["label"] = {"name": "bug"}
    opened, again = events_of(parse_issues(late_label, delivery("issues"), BUG_IS_INCIDENT))
    assert (opened.event, opened.time) == (
        EventType.INCIDENT_OPENED,
        datetime(2021, 7, 5, 18, 5, 24, tzinfo=UTC),
    )
    assert wire(again) == wire(resolved)  # the same event as the close itself


def test_reopen_unlabel_and_other_actions_are_ignored_with_the_reason() -> None:
    assert "next close records" in ignored(
        parse_issues(issue("reopened"), delivery("issues"), BUG_IS_INCIDENT)
    )
    assert "does not retract" in ignored(
        parse_issues(issue("unlabeled"), delivery("issues"), BUG_IS_INCIDENT)
    )
    assert "'edited' is not mapped" in ignored(
        parse_issues(issue("edited"), delivery("issues"), BUG_IS_INCIDENT)
    )


def test_a_second_close_after_a_reopen_is_a_later_resolution_of_the_same_incident() -> None:
    first = events_of(parse_issues(closed_issue(), delivery("issues"), BUG_IS_INCIDENT))[0]
    reclosed = closed_issue()
    reclosed["issue"]["closed_at"] = "2021-07-06T09:00:00Z"
    second = events_of(parse_issues(reclosed, delivery("issues"), BUG_IS_INCIDENT))[0]
    assert first.incident_id == second.incident_id
    assert first.event_id != second.event_id
    assert second.time > first.time


def test_a_root_cause_line_names_the_change_on_both_events() -> None:
    body = "Checkout is down.\n\n**Root cause:** `F95F852BD8FCA8FC`\n"
    (resolved,) = events_of(parse_issues(closed_issue(body), delivery("issues"), BUG_IS_INCIDENT))
    opened = issue("opened")
    opened["issue"]["body"] = "root cause: f95f852b"
    (event,) = events_of(parse_issues(opened, delivery("issues"), BUG_IS_INCIDENT))
    assert (resolved.sha, event.sha) == ("f95f852bd8fca8fc", "f95f852b")


@pytest.mark.parametrize(
    ("text", "sha"),
    [
        ("Root cause: 1a2b3c4", "1a2b3c4"),
        ("root-cause = 1A2B3C4D5E", "1a2b3c4d5e"),
        ("x\nroot_cause: " + "ab" * 20 + "\n", "ab" * 20),
        ("root cause: unknown yet", None),
        ("the cause was 1a2b3c4", None),
        (None, None),
    ],
)
def test_root_cause_lines(text: str | None, sha: str | None) -> None:
    assert root_cause_sha(text) == sha


def test_a_closed_issue_without_closed_at_names_the_field() -> None:
    payload = closed_issue()
    payload["issue"]["closed_at"] = None
    with pytest.raises(PayloadError) as info:
        parse_issues(payload, delivery("issues"), BUG_IS_INCIDENT)
    assert info.value.details == [{"field": "issue.closed_at", "reason": "required on a closed issue"}]


# -- every example GitHub documents ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "index", "payload"),
    [pytest.param(name, index, payload, id=f"{name}-{index}") for name, index, payload in all_examples()],
)
def test_every_github_example_maps_to_events_or_a_reason(
    name: str, index: int, payload: dict[str, Any]
) -> None:
    """No delivery GitHub documents is refused: events with payload-derived ids, or ignored politely."""
    first = parse_delivery(payload, delivery(name, "delivery-a"), BUG_IS_INCIDENT)
    again = parse_delivery(payload, delivery(name, "delivery-b"), BUG_IS_INCIDENT)
    if isinstance(first, Ignored):
        assert first.reason
        assert name not in PARSERS or first == again
        return
    assert name in PARSERS
    assert isinstance(again, list)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert all(e.event_id.startswith(f"github:{name}:") for e in first)
    assert all("delivery" not in e.event_id for e in first)
    assert {e.source for e in first} == {"github"}


def test_the_examples_exercise_every_parser() -> None:
    produced = {
        name
        for name, _, payload in all_examples()
        if isinstance(parse_delivery(payload, delivery(name), BUG_IS_INCIDENT), list)
    }
    assert produced == set(PARSERS)


# -- dispatch and helpers -------------------------------------------------------------------------
def test_unmapped_events_are_ignored_with_the_reason() -> None:
    payload = example("projects_v2_item")
    reason = ignored(parse_delivery(payload, delivery("projects_v2_item"), CONFIG))
    assert "'projects_v2_item' is not mapped" in reason


def test_compact_metadata_drops_empty_fields_and_keeps_the_first_line() -> None:
    text = compact_metadata(
        {"ref": "refs/heads/main", "author": None, "env": ""}, message="  Title  \n\nBody"
    )
    assert text == '{"message":"Title","ref":"refs/heads/main"}'
    assert re.fullmatch(r"\{.*\}", compact_metadata({"k": "v" * 5000}))
    assert len(compact_metadata({"k": "v" * 5000}).encode()) <= MAX_METADATA_BYTES


def test_parsers_do_not_mutate_their_input() -> None:
    for parser, payload in [
        (parse_push, load("push.json")),
        (parse_deployment_status, deployment_status()),
        (parse_issues, closed_issue()),
    ]:
        snapshot = copy.deepcopy(payload)
        parser(payload, delivery("x"), BUG_IS_INCIDENT)
        assert payload == snapshot


def test_ping_note_shows_what_the_hook_subscription_means() -> None:
    repository_hook = example("ping", lambda p: p["hook"]["events"] == ["*"])
    assert describe_ping(repository_hook) == (
        "webhook reached the gateway; mapped events: deployment_status, issues, push, workflow_run "
        "(others are ignored)"
    )
    organisation_hook = example("ping", lambda p: p["hook"]["events"] != ["*"])
    note = describe_ping(organisation_hook)
    assert "not subscribed to deployment_status, issues, push, workflow_run" in note
    assert "code_scanning_alert" in note
    assert "will be ignored" in note
    assert "others are ignored" in describe_ping({"hook": "not an object"})


def test_an_edited_incident_labelled_again_is_another_report_of_it_never_a_conflict() -> None:
    """The label removed, the title edited and a root-cause line added, the label added again: a new
    event id for the same incident (the metrics take its root cause); a redelivery of either delivery
    is the very same event."""
    first = issue("labeled")
    first["label"] = {"name": "bug"}
    (opened,) = events_of(parse_issues(first, delivery("issues"), BUG_IS_INCIDENT))
    (redelivered,) = events_of(parse_issues(copy.deepcopy(first), delivery("issues"), BUG_IS_INCIDENT))
    assert wire(redelivered) == wire(opened)

    edited = copy.deepcopy(first)
    edited["issue"]["title"] = "Spelling error in the README (root cause found)"
    edited["issue"]["body"] = "Root cause: 1a2b3c4"
    (again,) = events_of(parse_issues(edited, delivery("issues"), BUG_IS_INCIDENT))
    assert again.event_id != opened.event_id
    assert (again.incident_id, again.time, again.sha) == (opened.incident_id, opened.time, "1a2b3c4")
