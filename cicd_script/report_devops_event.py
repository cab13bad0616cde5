#!/usr/bin/env python3
"""Report one DevOps event from a CI/CD job to the devops-metrics gateway.

Standard library only and Python 3.8+ syntax, so a CI image's system Python can run it as is.
Behaves exactly like report_devops_event.js and report_devops_event.sh (same arguments, messages
and exit codes); `--help` says everything a user needs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import NoReturn

EXIT_OK, EXIT_GAVE_UP, EXIT_USAGE = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:8000/process-event"
DEFAULT_TIMEOUT_S = "60"
SOURCE = "cicd_script"
EVENTS = ("push", "deploy", "test_pass", "deploy_failed", "service_restored")
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,139}$")
SHA_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
TIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?)?"
    r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
URL_RE = re.compile(r"^https?://[^/?#\s]+")
TIMEOUT_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
MAX_METADATA_BYTES = 1024
BACKOFF_BASE_MS, BACKOFF_CAP_MS = 500, 8000
ATTEMPT_TIMEOUT_MS, MIN_ATTEMPT_MS = 15000, 500

HELP = """\
usage: {prog} <Repo name> <Event> [--metadata <Metadata>] [--sha <commit>] [--time <ISO>]

Report one DevOps event from a CI/CD job to the devops-metrics gateway (POST /process-event).

arguments:
  <Repo name>            repository: letters, digits, '.', '_', '-', '/' (1-140 characters,
                         starting with a letter or digit), or ALL for an event of no single repo
  <Event>                one of:
                           push              commits were pushed (give --sha for lead time)
                           deploy            a deployment to production finished
                           test_pass         the test suite passed
                           deploy_failed     a production deployment failed (it needed a fix or a
                                             rollback); counts toward the change failure rate
                           service_restored  service is restored after a failed deployment;
                                             ends the recovery time
  --metadata <Metadata>  free text or JSON, at most 1024 bytes (UTF-8), e.g. a version or a URL
  --sha <commit>         commit SHA the event is about, 7-64 hex digits; push and deploy events
                         with the same SHA give the lead time for changes
  --time <ISO>           when it happened: ISO-8601 (2026-01-01T12:00:00Z) or
                         'YYYY-MM-DD HH:MM:SS' (UTC); default: now; at most 15 minutes ahead
  -h, --help             show this help and exit

