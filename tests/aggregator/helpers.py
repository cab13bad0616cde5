"""Event factories and the fixed clock shared by the aggregator tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from devops_core.events import DevOpsEvent, EventType

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_counter = itertools.count()


def make_event(
    event: str,
    repo: str = "demo",
    *,
    at: datetime | None = None,
    ago: timedelta | None = None,
    sha: str | None = None,
    event_id: str | None = None,
    received_at: datetime | None = None,
    **fields: Any,
) -> DevOpsEvent:
    moment = at or NOW - (ago or timedelta(0))
    return DevOpsEvent.model_validate(
        {
            "event_id": event_id or f"{event}-{next(_counter)}-{uuid.uuid4().hex[:6]}",
            "time": moment,
            "repo": repo,
            "event": EventType(event),
            "source": "aggregator" if EventType(event).is_internal else "test",
            "received_at": received_at or max(NOW, moment),  # received when it happened, at the latest
            "sha": sha,
            **fields,
        }
    )
