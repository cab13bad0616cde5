"""The consumer under the real KCL MultiLangDaemon: its properties and a child-process handle.

Production runs ``python -m consumer`` (the daemon in the foreground, signals forwarded);
``make run --consumer-driver daemon`` and the integration test start it as a background child with
``start_consumer_daemon``. The daemon starts ``python -m consumer.kcl_app`` once per shard lease.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from devops_core.settings import Settings

__all__ = ["PROCESSOR_MODULE", "ConsumerDaemon", "daemon_config", "start_consumer_daemon"]

logger = logging.getLogger(__name__)

PROCESSOR_MODULE = "consumer.kcl_app"
# The daemon's own logs go to stderr (stdout is not a protocol channel for the daemon itself, but
# keeping it quiet keeps `make run` readable).
_LOGBACK = """<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%d{{HH:mm:ss.SSS}} %-5level %logger{{36}} - %msg%n</pattern></encoder>
  </appender>
  <root level="{level}"><appender-ref ref="STDERR"/></root>
</configuration>
"""


def daemon_config(settings: Settings, **overrides: Any) -> Any:
    """The MultiLangDaemon configuration for the consumer (stream, application, region, POLLING or
    FANOUT and endpoints from the environment, see ``devops_core.kcl.daemon.DaemonConfig``)."""
    from devops_core.kcl.daemon import DaemonConfig

    return DaemonConfig.from_settings(
        settings,
        application_name=settings.consumer_application_name,
        executable=f"{sys.executable} -m {PROCESSOR_MODULE}",
        **overrides,
    )


class ConsumerDaemon:
    """A running MultiLangDaemon child; ``stop()`` sends SIGTERM so processors checkpoint first."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: tempfile.TemporaryDirectory[str]) -> None:
        self.process = process
        self._workdir = workdir

    def stop(self, timeout: float = 40.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.error("KCL daemon did not stop in time; killing it")
                self.process.kill()
                self.process.wait()
        self._workdir.cleanup()
        return int(self.process.returncode or 0)


def start_consumer_daemon(
    settings: Settings,
    *,
    env: dict[str, str] | None = None,
    stdout: TextIO | int | None = None,
    stderr: TextIO | int | None = None,
    log_level: str = "WARN",
    **overrides: Any,
) -> ConsumerDaemon:
    """Start the MultiLangDaemon as a child process running the consumer (returns at once)."""
    from devops_core.kcl.daemon import java_command, render_properties

    workdir = tempfile.TemporaryDirectory(prefix="consumer-kcl-")
    properties = Path(workdir.name) / "consumer.properties"
    properties.write_text(render_properties(daemon_config(settings, **overrides)))
    logback = Path(workdir.name) / "logback.xml"
    logback.write_text(_LOGBACK.format(level=log_level.upper()))
    command = java_command(properties, log_configuration=logback)
    logger.info(
        "starting the consumer under the KCL MultiLangDaemon",
        extra={"application": settings.consumer_application_name, "stream": settings.devops_stream_name},
    )
    process = subprocess.Popen(
        command, env=env or dict(os.environ), stdout=stdout, stderr=stderr, start_new_session=True
    )
    return ConsumerDaemon(process, workdir)
