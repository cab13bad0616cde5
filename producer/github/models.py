"""Pydantic models of the parts of GitHub's webhook payloads we read (everything else is ignored).

Shapes follow GitHub's "Webhook events and payloads" documentation and are tested against GitHub's
own examples (the npm package ``@octokit/webhooks-examples``). Only fields the mapping needs are
required, so a payload missing one of them is refused with the field's name (422), and new fields
GitHub adds later never break parsing.

Every time is converted to UTC here: a value that cannot be (``9999-12-31T23:59:59-01:00`` is past
the largest datetime once in UTC) is a validation error naming its field, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from devops_core.events import REPO_PATTERN, SHA_PATTERN

__all__ = [
    "Commit",
    "CommitAuthor",
    "Deployment",
    "DeploymentStatus",
    "DeploymentStatusPayload",
    "Hook",
    "Issue",
    "IssuesPayload",
    "Label",
    "PingPayload",
    "PushPayload",
    "Repository",
    "UtcTime",
    "WebhookResponse",
    "Workflow",
    "WorkflowRun",
    "WorkflowRunPayload",
]

# GitHub: owner <= 39 characters, repository name <= 100, so owner/name is at most 140.
MAX_FULL_NAME = 140


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


# ISO-8601 with an offset, or Unix seconds (a push's repository.pushed_at is an integer).
UtcTime = Annotated[datetime, AfterValidator(_to_utc)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Repository(_Part):
    full_name: str = Field(
        min_length=1,
        max_length=MAX_FULL_NAME,
        pattern=REPO_PATTERN,
        description="owner/name; becomes the event's repo.",
    )
    pushed_at: UtcTime | None = Field(
        default=None, description="When the repository was last pushed to (Unix seconds in push payloads)."
    )


class CommitAuthor(_Part):
    name: str | None = None
    email: str | None = None
    username: str | None = None


class Commit(_Part):
    id: str = Field(pattern=SHA_PATTERN, description="The commit SHA.")
    timestamp: UtcTime = Field(description="ISO-8601 commit time with its offset.")
    message: str = ""
    distinct: bool = True
    author: CommitAuthor | None = None


class Pusher(_Part):
    name: str | None = None


class PushPayload(_Part):
    ref: str
    before: str | None = Field(default=None, description="The branch's commit before the push.")
    after: str | None = Field(default=None, description="The head commit after the push.")
    repository: Repository
    commits: list[Commit] = Field(default_factory=list)
    head_commit: Commit | None = None
    pusher: Pusher | None = None
    deleted: bool = False
    forced: bool = False


class Deployment(_Part):
    id: int
    sha: str = Field(pattern=SHA_PATTERN)
    ref: str | None = None
    environment: str | None = None
    task: str | None = None


class DeploymentStatus(_Part):
    id: int
    state: str = Field(description="error, failure, inactive, in_progress, queued, pending or success.")
    environment: str | None = None
    created_at: UtcTime
    updated_at: UtcTime | None = None


class DeploymentStatusPayload(_Part):
    action: str
    deployment_status: DeploymentStatus
    deployment: Deployment
    repository: Repository


class Workflow(_Part):
    name: str | None = None
    path: str | None = None


class WorkflowRun(_Part):
    id: int
    name: str | None = None
    path: str | None = None
    head_sha: str = Field(pattern=SHA_PATTERN)
    head_branch: str | None = None
    status: str | None = None
    conclusion: str | None = None
    event: str | None = None
    run_number: int | None = None
    run_attempt: int = Field(default=1, ge=1, description="1 for the first run, 2 for the first re-run...")
    created_at: UtcTime
    updated_at: UtcTime | None = None


class WorkflowRunPayload(_Part):
    action: str
    workflow_run: WorkflowRun
    workflow: Workflow | None = None
    repository: Repository


class Label(_Part):
    name: str = ""


class Issue(_Part):
    id: int
    number: int | None = None
    title: str = ""
    body: str | None = None
    state: str | None = None
    labels: list[Label] = Field(default_factory=list)
    created_at: UtcTime
    closed_at: UtcTime | None = None
    html_url: str | None = None


class IssuesPayload(_Part):
    action: str
    issue: Issue
    label: Label | None = Field(default=None, description="The label added or removed (labeled, unlabeled).")
    repository: Repository


class Hook(_Part):
    events: list[str] = Field(default_factory=list)


class PingPayload(_Part):
    zen: str | None = None
    hook_id: int | None = None
    hook: Hook | None = None


class WebhookResponse(BaseModel):
    """The body of every non-error answer of POST /webhooks/github."""

    status: Literal["accepted", "ignored", "duplicate", "pong"]
    event_ids: list[str] = Field(default_factory=list, description="Events written to the stream.")
    reason: str | None = Field(default=None, description="Why nothing was stored (ignored, duplicate).")
    delivery: str | None = Field(default=None, description="The X-GitHub-Delivery this answers.")
