"""Dead-letter sink: SQS messages that keep the original record, why it failed, and where it was.

Used for poison records (cannot be decoded or validated) and for events a sink refused for good.
Each message body is a ``DeadLetter`` JSON document; the original record data is kept verbatim
(UTF-8 text, or base64 when it is not UTF-8), cut to stay within SQS's 256 KB message limit.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

__all__ = ["MAX_RECORD_CHARS", "DeadLetter", "DeadLetterSink"]

logger = logging.getLogger(__name__)

MAX_RECORD_CHARS = 200_000  # leaves room for the envelope inside SQS's 262,144-byte limit
_SQS_BATCH = 10


class DeadLetter(BaseModel):
    reason: str
    stage: str = Field(description="decode, timestream or newrelic")
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


class DeadLetterSink:
    """Sends dead letters to one SQS queue; what SQS does not take is returned to be retried."""

    name = "dead_letter"

    def __init__(self, client: Any, queue_name: str) -> None:
        self._client = client
        self._queue_name = queue_name
        self._queue_url: str | None = None

    async def send(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Returns the letters not sent (to be retried after a backoff)."""
        try:
            if self._queue_url is None:
                self._queue_url = (await self._client.get_queue_url(QueueName=self._queue_name))["QueueUrl"]
        except (ClientError, BotoCoreError) as error:
            logger.warning("dead-letter queue unavailable", extra={"error": str(error)})
            return list(letters)
        unsent: list[DeadLetter] = []
        for start in range(0, len(letters), _SQS_BATCH):
            chunk = list(letters[start : start + _SQS_BATCH])
            entries = [
                {"Id": str(i), "MessageBody": letter.model_dump_json()} for i, letter in enumerate(chunk)
            ]
            try:
                response = await self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                logger.warning("dead-letter send failed", extra={"error": str(error)})
                unsent.extend(chunk)
                continue
            for failure in response.get("Failed", []):
                logger.error("dead-letter entry refused", extra={"sqs_error": failure.get("Code")})
                unsent.append(chunk[int(failure["Id"])])
        unsent_ids = {id(letter) for letter in unsent}
        for letter in letters:
            if id(letter) not in unsent_ids:
                logger.warning(
                    "dead-lettered",
                    extra={
                        "stage": letter.stage,
                        "reason": letter.reason[:300],
                        "shard_id": letter.shard_id,
                        "sequence_number": letter.sequence_number,
                        "event_id": letter.event_id,
                    },
                )
        return unsent
