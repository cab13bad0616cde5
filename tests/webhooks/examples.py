"""GitHub's own webhook example payloads, from the pinned npm package ``@octokit/webhooks-examples``.

``make test`` installs it with ``npm ci --prefix tests/webhooks/github_examples`` (package.json and
package-lock.json pin it; node_modules is not committed). Every parser is tested against these
payloads; the hand-written ones in ``payloads/`` cover only what the examples lack.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLES_INDEX", "all_examples", "example"]

PACKAGE = Path(__file__).parent / "github_examples"
EXAMPLES_INDEX = PACKAGE / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"


@functools.cache
def _index() -> dict[str, list[dict[str, Any]]]:
    if not EXAMPLES_INDEX.is_file():
        raise FileNotFoundError(
            f"{EXAMPLES_INDEX} is missing: run `make test` "
            "(or `npm ci --prefix tests/webhooks/github_examples`)"
        )
    entries = json.loads(EXAMPLES_INDEX.read_text())
    return {entry["name"]: entry["examples"] for entry in entries}


def all_examples() -> list[tuple[str, int, dict[str, Any]]]:
    """(event name, index, payload) for every example of every event GitHub documents."""
    return [
        (name, index, copy.deepcopy(payload))
        for name, payloads in sorted(_index().items())
        for index, payload in enumerate(payloads)
    ]


def example(event: str, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
    """A fresh copy of the first example of ``event`` that satisfies ``where``."""
    for payload in _index()[event]:
        if where(payload):
            return copy.deepcopy(payload)
    raise LookupError(f"no {event} example matches")