environment:
  DEVOPS_EVENTS_SECRET_TOKEN  required: the gateway's token (sent as a Bearer token, never printed)
  API_DEVOPS_EVENT_CATCHER    gateway URL (default: http://127.0.0.1:8000/process-event)
  DEVOPS_EVENT_TIMEOUT        seconds to keep retrying before giving up (default: 60)

behaviour:
  Each run generates one event_id (a UUID) and sends it with every attempt, so a retried request
  is counted once downstream. Connection errors, timeouts, HTTP 408, 429 and 5xx are retried with
  exponential backoff and jitter, honouring Retry-After, until DEVOPS_EVENT_TIMEOUT runs out.
  On success the only output on stdout is one line 'event_id=<uuid>' (ready to append to
  $GITHUB_OUTPUT); retries and errors are reported on stderr.

exit codes:
  0  accepted: the event is in the Kinesis stream
  1  gave up: the gateway stayed unreachable or unavailable for DEVOPS_EVENT_TIMEOUT seconds
  2  usage or validation error, found locally or by the gateway (e.g. HTTP 401 wrong token,
     422 invalid field): retrying cannot help; the message says what to fix
"""


class UsageError(Exception):
    """Bad arguments or configuration: exit 2 with a message saying what to fix."""

    def __init__(self, message: str, show_usage: bool = False) -> None:
        super().__init__(message)
        self.show_usage = show_usage


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors become UsageError, so all three scripts word and exit them alike."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, show_usage=True)


def wants_help(argv: list[str]) -> bool:
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "-h" in options or "--help" in options


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    parser = ArgumentParser(prog=prog, add_help=False, allow_abbrev=False)
    parser.add_argument("repo")
    parser.add_argument("event")
    parser.add_argument("--metadata")
    parser.add_argument("--sha")
    parser.add_argument("--time")
    return parser.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """The gateway's rules, checked before any request so a typo fails fast and sends nothing."""
    if not REPO_RE.match(args.repo):
        raise UsageError(
            f"invalid repo '{args.repo}': use 1-140 letters, digits, '.', '_', '-', '/' "
            "starting with a letter or digit, or ALL"
        )
    if args.event not in EVENTS:
        internal = " (calc_* events are computed by the aggregator)" if args.event.startswith("calc_") else ""
        raise UsageError(f"invalid event '{args.event}'{internal}: must be one of {', '.join(EVENTS)}")
    if args.sha is not None and not SHA_RE.match(args.sha):
        raise UsageError(f"invalid --sha '{args.sha}': must be 7-64 hex digits")
    if args.time is not None and not TIME_RE.match(args.time):
        raise UsageError(
            f"invalid --time '{args.time}': use ISO-8601 (2026-01-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS'"
        )
    if args.metadata is not None:
        size = len(args.metadata.encode("utf-8", errors="surrogateescape"))
        if size > MAX_METADATA_BYTES:
            raise UsageError(f"--metadata is {size} bytes; at most {MAX_METADATA_BYTES} bytes are allowed")


class Config:
    """The environment, checked: gateway URL, token and the total time budget in milliseconds."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.url = environ.get("API_DEVOPS_EVENT_CATCHER") or DEFAULT_URL
        if not URL_RE.match(self.url):
            raise UsageError(f"API_DEVOPS_EVENT_CATCHER must be an http:// or https:// URL, not '{self.url}'")
        token = (environ.get("DEVOPS_EVENTS_SECRET_TOKEN") or "").strip()
        if not token:
            raise UsageError(
                "DEVOPS_EVENTS_SECRET_TOKEN is not set: export the gateway's token (make run prints it)"
            )
        if re.search(r"[\s\x00-\x1f\x7f]", token):
            raise UsageError("DEVOPS_EVENTS_SECRET_TOKEN contains whitespace or control characters")
        self.token = token
        raw_timeout = environ.get("DEVOPS_EVENT_TIMEOUT") or DEFAULT_TIMEOUT_S
        if not TIMEOUT_RE.match(raw_timeout) or float(raw_timeout) <= 0:
            raise UsageError(
                f"DEVOPS_EVENT_TIMEOUT must be a positive number of seconds, not '{raw_timeout}'"
            )
        whole, _, fraction = raw_timeout.partition(".")
        self.timeout_ms = max(1, int(whole) * 1000 + int((fraction + "000")[:3]))


def build_body(args: argparse.Namespace, event_id: str) -> bytes:
    body = {"repo": args.repo, "event": args.event, "event_id": event_id, "source": SOURCE}
    for name in ("metadata", "sha", "time"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    return json.dumps(body, ensure_ascii=False).encode("utf-8", errors="surrogateescape")


def describe_body(text: str) -> str:
    """The gateway's error detail in one line: 'field: reason; ...', the detail string, or the body."""
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and all(isinstance(d, dict) and "field" in d for d in detail) and detail:
        return "; ".join(f"{d['field']}: {d.get('reason', '')}" for d in detail)
    if isinstance(detail, str):
        return detail
    flat = " ".join(text.split())
    return flat[:200] if flat else "(empty body)"


def client_error_message(status: int, text: str, url: str) -> str:
    """What to fix for a 4xx that retrying cannot cure."""
    detail = describe_body(text)
    if 300 <= status < 400:
        return f"the gateway redirects (HTTP {status}): set API_DEVOPS_EVENT_CATCHER to the final URL"
    if status in (401, 403):
        return f"token rejected: check DEVOPS_EVENTS_SECRET_TOKEN (HTTP {status}: {detail})"
    if status in (404, 405):
        return f"no event endpoint at {url}: check API_DEVOPS_EVENT_CATCHER (HTTP {status}: {detail})"
    if status == 413:
        return f"request too large: shorten --metadata (HTTP 413: {detail})"
    if status == 422:
        return f"event rejected by the gateway (HTTP 422): {detail}"
    return f"request rejected by the gateway (HTTP {status}): {detail}"


class Attempt:
    """The outcome of one POST: a status with body and Retry-After, or a transport error."""

    def __init__(
        self, status: int = 0, text: str = "", retry_after: str | None = None, error: str = ""
    ) -> None:
        self.status, self.text, self.retry_after, self.error = status, text, retry_after, error

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status in (408, 429) or self.status >= 500

    def describe(self) -> str:
        return self.error if self.status == 0 else f"HTTP {self.status}: {describe_body(self.text)}"


def transport_error(exc: BaseException, timeout_ms: int) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"timed out after {fmt_seconds(timeout_ms)}"
    return f"connection error: {reason}"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect instead of following it: urllib would turn the POST into a GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def post(url: str, token: str, body: bytes, timeout_ms: int) -> Attempt:
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by Config
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
            "User-Agent": "report_devops_event.py",
        },
    )
    try:
        with OPENER.open(request, timeout=timeout_ms / 1000) as response:
            return Attempt(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        return Attempt(exc.code, text, exc.headers.get("Retry-After"))
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(error=transport_error(exc, timeout_ms))


def fmt_seconds(ms: int) -> str:
    """Milliseconds as '1.2s', truncated the same way in all three scripts."""
    ms = max(ms, 0)
    return f"{ms // 1000}.{ms % 1000 // 100}s"


def now_ms() -> int:
    return int(time.monotonic() * 1000)


def backoff_ms(retry: int) -> int:
    """Exponential backoff with jitter: a random delay in [half, full] of min(cap, base * 2^retry)."""
    full = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2**retry)
    return full // 2 + random.randint(0, full // 2)


