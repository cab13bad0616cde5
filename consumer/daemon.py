"""The consumer under the real KCL MultiLangDaemon: its configuration and a child-process handle.

Production runs ``python -m consumer`` in the foreground (the daemon, signals forwarded to it).
``make run --consumer-driver daemon`` and the integration test start that same entry point as a
background child with ``start_consumer_daemon``; the daemon starts ``python -m consumer.kcl_app``
once per shard lease.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import Any, TextIO

from devops_core.settings import Settings

__all__ = ["PROCESSOR_MODULE", "ConsumerDaemon", "daemon_config", "start_consumer_daemon"]

logger = logging.getLogger(__name__)

PROCESSOR_MODULE = "consumer.kcl_app"


def daemon_config(settings: Settings, **overrides: Any) -> Any:
    """The MultiLangDaemon configuration for the consumer: stream, application name, region, POLLING
    or FANOUT (KCL_RETRIEVAL_MODE) and endpoints from the environment (see DaemonConfig)."""
    from devops_core.kcl.daemon import DaemonConfig

    return DaemonConfig.from_settings(
        settings,
        application_name=settings.consumer_application_name,
        executable=f"{sys.executable} -m {PROCESSOR_MODULE}",
        **overrides,
    )


class ConsumerDaemon:
    """A running ``python -m consumer`` child; ``stop()`` sends SIGTERM so processors checkpoint."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.error("KCL daemon did not stop in time; killing it")
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode or 0)


def start_consumer_daemon(
    *,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    stdout: TextIO | int | None = None,
    stderr: TextIO | int | None = None,
) -> ConsumerDaemon:
    """Start ``python -m consumer [args]`` (the MultiLangDaemon running the consumer); returns at once.
    Settings reach it through the environment, as in production."""
    command = [sys.executable, "-m", "consumer", *(args or [])]
    logger.info("starting the consumer under the KCL MultiLangDaemon", extra={"command": command})
    return ConsumerDaemon(
        subprocess.Popen(command, env=env or dict(os.environ), stdout=stdout, stderr=stderr)
    )
