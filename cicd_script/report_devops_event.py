#!/usr/bin/env python3
"""Report one DevOps event from a CI/CD job to the devops-metrics gateway.

Standard library only and Python 3.8+ syntax, so a CI image's system Python can run it as is.
Behaves exactly like report_devops_event.js and report_devops_event.sh (same arguments, messages
and exit codes); `--help` says everything a user needs.
"""

from __future__ import annotations

import argparse
import datetime
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
EVENTS = (
    "push",
    "deploy",
    "test_pass",
    "deploy_failed",
    "service_restored",
    "incident_opened",
    "incident_resolved",
)
INCIDENT_EVENTS = ("incident_opened", "incident_resolved")
# Which events may carry each option (the gateway's rule; anything else is refused before sending).
OPTION_EVENTS = {
    "before": ("push",),
    "environment": ("deploy", "deploy_failed", "service_restored", "incident_opened", "incident_resolved"),
    "outcome": ("deploy", "deploy_failed"),
    "remediation": ("deploy", "deploy_failed"),
    "deployment-id": ("deploy", "deploy_failed", "incident_opened"),
    "incident-id": INCIDENT_EVENTS,
    "commits": ("push", "deploy", "deploy_failed"),
}
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,139}$")
SHA_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# ISO-8601 or 'YYYY-MM-DD HH:MM:SS'; the groups are the same in the .js and .sh scripts.
TIME_RE = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})([T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})([.,][0-9]{1,9})?)?"
    r"(([Zz])|([+-])([0-9]{2})(:?([0-9]{2}))?)?)?$"
)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
SPACE = " \t\n\r\f\v"
URL_RE = re.compile(r"^https?://[^/?#\s]+")
TIMEOUT_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
MAX_METADATA_BYTES = 1024
MAX_NAME_CHARS = 100
MAX_COMMITS = 2048
EARLIEST_S = 946684800  # 2000-01-01T00:00:00Z
MAX_AHEAD_S = 15 * 60
TIME_HINT = "use ISO-8601 (2026-01-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS'"
BACKOFF_BASE_MS, BACKOFF_CAP_MS = 500, 8000
ATTEMPT_TIMEOUT_MS, MIN_ATTEMPT_MS = 15000, 500