def send(config: Config, body: bytes, event_id: str, prog: str) -> int:
    start = now_ms()
    deadline = start + config.timeout_ms
    attempt_no = 0
    while True:
        attempt_no += 1
        remaining = deadline - now_ms()
        attempt = post(config.url, config.token, body, min(ATTEMPT_TIMEOUT_MS, remaining))
        if 200 <= attempt.status < 300:
            try:
                accepted_id = json.loads(attempt.text).get("event_id") or event_id
            except (ValueError, AttributeError):
                accepted_id = event_id
            print(f"event_id={accepted_id}", flush=True)
            return EXIT_OK
        if not attempt.retryable:
            return fail(prog, client_error_message(attempt.status, attempt.text, config.url), EXIT_USAGE)
        remaining = deadline - now_ms()
        wait = backoff_ms(attempt_no - 1)
        retry_after = attempt.retry_after.strip() if attempt.retry_after else ""
        if re.match(r"^[0-9]+$", retry_after):
            retry_after_ms = int(retry_after) * 1000
            if retry_after_ms + MIN_ATTEMPT_MS > remaining:
                extra = f"; the gateway asked to wait {retry_after}s"
                return give_up(prog, attempt, attempt_no, start, extra)
            wait = max(wait, retry_after_ms)
        wait = min(wait, remaining - MIN_ATTEMPT_MS)
        if wait < 0:
            return give_up(prog, attempt, attempt_no, start, "")
        log(prog, f"attempt {attempt_no} failed ({attempt.describe()}); retrying in {fmt_seconds(wait)}")
        time.sleep(wait / 1000)


def give_up(prog: str, attempt: Attempt, attempts: int, start: int, extra: str) -> int:
    return fail(
        prog,
        f"gave up after {attempts} attempt(s) in {fmt_seconds(now_ms() - start)} "
        f"(DEVOPS_EVENT_TIMEOUT): {attempt.describe()}{extra}",
        EXIT_GAVE_UP,
    )


def log(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def fail(prog: str, message: str, code: int) -> int:
    log(prog, f"error: {message}")
    return code


def main(argv: list[str] | None = None) -> int:
    prog = os.path.basename(sys.argv[0]) or "report_devops_event.py"
    usage = HELP.splitlines()[0].replace("{prog}", prog)
    try:
        argv = sys.argv[1:] if argv is None else argv
        if wants_help(argv):
            print(HELP.replace("{prog}", prog), end="")
            return EXIT_OK
        args = parse_args(argv, prog)
        validate(args)
        config = Config(dict(os.environ))
    except UsageError as exc:
        if exc.show_usage:
            print(usage, file=sys.stderr)
        fail(prog, f"{exc} (see --help)", EXIT_USAGE)
        return EXIT_USAGE
    event_id = str(uuid.uuid4())
    return send(config, build_body(args, event_id), event_id, prog)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
