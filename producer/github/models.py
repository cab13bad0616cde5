"""Pydantic models of the parts of GitHub's webhook payloads we read (everything else is ignored).

Shapes follow GitHub's "Webhook events and payloads" documentation. Only fields the mapping needs
are required, so a payload missing one of them is refused with the field's name (422), and new
fields GitHub adds later never break parsing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from devops_core.events import REPO_PATTERN, SHA_PATTERN

__all__ = [
    "Commit",
    "CommitAuthor",
    "Deployment",
    "DeploymentStatus",
    "DeploymentStatusPayload",
    "Hook",
    "PingPayload",
    "PushPayload",
    "Repository",
    "WebhookResponse",
    "Workflow",
    "WorkflowRun",
    "WorkflowRunPayload",
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Repository(_Part):
    full_name: str = Field(
        min_length=1,
        max_length=128,
        pattern=REPO_PATTERN,
        description="owner/name; becomes the event's repo.",
    )


class CommitAuthor(_Part):
    name: str | None = None
    email: str | None = None
    username: str | None = None


class Commit(_Part):
    id: str = Field(pattern=SHA_PATTERN, description="The commit SHA.")
    timestamp: datetime = Field(description="ISO-8601 commit time with its offset.")
    message: str = ""
    distinct: bool = True
    author: CommitAuthor | None = None


class PushPayload(_Part):
    ref: str
    after: str | None = Field(default=None, description="The head commit after the push.")
    repository: Repository
    commits: list[Commit] = Field(default_factory=list)
    deleted: bool = False


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
    created_at: datetime
    updated_at: datetime | None = None


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
    run_attempt: int | None = None
    created_at: datetime
    updated_at: datetime | None = None


class WorkflowRunPayload(_Part):
    action: str
    workflow_run: WorkflowRun
    workflow: Workflow | None = None
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
