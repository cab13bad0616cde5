"""One pure function per GitHub event: a verified payload in, DevOps events (or a reason to ignore) out.

Like fourkeys' github-parser, each parser only reads the payload and its delivery's headers; nothing
here touches the network, so each is tested directly on GitHub's own example payloads. A payload
missing a field we need raises ``pydantic.ValidationError``, and one whose values the event model
refuses raises ``PayloadError``; both name the payload's field (the route answers 422).

Event ids derive from the payload, never from ``X-GitHub-Delivery``: a replay under any delivery id,
a redelivery, and the same event reaching a repository hook and an organisation hook all give the
same ids, with the same content, so every sink stores the event once (docs/github-webhooks.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from devops_core.events import (
    EARLIEST_EVENT_TIME,
    MAX_COMMITS,
    MAX_FUTURE_SKEW,
    MAX_METADATA_BYTES,
    DevOpsEvent,
    EventIn,
    EventType,
    describe_validation_error,
)
from devops_core.settings import Settings
from producer.github.models import (
    Commit,
    DeploymentStatusPayload,
    IssuesPayload,
    PingPayload,
    PushPayload,
    WorkflowRunPayload,
)

__all__ = [
    "PARSERS",
    "SOURCE",
    "Delivery",
    "Ignored",
    "MappingConfig",
    "ParseOutcome",
    "PayloadError",
    "compact_metadata",
    "describe_ping",
    "environment_name",
    "parse_delivery",
    "parse_deployment_status",
    "parse_issues",
    "parse_push",
    "parse_workflow_run",
    "push_event_id",
    "root_cause_sha",
]

SOURCE = "github"
_MESSAGE_MAX_CHARS = 200
_ELLIPSIS = "…"
_MAX_NAME = 100  # devops_core.events' limit for environment names
_NULL_SHA = re.compile(r"^0+$")
# fourkeys reads "root cause: <sha>" from an incident issue's body; we accept a few spellings:
# "Root cause: 1a2b3c4", "root-cause = 1a2b3c4...", "**Root cause:** `1a2b3c4`".
_ROOT_CAUSE = re.compile(r"root[ _-]?cause[\s*_`'\"]*[:=][\s*_`'\"]*([0-9a-f]{7,64})\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the headers of one webhook delivery tell us."""

    id: str  # X-GitHub-Delivery (a GUID, identical on redelivery); logged, never an event id
    event: str  # X-GitHub-Event
    received_at: datetime


_REASON_CHARS = 300


@dataclass(frozen=True, slots=True)
class Ignored:
    """The delivery is valid but maps to no DevOps event; ``reason`` is shown to the sender and logged,
    so it is cut to ``_REASON_CHARS`` (it quotes payload values: a 5 MB state was a 5 MB answer)."""

    reason: str

    def __post_init__(self) -> None:
        if len(self.reason) > _REASON_CHARS:
            object.__setattr__(self, "reason", self.reason[:_REASON_CHARS] + "…")


