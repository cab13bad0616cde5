"""The repo-to-team mapping: a small TOML file, re-read when it changes (no restart).

    # teams.toml
    [teams.payments]
    repos = ["acme/payments-api", "acme/ledger"]

    [teams.platform]
    repos = ["acme/infra"]

An event that names a ``team`` belongs to that team whatever the file says; every other event
belongs to its repo's team here (or to no team). The file is read when metrics are read, so editing
it re-slices all history at once.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["TeamMapping", "TeamsFile"]

logger = logging.getLogger(__name__)


class _Team(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repos: list[str] = Field(default_factory=list)


class TeamsFile(BaseModel):
    """The file's shape (validated: a typo is an error, not a silently empty team)."""

    model_config = ConfigDict(extra="forbid")

    teams: dict[str, _Team] = Field(default_factory=dict)


class TeamMapping:
    """Which team owns a repo; reloads the file when its modification time changes."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, teams: dict[str, list[str]] | None = None
    ) -> None:
        self._path = Path(path) if path else None
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._teams: dict[str, list[str]] = dict(teams or {})
        self._owner: dict[str, str] = {}
        self._index()
        self._reload()

    def _index(self) -> None:
        self._owner = {repo: team for team, repos in sorted(self._teams.items()) for repo in repos}

    def _reload(self) -> None:
        if self._path is None:
            return
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            if self._mtime is not None:
                logger.warning(
                    "teams file removed; keeping the last mapping", extra={"path": str(self._path)}
                )
            return
        if mtime == self._mtime:
            return
        with self._lock:
            try:
                parsed = TeamsFile.model_validate(tomllib.loads(self._path.read_text(encoding="utf-8")))
            except (OSError, tomllib.TOMLDecodeError, ValidationError) as error:
                # A broken edit must not wipe the teams: keep serving the last good mapping.
                logger.error(
                    "teams file invalid; keeping the last mapping", extra={"error": str(error)[:500]}
                )
                self._mtime = mtime
                return
            self._teams = {name: team.repos for name, team in parsed.teams.items()}
            self._index()
            self._mtime = mtime
            logger.info("teams loaded", extra={"path": str(self._path), "teams": len(self._teams)})

    def team_of(self, repo: str) -> str | None:
        self._reload()
        return self._owner.get(repo)

    def teams(self) -> dict[str, list[str]]:
        self._reload()
        return {team: list(repos) for team, repos in self._teams.items()}
