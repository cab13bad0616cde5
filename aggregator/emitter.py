"""Put metric events back on the stream (sync boto3 PutRecords, resending only failed entries).

The KCL processor is synchronous, so this is the producer path in its sync form: same wire record
(``DevOpsEvent.to_record_data()``), partition key = repo, per-entry retry as in producer.batcher.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from devops_core.events import DevOpsEvent

__all__ = ["EmitFailed", "StreamEmitter"]

logger = logging.getLogger(__name__)

MAX_PUT_RECORDS = 500


class EmitFailed(Exception):
    """Kinesis kept rejecting some metric events; the batch must not be checkpointed."""


class StreamEmitter:
    def __init__(self, client: Any, stream_name: str, *, retry_deadline: float = 30.0) -> None:
        self._kinesis = client
        self._stream = stream_name
        self._retry_deadline = retry_deadline
        self.sent = 0

    def emit(self, events: Sequence[DevOpsEvent]) -> None:
        for start in range(0, len(events), MAX_PUT_RECORDS):
            self._put([(e.to_record_data(), e.repo) for e in events[start : start + MAX_PUT_RECORDS]])

    def _put(self, entries: list[tuple[bytes, str]]) -> None:
        deadline = time.monotonic() + self._retry_deadline
        attempt = 0
        while entries:
            response = self._kinesis.put_records(
                StreamName=self._stream, Records=[{"Data": d, "PartitionKey": k} for d, k in entries]
            )
            failed = [
                entry
                for entry, result in zip(entries, response["Records"], strict=True)
                if "ErrorCode" in result
            ]
            self.sent += len(entries) - len(failed)
            if not failed:
                return
            attempt += 1
            delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
            if time.monotonic() + delay > deadline:
                raise EmitFailed(f"{len(failed)} metric events still rejected after {attempt} attempts")
            logger.info("resending rejected metric events", extra={"failed": len(failed), "attempt": attempt})
            time.sleep(delay)
            entries = failed
