"""The sink contract: what a sink promises the batch handler, and how it reports failures.

A sink takes a list of validated events and answers, per event, one of three things: taken (the
default), rejected for good (``WriteResult.rejected``: the event goes to the dead-letter queue with the
reason) or not taken yet (``WriteResult.pending``: a transient failure; the handler retries those
later, never the ones already taken, so New Relic never sees an event twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from devops_core.events import DevOpsEvent

__all__ = ["Rejection", "Sink", "WriteResult"]


@dataclass(frozen=True, slots=True)
class Rejection:
    event: DevOpsEvent
    reason: str


@dataclass(slots=True)
class WriteResult:
    rejected: list[Rejection] = field(default_factory=list)
    pending: list[DevOpsEvent] = field(default_factory=list)
    # A server-given hint (Retry-After) for when the pending events may be retried.
    retry_after: float | None = None
    error: str | None = None
    # The pending events failed on credentials or permissions (401/403, AccessDenied): an outage an
    # operator must fix (the processor logs it for the alarm), never the events' fault.
    misconfigured: bool = False

    @property
    def complete(self) -> bool:
        return not self.pending


class Sink(Protocol):
    name: str

    async def write(self, events: Sequence[DevOpsEvent]) -> WriteResult: ...
