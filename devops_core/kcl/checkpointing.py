"""The one checkpoint helper both record processors call, after the KCL Python sample.

Bounded retries: stop at once on ``ShutdownException`` (the lease is gone: another worker owns the
shard now, checkpointing again cannot succeed), back off and retry on ``ThrottlingException``, log
and retry the rest (``KinesisClientLibDependencyException`` and other transient failures). A
checkpoint that did not happen is not fatal: the records after the last checkpoint are delivered
again, which is why every sink is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from amazon_kclpy.checkpoint_error import CheckpointError

from devops_core.retry import Backoff

__all__ = ["Checkpointer", "checkpoint"]

logger = logging.getLogger(__name__)

_BACKOFF = Backoff(base=0.5, cap=5.0)


class Checkpointer(Protocol):
    """``amazon_kclpy.kcl.Checkpointer`` and the local driver's checkpointer both fit this."""

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> Any: ...


def checkpoint(
    checkpointer: Checkpointer,
    sequence_number: str | None = None,
    *,
    sub_sequence_number: int | None = None,
    retries: int = 5,
    backoff: Backoff = _BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    shard_id: str | None = None,
) -> bool:
    """Checkpoint at ``sequence_number`` (None: the last record delivered, or SHARD_END in
    ``shard_ended``). Returns True if the checkpoint was recorded, False if it was given up.
    ``ShutdownException`` returns False at once; other errors are retried ``retries`` times with the
    project's backoff."""
    for attempt in range(1, retries + 1):
        try:
            checkpointer.checkpoint(sequence_number, sub_sequence_number)
            return True
        except CheckpointError as error:
            name = error.value
            log = {
                "shard_id": shard_id,
                "sequence_number": sequence_number,
                "attempt": attempt,
                "error": name,
            }
            if name == "ShutdownException":
                logger.info("checkpoint skipped: the lease is gone (shutting down)", extra=log)
                return False
            if name == "InvalidStateException":
                # The sample's advice: the daemon's state is broken; retrying is pointless.
                logger.error("checkpoint failed: KCL invalid state", extra=log)
                return False
            if name == "IllegalArgumentException":
                logger.error("checkpoint refused: sequence number out of range", extra=log)
                return False
            if name == "ThrottlingException":
                logger.warning("checkpoint throttled; backing off", extra=log)
            else:
                logger.warning("checkpoint failed; retrying", extra=log)
        if attempt < retries:
            sleep(backoff.delay(attempt))
    logger.error(
        "checkpoint given up after retries",
        extra={"shard_id": shard_id, "sequence_number": sequence_number, "retries": retries},
    )
    return False
