#!/usr/bin/env python3
"""Container health check (the image's HEALTHCHECK and the ECS task definitions): exit 0 healthy, 1 not.

    devops-metrics-healthcheck [gateway|consumer|aggregator]

gateway: GET /healthz on GATEWAY_PORT answers 200. consumer/aggregator: the command's process runs and
its KCL MultiLangDaemon (the Java child that holds the leases and checkpoints) is alive, neither a
zombie nor stopped. Without an argument the command is found among the container's processes.
Standard library only: it runs with the image's python before anything else is imported.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

MULTILANG_DAEMON = "software.amazon.kinesis.multilang.MultiLangDaemon"
# How each command shows in its process's command line (docker/entrypoint.sh execs these).
MODULES = {"gateway": "producer.multiworker", "consumer": "consumer", "aggregator": "aggregator"}


def processes() -> dict[int, tuple[list[str], str, int]]:
    """pid -> (argv, state, ppid) of every process we can read."""
    found: dict[int, tuple[list[str], str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # stat: "pid (comm) S ppid ...", comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = ([a.decode(errors="replace") for a in argv if a], fields[0], int(fields[1]))
    return found


def runs_module(argv: list[str], module: str) -> bool:
    return any(argv[i] == "-m" and argv[i + 1] == module for i in range(len(argv) - 1))


def command_pids(table: dict[int, tuple[list[str], str, int]], command: str) -> list[int]:
    return [pid for pid, (argv, _, _) in table.items() if runs_module(argv, MODULES[command])]


def gateway_healthy() -> bool:
    port = os.environ.get("GATEWAY_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def kcl_healthy(table: dict[int, tuple[list[str], str, int]], command: str) -> bool:
    mains = set(command_pids(table, command))
    daemons = [state for argv, state, ppid in table.values() if ppid in mains and MULTILANG_DAEMON in argv]
    return any(state not in {"Z", "T", "X"} for state in daemons)


def main(argv: list[str]) -> int:
    table = processes()
    command = argv[0] if argv else next((c for c in MODULES if command_pids(table, c)), None)
    if command not in MODULES:
        print(f"unhealthy: no {'/'.join(MODULES)} process found", file=sys.stderr)
        return 1
    healthy = gateway_healthy() if command == "gateway" else kcl_healthy(table, command)
    print(f"{command}: {'healthy' if healthy else 'unhealthy'}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
