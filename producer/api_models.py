"""Response bodies of the gateway's HTTP API (they also feed /openapi.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Accepted", "BatchItemResult", "BatchResponse", "ErrorBody", "FieldError", "Health"]


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. 'repo' or '3.event'.")
    reason: str


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable error code, e.g. validation_error, unauthorized.")
    detail: str | list[FieldError] = Field(description="What is wrong and how to fix it.")


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_id: str
    shard_id: str
    sequence_number: str


class BatchItemResult(BaseModel):
    index: int
    status: int = Field(
        description="202 accepted (a repeat of an earlier item with the same event_id and content is the "
        "same event, written once), 409 its event_id is used by an earlier item of the batch with different "
        "content, 422 invalid, 503 not written (retry it)."
    )
    event_id: str | None = None
    error: str | None = None
    detail: str | list[FieldError] | None = None


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItemResult]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
    # Records accepted and waiting in this process's batcher right now (not cached like the checks):
    # the queue an operator watches drain during a deploy or a Kinesis slowdown.
    queued: int | None = None
