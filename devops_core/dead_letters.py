"""The one dead-letter shape and its writer: SQS messages that keep the original record, why it can
never be handled, and where it was in the stream.

Both KCL applications park here what can never succeed (a record that does not decode, an event a
sink refuses for good, an event_id already taken by a different event), so the batch can be
checkpointed and nothing is dropped silently. Each message body is one ``DeadLetter`` JSON document;
the record is kept verbatim (UTF-8 text, or base64 when it is not UTF-8), cut to fit SQS's 256 KiB.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

__all__ = ["MAX_RECORD_CHARS", "DeadLetter", "DeadLetterQueue"]

logger = logging.getLogger(__name__)

MAX_RECORD_CHARS = 200_000  # leaves room for the envelope inside SQS's 262,144-byte limit
_SQS_BATCH = 10


class DeadLetter(BaseModel):
    application: str = Field(description="The KCL application that parked it (consumer or aggregator).")
    stage: str = Field(description="decode, conflict, or the sink that refused it (timestream, newrelic...)")
    reason: str
    shard_id: str
    sequence_number: str
    sub_sequence_number: int = 0
    partition_key: str | None = None
    event_id: str | None = None
    record: str
    record_encoding: Literal["utf-8", "base64"] = "utf-8"
    record_truncated: bool = False
    failed_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    @classmethod
    def for_data(cls, data: bytes, **fields: Any) -> DeadLetter:
        encoding: Literal["utf-8", "base64"]
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(data).decode("ascii"), "base64"
        truncated = len(text) > MAX_RECORD_CHARS
        return cls(
            record=text[:MAX_RECORD_CHARS],
            record_encoding=encoding,
            record_truncated=truncated,
            reason=str(fields.pop("reason"))[:4000],
            **fields,
        )


class DeadLetterQueue:
    """Sends dead letters to one SQS queue (boto3, synchronous: the record processors are)."""

    def __init__(self, client: Any, queue_name: str) -> None:
        self._client = client
        self._queue_name = queue_name
        self._queue_url: str | None = None
        self.sent = 0

    def send(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Returns the letters SQS did not take; the caller retries them and must not checkpoint past
        them until it has."""
        if not letters:
            return []
        try:
            if self._queue_url is None:
                self._queue_url = self._client.get_queue_url(QueueName=self._queue_name)["QueueUrl"]
        except (ClientError, BotoCoreError) as error:
            logger.warning("dead-letter queue unavailable", extra={"error": str(error)[:300]})
            return list(letters)
        unsent: list[DeadLetter] = []
        for start in range(0, len(letters), _SQS_BATCH):
            chunk = list(letters[start : start + _SQS_BATCH])
            entries = [
                {"Id": str(i), "MessageBody": letter.model_dump_json()} for i, letter in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                logger.warning("dead-letter send failed", extra={"error": str(error)[:300]})
                unsent.extend(chunk)
                continue
            failed = {int(failure["Id"]) for failure in response.get("Failed", [])}
            for failure in response.get("Failed", []):
                logger.error("dead-letter entry refused", extra={"sqs_error": failure.get("Code")})
            unsent += [chunk[i] for i in sorted(failed)]
            for i, letter in enumerate(chunk):
                if i not in failed:
                    self.sent += 1
                    logger.warning(
                        "dead-lettered",
                        extra={
                            "application": letter.application,
                            "stage": letter.stage,
                            "reason": letter.reason[:300],
                            "shard_id": letter.shard_id,
                            "sequence_number": letter.sequence_number,
                            "event_id": letter.event_id,
                        },
                    )
        return unsent
