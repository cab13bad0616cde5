"""The production driver: the KCL MultiLangDaemon (Java, KCL 3.x jars bundled by kclpy-ext).

The daemon owns leases, shard sync and checkpoints (DynamoDB lease table named after the
application) and starts one processor child process per shard (``executableName``), talking JSON
lines over the child's stdin/stdout. This module renders the daemon's properties file, builds the
java command line, runs the daemon as a child (forwarding SIGTERM/SIGINT so the KCL shuts down
gracefully and processors get ``shutdown_requested``), and is the processor side's entry point
(:func:`run_processor`).

CLI::

    python -m devops_core.kcl.daemon --app-name devops-metrics-consumer \\
        --executable "python -m consumer.kcl_app" --print-properties
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from devops_core.aws import region_name
from devops_core.settings import Settings

__all__ = [
    "MAIN_CLASS",
    "DaemonConfig",
    "jars_dir",
    "java_command",
    "render_properties",
    "run_daemon",
    "run_processor",
]

logger = logging.getLogger(__name__)

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
# The Kinesis client would otherwise speak CBOR, which emulators (moto) do not.
JVM_PROPERTIES = {"aws.cborEnabled": "false"}

_LOGBACK = """<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder>
      <pattern>%d [%thread] %-5level %logger{{36}} [%mdc{{ShardId:-NONE}}] - %msg %n</pattern>
    </encoder>
  </appender>
  <!-- DrainChildSTDERRTask copies each stderr line of a processor (our JSON logs) to System.err and
       also logs it again at ERROR ("Received error line from subprocess"): keep the copy only. -->
  <logger name="software.amazon.kinesis.multilang.DrainChildSTDERRTask" level="OFF"/>
  <logger name="io.netty" level="WARN"/>
  <logger name="software.amazon.awssdk" level="WARN"/>
  <root level="{level}"><appender-ref ref="STDERR"/></root>
