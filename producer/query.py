"""The query-string contract every API route keeps: a parameter the route does not take is a 422
naming it, never silently ignored (``POST /process-event?environment=staging`` would otherwise
count a staging deploy as production, and ``?repo=`` on ``/metrics/{repo}`` answer every repo)."""

from __future__ import annotations

from aiohttp import web

from producer.api_models import FieldError
from producer.errors import ApiError

__all__ = ["only_known_parameters", "shown"]

_SHOWN_CHARS = 140  # the longest repository name GitHub allows (owner/name)


def shown(value: str) -> str:
    """A client's value as an error message repeats it: at most as long as a real repository name."""
    return value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"


def only_known_parameters(request: web.Request, route: str, allowed: tuple[str, ...] = ()) -> None:
    """ApiError 422 listing (up to five of) the query parameters ``route`` does not take."""
    unknown = sorted({name for name in request.query if name not in allowed})
    if unknown:
        takes = ", ".join(allowed) if allowed else "no query parameters; the body carries the event"
        reason = f"not a parameter of {route} (it takes: {takes})"
        details = [FieldError(field=shown(name), reason=reason).model_dump() for name in unknown[:5]]
        raise ApiError(422, details)