class PayloadError(ValueError):
    """The payload's values are refused by the event model; ``details`` name the payload's fields."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{d['field']}: {d['reason']}" for d in details))
        self.details = details


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """Which workflows count as tests and deployments (regexes, ``re.search``), and which issue label
    marks an incident (compared case-insensitively, as a whole label name)."""

    test_workflow: re.Pattern[str]
    deploy_workflow: re.Pattern[str]
    incident_label: str = "incident"

    @classmethod
    def from_settings(cls, settings: Settings) -> MappingConfig:
        return cls(
            test_workflow=re.compile(settings.github_test_workflow_pattern),
            deploy_workflow=re.compile(settings.github_deploy_workflow_pattern),
            incident_label=settings.github_incident_label,
        )

    @classmethod
    def default(cls) -> MappingConfig:
        return cls.from_settings(Settings.model_construct())


ParseOutcome = list[DevOpsEvent] | Ignored
Parser = Callable[[dict[str, Any], Delivery, MappingConfig], ParseOutcome]


# -- helpers -----------------------------------------------------------------------------------------
def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= _MESSAGE_MAX_CHARS else line[: _MESSAGE_MAX_CHARS - 1] + _ELLIPSIS


def compact_metadata(fields: dict[str, Any], *, message: str | None = None) -> str:
    """Compact JSON of the non-empty fields plus the message's first line, cut so the whole fits 1 KB."""
    data = {key: value for key, value in fields.items() if value is not None and value != ""}
    line = _first_line(message) if message else ""
    while True:
        text = _dump({**data, "message": line} if line else data)
        excess = len(text.encode("utf-8")) - MAX_METADATA_BYTES
        if excess <= 0:
            return text
        if line:  # cut the message by the bytes in excess (the loop absorbs JSON escaping)
            raw = line.removesuffix(_ELLIPSIS).encode("utf-8")
            budget = len(raw) - excess - len(_ELLIPSIS.encode("utf-8"))
            line = raw[:budget].decode("utf-8", errors="ignore").rstrip() + _ELLIPSIS if budget > 0 else ""
        elif data:  # absurdly long field values: drop the longest until it fits
            data.pop(max(data, key=lambda key: len(str(data[key]))))
        else:
            return "{}"


def environment_name(name: str | None) -> str | None:
    """A GitHub environment name as the event model takes it (1-100 printable characters).

    GitHub allows 255 characters; a longer name keeps its first 91 and a digest of the whole, so two
    long names stay two environments and the same name always maps to the same value.
    """
    if name is None:
        return None
    text = re.sub(r"[\x00-\x1f\x7f]", " ", name).strip()
    if not text:
        return None
    if len(text) <= _MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{text[: _MAX_NAME - 9]}~{digest}"


def root_cause_sha(text: str | None) -> str | None:
    """The commit a "root cause: <sha>" line names (fourkeys' convention), lower-cased."""
    match = _ROOT_CAUSE.search(text or "")
    return match.group(1).lower() if match else None