</configuration>
"""


class DaemonConfig(BaseModel):
    """What the MultiLangDaemon needs; rendered 1:1 into its properties file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    application_name: str = Field(description="KCL application = lease table name.")
    stream_name: str
    executable: str = Field(description="Command that runs one record processor, e.g. 'python -m x.y'.")
    region: str = Field(default_factory=region_name)
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    retrieval_mode: Literal["POLLING", "FANOUT"] = "POLLING"
    metrics_level: Literal["NONE", "SUMMARY", "DETAILED"] = "NONE"
    failover_time_millis: int = Field(default=10_000, ge=1000)
    shard_sync_interval_millis: int = Field(default=60_000, ge=100)
    idle_time_between_reads_millis: int = Field(default=1_000, ge=0)
    max_records: int = Field(default=10_000, ge=1, le=10_000)
    parent_shard_poll_interval_millis: int = Field(default=10_000, ge=100)
    graceful_lease_handoff: bool = Field(
        default=False,
        description="isGracefulLeaseHandoffEnabled. Off by default: KCL 3.1.3 can leave a handed-off "
        "lease stuck forever (see Settings.kcl_graceful_lease_handoff).",
    )
    shutdown_grace_millis: int = Field(
        default=20_000, ge=0, description="How long SIGTERM waits for processors to checkpoint."
    )
    worker_id: str | None = Field(
        default=None,
        description="Stable worker id (KCL default: a random UUID per start). A restarted worker with "
        "the same id takes its own leases back at once.",
    )
    kinesis_endpoint: str | None = None
    dynamodb_endpoint: str | None = None
    extra_properties: dict[str, str] = Field(default_factory=dict, description="Any other KCL property.")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        application_name: str,
        executable: str,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> DaemonConfig:
        """Stream and KCL knobs from ``Settings``; endpoints from boto3's own AWS_ENDPOINT_URL_KINESIS /
        _DYNAMODB / AWS_ENDPOINT_URL, so one environment points Python and Java at the same emulator."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "application_name": application_name,
            "stream_name": settings.devops_stream_name,
            "executable": executable,
            "initial_position": settings.kcl_initial_position,
            "retrieval_mode": settings.kcl_retrieval_mode,
            "metrics_level": settings.kcl_metrics_level,
            "failover_time_millis": settings.kcl_failover_time_millis,
            "shard_sync_interval_millis": settings.kcl_shard_sync_interval_millis,
            "idle_time_between_reads_millis": settings.kcl_idle_time_between_reads_millis,
            "max_records": settings.kcl_max_records,
            "graceful_lease_handoff": settings.kcl_graceful_lease_handoff,
            "kinesis_endpoint": env.get("AWS_ENDPOINT_URL_KINESIS") or env.get("AWS_ENDPOINT_URL"),
            "dynamodb_endpoint": env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL"),
            **overrides,
        }
        return cls.model_validate(values)


def render_properties(config: DaemonConfig) -> str:
    """The MultiLangDaemon properties file (names as in KCL 3.x multilang's MultiLangDaemonConfiguration)."""
    properties: dict[str, str] = {
        "executableName": config.executable,
        "streamName": config.stream_name,
        "applicationName": config.application_name,
        "processingLanguage": f"python/{sys.version_info.major}.{sys.version_info.minor}",
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "regionName": config.region,
        "initialPositionInStream": config.initial_position,
        "retrievalMode": config.retrieval_mode,
        "metricsLevel": config.metrics_level,
        "failoverTimeMillis": str(config.failover_time_millis),
        "shardSyncIntervalMillis": str(config.shard_sync_interval_millis),
        "parentShardPollIntervalMillis": str(config.parent_shard_poll_interval_millis),
        "idleTimeBetweenReadsInMillis": str(config.idle_time_between_reads_millis),
        "maxRecords": str(config.max_records),
        "shutdownGraceMillis": str(config.shutdown_grace_millis),
        "isGracefulLeaseHandoffEnabled": str(config.graceful_lease_handoff).lower(),
    }
    # Endpoint overrides (LocalStack, moto): KCL 3.x multilang has kinesisEndpoint and dynamoDBEndpoint
    # (URIs, set as the SDK clients' endpointOverride). CloudWatch has none; the AWS SDK for Java reads
    # AWS_ENDPOINT_URL(_CLOUDWATCH) from the inherited environment, and metricsLevel NONE sends nothing.
    if config.worker_id:
        properties["workerId"] = config.worker_id
    if config.kinesis_endpoint:
        properties["kinesisEndpoint"] = config.kinesis_endpoint
    if config.dynamodb_endpoint:
        properties["dynamoDBEndpoint"] = config.dynamodb_endpoint
    properties.update(config.extra_properties)
    return "".join(f"{key} = {value}\n" for key, value in properties.items())


def jars_dir() -> Path:
    import amazon_kclpy

    return Path(amazon_kclpy.__file__).resolve().parent / "jars"


def java_command(
    properties_file: Path, *, log_configuration: Path | None = None, java: str = "java"
) -> list[str]:
    jars = sorted(jars_dir().glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"no KCL jars in {jars_dir()} (is kclpy-ext installed?)")
    command = [java, *(f"-D{key}={value}" for key, value in JVM_PROPERTIES.items())]
    command += ["-cp", os.pathsep.join(str(jar) for jar in jars), MAIN_CLASS]
    command += ["--properties-file", str(properties_file)]
    if log_configuration is not None:
        command += ["--log-configuration", str(log_configuration)]
    return command


def run_daemon(
    config: DaemonConfig,
    *,
    log_level: str = "INFO",
    java: str = "java",
    env: dict[str, str] | None = None,
    stdout: Any = None,
    stderr: Any = None,
) -> int:
    """Run the MultiLangDaemon until it exits; SIGTERM/SIGINT to this process are forwarded to it as
    SIGTERM (the KCL's shutdown hook then asks every processor to checkpoint, for at most
    ``shutdown_grace_millis``). Returns its exit code, 0 after a stop we forwarded. Call it from the
    main thread (it installs signal handlers)."""
    with tempfile.TemporaryDirectory(prefix="kcl-") as workdir:
        properties_file = Path(workdir) / "app.properties"
        properties_file.write_text(render_properties(config))
        logback = Path(workdir) / "logback.xml"
        logback.write_text(_LOGBACK.format(level=log_level.upper()))
        command = java_command(properties_file, log_configuration=logback, java=java)
        logger.info(
            "starting KCL MultiLangDaemon",
            extra={"application": config.application_name, "stream": config.stream_name},
        )
        forwarded: list[int] = []
        started: list[subprocess.Popen[Any]] = []
        sent: list[bool] = []

        def stop_daemon() -> None:
            if started and not sent and started[0].poll() is None:
                sent.append(True)  # once: the JVM's shutdown hook is already running after the first
                started[0].send_signal(signal.SIGTERM)

        def forward(signum: int, _frame: FrameType | None) -> None:
            logger.info("forwarding shutdown signal to the KCL daemon", extra={"signal": signum})
            forwarded.append(signum)
            stop_daemon()

        # The handlers are in place before the daemon starts: a stop that arrives while it is being
        # spawned is remembered and forwarded once it runs, instead of killing this process and
        # leaving the JVM orphaned (it did, under load: tests/kcl/test_kcl_daemon_config.py).
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            child = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
            started.append(child)
            if forwarded:
                stop_daemon()
            code = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info(
            "KCL MultiLangDaemon exited", extra={"exit_code": code, "stop_requested": bool(forwarded)}
        )
        # The JVM exits with 128+SIGTERM after its shutdown hook ran (or dies of the signal if it came
        # before the JVM handles signals): either is the clean stop we asked for.
        return 0 if forwarded and code in (128 + signal.SIGTERM, -signal.SIGTERM) else code


def run_processor(
    processor: Any, *, log_level: str = "INFO", on_signal: Callable[[], None] | None = None
) -> None:
    """Entry point of a processor child process: stdout is the daemon's protocol channel, so logs go
    to stderr (JSON lines) and nothing else may print. ``on_signal`` is called on SIGTERM/SIGINT
    (e.g. to stop retrying a batch that cannot be delivered); the process keeps running either way."""
    from amazon_kclpy.kcl import KCLProcess

    from devops_core.logs import setup_logging
    from devops_core.startup_heap import freeze_startup_heap

    setup_logging(log_level, stream=sys.stderr)

    # The daemon owns this process's life: on its SIGTERM it sends shutdownRequested (the processor
    # checkpoints) and then closes stdin. A signal sent to the whole process group (Ctrl-C, a
    # group kill by an init) must not kill the child before that checkpoint, so it is ignored here.
    def received(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal received; waiting for the daemon's shutdown request", extra={"signal": signum})
        if on_signal is not None:
            on_signal()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, received)
    # The processor and its clients exist: full collections skip them from here on.
    logger.info("processor ready", extra={"startup_objects_frozen": freeze_startup_heap()})
    KCLProcess(processor).run()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devops_core.kcl.daemon",
        description="Render the KCL MultiLangDaemon properties for a record processor and run the daemon. "
        "Stream and KCL defaults come from the environment (Settings: DEVOPS_STREAM_NAME, KCL_*); "
        "endpoints from AWS_ENDPOINT_URL_KINESIS / _DYNAMODB / AWS_ENDPOINT_URL.",
    )
    parser.add_argument("--app-name", required=True, help="KCL application name (= lease table name)")
    parser.add_argument(
        "--executable", required=True, help='processor command, e.g. "python -m consumer.kcl_app"'
    )
    parser.add_argument("--stream", help="stream name (default: DEVOPS_STREAM_NAME)")
    parser.add_argument("--initial-position", choices=["TRIM_HORIZON", "LATEST"])
    parser.add_argument("--retrieval-mode", choices=["POLLING", "FANOUT"], help="FANOUT = enhanced fan-out")
    parser.add_argument("--metrics-level", choices=["NONE", "SUMMARY", "DETAILED"])
    parser.add_argument("--worker-id", help="stable KCL worker id (default: random per start)")
    parser.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other KCL property (repeatable)",
    )
    parser.add_argument("--print-properties", action="store_true", help="print the properties and exit")
    parser.add_argument("--print-command", action="store_true", help="print the java command line and exit")
    parser.add_argument("--log-level", default="INFO", help="daemon log level (default: %(default)s)")
    return parser.parse_args(argv)


