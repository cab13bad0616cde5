"""A record processor used only by the KCL tests: appends one JSON line per record and per lifecycle
call to a file, so a test can see exactly what was delivered, in which shard, how often.

Run under the MultiLangDaemon as ``python tests/kcl/kcl_recording_processor.py`` with
RECORDING_OUTPUT=<file> (and RECORDING_CHECKPOINT=shutdown to checkpoint only on shutdown/shard end).
One write(2) per call on an O_APPEND descriptor keeps lines from several processes intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from amazon_kclpy.v3.processor import RecordProcessorBase

from devops_core.kcl import checkpoint

POISON = b"poison"


class RecordingProcessor(RecordProcessorBase):
    def __init__(self, output: Path, *, checkpoint_each_batch: bool = True) -> None:
        self.output = output
        self.checkpoint_each_batch = checkpoint_each_batch
        self.shard_id = "?"

    def _write(self, entries: list[dict[str, Any]]) -> None:
        payload = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
        fd = os.open(self.output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while payload:
                payload = payload[os.write(fd, payload) :]
        finally:
            os.close(fd)

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        self._write(
            [{"event": "initialize", "shard": self.shard_id, "seq": initialize_input.sequence_number}]
        )

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        self._write(
            [
                {
                    "event": "record",
                    "shard": self.shard_id,
                    "seq": record.sequence_number,
                    "data": record.binary_data.decode(),
                    "key": record.partition_key,
                }
                for record in records
            ]
        )
        if any(record.binary_data == POISON for record in records):
            raise RuntimeError("poison record")
        if self.checkpoint_each_batch:
            ok = checkpoint(process_records_input.checkpointer, retries=2, shard_id=self.shard_id)
            self._write([{"event": "checkpoint", "shard": self.shard_id, "ok": ok}])

    def lease_lost(self, lease_lost_input: Any) -> None:
        self._write([{"event": "lease_lost", "shard": self.shard_id}])

    def shard_ended(self, shard_ended_input: Any) -> None:
        ok = checkpoint(shard_ended_input.checkpointer, shard_id=self.shard_id)
        self._write([{"event": "shard_ended", "shard": self.shard_id, "ok": ok}])

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        ok = checkpoint(shutdown_requested_input.checkpointer, shard_id=self.shard_id)
        self._write([{"event": "shutdown_requested", "shard": self.shard_id, "ok": ok}])


def read_events(output: Path) -> list[dict[str, Any]]:
    """Complete lines only: a reader polling while a processor appends may see half a line, which
    is not yet an event (a write(2) to a regular file is atomic for appenders, not for readers)."""
    if not output.exists():
        return []
    text = output.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line]


def main() -> None:
    from devops_core.kcl.daemon import run_processor

    run_processor(
        RecordingProcessor(
            Path(os.environ["RECORDING_OUTPUT"]),
            checkpoint_each_batch=os.environ.get("RECORDING_CHECKPOINT", "batch") == "batch",
        )
    )


if __name__ == "__main__":
    main()
