"""Read back what landed in the emulator: ``make inspect`` (``python -m devstack.inspect``), tests and
benchmarks.

The command prints readable tables of the stream's events, the raw store's rows, the metrics
(``GET /metrics`` of the gateway) and the dead letters. It talks to the endpoint boto3 is configured for
(an exported ``AWS_ENDPOINT_URL``, as the banner of ``make run`` prints it), or, when none is exported,
to the stack ``make run`` is running on this repository's state directory; never to a fixed port.

Timestream's query API in moto does not evaluate SQL, so Timestream records are read from the
embedded emulator's own path for them (``devstack/emulator.py``, ``TIMESTREAM_RECORDS_PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devops_core.aws import boto_client
from devops_core.events import DevOpsEvent
from devops_core.settings import Settings
from devstack.emulator import TIMESTREAM_RECORDS_PATH

__all__ = [
    "change",
    "main",
    "peek_dead_letters",
    "read_stream",
    "read_stream_events",
    "render_table",
    "timestream_records",
]

_SECTIONS = ("stream", "raw", "metrics", "dead-letters")


def timestream_records(emulator_url: str, database: str, table: str) -> list[dict[str, Any]]:
    """Every record WriteRecords stored in ``database.table``, in write order (duplicates kept)."""
    query = urllib.parse.urlencode({"database": database, "table": table})
    url = f"{emulator_url.rstrip('/')}{TIMESTREAM_RECORDS_PATH}?{query}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
            records: list[dict[str, Any]] = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise
    return records


def read_stream(stream_name: str) -> list[dict[str, Any]]:
    """All records currently in every shard of the stream, from TRIM_HORIZON (boto3 record dicts)."""
    kinesis = boto_client("kinesis")
    records: list[dict[str, Any]] = []
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend({**record, "ShardId": shard["ShardId"]} for record in response["Records"])
            if not response["Records"] or response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return records


def read_stream_events(stream_name: str) -> list[DevOpsEvent]:
    return [DevOpsEvent.from_record_data(record["Data"]) for record in read_stream(stream_name)]


def peek_dead_letters(
    queue_name: str, *, hold_seconds: int = 30, at_most: int | None = None
) -> list[dict[str, Any]]:
    """Every message in the dead-letter queue (or ``at_most`` of them), left in it: each is received
    (hidden for ``hold_seconds`` so the next receive returns others) and made visible again at once.
    A receive of only messages already seen ends it (their hold ran out: everything was seen)."""
    sqs = boto_client("sqs")
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=hold_seconds, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch or all(message["MessageId"] in seen for message in batch):
                break
            for message in batch:
                handles.append(message["ReceiptHandle"])
                seen.setdefault(message["MessageId"], message)
            if at_most is not None and len(seen) >= at_most:
                break
    finally:
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ],
            )
    letters = []
    for message in seen.values():
        try:
            letters.append(json.loads(message["Body"]))
        except ValueError:
            letters.append({"reason": "not a dead-letter document", "record": message["Body"]})
    return sorted(letters, key=lambda letter: str(letter.get("failed_at", "")))


# --- rendering -------------------------------------------------------------------------------------


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())  # one line per row, whatever the value holds
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 40) -> str:
    """A plain-text table: a header, a rule, one line per row; long cells are cut with an ellipsis."""
    cells = [[_cell(value, max_width) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _short_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value or "")


def change(sha: str | None, before: str | None) -> str:
    """The commit an event is about, short: ``before..sha`` for a push that says where it moved the
    branch from (git's range notation), else the sha."""
    head = (sha or "")[:7]
    return f"{before[:7]}..{head}" if before else head


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _percent(value: Any) -> str:
    return f"{value * 100:.0f} %" if isinstance(value, int | float) else "-"


def _level(value: Any) -> str:
    return str(value) if value else "-"


# --- sections --------------------------------------------------------------------------------------


def stream_section(settings: Settings, limit: int, repo: str | None) -> str:
    records = read_stream(settings.devops_stream_name)
    events: list[tuple[dict[str, Any], DevOpsEvent | None]] = []
    for record in records:
        try:
            events.append((record, DevOpsEvent.from_record_data(record["Data"])))
        except ValidationError:
            events.append((record, None))
    if repo:
        events = [(r, e) for r, e in events if e is not None and e.repo == repo]
    # Arrival times tie within a PutRecords call; the gateway's receive time orders those records.
    events.sort(
        key=lambda pair: (
            pair[0]["ApproximateArrivalTimestamp"],
            pair[1].received_at if pair[1] is not None else pair[0]["ApproximateArrivalTimestamp"],
        )
    )
    by_type = Counter(e.event.value if e is not None else "(undecodable)" for _, e in events)
    summary_of = boto_client("kinesis").describe_stream_summary(StreamName=settings.devops_stream_name)
    shards = summary_of["StreamDescriptionSummary"]["OpenShardCount"]
    title = f"Stream {settings.devops_stream_name} ({shards} open shards): {len(events)} records"
    if not events:
        return f"{title}\n  (empty: send an event, or run make demo)"
    summary = render_table(["event", "records"], sorted(by_type.items()))
    client = [(r, e) for r, e in events if e is None or not e.event.is_internal]
    shown = client[-limit:]
    rows = [
        (
            _short_time(r["ApproximateArrivalTimestamp"]),
            r["ShardId"].rsplit("-", 1)[-1].lstrip("0") or "0",
            *(
                (
                    e.repo,
                    e.event.value,
                    _short_time(e.time),
                    change(e.sha, e.before),
                    e.environment or "",
                    e.outcome or "",
                    e.source,
                    e.event_id,
                )
                if e is not None
                else ("?", "(undecodable)", "", "", "", "", "", "")
            ),
        )
        for r, e in shown
    ]
    table = render_table(
        [
            "arrived",
            "shard",
            "repo",
            "event",
            "time",
            "change",
            "environment",
            "outcome",
            "source",
            "event_id",
        ],
        rows,
    )
    more = f" (the last {len(shown)} of {len(client)}; calc_* metric events counted above only)"
    return f"{title}\n{summary}\n\nClient events{more}:\n{table}"


def raw_section(settings: Settings, limit: int, repo: str | None) -> str:
    if settings.raw_store == "s3":
        from devstack.raw_store import read_raw_events

        rows = read_raw_events(settings.raw_events_bucket)
        where = f"s3://{settings.raw_events_bucket} (Firehose {settings.raw_events_delivery_stream})"
        data = [
            (
                row.get("received_at"),
                row.get("repo"),
                row.get("event"),
                row.get("time"),
                change(row.get("sha"), row.get("before")),
                row.get("environment") or "",
                row.get("outcome") or "",
                row.get("event_id"),
            )
            for row in rows
        ]
    else:
        endpoint = str(boto_client("timestream-write").meta.endpoint_url)
        where = f"Timestream {settings.devops_db_name}.{settings.devops_table_name}"
        try:
            records = timestream_records(endpoint, settings.devops_db_name, settings.devops_table_name)
        except urllib.error.URLError as error:
            return f"Raw store {where}: cannot be read from {endpoint} ({error.reason}); only moto serves it"
        data = []
        for record in records:
            dims = {d["Name"]: d["Value"] for d in record.get("Dimensions", [])}
            measures = {m["Name"]: m["Value"] for m in record.get("MeasureValues", [])}
            when = datetime.fromtimestamp(int(record.get("Time", 0)) / 1000, UTC)
            version = record.get("Version")  # the consumer writes the receive time, in ms
            data.append(
                (
                    _short_time(datetime.fromtimestamp(int(version) / 1000, UTC)) if version else "",
                    dims.get("repo"),
                    dims.get("event"),
                    _short_time(when),
                    change(measures.get("sha"), measures.get("before")),
                    measures.get("environment", ""),
                    measures.get("outcome", ""),
                    dims.get("event_id"),
                )
            )
    if repo:
        data = [row for row in data if row[1] == repo]
    distinct = len({row[-1] for row in data})  # of the rows counted beside it (the repo's, with --repo)
    title = f"Raw store {where}: {len(data)} rows, {distinct} distinct event_id"
    if not data:
        return f"{title}\n  (empty)"
    client = [row for row in data if not str(row[2]).startswith("calc_")]
    title += f" ({len(data) - len(client)} of them calc_* metric events, not listed)"
    shown = client[-limit:]
    headers = [
        "received",
        "repo",
        "event",
        "time",
        "change",
        "environment",
        "outcome",
        "event_id",
    ]
    return f"{title} (the last {len(shown)}):\n{render_table(headers, shown)}"


class Unreadable(Exception):
    """A section could not be read (the stack is not running, a wrong token...): its one line says
    why, and the command exits 1."""


def metrics_section(gateway: str, token: str | None, window: int, repo: str | None, limit: int) -> str:
    query = urllib.parse.urlencode({"window": window})
    path = f"/metrics/{urllib.parse.quote(repo, safe='')}" if repo else "/metrics"
    url = f"{gateway.rstrip('/')}{path}?{query}"
    if not token:
        raise Unreadable(
            f"Metrics {url}: no token (export DEVOPS_EVENTS_SECRET_TOKEN, or run make run first)"
        )
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local gateway
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise Unreadable(
            f"Metrics {url}: HTTP {error.code} {error.read().decode(errors='replace')[:300]}"
        ) from None
    except urllib.error.URLError as error:
        raise Unreadable(
            f"Metrics {url}: the gateway does not answer ({error.reason}); is make run running?"
        ) from None
    scopes = body.get("repos", [body]) if isinstance(body, dict) else []
    rows = []
    for item in scopes:
        df = item.get("deployment_frequency", {})
        lead = item.get("lead_time", {})
        cfr = item.get("change_failure_rate", {})
        rec = item.get("recovery_time", {})
        rework = item.get("rework_rate", {})
        rows.append(
            (
                item.get("repo"),
                df.get("count"),
                f"{df.get('per_day', 0):.2f}/day" if isinstance(df.get("per_day"), int | float) else "-",
                _level(df.get("level")),
                _duration(lead.get("median_s")),
                _level(lead.get("level")),
                _percent(cfr.get("rate")),
                _level(cfr.get("level")),
                _duration(rec.get("median_s")),
                _level(rec.get("level")),
                _percent(rework.get("rate")),
            )
        )
    title = f"Metrics from {url} (production, last {window} days): {len(rows)} scope(s)"
    if not rows:
        return f"{title}\n  (none yet)"
    if len(rows) > limit:
        title += f" (the first {limit})"
        rows = rows[:limit]
    headers = [
        "scope",
        "deploys",
        "frequency",
        "level",
        "lead time",
        "level",
        "change fail",
        "level",
        "recovery",
        "level",
        "rework",
    ]
    return f"{title}\n{render_table(headers, rows)}"


def dead_letters_section(settings: Settings, limit: int) -> str:
    # The count from the queue; the rows from a sample (moto takes ~0.2 s per message received).
    queue = settings.dead_letter_queue_name
    sqs = boto_client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    letters = peek_dead_letters(queue, at_most=max(limit, 100))
    total = max(len(letters), sum(int(value) for value in attributes.values()))
    title = f"Dead letters in {queue}: {total}"
    if not letters:
        return f"{title}\n  (none: every record was handled)"
    shown = letters[-limit:]
    rows = [
        (
            letter.get("failed_at"),
            letter.get("application"),
            letter.get("stage"),
            letter.get("event_id"),
            letter.get("shard_id"),
            letter.get("sequence_number"),
            letter.get("reason"),
        )
        for letter in shown
    ]
    table = render_table(
        ["failed at", "application", "stage", "event_id", "shard", "sequence", "reason"], rows, max_width=60
    )
    return f"{title} ({len(shown)} shown, a sample when there are many):\n{table}"


# --- command line ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from devstack.state import DEFAULT_STATE_DIR

    parser = argparse.ArgumentParser(
        prog="make inspect ARGS=... (python -m devstack.inspect)",
        description="Print what the local pipeline holds, as tables: the stream's events, the raw store's "
        "rows, the metrics (GET /metrics of the gateway) and the dead letters. AWS calls go to the "
        "endpoint boto3 is configured for (an exported AWS_ENDPOINT_URL, as make run's banner prints it); "
        "with none exported, to the stack make run is running on the state directory. Stream, table, "
        "queue and raw-store names come from the same environment variables as the pipeline's.",
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"what to show, any of: {', '.join(_SECTIONS)} (default: all)",
    )
    parser.add_argument("--repo", help="only this repository's events, rows and metrics")
    parser.add_argument(
        "--limit",
        type=int,
        default=15,
        help=(
            "rows per table: the most recent events, rows and dead letters, the first metrics scopes "
            "(default: %(default)s; counts are always of everything)"
        ),
    )
    parser.add_argument(
        "--window", type=int, choices=[7, 30, 90], default=30, help="metrics window in days (default: 30)"
    )
    parser.add_argument(
        "--gateway",
        help="gateway URL for the metrics (default: the running make run's, from the state directory)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="make run's state directory, to find the running stack and its token (default: .devstack/)",
    )
    return parser


def _uses_aws(endpoint: str | None) -> bool:
    return endpoint is None or endpoint.endswith(".amazonaws.com") or ".amazonaws.com/" in endpoint


def main(argv: list[str] | None = None) -> int:
    from devstack.state import StateDir

    parser = _parser()
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be 1 or more")
    if unknown := [s for s in args.sections if s not in _SECTIONS]:
        parser.error(f"unknown section {', '.join(unknown)}: choose from {', '.join(_SECTIONS)}")
    sections = args.sections or list(_SECTIONS)
    settings = Settings()
    stack = StateDir(args.state_dir).read_stack()
    if _uses_aws(boto_client("kinesis").meta.endpoint_url):
        if stack is None:
            parser.exit(
                2,
                f"{parser.prog}: no endpoint: export AWS_ENDPOINT_URL (make run's banner prints the line) "
                f"or start make run (no stack runs on {args.state_dir})\n",
            )
        # As make run's own processes do: boto3 reads these variables itself.
        os.environ["AWS_ENDPOINT_URL"] = stack.emulator_url
        for name, value in (
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            os.environ.setdefault(name, value)
    gateway = args.gateway or (stack.gateway_url if stack else None)
    token = (
        settings.devops_events_secret_token.get_secret_value()
        if settings.devops_events_secret_token
        else StateDir(args.state_dir).read_token()
    )
    from botocore.exceptions import BotoCoreError, ClientError

    parts: list[str] = []
    unreadable: list[str] = []
    for section in sections:
        try:
            if section == "stream":
                parts.append(stream_section(settings, args.limit, args.repo))
            elif section == "raw":
                parts.append(raw_section(settings, args.limit, args.repo))
            elif section == "metrics":
                if not gateway:
                    raise Unreadable("Metrics: no gateway (pass --gateway URL, or start make run)")
                parts.append(metrics_section(gateway, token, args.window, args.repo, args.limit))
            else:
                parts.append(dead_letters_section(settings, args.limit))
        except Unreadable as error:
            parts.append(str(error))
            unreadable.append(section)
        except (ClientError, BotoCoreError) as error:
            parts.append(f"{section}: cannot be read: {error}")
            unreadable.append(section)
    print("\n\n".join(parts))
    if unreadable:
        print(f"{parser.prog}: could not read {', '.join(unreadable)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