def _config_from_args(args: argparse.Namespace, settings: Settings) -> DaemonConfig:
    overrides: dict[str, Any] = {}
    for name in ("initial_position", "retrieval_mode", "metrics_level"):
        if getattr(args, name):
            overrides[name] = getattr(args, name)
    if args.stream:
        overrides["stream_name"] = args.stream
    if args.worker_id:
        overrides["worker_id"] = args.worker_id
    extra = dict(item.split("=", 1) for item in args.property)
    overrides["extra_properties"] = {key.strip(): value.strip() for key, value in extra.items()}
    return DaemonConfig.from_settings(
        settings, application_name=args.app_name, executable=_absolute_python(args.executable), **overrides
    )


def _absolute_python(executable: str) -> str:
    """'python -m x' runs with this interpreter (the venv's), whatever PATH the daemon sees. The daemon
    splits executableName on spaces (no shell quoting), so no argument may contain one."""
    parts = executable.split()
    if parts and parts[0] in ("python", "python3"):
        parts[0] = sys.executable
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    settings = Settings()
    from devops_core.logs import setup_logging

    setup_logging(settings.log_level)
    config = _config_from_args(args, settings)
    if args.print_properties:
        sys.stdout.write(render_properties(config))
        return 0
    if args.print_command:
        print(shlex.join(java_command(Path("app.properties"))))
        return 0
    return run_daemon(config, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
