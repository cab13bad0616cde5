"""The one dead-letter shape and its writer: SQS messages that keep the original record, why it can
never be handled, and where it was in the stream.

Both KCL applications park here what can never succeed (a record that does not decode, an event a
sink refuses for good, an event_id already taken by a different event), so the batch can be
checkpointed and nothing is dropped silently. Each message body is one ``DeadLetter`` JSON document;
the record is kept verbatim (UTF-8 text, or base64 when it is not UTF-8), cut so that the message as
sent (JSON, escapes included) fits SQS's 256 KiB, and batches are cut to fit it in total too. (The cut
was by characters once: a 1 MiB record of control bytes, each escaped to six, made a 1.2 MB message
that SQS refused on every retry, and the shard stopped.)
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

__all__ = ["MAX_MESSAGE_BYTES", "DeadLetter", "DeadLetterQueue"]

logger = logging.getLogger(__name__)

# SQS's limit for one message and for a whole batch, as queues are created by default (a queue may
# allow 1 MiB; the smaller limit fits every queue).
MAX_MESSAGE_BYTES = 262_144
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
        letter = cls(record=text, record_encoding=encoding, reason=str(fields.pop("reason"))[:4000], **fields)
        size = len(letter.body())
        while size > MAX_MESSAGE_BYTES and letter.record:  # cut in proportion to the escapes' cost
            keep = int(len(letter.record) * (MAX_MESSAGE_BYTES - 2048) / size)
            letter = letter.model_copy(update={"record": letter.record[:keep], "record_truncated": True})
            size = len(letter.body())
        return letter

    def body(self) -> bytes:
        """The message body as SQS gets it."""
        return self.model_dump_json().encode("utf-8")


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
        for chunk in _batches(letters):
            entries = [
                {"Id": str(i), "MessageBody": letter.body().decode("utf-8")} for i, letter in enumerate(chunk)
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


def _batches(letters: Sequence[DeadLetter]) -> list[list[DeadLetter]]:
    """Letters in order, at most ten and ``MAX_MESSAGE_BYTES`` in all per SendMessageBatch call."""
    batches: list[list[DeadLetter]] = []
    size = 0
    for letter in letters:
        length = len(letter.body())
        if not batches or len(batches[-1]) == _SQS_BATCH or size + length > MAX_MESSAGE_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(letter)
        size += length
    return batches
