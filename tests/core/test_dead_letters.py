"""The dead-letter shape: every message fits SQS whatever the record holds, and batches fit too."""

from __future__ import annotations

import json

from devops_core.dead_letters import MAX_MESSAGE_BYTES, DeadLetter, _batches

WHERE = {"application": "consumer", "stage": "decode", "shard_id": "shardId-0", "sequence_number": "1"}


def test_a_record_of_control_bytes_is_cut_to_fit_once_escaped() -> None:
    """Each \\x01 is six bytes in JSON: a 1 MiB record cut to 200,000 characters was a 1.2 MB message,
    refused by SQS on every retry while the shard waited."""
    letter = DeadLetter.for_data(b"\x01" * (1024 * 1024), reason="not JSON", **WHERE)
    body = letter.body()
    assert len(body) <= MAX_MESSAGE_BYTES
    assert letter.record_truncated
    assert len(letter.record) > 30_000  # as much of it as fits
    assert json.loads(body)["record"] == letter.record


def test_binary_and_small_records_keep_their_shape() -> None:
    small = DeadLetter.for_data(b'{"repo": 1}', reason="repo: not a string", **WHERE)
    assert (small.record, small.record_truncated, small.record_encoding) == ('{"repo": 1}', False, "utf-8")
    binary = DeadLetter.for_data(b"\xff" * (512 * 1024), reason="not UTF-8", **WHERE)
    assert binary.record_encoding == "base64"
    assert binary.record_truncated
    assert len(binary.body()) <= MAX_MESSAGE_BYTES


def test_batches_hold_ten_letters_and_one_message_limit_at_most() -> None:
    large = [DeadLetter.for_data(b"a" * 100_000, reason="big", **WHERE) for _ in range(5)]
    small = [DeadLetter.for_data(b"{}", reason="small", **WHERE) for _ in range(25)]
    batches = _batches([*large, *small])
    assert [letter for batch in batches for letter in batch] == [*large, *small]  # in order, all
    for batch in batches:
        assert len(batch) <= 10
        assert sum(len(letter.body()) for letter in batch) <= MAX_MESSAGE_BYTES
