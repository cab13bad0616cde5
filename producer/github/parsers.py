"""One pure function per GitHub event: a verified payload in, DevOps events (or a reason to ignore) out.

Like fourkeys' github-parser, each parser only reads the payload and its delivery's headers; nothing
here touches the network, so each is tested directly on GitHub-shaped payloads. A payload missing a
field we need raises ``pydantic.ValidationError`` (the route answers 422 with the field's path).

Event ids derive from ``X-GitHub-Delivery``: a redelivery yields the same ids, so the sinks' idempotency
on event_id absorbs it. A push yields one event per commit, ``<delivery>:<sha>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from devops_core.events import MAX_FUTURE_SKEW, MAX_METADATA_BYTES, DevOpsEvent, EventIn, EventType
from devops_core.settings import Settings
from producer.github.models import DeploymentStatusPayload, PingPayload, PushPayload, WorkflowRunPayload

__all__ = [
    "PARSERS",
    "SOURCE",
    "Delivery",
    "Ignored",
    "MappingConfig",
    "ParseOutcome",
    "compact_metadata",
    "describe_ping",
    "parse_delivery",
    "parse_deployment_status",
    "parse_push",
    "parse_workflow_run",
]

SOURCE = "github"
_MESSAGE_MAX_CHARS = 200
_ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the headers of one webhook delivery tell us."""

    id: str  # X-GitHub-Delivery (a GUID, identical on redelivery)
    event: str  # X-GitHub-Event
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Ignored:
    """The delivery is valid but maps to no DevOps event; ``reason`` is shown to the sender."""

    reason: str


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """Which workflows count as tests and deployments, and which environments' deployments count
    (regexes, ``re.search``; no environment pattern means every environment)."""

    test_workflow: re.Pattern[str]
    deploy_workflow: re.Pattern[str]
    deploy_environment: re.Pattern[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MappingConfig:
        environment = settings.github_deploy_environment_pattern
        return cls(
            test_workflow=re.compile(settings.github_test_workflow_pattern),
            deploy_workflow=re.compile(settings.github_deploy_workflow_pattern),
            deploy_environment=re.compile(environment) if environment else None,
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


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _event(
    delivery: Delivery,
    *,
    event_id: str,
    repo: str,
    event: EventType,
    time: datetime,
    sha: str,
    fields: dict[str, Any],
    message: str | None = None,
) -> DevOpsEvent:
    time = _utc(time)
    if time - delivery.received_at > MAX_FUTURE_SKEW:
        # A committer's clock ahead of ours: keep the event, at the time we saw it.
        fields = {**fields, "clock_skew": True}
        time = delivery.received_at
    incoming = EventIn.model_validate(
        {
            "repo": repo,
            "event": event.value,
            "time": time,
            "metadata": compact_metadata({"github_event": delivery.event, **fields}, message=message),
            "event_id": event_id,
            "sha": sha,
            "source": SOURCE,
        },
        # pure: judged against the delivery's time, not the clock; "github" is a reserved source
        context={"now": delivery.received_at, "trusted_source": True},
    )
    return incoming.to_wire(source=SOURCE, received_at=delivery.received_at)


# -- parsers -----------------------------------------------------------------------------------------
def parse_push(payload: dict[str, Any], delivery: Delivery, config: MappingConfig) -> ParseOutcome:
    """One ``push`` event per pushed commit: sha = commit id, time = commit timestamp."""
    push = PushPayload.model_validate(payload)
    if push.deleted:
        return Ignored(f"push deleted {push.ref}; no commits to record")
    if not push.commits:
        return Ignored(f"push to {push.ref} carries no commits (a new branch or tag at an existing commit)")
    repo = push.repository.full_name
    # Every commit carries the push's head, so a deploy of the head can claim all of them (as fourkeys does).
    head = push.after.lower() if push.after and push.after.strip("0") else None
    events = []
    for commit in push.commits:
        author = commit.author.username or commit.author.name if commit.author else None
        events.append(
            _event(
                delivery,
                event_id=f"{delivery.id}:{commit.id.lower()}",
                repo=repo,
                event=EventType.PUSH,
                time=commit.timestamp,
                sha=commit.id,
                fields={"ref": push.ref, "head_sha": head, "author": author, "distinct": commit.distinct},
                message=commit.message,
            )
        )
    return events


_DEPLOYMENT_STATES = {
    "success": EventType.DEPLOY,
    "failure": EventType.DEPLOY_FAILED,
    "error": EventType.DEPLOY_FAILED,
}


def parse_deployment_status(
    payload: dict[str, Any], delivery: Delivery, config: MappingConfig
) -> ParseOutcome:
    """success -> deploy, failure/error -> deploy_failed; sha = the deployment's sha."""
    body = DeploymentStatusPayload.model_validate(payload)
    status, deployment = body.deployment_status, body.deployment
    if body.action != "created":
        return Ignored(f"deployment_status action '{body.action}' is not mapped (only 'created')")
    mapped = _DEPLOYMENT_STATES.get(status.state)
    if mapped is None:
        return Ignored(f"deployment state '{status.state}' is not mapped (only success, failure, error)")
    environment = status.environment or deployment.environment or ""
    if config.deploy_environment is not None and not config.deploy_environment.search(environment):
        return Ignored(f"environment '{environment}' does not match the deploy environment pattern")
    return [
        _event(
            delivery,
            event_id=delivery.id,
            repo=body.repository.full_name,
            event=mapped,
            time=status.updated_at or status.created_at,
            sha=deployment.sha,
            fields={
                "environment": environment,
                "ref": deployment.ref,
                "deployment_id": deployment.id,
                "status_id": status.id,
                "state": status.state,
            },
        )
    ]


_DEPLOY_FAILED_CONCLUSIONS = frozenset({"failure", "timed_out"})


def parse_workflow_run(payload: dict[str, Any], delivery: Delivery, config: MappingConfig) -> ParseOutcome:
    """A completed run of a deploy workflow -> deploy / deploy_failed; of a test workflow -> test_pass.

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

    if matches(config.deploy_workflow):
        if conclusion == "success":
            mapped = EventType.DEPLOY
        elif conclusion in _DEPLOY_FAILED_CONCLUSIONS:
            mapped = EventType.DEPLOY_FAILED
        else:
            return Ignored(
                f"deploy workflow '{name}' concluded '{conclusion}' (mapped: success, failure, timed_out)"
            )
    elif matches(config.test_workflow):
        if conclusion != "success":
            return Ignored(f"test workflow '{name}' concluded '{conclusion}'; only success is a test_pass")
        mapped = EventType.TEST_PASS
    else:
        return Ignored(f"workflow '{name}' matches neither the test nor the deploy workflow pattern")
    return [
        _event(
            delivery,
            event_id=delivery.id,
            repo=body.repository.full_name,
            event=mapped,
            time=run.updated_at or run.created_at,
            sha=run.head_sha,
            fields={
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


PARSERS: dict[str, Parser] = {
    "push": parse_push,
    "deployment_status": parse_deployment_status,
    "workflow_run": parse_workflow_run,
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
