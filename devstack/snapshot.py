"""Persist the whole embedded emulator across restarts: every moto backend in use, pickled.

moto keeps its state in module-level ``BackendDict``s (service -> account -> region -> backend) and has
no persistence of its own; LocalStack persists by pickling these same backends. We do that too, for
every backend in use (``BackendDict._instances``), not for chosen tables: what the pipeline stores may
change shape (the aggregator's DynamoDB layout, the raw store) and still be kept.

Consistency: a snapshot is taken while no request is inside moto (``RequestGate``: new requests wait,
running ones finish), so the stream, the raw store, the KCL checkpoints and the aggregator's state in
one snapshot are from one instant. Since the workers checkpoint only what every sink took, a restart
from any snapshot redelivers at most records whose effects are already stored; the sinks are
idempotent on event_id (Timestream upserts, first write wins in DynamoDB), so nothing is counted twice.

Locks, conditions and events inside the backends (SQS queues hold one) are pickled as new, unheld ones.
The file records the moto and Python versions: a snapshot written by another moto is refused with a
clear message rather than loaded into classes that may have changed.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RequestGate",
    "SnapshotError",
    "SnapshotInfo",
    "is_mutating",
    "load_backends",
    "save_backends",
]

logger = logging.getLogger(__name__)

_FORMAT = 1
_LOCK_TYPES: tuple[type, ...] = (type(threading.Lock()), type(threading.RLock()))
# Requests that only read (by their X-Amz-Target / Action verb): they never make a snapshot due.
_READ_VERBS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Receive")


class SnapshotError(RuntimeError):
    """A snapshot that cannot be used (another moto version, a damaged file)."""


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    services: list[str]
    bytes: int
    seconds: float


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return type(obj), ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        return NotImplemented


def _module_global(backend_dict: Any) -> tuple[str, str]:
    """Where a BackendDict lives (``moto.kinesis.models``, ``kinesis_backends``), to put it back."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("moto.") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is backend_dict:
                return name, attr
    raise SnapshotError(f"cannot locate moto's backend dict for {backend_dict.service_name}")


def save_backends(path: Path) -> SnapshotInfo:
    """Pickle every moto backend in use to ``path`` (atomically: a crash mid-write keeps the old one).

    Call it while no request runs (``RequestGate.paused()``, or after the server stopped)."""
    from moto.core.base_backend import BackendDict

    started = time.monotonic()
    backends = {_module_global(bd): dict(bd) for bd in list(BackendDict._instances)}
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        {
            "format": _FORMAT,
            "moto": _moto_version(),
            "python": sys.version_info[:2],
            "saved_at": time.time(),
            "backends": backends,
        }
    )
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return SnapshotInfo(
        path, sorted(bd.service_name for bd in BackendDict._instances), len(data), time.monotonic() - started
    )


def load_backends(path: Path) -> SnapshotInfo | None:
    """Put a saved emulator back into moto's backends (before the server serves). None: no snapshot."""
    import importlib

    from moto.core.base_backend import BackendDict

    started = time.monotonic()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        saved = pickle.loads(data)  # noqa: S301 - our own file, in the user's own state directory
    except Exception as error:
        raise SnapshotError(f"{path} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise SnapshotError(f"{path} is not an emulator snapshot of this version")
    if saved["moto"] != _moto_version() or tuple(saved["python"]) != sys.version_info[:2]:
        raise SnapshotError(
            f"{path} was saved by moto {saved['moto']} on Python {'.'.join(map(str, saved['python']))}; "
            f"this is moto {_moto_version()} on Python {sys.version_info[0]}.{sys.version_info[1]}"
        )
    services = []
    for (module_name, attr), accounts in saved["backends"].items():
        backend_dict = getattr(importlib.import_module(module_name), attr)
        dict.clear(backend_dict)
        dict.update(backend_dict, accounts)
        if backend_dict not in BackendDict._instances:
            BackendDict._instances.append(backend_dict)
        services.append(backend_dict.service_name)
    return SnapshotInfo(path, sorted(services), len(data), time.monotonic() - started)


def is_mutating(environ: dict[str, Any]) -> bool:
    """Whether a request may change the emulator's state (so that a snapshot is due)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return not target.rpartition(".")[2].startswith(_READ_VERBS)
    method = environ.get("REQUEST_METHOD", "GET")
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    query = environ.get("QUERY_STRING", "")
    return not any(f"Action={verb}" in query for verb in _READ_VERBS)


class RequestGate:
    """Lets requests into moto unless a snapshot is being taken; counts the ones that change state."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active = 0
        self._paused = False
        self.changes = 0

    @contextmanager
    def request(self, mutating: bool) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._paused)
            self._active += 1
            if mutating:
                self.changes += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                if self._active == 0:
                    self._condition.notify_all()

    @contextmanager
    def paused(self, timeout: float) -> Iterator[bool]:
        """Hold new requests and wait for running ones; yields False if they did not finish in time."""
        with self._condition:
            self._paused = True
            quiet = self._condition.wait_for(lambda: self._active == 0, timeout)
        try:
            yield quiet
        finally:
            with self._condition:
                self._paused = False
                self._condition.notify_all()
