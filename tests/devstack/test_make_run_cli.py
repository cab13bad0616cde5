"""`make run` refuses what it cannot do before it starts anything, in one line, without a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.state import StateDir
from tests.support import ROOT


def run_devstack(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "DEVOPS_EVENTS"))}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ForeignServer:
    """Another program listening on a port (another stack's emulator, say); counts who connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def foreign() -> Iterator[ForeignServer]:
    server = ForeignServer()
    yield server
    server.close()


@pytest.mark.parametrize(("role", "option"), [("emulator", "--emulator-port"), ("gateway", "--gateway-port")])
def test_a_busy_port_stops_make_run_with_one_line_and_nothing_attaches(
    foreign: ForeignServer, tmp_path: Path, role: str, option: str
) -> None:
    other = "--gateway-port" if option == "--emulator-port" else "--emulator-port"
    result = run_devstack(option, str(foreign.port), other, "0", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"make run: port {foreign.port} ({role}) on 127.0.0.1 is already in use; "
        f'pick another with ARGS="{option} {foreign.port + 1}"'
    ]
    assert "Traceback" not in result.stderr + result.stdout
    assert foreign.connections == 0  # it never talked to the program that holds the port
    assert list(tmp_path.iterdir()) == []  # nothing started: not even the state directory was touched


def test_both_busy_ports_are_named_in_one_line(tmp_path: Path) -> None:
    first, second = ForeignServer(), ForeignServer()
    try:
        result = run_devstack(
            "--emulator-port",
            str(first.port),
            "--gateway-port",
            str(second.port),
            "--state-dir",
            str(tmp_path),
        )
    finally:
        first.close()
        second.close()
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"port {first.port} (emulator)" in line
    assert f"port {second.port} (gateway)" in line
    assert "--emulator-port" in line
    assert "--gateway-port" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "0"], "argument --shards: 0: a local stream has 1 to 50 shards"),
        (["--shards", "two"], "argument --shards: 'two' is not a whole number"),
        (["--gateway-port", "70000"], "argument --gateway-port: 70000 is not a port number"),
        (["--emulator-port", "-1"], "argument --emulator-port: -1 is not a port number"),
        (["--snapshot-interval", "-5"], "argument --snapshot-interval: -5.0: must be 0"),
        (["--gateway-port", "4567", "--emulator-port", "4567"], "are both 4567; give them different ports"),
    ],
)
def test_bad_options_are_clear_errors_not_tracebacks(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_devstack(*args, "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_in_the_environment_is_named(tmp_path: Path) -> None:
    result = run_devstack(
        "--gateway-port",
        "0",
        "--emulator-port",
        "0",
        "--state-dir",
        str(tmp_path),
        env={"DEPLOYMENT_FREQ_TIMEFRAME_DAY": "0"},
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("make run: invalid setting in the environment: DEPLOYMENT_FREQ_TIMEFRAME_DAY:")


def test_a_second_make_run_on_the_same_state_dir_stops(tmp_path: Path) -> None:
    holder = StateDir(tmp_path)
    holder.acquire()  # as a running make run holds it
    try:
        result = run_devstack("--gateway-port", "0", "--emulator-port", "0", "--state-dir", str(tmp_path))
    finally:
        holder.release()
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"make run: another `make run` (pid {os.getpid()}) is using the state directory "
        f"{tmp_path.resolve()}; stop it, or give this one its own with --state-dir"
    )


def test_help_explains_every_option() -> None:
    from devstack.__main__ import build_parser
    from devstack.workers import all_workers

    parser = build_parser(all_workers())
    for action in parser._actions:
        if action.option_strings:
            assert action.help, f"{action.option_strings} has no help"
    text = parser.format_help()
    for option in (
        "--clean",
        "--state-dir",
        "--demo",
        "--snapshot-interval",
        "--shards",
        "--consumer-driver",
    ):
        assert option in text


@pytest.mark.kcl_daemon
def test_the_daemon_driver_says_how_long_it_takes_and_when_it_reads(tmp_path: Path) -> None:
    """The real MultiLangDaemon: the banner warns of its start time, a later line says it is reading,
    and by then an event goes all the way to the raw store."""
    import json
    import signal
    import time
    import urllib.request

    from devstack.inspect import timestream_records
    from tests.support import start_local_stack

    stack = start_local_stack(
        "--consumer-driver", "daemon", "--aggregator-driver", "off", "--shards", "1", state_dir=tmp_path
    )
    try:
        assert "consumer: KCL MultiLangDaemon takes 40-90 s to start" in stack.banner
        assert stack.process.stdout is not None
        line = "\n"
        while line == "\n":  # the banner ends with a blank line; then the daemon's readiness (blocks)
            line = stack.process.stdout.readline()
        assert line.strip().startswith("consumer: KCL daemon ready after"), line
        assert "(reading 1 shard(s))" in line
        request = urllib.request.Request(
            f"{stack.gateway}/process-event",
            data=json.dumps({"repo": "daemon-demo", "event": "push"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            event_id = json.load(response)["event_id"]
        deadline = time.monotonic() + 120
        while not any(
            {"Name": "event_id", "Value": event_id} in r["Dimensions"]
            for r in timestream_records(stack.emulator, "DORAStats", "DORARawEventsTest")
        ):
            assert time.monotonic() < deadline, "the daemon did not store the event"
            time.sleep(0.2)
    finally:
        stack.stop(signal.SIGTERM, timeout=90)
