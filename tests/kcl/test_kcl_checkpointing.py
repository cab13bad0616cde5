"""The shared checkpoint helper: bounded retries, stop on ShutdownException, back off on throttling."""

from __future__ import annotations

from amazon_kclpy.checkpoint_error import CheckpointError

from devops_core.kcl import checkpoint
from devops_core.retry import Backoff


class ScriptedCheckpointer:
    """A checkpointer double that fails with the given KCL error names, then succeeds."""

    def __init__(self, *errors: str) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[str | None, int | None]] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self.calls.append((sequence_number, sub_sequence_number))
        if self.errors:
            raise CheckpointError(self.errors.pop(0))


def test_retries_throttling_with_doubling_backoff_then_succeeds() -> None:
    sleeps: list[float] = []
    checkpointer = ScriptedCheckpointer("ThrottlingException", "KinesisClientLibDependencyException")
    no_jitter = Backoff(base=0.1, cap=5, jitter=1.0)
    assert checkpoint(checkpointer, "42", sleep=sleeps.append, backoff=no_jitter) is True
    assert checkpointer.calls == [("42", None)] * 3
    assert sleeps == [0.1, 0.2]


def test_shutdown_exception_stops_at_once() -> None:
    sleeps: list[float] = []
    checkpointer = ScriptedCheckpointer("ShutdownException")
    assert checkpoint(checkpointer, sleep=sleeps.append) is False
    assert len(checkpointer.calls) == 1
    assert sleeps == []


def test_gives_up_after_bounded_retries() -> None:
    sleeps: list[float] = []
    checkpointer = ScriptedCheckpointer(*["ThrottlingException"] * 10)
    done = checkpoint(
        checkpointer, retries=3, sleep=sleeps.append, backoff=Backoff(base=1, cap=1.5, jitter=1.0)
    )
    assert done is False
    assert len(checkpointer.calls) == 3
    assert sleeps == [1, 1.5]