def _digest(parts: list[Any]) -> str:
    """The hex SHA-256 of the parts as compact JSON: the payload-derived part of an event id."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode("utf-8")).hexdigest()


def push_event_id(full_name: str, ref: str, before: str | None, after: str | None) -> str:
    """A push is identified by what it changed: the repository, the ref and its old and new heads."""
    return "github:push:" + _digest([full_name, ref, before or "", after or ""])


def _commit_time(commit: Commit, received_at: datetime) -> datetime | None:
    """A commit's time when it is plausible; otherwise none (lead time then starts at the push).

    Committers' clocks are theirs: an imported history from 1995 or a clock a day ahead must not
    refuse the push nor distort lead time. "Ahead" is measured against the receipt, not against
    ``repository.pushed_at``: GitHub's own push example has commit times hours after its pushed_at.
    So a commit more than 15 minutes ahead of the first delivery but not of a redelivery gives the
    redelivery other content: a conflict, dead-lettered, the first delivery kept (docs/github-webhooks.md).
    """
    time = commit.timestamp
    if time < EARLIEST_EVENT_TIME or time - received_at > MAX_FUTURE_SKEW:
        return None
    return time


def _epoch(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp())


def _event(
    delivery: Delivery,
    fields: dict[str, Any],
    *,
    where: Mapping[str, str],
    metadata: dict[str, Any],
    message: str | None = None,
) -> DevOpsEvent:
    """Validate one event like any client's (``source`` github is reserved for us) and put it on the
    wire. ``where`` maps the event's fields to the payload fields they came from, so a refusal names
    what GitHub sent."""
    body = {
        **{key: value for key, value in fields.items() if value is not None},
        "metadata": compact_metadata({"github_event": delivery.event, **metadata}, message=message),
        "source": SOURCE,
    }
    try:
        incoming = EventIn.model_validate(
            body,
            # pure: judged against the delivery's time, not the clock; "github" is a reserved source
            context={"now": delivery.received_at, "trusted_source": True},
        )
    except ValidationError as exc:
        details = describe_validation_error(exc)
        for detail in details:
            head, _, rest = detail["field"].partition(".")
            if head in where:
                detail["field"] = where[head] + ("." + rest if rest else "")
        raise PayloadError(details) from None
    return incoming.to_wire(source=SOURCE, received_at=delivery.received_at)


# -- push --------------------------------------------------------------------------------------------
def parse_push(payload: dict[str, Any], delivery: Delivery, config: MappingConfig) -> ParseOutcome:
    """One ``push`` event per push: sha = the new head, before = the branch's head before the push
    (unset for a new branch, GitHub's null sha, and for a force-push), commits = every commit with
    its time, time = when GitHub took the push (``repository.pushed_at``; else the head commit's
    time; else receipt)."""
    push = PushPayload.model_validate(payload)
    if push.deleted or (push.after is not None and _NULL_SHA.match(push.after)):
        return Ignored(f"push deleted {push.ref}; no commits to record")
    if not push.commits:
        return Ignored(f"push to {push.ref} carries no commits (a new branch or tag at an existing commit)")
    commits = push.commits[-MAX_COMMITS:]  # GitHub lists at most 2,048, oldest first
    head = push.head_commit or next((c for c in commits if c.id == push.after), commits[-1])
    where = {
        "time": "repository.pushed_at",
        "sha": "after",
        "before": "before",
        "repo": "repository.full_name",
    }
    time = push.repository.pushed_at
    skew = False
    if time is None:
        time = head.timestamp
        where = {**where, "time": "head_commit.timestamp"}
        if time - delivery.received_at > MAX_FUTURE_SKEW:  # a committer's clock ahead of ours
            time, skew = delivery.received_at, True
    author = head.author.username or head.author.name if head.author else None
    return [
        _event(
            delivery,
            {
                "event_id": push_event_id(push.repository.full_name, push.ref, push.before, push.after),
                "repo": push.repository.full_name,
                "event": EventType.PUSH.value,
                "time": time,
                "sha": push.after or head.id,
                # A force-push's before is the head it threw away, not one it builds on: no link.
                "before": None
                if push.before is None or _NULL_SHA.match(push.before) or push.forced
                else push.before,
                "commits": [{"sha": c.id, "time": _commit_time(c, delivery.received_at)} for c in commits],
            },
            where={**where, "commits": "commits"},
            metadata={
                "ref": push.ref,
                "pusher": push.pusher.name if push.pusher else None,
                "author": author,
                "commit_count": len(push.commits),
                "forced": push.forced or None,
                "clock_skew": skew or None,
            },
            message=head.message,
        )
    ]


# -- deployment_status -------------------------------------------------------------------------------
_DEPLOYMENT_OUTCOMES = {"success": "success", "failure": "failure", "error": "failure"}


def parse_deployment_status(
    payload: dict[str, Any], delivery: Delivery, config: MappingConfig
) -> ParseOutcome:
    """success -> deploy (outcome success); failure/error -> deploy (outcome failure), in every
    environment: the metrics decide which environments are production."""
    body = DeploymentStatusPayload.model_validate(payload)
    status, deployment = body.deployment_status, body.deployment
    if body.action != "created":
        return Ignored(f"deployment_status action '{body.action}' is not mapped (only 'created')")
    outcome = _DEPLOYMENT_OUTCOMES.get(status.state)
    if outcome is None:
        return Ignored(
            f"deployment state '{status.state}' is not mapped (only success, failure, error: a "
            "deployment that finished)"
        )
    environment_field = "deployment_status.environment" if status.environment else "deployment.environment"
    return [
        _event(
            delivery,
            {
                "event_id": f"github:deployment_status:{status.id}",
                "repo": body.repository.full_name,
                "event": EventType.DEPLOY.value,
                "time": status.created_at,
                "sha": deployment.sha,
                "outcome": outcome,
                "environment": environment_name(status.environment or deployment.environment),
                "deployment_id": str(deployment.id),
            },
            where={
                "time": "deployment_status.created_at",
                "sha": "deployment.sha",
                "repo": "repository.full_name",
                "environment": environment_field,
            },
            metadata={
                "ref": deployment.ref,
                "task": deployment.task,
                "state": status.state,
                "status_id": status.id,
            },
        )
    ]


# -- workflow_run ------------------------------------------------------------------------------------
_DEPLOY_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out"})


def parse_workflow_run(payload: dict[str, Any], delivery: Delivery, config: MappingConfig) -> ParseOutcome:
    """A completed run of a deploy workflow -> deploy (outcome from the conclusion); of a test
    workflow -> test_pass. One event per run attempt (a re-run is a new deployment).

    The patterns are searched in the workflow's name and its file path; deploy wins when both match.
    """
    body = WorkflowRunPayload.model_validate(payload)
    run = body.workflow_run
    if body.action != "completed":
        return Ignored(f"workflow_run action '{body.action}' is not mapped (only 'completed')")
    name = run.name or (body.workflow.name if body.workflow else None) or ""
    path = run.path or (body.workflow.path if body.workflow else None) or ""
    conclusion = run.conclusion or "none"

    def matches(pattern: re.Pattern[str]) -> bool:
        return bool(pattern.search(name) or (path and pattern.search(path)))

    fields: dict[str, Any] = {
        "event_id": f"github:workflow_run:{run.id}:{run.run_attempt}",
        "repo": body.repository.full_name,
        "time": run.updated_at or run.created_at,
        "sha": run.head_sha,
    }
    if matches(config.deploy_workflow):
        if conclusion == "success":
            outcome = "success"
        elif conclusion in _DEPLOY_FAILED_CONCLUSIONS:
            outcome = "failure"
        else:
            return Ignored(
                f"deploy workflow '{name}' concluded '{conclusion}' (mapped: success, failure, timed_out)"
            )
        fields.update(
            event=EventType.DEPLOY.value, outcome=outcome, deployment_id=f"run-{run.id}-{run.run_attempt}"
        )
    elif matches(config.test_workflow):
        if conclusion != "success":
            return Ignored(f"test workflow '{name}' concluded '{conclusion}'; only success is a test_pass")
        fields.update(event=EventType.TEST_PASS.value)
    else:
        return Ignored(f"workflow '{name}' matches neither the test nor the deploy workflow pattern")
    return [
        _event(
            delivery,
            fields,
            where={
                "time": "workflow_run.updated_at" if run.updated_at else "workflow_run.created_at",
                "sha": "workflow_run.head_sha",
                "repo": "repository.full_name",
            },
            metadata={
                "workflow": name,
                "run_id": run.id,
                "run_number": run.run_number,
                "run_attempt": run.run_attempt,
                "conclusion": conclusion,
                "branch": run.head_branch,
                "trigger": run.event,
            },
        )
    ]


# -- issues (incidents) ------------------------------------------------------------------------------
def parse_issues(payload: dict[str, Any], delivery: Delivery, config: MappingConfig) -> ParseOutcome:
    """Issues labelled as incidents (``GITHUB_INCIDENT_LABEL``) open and resolve incidents, as in fourkeys.

    - opened with the label, or the label added: ``incident_opened`` at the issue's ``created_at``
      (labelling an already closed issue records the whole incident: opened and resolved);
    - closed with the label: ``incident_resolved`` at ``closed_at``;
    - reopened: nothing now; the next close records a later resolution (the first one counts);
    - label removed, edited, deleted and every other action: ignored (events are append-only).

    ``incident_id`` is ``github-issue-<issue id>``; a "root cause: <sha>" line in the body names the
    change that caused it (on both events, since the cause is often written down before closing).
    """
    body = IssuesPayload.model_validate(payload)
    issue = body.issue
    wanted = config.incident_label.casefold()
    labelled = any(label.name.casefold() == wanted for label in issue.labels)
    action = body.action
    if action in {"labeled", "unlabeled"}:
        changed = body.label.name if body.label else ""
        if changed.casefold() != wanted:
            return Ignored(f"issue label '{changed}' is not the incident label '{config.incident_label}'")
        if action == "unlabeled":
            return Ignored(
                "removing the incident label does not retract a recorded incident (events are append-only)"
            )
        labelled = True
    elif not labelled:
        return Ignored(f"issue is not labelled '{config.incident_label}'")
    closed = issue.closed_at is not None and (issue.state or "closed") == "closed"
    if action in {"opened", "labeled"}:
        transitions = ["opened", "resolved"] if closed else ["opened"]
    elif action == "closed":
        if issue.closed_at is None:
            raise PayloadError([{"field": "issue.closed_at", "reason": "required on a closed issue"}])
        transitions = ["resolved"]
    elif action == "reopened":
        return Ignored("a reopened incident stays one incident; its next close records the resolution")
    else:
        return Ignored(f"issues action '{action}' is not mapped (opened, labeled, closed)")

    incident_id = f"github-issue-{issue.id}"
    cause = root_cause_sha(issue.body)
    # What an event of this issue says besides its transition (the title it shows, the root cause it
    # names) is part of its id: a redelivery is the same event, an edited issue labelled again is a
    # new report of the same incident (its root cause counts), never a conflict under an old id.
    said = _digest([issue.title, cause, issue.html_url, issue.number])[:12]
    events = []
    for transition in transitions:
        if transition == "opened":
            event, time, event_id = (
                EventType.INCIDENT_OPENED,
                issue.created_at,
                f"github:issues:{issue.id}:opened:{said}",
            )
            time_field = "issue.created_at"
        else:
            assert issue.closed_at is not None
            event, time, time_field = EventType.INCIDENT_RESOLVED, issue.closed_at, "issue.closed_at"
            event_id = f"github:issues:{issue.id}:resolved:{_epoch(issue.closed_at)}:{said}"
        events.append(
            _event(
                delivery,
                {
                    "event_id": event_id,
                    "repo": body.repository.full_name,
                    "event": event.value,
                    "time": time,
                    "incident_id": incident_id,
                    "sha": cause,
                },
                where={"time": time_field, "repo": "repository.full_name", "sha": "issue.body"},
                metadata={"issue": issue.number, "url": issue.html_url},
                message=issue.title,
            )
        )
    return events


PARSERS: dict[str, Parser] = {
    "push": parse_push,
    "deployment_status": parse_deployment_status,
    "workflow_run": parse_workflow_run,
    "issues": parse_issues,
}


def describe_ping(payload: Any) -> str:
    """What a new hook's subscription means here, so its first (ping) delivery shows misconfiguration."""
    mapped = sorted(PARSERS)
    try:
        ping = PingPayload.model_validate(payload)
    except ValidationError:
        ping = PingPayload()
    subscribed = set(ping.hook.events) if ping.hook else set()
    if not subscribed or "*" in subscribed:
        return f"webhook reached the gateway; mapped events: {', '.join(mapped)} (others are ignored)"
    notes = [f"webhook reached the gateway; mapped events: {', '.join(mapped)}"]
    if missing := [name for name in mapped if name not in subscribed]:
        notes.append(f"not subscribed to {', '.join(missing)}")
    if extra := sorted(subscribed - set(mapped) - {"ping"}):
        notes.append(f"{', '.join(extra)} will be ignored")
    return "; ".join(notes)


def parse_delivery(payload: Any, delivery: Delivery, config: MappingConfig) -> ParseOutcome:
    """Dispatch on X-GitHub-Event; events without a parser are ignored, with the reason."""
    parser = PARSERS.get(delivery.event)
    if parser is None:
        mapped = ", ".join(sorted(PARSERS))
        return Ignored(f"GitHub event '{delivery.event}' is not mapped (mapped: {mapped}, ping)")
    if not isinstance(payload, dict):
        raise TypeError("payload must be a JSON object")
    return parser(payload, delivery, config)
