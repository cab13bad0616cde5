"""``make run``: the whole pipeline on the embedded emulator; no AWS account, no Docker.

Order of things, so that a problem stops it before anything started:

1. options and the environment's settings are checked (a bad value is one line naming it);
2. both ports are bound (a port in use is one line naming it and the option that changes it; the
   stack never talks to an emulator it did not start);
3. the state directory is locked (``.devstack/``; ``--clean`` wipes it now), the kept token read;
4. the emulator starts from its last snapshot, the resources are created if missing, the gateway and
   the workers start, and the banner says where everything is.

Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stop it in order: the gateway drains its batcher (every
202 is in the stream), the workers checkpoint, the emulator's state is saved, then it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from aiohttp import web
from pydantic import SecretStr, ValidationError

from devops_core.logs import setup_logging
from devops_core.settings import Settings
from devops_core.startup_heap import freeze_startup_heap
from devstack.emulator import Emulator, PortInUseError, bind_listener
from devstack.resources import provision
from devstack.snapshot import SnapshotError
from devstack.state import DEFAULT_STATE_DIR, StackInfo, StateDir, StateLockedError
from devstack.workers import Worker, all_workers
from producer.server import gateway_runner

logger = logging.getLogger("devstack")

PROG = "make run"
MAX_SHARDS = 50


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535; 0 picks a free port)")
    return value


def _shards(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"{value}: a local stream has 1 to {MAX_SHARDS} shards")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value}: must be 0 (only when stopping) or more")
    return value


def build_parser(workers: list[Worker]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} ARGS=... (python -m devstack)",
        description="Run the devops-metrics pipeline locally on an embedded AWS emulator (moto): emulator, "
        "gateway, consumer and aggregator in one process; Ctrl-C stops everything. Data and the token are "
        "kept in the state directory across restarts. Pipeline settings (stream, table, New Relic...) come "
        "from the environment, see README.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address for emulator and gateway (default: %(default)s)"
    )
    parser.add_argument(
        "--emulator-port",
        type=_port,
        default=4566,
        help="AWS emulator port; the banner's AWS_ENDPOINT_URL points here "
        "(default: %(default)s; 0 = any free)",
    )
    parser.add_argument(
        "--gateway-port", type=_port, default=8000, help="gateway port (default: %(default)s; 0 = any free)"
    )
    parser.add_argument(
        "--shards",
        type=_shards,
        default=2,
        help=f"shards of the local Kinesis stream, 1-{MAX_SHARDS}, when it is created (default: %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="where the emulator's data, the token and the KCL checkpoints are kept across restarts "
        "(default: .devstack/ in the repository)",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="wipe the state directory first: no events, no metrics, a new token",
    )
    parser.add_argument(
        "--snapshot-interval",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="save the emulator's state this often while something changes, so that a crash (kill -9) "
        "loses at most that much; it is always saved on Ctrl-C/SIGTERM (default: %(default)s; 0 = only then)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="once ready, load the demo history through the gateway (as `make demo`; see python -m "
        "devstack.demo --help)",
    )
    parser.add_argument(
        "--only-gateway",
        action="store_true",
        help="run only the emulator and the gateway (no consumer/aggregator)",
    )
    for worker in workers:
        worker.add_arguments(parser)
    return parser


def _fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr (no traceback), and make's non-zero exit."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _settings_or_fail() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'_'.join(str(p) for p in item['loc']).upper()}: {item['msg']}" for item in error.errors()
        )
        _fail(f"invalid setting in the environment: {problems}")


@dataclass
class Listeners:
    emulator: socket.socket
    gateway: socket.socket


def bind_ports(host: str, emulator_port: int, gateway_port: int) -> Listeners:
    """Bind both ports before anything starts; name every one that is taken and its option."""
    if emulator_port and emulator_port == gateway_port:
        _fail(f"--emulator-port and --gateway-port are both {emulator_port}; give them different ports")
    bound: list[socket.socket] = []
    problems: list[str] = []
    for role, port, option in (
        ("emulator", emulator_port, "--emulator-port"),
        ("gateway", gateway_port, "--gateway-port"),
    ):
        try:
            bound.append(bind_listener(host, port))
        except PortInUseError as error:
            hint = f'ARGS="{option} {port + 1}"' if port else f'ARGS="{option} 0"'
            problems.append(f"port {port} ({role}) on {host} {error.reason}; pick another with {hint}")
    if problems:
        for sock in bound:
            sock.close()
        _fail("; ".join(problems))
    return Listeners(emulator=bound[0], gateway=bound[1])


def _point_boto_at(url: str) -> None:
    """Everything in this process (and its children) talks to our emulator and only to it."""
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]:
        logger.warning("ignoring a per-service endpoint: make run uses its own emulator", extra={"var": name})
        del os.environ[name]
    os.environ["AWS_ENDPOINT_URL"] = url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def env_lines(token: str | None, gateway_url: str, emulator_url: str) -> list[str]:
    """The shell setup for the CI scripts, make demo/inspect and boto3 (also written to STATE/env)."""
    lines = [f"export DEVOPS_EVENTS_SECRET_TOKEN={token}"] if token else []
    return [
        *lines,
        f"export API_DEVOPS_EVENT_CATCHER={gateway_url}/process-event",
        f"export AWS_ENDPOINT_URL={emulator_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1",
    ]


def _display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


@dataclass
class TokenChoice:
    value: str
    origin: str  # environment | kept | new


def banner(
    token: TokenChoice,
    gateway_url: str,
    emulator_url: str,
    state: StateDir,
    restored: bool,
    demo: bool = False,
) -> str:
    state_dir = _display_path(state.path)
    lines = [
        "",
        "devops-metrics is running locally.",
        f"  dashboard: {gateway_url}/dashboard   (sign in with the token below)",
        f"  gateway:   {gateway_url}",
        f"  emulator:  {emulator_url}",
        f"  data:      {state_dir}/ ({'restored from the last run' if restored else 'new'}; kept across "
        "restarts; make run ARGS=--clean wipes it)",
    ]
    if token.origin == "environment":
        lines.append("  Using the token from DEVOPS_EVENTS_SECRET_TOKEN. Shell setup for the CI scripts:")
        setup = env_lines(None, gateway_url, emulator_url)
        setup.insert(0, "(DEVOPS_EVENTS_SECRET_TOKEN as set)")
    else:
        made = "made for this state directory" if token.origin == "new" else "kept from the last run"
        lines.append(f"  The token is {made} ({state_dir}/token). Shell setup for the CI scripts")
        lines.append(f"  (also in {state_dir}/env, so `. {state_dir}/env` does the same):")
        setup = env_lines(token.value, gateway_url, emulator_url)
    lines += [f"    {line}" for line in setup]
    if demo:
        following = "  Next: the demo history loads now; then make inspect (what is stored)."
    elif restored:
        following = "  Next: make inspect (what is stored); make demo adds the demo history (stored once)."
    else:
        following = "  Next: make demo (35 days of history for the dashboard), make inspect (what is stored)."
    lines += [
        following,
        "  Try: python3 cicd_script/report_devops_event.py demo deploy --metadata v1",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def choose_token(settings: Settings, state: StateDir) -> TokenChoice:
    if settings.devops_events_secret_token is not None:
        return TokenChoice(settings.devops_events_secret_token.get_secret_value(), "environment")
    value, made = state.token()
    return TokenChoice(value, "new" if made else "kept")


async def _save_periodically(emulator: Emulator, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            info = await asyncio.to_thread(emulator.save_snapshot, only_if_changed=True)
        except Exception:
            logger.exception("emulator snapshot failed; the last good one is kept")
            continue
        if info is not None:
            logger.debug("emulator state saved", extra={"bytes": info.bytes, "seconds": info.seconds})


async def _load_demo(gateway_url: str, token: str) -> None:
    from devstack.demo import load_demo

    try:
        summary = await asyncio.to_thread(load_demo, gateway_url, token)
    except Exception as error:
        logger.exception("the demo history could not be loaded")
        print(f"  demo: not loaded ({error}); try make demo", flush=True)
        return
    print(f"  demo: {summary}", flush=True)


async def serve(
    args: argparse.Namespace,
    available: list[Worker],
    settings: Settings,
    listeners: Listeners,
    state: StateDir,
    token: TokenChoice,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)

    emulator = Emulator(sock=listeners.emulator, snapshot=state.snapshot)
    try:
        await asyncio.to_thread(emulator.start)
    except SnapshotError as error:
        _fail(
            f"the saved data cannot be loaded: {error}. Start with ARGS=--clean to wipe it "
            f"(or move {state.snapshot} away to keep it)"
        )
    if emulator.restored is not None:
        logger.info(
            "emulator state restored",
            extra={"services": emulator.restored.services, "bytes": emulator.restored.bytes},
        )
    _point_boto_at(emulator.url)
    settings = settings.model_copy(update={"devops_events_secret_token": SecretStr(token.value)})
    resources = await asyncio.to_thread(provision, settings, shard_count=args.shards)
    await asyncio.to_thread(_warn_if_other_shard_count, settings, args.shards)

    # The gateway reads its token from Secrets Manager, as in production (rotation included).
    gateway_settings = settings.model_copy(update={"devops_events_secret_token": None})
    # The production limits and error handling (producer/server.py), as python -m producer serves.
    runner = gateway_runner(gateway_settings, shutdown_timeout=10)
    await runner.setup()
    host, port = listeners.gateway.getsockname()[:2]
    gateway_url = f"http://{host}:{port}"
    # STATE/env and stack.json exist before the gateway answers: a script that waits for /readyz can
    # source the env file at once.
    info = StackInfo(gateway_url, emulator.url, settings.devops_stream_name, os.getpid())
    state.write_stack(info, env_lines(token.value, gateway_url, emulator.url))
    await web.SockSite(runner, listeners.gateway).start()

    workers: list[Worker] = [] if args.only_gateway else [w for w in available if w.enabled(args)]
    for worker in workers:
        await worker.start(args, settings)

    restored = emulator.restored is not None
    print(banner(token, gateway_url, emulator.url, state, restored, demo=args.demo), flush=True)
    logger.info(
        "local stack ready",
        extra={
            "gateway": gateway_url,
            "emulator": emulator.url,
            "workers": [w.name for w in workers],
            "stream_arn": resources.stream_arn,
            # The emulator (restored data included) and the gateway, now skipped by full collections.
            "startup_objects_frozen": freeze_startup_heap(),
        },
    )
    background = [asyncio.create_task(worker.announce_ready(stop)) for worker in workers]
    if args.snapshot_interval > 0:
        background.append(asyncio.create_task(_save_periodically(emulator, args.snapshot_interval)))
    if args.demo:
        background.append(asyncio.create_task(_load_demo(gateway_url, token.value)))
    await stop.wait()

    logger.info("stopping")
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    state.clear_stack()
    await runner.cleanup()  # stops accepting, finishes requests, drains the batcher
    for worker in reversed(workers):
        await worker.stop()
    started = time.monotonic()
    saved = await asyncio.to_thread(emulator.save_snapshot, 30.0)
    if saved is not None:
        logger.info(
            "emulator state saved",
            extra={"path": str(saved.path), "bytes": saved.bytes, "seconds": time.monotonic() - started},
        )
    await asyncio.to_thread(emulator.stop)
    logger.info("stopped")
    return 0


def _warn_if_other_shard_count(settings: Settings, wanted: int) -> None:
    from devops_core.aws import boto_client

    summary = boto_client("kinesis").describe_stream_summary(StreamName=settings.devops_stream_name)
    shards = summary["StreamDescriptionSummary"]["OpenShardCount"]
    if shards != wanted:
        print(
            f"  note: the kept stream has {shards} shard(s); --shards {wanted} applies to a new stream "
            "(make run ARGS=--clean)",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    workers = all_workers()
    args = build_parser(workers).parse_args(argv)
    setup_logging()
    settings = _settings_or_fail()
    setup_logging(settings.log_level)
    listeners = bind_ports(args.host, args.emulator_port, args.gateway_port)
    state = StateDir(args.state_dir)
    try:
        state.acquire()
    except StateLockedError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"cannot use the state directory {state.path}: {error.strerror}")
    try:
        if args.clean:
            removed = state.wipe()
            print(f"  --clean: wiped {_display_path(state.path)}/ ({', '.join(removed) or 'it was empty'})")
        token = choose_token(settings, state)
        return asyncio.run(serve(args, workers, settings, listeners, state, token))
    finally:
        state.release()


if __name__ == "__main__":
    sys.exit(main())
