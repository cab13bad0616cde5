"""Poison records (undecodable, invalid) go to the SQS dead-letter queue with their reason and
sequence number, so the batch can still be checkpointed and nothing is silently dropped."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["DeadLetter", "DeadLetterQueue"]

logger = logging.getLogger(__name__)

_MAX_DATA_CHARS = 200_000  # SQS takes 256 KiB per message


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    sequence_number: str
    partition_key: str
    data: str
    shard_id: str | None = None


class DeadLetterQueue:
    def __init__(self, client: Any, queue_name: str, *, application: str) -> None:
        self._sqs = client
        self._queue_name = queue_name
        self._application = application
        self._url: str | None = None
        self.sent = 0

    def send(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        if self._url is None:
            self._url = self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"]
        for start in range(0, len(letters), 10):
            chunk = letters[start : start + 10]
            response = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "MessageBody": self._body(letter)} for i, letter in enumerate(chunk)],
            )
            if response.get("Failed"):
                # Re-raise: the batch must not be checkpointed past a record we could not park.
                raise RuntimeError(
                    f"SQS refused {len(response['Failed'])} dead letters: {response['Failed']}"
                )
            self.sent += len(chunk)
        for letter in letters:  # poison is rare: one line each, by sequence number (no event_id to read)
            logger.warning(
                "dead-lettered",
                extra={
                    "queue": self._queue_name,
                    "shard_id": letter.shard_id,
                    "sequence_number": letter.sequence_number,
                    "reason": letter.reason[:300],
                },
            )

    def _body(self, letter: DeadLetter) -> str:
        return json.dumps(
            {
                "application": self._application,
                "reason": letter.reason,
                "sequence_number": letter.sequence_number,
                "partition_key": letter.partition_key,
                "shard_id": letter.shard_id,
                "data": letter.data[:_MAX_DATA_CHARS],
            }
        )