HELP = """\
usage: {prog} <Repo name> <Event> [--metadata <Metadata>] [--sha <commit>] [--time <ISO>] [options]

Report one DevOps event from a CI/CD job to the devops-metrics gateway (POST /process-event).

arguments:
  <Repo name>            repository: letters, digits, '.', '_', '-', '/' (1-140 characters,
                         starting with a letter or digit), or ALL for an event of no single repo
  <Event>                one of:
                           push               commits were pushed (give --sha, --before, --commits)
                           deploy             a deployment finished (--outcome failure if it
                                              failed: it counts as a deployment and a failure)
                           test_pass          the test suite passed
                           deploy_failed      the same as deploy --outcome failure
                           service_restored   the environment works again after a failure;
                                              ends the recovery time
                           incident_opened    an incident started (needs --incident-id)
                           incident_resolved  the incident ended (the same --incident-id)
  --metadata <Metadata>  free text or JSON, at most 1024 bytes (UTF-8), e.g. a version or a URL
  --sha <commit>         commit SHA the event is about, 7-64 hex digits: a push's head, the
                         deployed commit, or the change that caused an incident
  --before <commit>      a push's previous head (push only), 7-64 hex digits: the commit the
                         branch pointed to before the push (GitHub: github.event.before, GitLab:
                         $CI_COMMIT_BEFORE_SHA); all zeros (a new branch) is accepted and dropped
  --time <ISO>           when it happened: ISO-8601 (2026-01-01T12:00:00Z) or
                         'YYYY-MM-DD HH:MM:SS' (UTC), from 2000-01-01 to at most 15 minutes
                         ahead; default: when the script started (the same on every retry)
  --commits <file>       the changes a push brought or a deploy ships (push, deploy,
                         deploy_failed): one per line, '<sha>' or '<sha> <time>', at most 2048;
                         '-' reads stdin, e.g. git log --format='%H %cI' BEFORE..AFTER
  --environment <name>   where it happened (deploy, deploy_failed, service_restored, incident
                         events); default: production
  --outcome <outcome>    a deploy's outcome: success (the default) or failure
  --remediation <kind>   a deploy that fixes a failure: hotfix or rollback
  --deployment-id <id>   the deployment's own id (deploy, deploy_failed), or on incident_opened
                         the deployment that caused it; 1-128 letters, digits, '.', '_', ':', '-'
  --incident-id <id>     pairs incident_opened with incident_resolved (required on both)
  --team <name>          the team that owns it
  --service <name>       the service it is about (default: the repo)
                         (names: 1-100 characters, no control characters)
  -h, --help             show this help and exit

environment:
  DEVOPS_EVENTS_SECRET_TOKEN  required: the gateway's token (sent as a Bearer token, never printed)
  API_DEVOPS_EVENT_CATCHER    gateway URL (default: http://127.0.0.1:8000/process-event)
  DEVOPS_EVENT_TIMEOUT        seconds to keep retrying before giving up (default: 60)

behaviour:
  Each run generates one event_id (a UUID) and fixes the event's time once, and sends the very
  same body with every attempt, so a retried request is stored once, identically, downstream.
  Connection errors, timeouts, HTTP 408, 429 and 5xx are retried with exponential backoff and
  jitter, honouring Retry-After, until DEVOPS_EVENT_TIMEOUT runs out.
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


# Every option takes one value; the order is the order in which they are checked.
VALUE_OPTIONS = (
    "sha",
    "before",
    "time",
    "metadata",
    "environment",
    "outcome",
    "remediation",
    "deployment-id",
    "incident-id",
    "team",
    "service",
    "commits",
)


def parse_args(argv: list[str], prog: str) -> argparse.Namespace:
    parser = ArgumentParser(prog=prog, add_help=False, allow_abbrev=False)
    parser.add_argument("repo")
    parser.add_argument("event")
    for name in VALUE_OPTIONS:
        parser.add_argument(f"--{name}", dest=name.replace("-", "_"))
    return parser.parse_args(argv)


def option(args: argparse.Namespace, name: str) -> str | None:
    value: str | None = getattr(args, name.replace("-", "_"))
    return value


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, as in .js/.sh)."""
    year -= 1 if month <= 2 else 0
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def time_problem(value: str, now_s: int) -> str:
    """'' when the gateway would take ``value`` as an event time, else what is wrong with it."""
    match = TIME_RE.match(value)
    if not match:
        return "invalid"
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    hour, minute = int(match.group(5) or 0), int(match.group(6) or 0)
    second = int(match.group(8) or 0)
    offset_h, offset_m = int(match.group(13) or 0), int(match.group(15) or 0)
    if not (1 <= month <= 12 and 1 <= day <= days_in_month(year, month)):
        return "invalid"
    if hour > 23 or minute > 59 or second > 59 or offset_h > 23 or offset_m > 59:
        return "invalid"
    offset = (offset_h * 3600 + offset_m * 60) * (-1 if match.group(12) == "-" else 1)
    epoch = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    if epoch < EARLIEST_S:
        return "early"
    if epoch - now_s > MAX_AHEAD_S:
        return "future"
    return ""


def check_time(value: str, label: str, now_s: int, where: str = "") -> None:
    problem = time_problem(value, now_s)
    if problem == "invalid":
        raise UsageError(f"{where}invalid {label} '{value}': {TIME_HINT}")
    if problem == "early":
        raise UsageError(f"{where}{label} '{value}' is before 2000-01-01; send the real event time")
    if problem == "future":
        raise UsageError(f"{where}{label} '{value}' is more than 15 minutes in the future")


def check_name(value: str, label: str) -> str:
    """Environment, team and service names: trimmed, 1-100 characters, no control characters."""
    name = value.strip(SPACE)
    if not name or len(name) > MAX_NAME_CHARS or CONTROL_RE.search(name):
        raise UsageError(f"invalid {label} '{value}': use 1-100 characters without control characters")
    return name


def check_id(value: str, label: str) -> None:
    if not ID_RE.match(value):
        raise UsageError(
            f"invalid {label} '{value}': use 1-128 letters, digits, '.', '_', ':', '-' "
            "starting with a letter or digit"
        )


