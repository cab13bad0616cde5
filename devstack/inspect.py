"""Read back what landed in the emulator: for tests, benchmarks and `make run` users.

Timestream's query API in moto does not evaluate SQL, so Timestream records are read from moto's
own state dump (``/moto-api/data.json``), which is part of its HTTP interface.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from devops_core.aws import boto_client
from devops_core.events import DevOpsEvent

__all__ = ["read_stream", "read_stream_events", "timestream_records"]


def timestream_records(emulator_url: str, database: str, table: str) -> list[dict[str, Any]]:
    """Every record WriteRecords stored in ``database.table``, in write order (duplicates kept)."""
    with urllib.request.urlopen(f"{emulator_url.rstrip('/')}/moto-api/data.json", timeout=30) as response:  # noqa: S310
        state = json.load(response)
    for table_state in state.get("timestreamwrite", {}).get("TimestreamTable", []):
        if table_state["db_name"] == database and table_state["name"] == table:
            return list(table_state["records"])
    return []


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
            records.extend(response["Records"])
            if not response["Records"] or response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return records


def read_stream_events(stream_name: str) -> list[DevOpsEvent]:
    return [DevOpsEvent.from_record_data(record["Data"]) for record in read_stream(stream_name)]
