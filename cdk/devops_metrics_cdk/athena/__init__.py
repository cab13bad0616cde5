"""The raw-event store's SQL (Athena, Trino dialect): table columns, the dedupe view, the DORA queries.

The SQL keeps to a subset that Athena (Trino) and DuckDB both run the same way, so the tests execute
exactly this text against events the consumer wrote through Firehose (tests/cdk/test_raw_store_sql.py).
``raw_events`` is the Glue table over S3; ``events`` in a metric query is the deduplicated view, bound
by a ``WITH`` clause so that every named query runs on its own, without creating the view first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEDUPED_VIEW",
    "RAW_EVENT_COLUMNS",
    "RAW_TABLE",
    "NamedQuery",
    "create_view_sql",
    "dedupe_sql",
    "metric_sql",
    "named_queries",
]

_HERE = Path(__file__).resolve().parent
RAW_TABLE = "raw_events"
DEDUPED_VIEW = "events_deduped"

# name -> Hive type, in the order of consumer.sinks.firehose.to_raw_record (a test keeps them equal).
RAW_EVENT_COLUMNS: dict[str, str] = {
    "event_id": "string",
    "time": "timestamp",
    "received_at": "timestamp",
    "repo": "string",
    "event": "string",
    "source": "string",
    "metadata": "string",
    "sha": "string",
    "before": "string",
    "environment": "string",
    "outcome": "string",
    "remediation": "string",
    "deployment_id": "string",
    "incident_id": "string",
    "team": "string",
    "service": "string",
    "commits": "array<struct<sha:string,time:timestamp>>",
    "digest": "string",
}

_METRICS = {
    "deployment_frequency": "DORA deployment frequency per repository (last 30 days)",
    "change_lead_time": "DORA change lead time per repository: median seconds push -> deploy",
    "change_failure_rate": "DORA change fail rate per repository (last 30 days)",
    "recovery_time": "DORA failed deployment recovery time per repository: median seconds",
    "rework_rate": "DORA deployment rework rate per repository (hotfix/rollback deploys)",
}


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str


def _read(name: str) -> str:
    return (_HERE / f"{name}.sql").read_text().strip()


def dedupe_sql() -> str:
    """The SELECT of the dedupe view (over ``raw_events``)."""
    return _read(DEDUPED_VIEW)


def create_view_sql() -> str:
    return f"CREATE OR REPLACE VIEW {DEDUPED_VIEW} AS\n{dedupe_sql()}"


def metric_sql(name: str) -> str:
    """A DORA query over the deduplicated events, self-contained (``events`` joins the query's own WITH)."""
    lines = _read(name).splitlines()
    comments = [line for line in lines if line.startswith("--")]
    body = "\n".join(line for line in lines if not line.startswith("--"))
    events = f"events AS (\n{dedupe_sql()}\n)"
    if body.upper().startswith("WITH "):
        return "\n".join([*comments, f"WITH {events},\n{body[5:]}"])
    return "\n".join([*comments, f"WITH {events}\n{body}"])


def named_queries() -> list[NamedQuery]:
    queries = [
        NamedQuery(
            "create-events-deduped-view",
            f"Creates the {DEDUPED_VIEW} view: one row per event_id, the first received",
            create_view_sql(),
        ),
        NamedQuery(
            "conflicting-event-ids",
            "Event ids sent twice with different content",
            _read("conflicting_event_ids"),
        ),
    ]
    queries += [
        NamedQuery(name.replace("_", "-"), description, metric_sql(name))
        for name, description in _METRICS.items()
    ]
    return queries