def read_commits(source: str) -> str:
    try:
        if source == "-":
            return sys.stdin.buffer.read().decode("utf-8", "replace")
        with open(source, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        raise UsageError(f"--commits: cannot read '{source}'") from None


def parse_commits(text: str, now_s: int) -> list[dict[str, str]]:
    """'<sha>' or '<sha> <time>' per line (git log --format='%H %cI', git rev-list); blank lines skipped."""
    commits = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(SPACE)
        if not line:
            continue
        parts = re.split(r"[ \t]+", line, maxsplit=1)
        sha = parts[0]
        if not SHA_RE.match(sha):
            raise UsageError(f"--commits line {number}: invalid sha '{sha}': must be 7-64 hex digits")
        commit = {"sha": sha}
        if len(parts) == 2:
            check_time(parts[1], "time", now_s, f"--commits line {number}: ")
            commit["time"] = parts[1]
        commits.append(commit)
    if len(commits) > MAX_COMMITS:
        raise UsageError(
            f"--commits lists {len(commits)} commits; at most {MAX_COMMITS} are allowed "
            "(e.g. git rev-list --max-count=2048)"
        )
    return commits


def validate(args: argparse.Namespace, now_s: int) -> dict[str, object]:
    """The gateway's rules, checked before any request so a typo fails fast and sends nothing.
    Returns the event's optional fields as they will be sent."""
    if not REPO_RE.match(args.repo):
        raise UsageError(
            f"invalid repo '{args.repo}': use 1-140 letters, digits, '.', '_', '-', '/' "
            "starting with a letter or digit, or ALL"
        )
    if args.event not in EVENTS:
        internal = " (calc_* events are computed by the aggregator)" if args.event.startswith("calc_") else ""
        raise UsageError(f"invalid event '{args.event}'{internal}: must be one of {', '.join(EVENTS)}")
    fields: dict[str, object] = {}
    for name in VALUE_OPTIONS:
        value = option(args, name)
        if value is None:
            continue
        allowed = OPTION_EVENTS.get(name)
        if allowed is not None and args.event not in allowed:
            raise UsageError(f"--{name} only applies to {', '.join(allowed)} events")
        field = name.replace("-", "_")
        if name in ("sha", "before") and not SHA_RE.match(value):
            raise UsageError(f"invalid --{name} '{value}': must be 7-64 hex digits")
        if name == "time":
            check_time(value, "--time", now_s)
        if name == "metadata":
            size = len(value.encode("utf-8", errors="surrogateescape"))
            if size > MAX_METADATA_BYTES:
                raise UsageError(
                    f"--metadata is {size} bytes; at most {MAX_METADATA_BYTES} bytes are allowed"
                )
        if name in ("environment", "team", "service"):
            value = check_name(value, f"--{name}")
        if name == "outcome":
            if value not in ("success", "failure"):
                raise UsageError(f"invalid --outcome '{value}': must be success or failure")
            if value == "success" and args.event == "deploy_failed":
                raise UsageError("--outcome success contradicts deploy_failed; report a deploy instead")
        if name == "remediation" and value not in ("hotfix", "rollback"):
            raise UsageError(f"invalid --remediation '{value}': must be hotfix or rollback")
        if name in ("deployment-id", "incident-id"):
            check_id(value, f"--{name}")
        if name == "commits":
            commits = parse_commits(read_commits(value), now_s)
            if commits:
                fields[field] = commits
            continue
        fields[field] = value
    if args.event in INCIDENT_EVENTS and "incident_id" not in fields:
        raise UsageError(
            f"{args.event} needs --incident-id (it pairs incident_opened with incident_resolved)"
        )
    return fields


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


def utc_iso(now_ms: int) -> str:
    """'2026-01-01T12:00:00.123Z' (what the .js and .sh scripts send as well)."""
    moment = datetime.datetime.fromtimestamp(now_ms // 1000, datetime.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{now_ms % 1000:03d}Z"


def build_body(args: argparse.Namespace, fields: dict[str, object], event_id: str, started_ms: int) -> bytes:
    """Built once: every attempt sends these very bytes (the time too, so a retry is identical)."""
    body: dict[str, object] = {"repo": args.repo, "event": args.event, "event_id": event_id, "source": SOURCE}
    body["time"] = fields.pop("time", None) or utc_iso(started_ms)
    body.update(fields)
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
        started_ms = int(time.time() * 1000)  # the event's time unless --time says otherwise
        args = parse_args(argv, prog)
        fields = validate(args, started_ms // 1000)
        config = Config(dict(os.environ))
    except UsageError as exc:
        if exc.show_usage:
            print(usage, file=sys.stderr)
        fail(prog, f"{exc} (see --help)", EXIT_USAGE)
        return EXIT_USAGE
    event_id = str(uuid.uuid4())
    return send(config, build_body(args, fields, event_id, started_ms), event_id, prog)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
