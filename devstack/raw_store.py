"""Read back the raw-event store on S3 (RAW_STORE=s3): what Firehose delivered, line by line.

Firehose writes objects of concatenated records, GZIP-compressed in AWS (the CDK app's setting) and as
sent by moto; each record is one JSON line (consumer.sinks.firehose). Duplicates from at-least-once
delivery are kept here, as Athena sees them; ``first_received`` applies the dedupe rule of the shipped
``events_deduped`` view (one row per event_id, the first received) for callers that want it in Python.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from typing import Any

from devops_core.aws import boto_client
from devstack.resources import RAW_EVENTS_PREFIX

__all__ = ["first_received", "raw_event_lines", "read_raw_events"]

_GZIP_MAGIC = b"\x1f\x8b"


def raw_event_lines(bucket: str, prefix: str = RAW_EVENTS_PREFIX) -> list[bytes]:
    """Every stored line under ``prefix``, objects in key order (Firehose keys sort by delivery time)."""
    s3 = boto_client("s3")
    lines: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            if body.startswith(_GZIP_MAGIC):
                body = gzip.decompress(body)
            lines += [line for line in body.split(b"\n") if line.strip()]
    return lines


def read_raw_events(bucket: str, prefix: str = RAW_EVENTS_PREFIX) -> list[dict[str, Any]]:
    """The stored rows (dicts as written by ``to_raw_record``), duplicates kept."""
    return [json.loads(line) for line in raw_event_lines(bucket, prefix)]


def first_received(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per event_id: the earliest received_at (ties: the smaller digest), as the view does."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = best.get(row["event_id"])
        if kept is None or (row["received_at"], row["digest"]) < (kept["received_at"], kept["digest"]):
            best[row["event_id"]] = row
    return list(best.values())
