"""The local stack's state directory (``.devstack/`` at the repository root, git-ignored by default).

What lives there, and why:

- ``emulator.pickle``: the whole emulator (every moto backend: the stream and its records, the raw
  store, the DynamoDB tables with the aggregator's state and the KCL checkpoints, the secret, the
  dead-letter queue), saved when ``make run`` stops and every few seconds while it runs
  (devstack/snapshot.py), loaded when it starts;
- ``token``: the local token, made once and kept, so the CI scripts' export line stays valid;
- ``stack.json`` and ``env``: where the running stack listens (for ``make demo`` and ``make inspect``)
  and the banner's export lines (``. .devstack/env``); removed when the stack stops;
- ``lock``: held by the running ``make run``; a second one on the same directory stops at once.

``make run ARGS=--clean`` wipes the directory before starting (after taking the lock, so it never
wipes a running stack's data).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_STATE_DIR",
    "StackInfo",
    "StateDir",
    "StateLockedError",
]

DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".devstack"
_PRIVATE = 0o600


class StateLockedError(RuntimeError):
    """Another ``make run`` holds this state directory."""


@dataclass(frozen=True)
class StackInfo:
    """Where a running local stack listens (written by ``make run``, read by demo and inspect)."""

    gateway_url: str
    emulator_url: str
    stream_name: str
    pid: int

    @property
    def dashboard_url(self) -> str:
        return f"{self.gateway_url}/dashboard"


def _write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only (the token is in some of these files)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class StateDir:
    def __init__(self, path: Path | str = DEFAULT_STATE_DIR) -> None:
        self.path = Path(path).resolve()
        self._lock_fd: int | None = None

    # --- files ------------------------------------------------------------------------------------
    @property
    def snapshot(self) -> Path:
        return self.path / "emulator.pickle"

    @property
    def token_file(self) -> Path:
        return self.path / "token"

    @property
    def stack_file(self) -> Path:
        return self.path / "stack.json"

    @property
    def env_file(self) -> Path:
        return self.path / "env"

    # --- the lock ---------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Hold the directory for this process (released at exit, even on a crash)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, _PRIVATE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StateLockedError(
                f"another `make run` (pid {holder}) is using the state directory {self.path}; stop it, "
                "or give this one its own with --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def wipe(self) -> list[str]:
        """Delete everything but the lock (which this process holds). Returns what was removed."""
        if self._lock_fd is None:
            raise RuntimeError("take the lock before wiping the state directory")
        removed = []
        for entry in sorted(self.path.iterdir()):
            if entry.name == "lock":
                continue
            removed.append(entry.name)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return removed

    # --- the token --------------------------------------------------------------------------------
    def token(self) -> tuple[str, bool]:
        """The kept local token, made on first use. Returns (token, made_now)."""
        if self.token_file.exists():
            token = self.token_file.read_text().strip()
            if token:
                return token, False
        token = secrets.token_urlsafe(32)  # as devstack.resources.generate_token
        _write_private(self.token_file, token + "\n")
        return token, True

    def read_token(self) -> str | None:
        try:
            return self.token_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    # --- where the running stack is ---------------------------------------------------------------
    def write_stack(self, info: StackInfo, env_lines: list[str]) -> None:
        _write_private(self.stack_file, json.dumps(info.__dict__, indent=2) + "\n")
        _write_private(self.env_file, "\n".join(env_lines) + "\n")

    def clear_stack(self) -> None:
        for path in (self.stack_file, self.env_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def read_stack(self) -> StackInfo | None:
        """The running stack's addresses, or None when no stack runs on this directory."""
        try:
            data: dict[str, Any] = json.loads(self.stack_file.read_text())
            info = StackInfo(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return None  # left behind by a stack that was killed
        except PermissionError:
            pass
        return info
