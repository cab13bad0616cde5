"""Zero-loss experiment: the whole local stack as separate processes, faults injected while events flow.

    .venv/bin/python bench/chaos/run.py                      # 10,000 events, about 3-4 minutes
    .venv/bin/python bench/chaos/run.py --events 1000 --scripts 20 --poison 6
    .venv/bin/python bench/chaos/run.py --driver daemon      # real KCL daemon, 2+2 workers, 4-5 minutes

Processes: the emulator (moto), the fault proxy in front of it (the gateway's Kinesis and the
consumer's Timestream go through it), the New Relic stand-in, the gateway (``python -m producer``),
the consumer and the aggregator (``python -m consumer|aggregator --driver local``). While events are
sent (CI script subprocesses, POST /process-event and POST /events, every client retrying 429/5xx and
connection errors with the same event_id), it injects: PutRecords per-entry failures and whole-call
Kinesis throttling; Timestream throttling, retryable record rejections and an outage window; New
Relic 500 and 429 bursts; a gateway SIGTERM + restart; a consumer SIGKILL + restart mid-load; and a
known number of poison records put straight on the stream. Then it checks that every accepted
event_id is in Timestream exactly once after dedupe (raw records counted too), at New Relic at least
once, that the aggregator's deploy counts equal what was sent, and that the dead-letter queue holds
exactly the poison records. Exits 1 if a check fails.

``--driver daemon`` runs the same experiment with the consumer and the aggregator under the real KCL
MultiLangDaemon (Java), the way production runs them: ``--consumer-workers`` (2) ``python -m consumer``
processes and ``--aggregator-workers`` (2) ``python -m aggregator`` processes, each its own daemon,
share one lease table per application on a stream of ``--shards`` (4) shards. The run waits until
every lease is held (the daemons take 20-90 s to start), then sends warm-up events until the KCL has
split the leases between the workers (KCL 3.x balances by measured throughput here), then the
experiment, paced at ``--rate`` events/s. At 45 % Timestream goes down, and as soon as the consumer
worker holding the most leases logs a batch it cannot checkpoint, its whole process group (wrapper,
JVM, processor children) is SIGKILLed, like a task dying; at 60 % the aggregator worker holding the
most leases (``--no-kill-aggregator`` to skip). After each kill the lease table is read every half
second: every owner change, whether the victim was the KCL leader, when it last owned a lease, when
the new owners checkpointed on its shards. Then the victim is restarted with the same worker id
(``--no-restart`` to skip). The four checks are the same, plus one per killed worker: its leases all
ended on survivors. See docs/chaos.md for figures.

Timestream rejections are injected with a *retryable* reason (the consumer retries those); a
permanent-looking reason (e.g. outside the ingestion window) is dead-lettered by design and would
not be a loss test. The consumer and the aggregator share the dead-letter queue, so every poison
record is expected twice there: once per application.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp

from bench.common import AWS_ENV, ROOT, Child, start_announcing, wait_http
from devops_core.settings import Settings
from devstack.emulator import free_port

RETRYABLE_REJECTION = "Internal error while writing the record; please try again."
EVENT_KINDS = ("push", "deploy", "test_pass")
SCRIPT_WORKERS = 4  # report_devops_event.py subprocesses at a time (each is a Python start-up)


def progress(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class ChaosConfig:
    events: int = 10_000
    scripts: int = 300
    batch_share: float = 0.75
    batch_size: int = 100
    poison: int = 20
    repos: int = 10
    concurrency: int = 8
    settle_timeout: float = 150.0
    log_dir: Path | None = None
    seed: int = 7
    # An emulator already running (tests share one; AWS_ENDPOINT_URL must point at it already).
    emulator_url: str | None = None
    # "local": the in-process KCL driver, one process per application; "daemon": the real KCL
    # MultiLangDaemon, several workers per application sharing its lease table.
    driver: str = "local"
    shards: int = 2
    consumer_workers: int = 1
    aggregator_workers: int = 1
    failover_millis: int = 5000
    restart_killed: bool = True
    kill_aggregator: bool = True
    daemon_ready_timeout: float = 300.0
    rate: float = 0.0  # events/s over all senders; 0 = unpaced
    failover_timeout: float = 180.0


# Defaults that differ under --driver daemon: a KCL daemon takes a minute to start and 4 JVMs share the
# machine, so fewer events (and far fewer CI-script subprocesses) keep a run under ~10 minutes.
DAEMON_DEFAULTS = {
    "events": 2000,
    "scripts": 40,
    "shards": 4,
    "consumer_workers": 2,
    "aggregator_workers": 2,
    "settle_timeout": 300.0,
    "rate": 25.0,
}
# The JVMs start faster with the client compiler only and a small serial heap (2 shared cores).
DAEMON_JAVA_OPTIONS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx768m"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ChaosReport:
    numbers: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    log_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


# --- processes ------------------------------------------------------------------------------------


class Proc:
    """A stack process whose stderr (JSON log lines) goes to a file; can be SIGTERMed or SIGKILLed.

    ``group``: the process leads its own process group (a KCL daemon worker: the Python wrapper, its
    JVM and the JVM's processor children), so :meth:`kill_group` kills all of it at once."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        group: bool = False,
        worker_id: str | None = None,
    ) -> None:
        self.name, self.args, self.env, self.log_dir = name, args, env, log_dir
        self.group, self.worker_id = group, worker_id
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        log = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, *self.args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=self.group,
        )
        log.close()

    def kill_group(self) -> None:
        """SIGKILL every process of the group (what a dying task does to a daemon worker)."""
        assert self.process is not None
        assert self.group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def reap_group(self) -> None:
        """After a stop: SIGKILL whatever of the group is left (processor children of a killed JVM)."""
        if self.process is not None and self.group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def signal(self, sig: int, timeout: float = 40) -> int | None:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        return self.signal(signal.SIGTERM)


def _post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _get_json(url: str, timeout: float = 60) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


# --- the experiment -------------------------------------------------------------------------------


class Experiment:
    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.children: list[Child] = []
        self.procs: list[Proc] = []
        self.accepted: dict[str, tuple[str, str]] = {}  # event_id -> (repo, event)
        self.counts: Counter[str] = Counter()
        self.poison_sequences: set[tuple[str, str]] = set()  # (shard_id, sequence_number)
        self.log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="chaos-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = "chaos-" + uuid.uuid4().hex[:8]
        self.session: aiohttp.ClientSession | None = None
        self.consumers: list[Proc] = []
        self.aggregators: list[Proc] = []
        self.kills: dict[str, dict[str, Any]] = {}  # app -> what the kill of one of its workers did
        self.watchers: list[asyncio.Task[None]] = []
        self.daemon_numbers: dict[str, Any] = {}
        self.sending = True
        self.paced_until = 0.0
        self.send_started = time.monotonic()

    # -- set-up ------------------------------------------------------------------------------------
    def start_stack(self) -> None:
        if self.config.emulator_url:
            self.emulator_url = self.config.emulator_url
        else:
            emulator = start_announcing(["-m", "devstack.emulator", "--port", str(free_port())], env=AWS_ENV)
            self.children.append(emulator)
            self.emulator_url = emulator.url
            os.environ.update(AWS_ENV)
            os.environ["AWS_ENDPOINT_URL"] = emulator.url
        proxy = start_announcing(
            ["-m", "devstack.faults", "--upstream", self.emulator_url, "--port", str(free_port())]
        )
        self.children.append(proxy)
        self.proxy_url = proxy.url
        standin = start_announcing(["-m", "devstack.newrelic_standin", "--port", str(free_port())])
        self.children.append(standin)
        self.standin_url = standin.url

        suffix = uuid.uuid4().hex[:8]
        self.settings = Settings.model_validate(
            {
                "devops_stream_name": f"chaos-{suffix}",
                "devops_table_name": f"chaos-raw-{suffix}",
                "secret_store_name": f"chaos-secret-{suffix}",
                "dead_letter_queue_name": f"chaos-dlq-{suffix}",
                "aggregator_state_table": f"chaos-agg-{suffix}",
                "consumer_application_name": f"chaos-consumer-{suffix}",
                "aggregator_application_name": f"chaos-aggregator-{suffix}",
            }
        )
        from devstack.resources import provision

        self.token = provision(self.settings, shard_count=self.config.shards).token
        common = {
            **AWS_ENV,
            "AWS_ENDPOINT_URL": self.emulator_url,
            "DEVOPS_STREAM_NAME": self.settings.devops_stream_name,
            "DEVOPS_TABLE_NAME": self.settings.devops_table_name,
            "DEVOPS_DB_NAME": self.settings.devops_db_name,
            "SECRET_STORE_NAME": self.settings.secret_store_name,
            "DEAD_LETTER_QUEUE_NAME": self.settings.dead_letter_queue_name,
            "AGGREGATOR_STATE_TABLE": self.settings.aggregator_state_table,
            "CONSUMER_APPLICATION_NAME": self.settings.consumer_application_name,
            "AGGREGATOR_APPLICATION_NAME": self.settings.aggregator_application_name,
            "LOG_LEVEL": "INFO",
        }
        self.gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.gateway = Proc(
            "gateway",
            ["-m", "producer", "--port", str(self.gateway_port), "--shutdown-timeout", "10"],
            {**common, "AWS_ENDPOINT_URL_KINESIS": self.proxy_url},
            self.log_dir,
        )
        consumer_env = {
            **common,
            "AWS_ENDPOINT_URL_TIMESTREAM_WRITE": self.proxy_url,
            "LOGGER_API_KEY": self.api_key,
            "NEW_RELIC_LOG_ENDPOINT": f"{self.standin_url}/log/v1",
            "CONSUMER_MAX_BACKOFF_SECONDS": "2",
        }
        if self.config.driver == "daemon":
            self.consumers = self.daemon_workers("consumer", self.config.consumer_workers, consumer_env)
            self.aggregators = self.daemon_workers("aggregator", self.config.aggregator_workers, common)
        else:
            self.consumers = [
                Proc("consumer", ["-m", "consumer", "--driver", "local"], consumer_env, self.log_dir)
            ]
            self.aggregators = [
                Proc("aggregator", ["-m", "aggregator", "--driver", "local"], common, self.log_dir)
            ]
        self.consumer = self.consumers[0]
        self.procs = [self.gateway, *self.consumers, *self.aggregators]
        for proc in self.procs:
            proc.start()
        wait_http(f"{self.gateway_url}/healthz")
        progress(f"stack up (logs in {self.log_dir})")
        if self.config.driver == "daemon":
            self.wait_daemons_ready()

    def daemon_workers(self, app: str, count: int, env: dict[str, str]) -> list[Proc]:
        """``count`` real ``python -m consumer|aggregator`` (default driver: the KCL daemon) workers of
        one application: distinct worker ids, one lease table, short KCL timings."""
        kcl_env = {
            **env,
            "KCL_FAILOVER_TIME_MILLIS": str(self.config.failover_millis),
            "KCL_SHARD_SYNC_INTERVAL_MILLIS": "5000",
            "KCL_IDLE_TIME_BETWEEN_READS_MILLIS": "500",
            "JAVA_TOOL_OPTIONS": DAEMON_JAVA_OPTIONS,
        }
        workers = []
        for i in range(count):
            worker_id = f"{app}-{chr(ord('a') + i)}"
            args = ["-m", app, "--worker-id", worker_id, "--property", "leaseAssignmentIntervalMillis=1000"]
            workers.append(Proc(worker_id, args, kcl_env, self.log_dir, group=True, worker_id=worker_id))
        return workers

    # -- leases (daemon driver) --------------------------------------------------------------------
    def application(self, app: str) -> str:
        s = self.settings
        return s.consumer_application_name if app == "consumer" else s.aggregator_application_name

    def leases(self, app: str) -> dict[str, dict[str, Any]]:
        """The application's lease table now: shard -> owner, counter, checkpoint ({} before it exists)."""
        from botocore.exceptions import ClientError

        from devops_core.aws import boto_client

        dynamodb = boto_client("dynamodb")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.application(app), "ConsistentRead": True}
        while True:
            try:
                page = dynamodb.scan(**kwargs)
            except ClientError as error:
                if error.response["Error"]["Code"] == "ResourceNotFoundException":
                    return {}
                raise
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return {
            item["leaseKey"]["S"]: {
                "owner": item.get("leaseOwner", {}).get("S"),
                "counter": int(item.get("leaseCounter", {}).get("N", "0")),
                "checkpoint": item.get("checkpoint", {}).get("S", ""),
            }
            for item in items
        }

    def leader(self, app: str) -> str | None:
        """The KCL 3.x leader (it alone assigns leases): the lock item in ``<app>-CoordinatorState``."""
        from botocore.exceptions import ClientError

        from devops_core.aws import boto_client

        try:
            item = (
                boto_client("dynamodb")
                .get_item(
                    TableName=f"{self.application(app)}-CoordinatorState",
                    Key={"key": {"S": "Leader"}},
                    ConsistentRead=True,
                )
                .get("Item", {})
            )
        except ClientError:
            return None
        return item.get("ownerName", {}).get("S")

    @staticmethod
    def owners(leases: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        return {shard: lease["owner"] for shard, lease in sorted(leases.items())}

    def workers_of(self, app: str) -> list[Proc]:
        return self.consumers if app == "consumer" else self.aggregators

    def lease_state(self, app: str) -> tuple[bool, bool, dict[str, str | None]]:
        """(every shard's lease held by a worker of ``app``, every worker holds one, owners)."""
        owners = self.owners(self.leases(app))
        ids = {w.worker_id for w in self.workers_of(app)}
        held = len(owners) >= self.config.shards and all(owner in ids for owner in owners.values())
        return held, held and set(owners.values()) >= ids, owners

    def wait_daemons_ready(self) -> None:
        """Until every shard's lease is held by a worker of each application (the daemons take 40-90 s)."""
        started = time.monotonic()
        deadline = started + self.config.daemon_ready_timeout
        next_note = started + 15
        progress(
            f"KCL daemons starting: {len(self.consumers)} consumer + {len(self.aggregators)} aggregator "
            f"workers on {self.config.shards} shards (40-90 s each)"
        )
        while True:
            state = {app: self.lease_state(app) for app in ("consumer", "aggregator")}
            now = time.monotonic()
            if all(held for held, _, _ in state.values()):
                break
            if now > deadline:
                raise RuntimeError(f"not every lease held after {now - started:.0f} s: {state}")
            if now > next_note:
                next_note = now + 15
                progress("waiting for leases: " + "; ".join(
                    f"{app} {dict(Counter(o or '-' for o in owners.values()))}"
                    for app, (_, _, owners) in state.items()))  # fmt: skip
            time.sleep(1)
        waited = round(time.monotonic() - started, 1)
        self.daemon_numbers.update({"ready_seconds": waited, "shards": self.config.shards})
        for app, (_, _, owners) in state.items():
            self.daemon_numbers[f"{app}_leases_when_ready"] = owners
        progress(
            f"KCL daemons hold every lease after {waited} s: "
            + "; ".join(f"{app} {dict(Counter(state[app][2].values()))}" for app in state)
        )

    async def warm_up(self, session: aiohttp.ClientSession) -> None:
        """KCL 3.x balances leases by measured throughput (no CPU metrics off EC2/ECS/EKS), so an idle
        fleet stays on the worker that came up first. A trickle of events (checked like all the
        others) until every worker of each application holds a lease, or ``--ready-timeout``."""
        started = time.monotonic()
        deadline = started + self.config.daemon_ready_timeout
        next_note = started + 15
        i = 0
        while True:
            state = {
                app: await asyncio.to_thread(self.lease_state, app) for app in ("consumer", "aggregator")
            }
            if all(split for _, split, _ in state.values()) or time.monotonic() > deadline:
                break
            batch = [self.new_event(i + k) for k in range(10)]
            i += 10
            status, data = await self.post_retrying(session, "/events", batch)
            for item in data.get("results", []) if status in (202, 207) else []:
                if item["status"] == 202:
                    self.accept(batch[item["index"]])
                    self.counts["warm_up_events"] += 1
            if time.monotonic() > next_note:
                next_note = time.monotonic() + 15
                owners_now = "; ".join(
                    f"{app} {dict(Counter(o.values()))}" for app, (_, _, o) in state.items()
                )
                progress(f"warm-up, waiting for the KCL to split the leases: {owners_now}")
            await asyncio.sleep(0.5)
        waited = round(time.monotonic() - started, 1)
        self.daemon_numbers["split_seconds"] = waited
        for app, (_, split, owners) in state.items():
            self.daemon_numbers[f"{app}_leases_at_start"] = owners
            if not split:
                progress(f"{app}: leases not split between the workers after {waited} s of warm-up")
        progress(
            f"leases split after {waited} s of warm-up ({self.counts['warm_up_events']} events): "
            + "; ".join(f"{app} {dict(Counter(state[app][2].values()))}" for app in state)
        )

    def stop_stack(self) -> None:
        # Daemon workers stop together (each JVM's shutdown takes seconds), then the rest in reverse.
        daemons = [proc for proc in self.procs if proc.group]
        for proc in daemons:
            if proc.process is not None and proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            if proc.group and proc.process is not None:
                try:
                    code: int | None = proc.process.wait(60)
                except subprocess.TimeoutExpired:
                    code = None
                proc.reap_group()
            else:
                code = proc.stop()
            self.counts[f"exit_{proc.name}"] = code if code is not None else -1
        for child in reversed(self.children):
            child.stop()

    # -- faults ------------------------------------------------------------------------------------
    def set_plan(self, **plan: Any) -> None:
        _post_json(f"{self.proxy_url}/__faults__", {"seed": self.config.seed, **plan})

    def newrelic_fault(self, status: int, retry_after: float | None = None, **length: float) -> None:
        """``seconds=`` a window, or ``count=`` the next N requests (sure to hit even when idle)."""
        body: dict[str, Any] = {"status": status, **length, "api_key": self.api_key}
        if retry_after is not None:
            body["retry_after"] = retry_after
        _post_json(f"{self.standin_url}/__standin__/faults", body)

    def put_poison(self, count: int) -> None:
        from devops_core.aws import boto_client

        kinesis = boto_client("kinesis")  # straight to the emulator, not through the proxy
        payloads = [b"{not json", b'{"schema": 1, "event": "deploy"}', b"\xff\xfe binary", b"[]"]
        for i in range(count):
            data = payloads[i % len(payloads)]
            response = kinesis.put_record(
                StreamName=self.settings.devops_stream_name, Data=data, PartitionKey=f"chaos-r{i}"
            )
            self.poison_sequences.add((response["ShardId"], response["SequenceNumber"]))

    def outage_answers(self) -> int:
        """WriteRecords calls the fault proxy has answered 503 for the Timestream outage."""
        return int(_get_json(f"{self.proxy_url}/__faults__").get("timestream_unavailable", 0))

    def consumer_backoffs(self, proc: Proc | None = None) -> int:
        """Lines of a running consumer saying a batch is in flight and not checkpointed."""
        log = (proc or self.consumer).log
        return log.read_text(errors="replace").count("batch failed; retrying, not checkpointing")

    async def kill_consumer_mid_batch(self, plan: dict[str, Any]) -> None:
        """Timestream goes down, so the consumer holds a batch it cannot checkpoint (New Relic may
        already have taken it); SIGKILL it then, restart it, and bring Timestream back."""
        before = self.consumer_backoffs()
        outages_before = self.outage_answers()
        await asyncio.to_thread(self.set_plan, **{**plan, "timestream_unavailable": True})
        progress("Timestream outage (every WriteRecords 503)")
        # Until the consumer has met the outage itself (a backoff line alone may come from another
        # fault): on a loaded machine that can take a while, so give it work every few seconds. The
        # deadline only guards against a hang; the checks then say what was not exercised.
        deadline = time.monotonic() + 120
        nudge_at = time.monotonic() + 2
        while time.monotonic() < deadline and (
            self.consumer_backoffs() == before or self.outage_answers() == outages_before
        ):
            if time.monotonic() > nudge_at:  # the consumer is idle (all sent and stored): give it work
                nudge_at = time.monotonic() + 3
                await self.send_nudge()
            await asyncio.sleep(0.1)
        self.counts["consumer_killed_mid_batch"] = int(self.consumer_backoffs() > before)
        await asyncio.to_thread(self.consumer.signal, signal.SIGKILL)
        progress(
            f"consumer SIGKILL at {len(self.accepted)} accepted "
            f"({'with' if self.counts['consumer_killed_mid_batch'] else 'no'} batch in flight); restarting"
        )
        await asyncio.sleep(1)
        self.consumer.start()
        await asyncio.sleep(2)
        await asyncio.to_thread(self.set_plan, **plan)
        progress("Timestream back")

    async def kill_daemon_worker(self, app: str, plan: dict[str, Any]) -> None:
        """SIGKILL the process group of the worker holding the most leases (for the consumer: once it
        logs a batch it cannot checkpoint, during a Timestream outage); a watcher then follows its
        leases to the survivors and restarts it once they have all moved."""
        leases = await asyncio.to_thread(self.leases, app)
        held = Counter(lease["owner"] for lease in leases.values())
        victim = max(self.workers_of(app), key=lambda proc: held[proc.worker_id])
        kill: dict[str, Any] = {"worker": victim.worker_id, "leases_held": held[victim.worker_id]}
        if app == "consumer":
            before = self.consumer_backoffs(victim)
            await asyncio.to_thread(self.set_plan, **{**plan, "timestream_unavailable": True})
            progress(
                f"Timestream outage (every WriteRecords 503); waiting for {victim.worker_id} to hold a batch"
            )
            deadline = time.monotonic() + 30
            nudge_at = time.monotonic() + 3
            while self.consumer_backoffs(victim) == before and time.monotonic() < deadline:
                if time.monotonic() > nudge_at:  # the worker is idle: give it work
                    nudge_at = time.monotonic() + 5
                    await self.send_nudge()
                await asyncio.sleep(0.1)
            in_flight = self.consumer_backoffs(victim) > before
            self.counts["consumer_killed_mid_batch"] = int(in_flight)
            kill["batch_in_flight"] = in_flight
        leases = await asyncio.to_thread(self.leases, app)
        kill["leases_held"] = sum(1 for lease in leases.values() if lease["owner"] == victim.worker_id)
        kill["leader_before"] = await asyncio.to_thread(self.leader, app)
        kill["was_leader"] = kill["leader_before"] == victim.worker_id
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill_group)
        kill["at_accepted"] = len(self.accepted)
        kill["at_seconds"] = round(killed_at - self.send_started, 1)
        kill["owners_before"] = self.owners(leases)
        progress(
            f"{app} worker {victim.worker_id} SIGKILLed (process group) at {len(self.accepted)} accepted, "
            f"{kill['at_seconds']} s into sending, holding {kill['leases_held']} of {len(leases)} leases"
            + (" (the KCL leader)" if kill["was_leader"] else " (not the KCL leader)")
            + (
                f" ({'with' if kill['batch_in_flight'] else 'no'} batch in flight)"
                if app == "consumer"
                else ""
            )
        )
        self.kills[app] = kill
        if app == "consumer":
            await asyncio.sleep(2)
            await asyncio.to_thread(self.set_plan, **plan)
            progress("Timestream back")
        self.watchers.append(asyncio.create_task(self.watch_failover(app, victim, leases, killed_at)))

    async def watch_failover(
        self, app: str, victim: Proc, before: dict[str, dict[str, Any]], killed_at: float
    ) -> None:
        """Follow the lease table after a kill: every owner change (the KCL 3.x leader keeps balancing,
        and keeps assigning leases to a dead worker until its WorkerMetricStats entry is 60 s old), until
        the killed worker has owned nothing for ``stable`` seconds and the new owners checkpointed on
        the shards it held (or sending is over); then restart it."""
        kill = self.kills[app]
        theirs = [shard for shard, lease in before.items() if lease["owner"] == victim.worker_id]
        stable = max(20.0, 3 * self.config.failover_millis / 1000)
        previous = self.owners(before)
        timeline: list[dict[str, Any]] = []
        advanced: dict[str, float] = {}
        free_since: float | None = None  # since when the victim owns no lease
        deadline = killed_at + self.config.failover_timeout
        settled = False
        while time.monotonic() < deadline:
            now = await asyncio.to_thread(self.leases, app)
            elapsed = round(time.monotonic() - killed_at, 1)
            owners = self.owners(now)
            for shard, owner in owners.items():
                if owner != previous.get(shard):
                    timeline.append(
                        {"after_seconds": elapsed, "shard": shard, "from": previous.get(shard), "to": owner}
                    )
                    progress(
                        f"{app} lease {shard}: {previous.get(shard)} -> {owner} {elapsed} s after the kill"
                    )
            previous = owners
            if victim.worker_id in owners.values():
                free_since = None
            elif free_since is None:
                free_since = elapsed
            for shard in theirs:
                lease = now.get(shard, {})
                moved_on = lease.get("owner") not in (None, victim.worker_id)
                if shard not in advanced and moved_on and lease["checkpoint"] != before[shard]["checkpoint"]:
                    advanced[shard] = elapsed
            settled = free_since is not None and elapsed - free_since >= stable
            if settled and (len(advanced) == len(theirs) or not self.sending):
                break  # (a shard with nothing left to read after the move never checkpoints again)
            await asyncio.sleep(0.5)
        kill["owners_after_failover"] = previous
        kill["leader_after"] = await asyncio.to_thread(self.leader, app)
        kill["lease_timeline"] = timeline
        kill["owner_changes"] = len(timeline)
        kill["reassigned_to_dead_worker"] = sum(1 for move in timeline if move["to"] == victim.worker_id)
        # None unless the victim owned nothing for ``stable`` seconds before the deadline
        kill["recovered_seconds"] = free_since if settled else None
        kill["checkpoint_advanced_seconds"] = dict(sorted(advanced.items()))
        kill["stable_seconds"] = stable
        progress(
            f"{app}: {victim.worker_id} owns no lease since {free_since} s after the kill "
            f"({len(timeline)} owner changes, {kill['reassigned_to_dead_worker']} to the dead worker); "
            f"new owners checkpointed on {len(advanced)}/{len(theirs)} of its shards; owners now {previous}"
        )
        if self.config.restart_killed:
            victim.start()
            kill["restarted_at_seconds"] = round(time.monotonic() - killed_at, 1)
            progress(f"{app} worker {victim.worker_id} restarted (same worker id)")

    async def send_nudge(self, count: int = 10) -> None:
        """A few more events (counted like the others), so there is a batch to kill mid-flight."""
        batch = [self.new_event(self.config.events + self.counts["nudge_events"] + i) for i in range(count)]
        self.counts["nudge_events"] += count
        assert self.session is not None, "only while send_all runs"
        status, data = await self.post_retrying(self.session, "/events", batch)
        for item in data.get("results", []) if status in (202, 207) else []:
            if item["status"] == 202:
                self.accept(batch[item["index"]])

    async def chaos(self, sent: asyncio.Event) -> None:
        """The fault schedule, keyed to the share of events accepted so far."""
        total = self.config.events
        plan = {
            "put_records_entry_failure_ratio": 0.1,
            "kinesis_throttle_ratio": 0.05,
            "timestream_throttle_ratio": 0.1,
            "timestream_reject_ratio": 0.05,
            "timestream_reject_reason": RETRYABLE_REJECTION,
        }
        await asyncio.to_thread(self.set_plan, **plan)
        await asyncio.to_thread(lambda: self.newrelic_fault(500, seconds=3.0))
        await asyncio.to_thread(self.put_poison, self.config.poison // 2)
        progress(
            "faults on: Kinesis entry failures 10% + throttling 5%, Timestream throttling 10% "
            "+ retryable rejections 5%, New Relic 500 for 3 s"
        )
        daemon = self.config.driver == "daemon"
        steps = [
            (0.25, "gateway_sigterm"),
            (0.45, "consumer_worker_sigkill" if daemon and len(self.consumers) > 1 else "consumer_sigkill"),
            (0.7, "newrelic_429"),
            (0.8, "poison"),
        ]
        if daemon and self.config.kill_aggregator and len(self.aggregators) > 1:
            steps.insert(2, (0.6, "aggregator_worker_sigkill"))
        for share, action in steps:
            # polls a counter the senders bump
            while len(self.accepted) < share * total and not sent.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if action == "gateway_sigterm":
                code = await asyncio.to_thread(self.gateway.signal, signal.SIGTERM)
                self.counts["gateway_sigterm_exit"] = code if code is not None else -1
                progress(f"gateway SIGTERM at {len(self.accepted)} accepted: exit code {code}; restarting")
                self.gateway.start()
                await asyncio.to_thread(wait_http, f"{self.gateway_url}/healthz")
            elif action == "consumer_sigkill":
                await self.kill_consumer_mid_batch(plan)
            elif action == "consumer_worker_sigkill":
                await self.kill_daemon_worker("consumer", plan)
            elif action == "aggregator_worker_sigkill":
                await self.kill_daemon_worker("aggregator", plan)
            elif action == "newrelic_429":
                await asyncio.to_thread(lambda: self.newrelic_fault(429, retry_after=1.0, count=3))
                progress("New Relic 429 (Retry-After 1) for the next 3 requests")
            elif action == "poison":
                rest = self.config.poison - self.config.poison // 2
                await asyncio.to_thread(self.put_poison, rest)
        await sent.wait()
        self.sending = False
        await asyncio.to_thread(self.set_plan)
        progress("sending done; faults off")
        if self.watchers:
            await asyncio.gather(*self.watchers)

    # -- senders -----------------------------------------------------------------------------------
    def new_event(self, i: int) -> dict[str, Any]:
        kind = self.rng.choice(EVENT_KINDS)
        return {
            "repo": f"chaos-r{i % self.config.repos}",
            "event": kind,
            "event_id": str(uuid.uuid4()),
            "metadata": f"chaos #{i}",
        }

    def accept(self, event: dict[str, Any]) -> None:
        self.accepted[event["event_id"]] = (event["repo"], event["event"])

    async def post_retrying(self, session: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
        """POST until a non-retryable answer; 429/5xx and connection errors are retried (same ids)."""
        delay = 0.05
        while True:
            try:
                async with session.post(self.gateway_url + path, json=body) as response:
                    data = await response.json(content_type=None)
                    if response.status not in (408, 429) and response.status < 500:
                        return response.status, data
                    self.counts[f"retry_http_{response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError):
                self.counts["retry_connection"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def send_singles(self, session: aiohttp.ClientSession, queue: asyncio.Queue[Any]) -> None:
        while True:
            event = await queue.get()
            if event is None:
                return
            await self.pace(1)
            status, _ = await self.post_retrying(session, "/process-event", event)
            if status == 202:
                self.accept(event)
            else:
                self.counts[f"single_refused_{status}"] += 1

    async def pace(self, events: int) -> None:
        """At most ``--rate`` events per second over all senders (0: as fast as they go)."""
        if self.config.rate <= 0:
            return
        now = time.monotonic()
        start = max(now, self.paced_until)
        self.paced_until = start + events / self.config.rate
        await asyncio.sleep(start - now)

    async def send_batches(self, session: aiohttp.ClientSession, queue: asyncio.Queue[Any]) -> None:
        while True:
            batch = await queue.get()
            if batch is None:
                return
            await self.pace(len(batch))
            while batch:
                status, data = await self.post_retrying(session, "/events", batch)
                if status not in (202, 207):
                    self.counts[f"batch_refused_{status}"] += len(batch)
                    break
                retry = []
                for item in data["results"]:
                    event = batch[item["index"]]
                    if item["status"] == 202:
                        self.accept(event)
                    elif item["status"] == 503:
                        retry.append(event)
                    else:
                        self.counts[f"batch_item_{item['status']}"] += 1
                if retry:
                    self.counts["batch_items_retried"] += len(retry)
                    await asyncio.sleep(0.2)
                batch = retry

    def run_script(self, event: dict[str, Any]) -> None:
        env = {
            **os.environ,
            "DEVOPS_EVENTS_SECRET_TOKEN": self.token,
            "API_DEVOPS_EVENT_CATCHER": f"{self.gateway_url}/process-event",
            "DEVOPS_EVENT_TIMEOUT": "120",
        }
        result = subprocess.run(
            [sys.executable, str(ROOT / "cicd_script/report_devops_event.py"), event["repo"], event["event"],
             "--metadata", event["metadata"]],
            env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        if result.returncode == 0 and result.stdout.startswith("event_id="):
            event["event_id"] = result.stdout.strip().split("=", 1)[1]
            self.accept(event)
            self.counts["script_accepted"] += 1
        else:
            self.counts[f"script_exit_{result.returncode}"] += 1

    async def send_scripts(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            event = await queue.get()
            if event is None:
                return
            await self.pace(1)
            await asyncio.to_thread(self.run_script, event)

    async def send_all(self) -> None:
        cfg = self.config
        events = [self.new_event(i) for i in range(cfg.events)]
        scripts, rest = events[: cfg.scripts], events[cfg.scripts :]
        cut = int(len(rest) * cfg.batch_share)
        batched, singles = rest[:cut], rest[cut:]
        single_q: asyncio.Queue[Any] = asyncio.Queue()
        batch_q: asyncio.Queue[Any] = asyncio.Queue()
        script_q: asyncio.Queue[Any] = asyncio.Queue()
        # Interleave the three paths over time, so every fault hits every path.
        for event in singles:
            single_q.put_nowait(event)
        for start in range(0, len(batched), cfg.batch_size):
            batch_q.put_nowait(batched[start : start + cfg.batch_size])
        for event in scripts:
            script_q.put_nowait(event)
        self.numbers_sent = {"scripts": len(scripts), "singles": len(singles), "batched": len(batched)}
        headers = {"Authorization": f"Bearer {self.token}"}
        sent = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            self.session = session
            if cfg.driver == "daemon":
                await self.warm_up(session)
            self.send_started = time.monotonic()
            chaos = asyncio.create_task(self.chaos(sent))
            workers = [
                *(self.send_singles(session, single_q) for _ in range(cfg.concurrency)),
                *(self.send_batches(session, batch_q) for _ in range(2)),
                *(self.send_scripts(script_q) for _ in range(SCRIPT_WORKERS)),
            ]
            for queue, n in ((single_q, cfg.concurrency), (batch_q, 2), (script_q, SCRIPT_WORKERS)):
                for _ in range(n):
                    queue.put_nowait(None)
            reporter = asyncio.create_task(self._report_progress(sent))
            await asyncio.gather(*workers)
            self.numbers_sent["send_seconds"] = round(time.monotonic() - self.send_started, 1)
            sent.set()
            await chaos
            await reporter

    async def _report_progress(self, sent: asyncio.Event) -> None:
        while not sent.is_set():
            try:
                await asyncio.wait_for(sent.wait(), 10)
            except TimeoutError:
                progress(f"{len(self.accepted)}/{self.config.events} accepted")

    # -- verification ------------------------------------------------------------------------------
    def timestream_rows(self) -> list[dict[str, str]]:
        from devstack.inspect import timestream_records

        rows = []
        records = timestream_records(
            self.emulator_url, self.settings.devops_db_name, self.settings.devops_table_name
        )
        for record in records:
            row = {d["Name"]: d["Value"] for d in record["Dimensions"]}
            for measure in record.get("MeasureValues", []):
                row[measure["Name"]] = measure["Value"]
            rows.append(row)
        return rows

    def newrelic_ids(self) -> Counter[str]:
        logs = _get_json(f"{self.standin_url}/__standin__/logs?api_key={self.api_key}")["logs"]
        return Counter(str(log.get("event_id") or log.get("attributes", {}).get("event_id")) for log in logs)

    def dead_letters(self) -> list[dict[str, Any]]:
        from devops_core.aws import boto_client

        sqs = boto_client("sqs")
        url = sqs.get_queue_url(QueueName=self.settings.dead_letter_queue_name)["QueueUrl"]
        letters: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return letters
            letters += [json.loads(message["Body"]) for message in messages]

    def wait_settled(self) -> tuple[list[dict[str, str]], Counter[str]]:
        """Until every accepted id is in Timestream and at New Relic, or the settle timeout."""
        deadline = time.monotonic() + self.config.settle_timeout
        wanted = set(self.accepted)
        while True:
            rows = self.timestream_rows()
            stored = {row["event_id"] for row in rows}
            nr = self.newrelic_ids()
            missing_ts, missing_nr = len(wanted - stored), len(wanted - set(nr))
            if (not missing_ts and not missing_nr) or time.monotonic() > deadline:
                return rows, nr
            progress(f"settling: {missing_ts} not yet in Timestream, {missing_nr} not yet at New Relic")
            time.sleep(3)

    def aggregator_counts(self) -> dict[str, int]:
        from devops_core.metrics_read import Scope, build_read_model

        read_model = build_read_model(self.settings)
        days = self.settings.deployment_freq_timeframe_day
        repos = sorted({repo for repo, _ in self.accepted.values()})
        return {
            scope: read_model.metrics(Scope.repo(scope), days).values["calc_deployment_freq"]["count"]
            for scope in ["ALL", *repos]
        }

    def verify(self, report: ChaosReport) -> None:
        accepted = set(self.accepted)
        rows, nr = self.wait_settled()
        ours = [row for row in rows if not row.get("event", "").startswith("calc_")]
        stored = Counter(row["event_id"] for row in ours)
        calc_rows = [row for row in rows if row.get("event") == "calc_deployment_freq"]
        missing_ts = accepted - set(stored)
        unexpected = set(stored) - accepted
        n = report.numbers
        n.update(self.numbers_sent)
        n["accepted"] = len(accepted)
        n["timestream_raw_records"] = len(ours)
        n["timestream_distinct_event_ids"] = len(stored)
        n["timestream_redelivered_duplicates"] = len(ours) - len(stored)
        n["timestream_missing"] = len(missing_ts)
        n["timestream_unexpected_ids"] = len(unexpected)
        n["timestream_calc_deployment_freq_records"] = len(calc_rows)
        n["newrelic_logs"] = sum(nr[i] for i in accepted)
        n["newrelic_distinct"] = len(accepted & set(nr))
        n["newrelic_missing"] = len(accepted - set(nr))
        n["newrelic_repeated"] = sum(nr[i] - 1 for i in accepted if nr[i] > 1)
        report.checks.append(
            Check(
                "timestream exactly once after dedupe",
                not missing_ts and not unexpected,
                f"{len(accepted)} accepted, {len(stored)} distinct stored ({len(ours)} raw), "
                f"{len(missing_ts)} missing, {len(unexpected)} unexpected",
            )
        )
        report.checks.append(
            Check(
                "new relic at least once",
                not (accepted - set(nr)),
                f"{n['newrelic_distinct']}/{len(accepted)} present, {n['newrelic_logs']} logs",
            )
        )

        true_deploys: Counter[str] = Counter()
        for repo, kind in self.accepted.values():
            if kind == "deploy":
                true_deploys[repo] += 1
                true_deploys["ALL"] += 1
        deadline = time.monotonic() + (180 if self.config.driver == "daemon" else 60)
        while True:  # the aggregator may still be on its last batches
            state = self.aggregator_counts()
            if state == dict(true_deploys) or time.monotonic() > deadline:
                break
            time.sleep(2)
        emitted: dict[str, int] = {}
        for row in self.timestream_rows():
            if row.get("event") == "calc_deployment_freq" and row.get("metadata"):
                count = json.loads(row["metadata"]).get("count") or 0
                emitted[row["repo"]] = max(emitted.get(row["repo"], 0), count)
        n["true_deploys"] = dict(sorted(true_deploys.items()))
        n["aggregator_state_deploys"] = dict(sorted(state.items()))
        n["aggregator_emitted_max_count"] = dict(sorted(emitted.items()))
        report.checks.append(
            Check(
                "aggregator counts = true counts",
                state == dict(true_deploys) and emitted == dict(true_deploys),
                f"state {'==' if state == dict(true_deploys) else '!='} sent, latest calc_deployment_freq "
                f"{'==' if emitted == dict(true_deploys) else '!='} sent (ALL: sent {true_deploys['ALL']}, "
                f"state {state.get('ALL')}, emitted {emitted.get('ALL')})",
            )
        )

        letters = self.dead_letters()
        by_app: Counter[str] = Counter()
        sequences: dict[str, set[tuple[str, str]]] = {"consumer": set(), "aggregator": set()}
        sequences.update({str(letter.get("application")): set() for letter in letters})
        foreign = 0
        for letter in letters:
            app = str(letter.get("application"))  # the one dead-letter shape names who parked it
            by_app[app] += 1
            key = (str(letter.get("shard_id")), str(letter.get("sequence_number")))
            sequences[app].add(key)
            if key not in self.poison_sequences:
                foreign += 1
        n["poison_put"] = len(self.poison_sequences)
        n["dlq_messages"] = len(letters)
        n["dlq_by_application"] = dict(by_app)
        n["dlq_not_poison"] = foreign
        report.checks.append(
            Check(
                "dead-letter queue = the poison records",
                foreign == 0 and all(seqs == self.poison_sequences for seqs in sequences.values()),
                f"{len(self.poison_sequences)} poisoned; consumer letters {by_app['consumer']} "
                f"({len(sequences['consumer'])} distinct), aggregator letters {by_app['aggregator']} "
                f"({len(sequences['aggregator'])} distinct), {foreign} for other records",
            )
        )

        if self.config.driver == "daemon":
            self.verify_leases(report)

    def verify_leases(self, report: ChaosReport) -> None:
        """Lease movements: owners at start, before each kill, after the failover and now."""
        n = report.numbers
        n["driver"] = "daemon"
        n["workers"] = {"consumer": len(self.consumers), "aggregator": len(self.aggregators)}
        n.update(self.daemon_numbers)
        n["kills"] = self.kills
        for app in ("consumer", "aggregator"):
            n[f"{app}_leases_at_end"] = self.owners(self.leases(app))
        for app, kill in self.kills.items():
            held, recovered = kill["leases_held"], kill.get("recovered_seconds")
            report.checks.append(
                Check(
                    f"{app} leases moved off the killed worker",
                    held > 0 and recovered is not None,
                    f"{kill['worker']} ({'the' if kill.get('was_leader') else 'not the'} leader) held {held} "
                    f"of {n['shards']} at the kill; owns none since "
                    f"{recovered} s after it ({kill.get('owner_changes')} owner changes, "
                    f"{kill.get('reassigned_to_dead_worker')} back to the dead worker; failoverTimeMillis "
                    f"{self.config.failover_millis}); survivors checkpointed on "
                    f"{len(kill.get('checkpoint_advanced_seconds', {}))}/{held} of its shards",
                )
            )

    def gather_fault_counts(self, report: ChaosReport) -> None:
        report.numbers["proxy_faults"] = {
            k: v for k, v in _get_json(f"{self.proxy_url}/__faults__").items() if not k.startswith("calls:")
        }
        report.numbers["newrelic_standin"] = _get_json(f"{self.standin_url}/__standin__/counts")
        report.numbers["client"] = dict(self.counts)


def run(config: ChaosConfig) -> ChaosReport:
    experiment = Experiment(config)
    report = ChaosReport(log_dir=experiment.log_dir)
    started = time.monotonic()
    try:
        experiment.start_stack()
        asyncio.run(experiment.send_all())
        progress(
            f"{len(experiment.accepted)} accepted ({experiment.numbers_sent['send_seconds']} s of sending); "
            "verifying"
        )
        experiment.verify(report)
        experiment.gather_fault_counts(report)
    finally:
        experiment.stop_stack()
        report.numbers["client"] = dict(experiment.counts)
        report.numbers["total_seconds"] = round(time.monotonic() - started, 1)
    return report


def parse_args(argv: list[str] | None) -> ChaosConfig:
    parser = argparse.ArgumentParser(
        prog="bench/chaos/run.py",
        description="Zero-loss experiment on the real local stack (separate processes) under injected "
        "faults; prints counts and exits 1 if any check fails. --driver daemon runs the consumer and "
        "the aggregator under the real KCL MultiLangDaemon (Java 17), several workers per lease table, "
        "and SIGKILLs one worker of each while events flow.",
    )
    local, daemon = ChaosConfig(), ChaosConfig(**DAEMON_DEFAULTS)  # type: ignore[arg-type]

    def both(name: str) -> str:
        return f"local: {getattr(local, name)}, daemon: {getattr(daemon, name)}"

    parser.add_argument(
        "--driver",
        choices=["local", "daemon"],
        default="local",
        help="how the consumer and the aggregator read the stream (default: %(default)s): "
        "local = the in-process KCL driver, one process each "
        "(python -m consumer|aggregator --driver local); "
        "daemon = the real KCL MultiLangDaemon, --consumer-workers and --aggregator-workers "
        "processes sharing one lease table per application (needs java; 40-90 s to start)",
    )
    parser.add_argument("--events", type=int, help=f"events to send ({both('events')})")
    parser.add_argument(
        "--scripts", type=int, help=f"of them sent by CI-script subprocesses, 4 at a time ({both('scripts')})"
    )
    parser.add_argument(
        "--poison",
        type=int,
        default=local.poison,
        help="poison records put straight on the stream (%(default)s)",
    )
    parser.add_argument(
        "--repos", type=int, default=local.repos, help="repositories the events spread over (%(default)s)"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        help="seconds to wait after sending for every accepted event to be stored "
        f"({both('settle_timeout')})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="at most this many events per second over all senders, so the kills and the lease moves "
        f"happen while events still flow; 0 = as fast as possible ({both('rate')})",
    )
    parser.add_argument("--log-dir", type=Path, help="processes' JSON logs (default: a new temp dir)")
    parser.add_argument(
        "--seed",
        type=int,
        default=local.seed,
        help="random seed of the event mix and the fault proxy (%(default)s)",
    )
    group = parser.add_argument_group("--driver daemon only")
    parser.add_argument("--shards", type=int, help=f"shards of the stream ({both('shards')})")
    group.add_argument(
        "--consumer-workers",
        type=int,
        help=f"python -m consumer daemon processes ({daemon.consumer_workers})",
    )
    group.add_argument(
        "--aggregator-workers",
        type=int,
        help=f"python -m aggregator daemon processes ({daemon.aggregator_workers})",
    )
    group.add_argument(
        "--failover-ms",
        type=int,
        default=local.failover_millis,
        help="KCL failoverTimeMillis: how long a dead worker's lease stays its own (%(default)s)",
    )
    group.add_argument(
        "--no-restart",
        action="store_true",
        help="leave a killed worker dead (default: restart it once its leases have moved, same worker id)",
    )
    group.add_argument(
        "--no-kill-aggregator",
        action="store_true",
        help="SIGKILL only a consumer worker, no aggregator worker",
    )
    group.add_argument(
        "--ready-timeout",
        type=float,
        default=local.daemon_ready_timeout,
        help="seconds to wait for the daemons to hold (and split) every lease before sending (%(default)s)",
    )
    group.add_argument(
        "--failover-timeout",
        type=float,
        default=local.failover_timeout,
        help="seconds after a kill to wait for the killed worker's leases to move (%(default)s)",
    )
    args = parser.parse_args(argv)
    defaults = daemon if args.driver == "daemon" else local

    def pick(value: Any, name: str) -> Any:
        return getattr(defaults, name) if value is None else value

    return ChaosConfig(
        events=pick(args.events, "events"),
        scripts=pick(args.scripts, "scripts"),
        poison=args.poison,
        repos=args.repos,
        settle_timeout=pick(args.settle_timeout, "settle_timeout"),
        rate=pick(args.rate, "rate"),
        log_dir=args.log_dir,
        seed=args.seed,
        driver=args.driver,
        shards=pick(args.shards, "shards"),
        consumer_workers=pick(args.consumer_workers, "consumer_workers") if args.driver == "daemon" else 1,
        aggregator_workers=pick(args.aggregator_workers, "aggregator_workers")
        if args.driver == "daemon"
        else 1,
        failover_millis=args.failover_ms,
        restart_killed=not args.no_restart,
        kill_aggregator=not args.no_kill_aggregator,
        daemon_ready_timeout=args.ready_timeout,
        failover_timeout=args.failover_timeout,
    )


def print_report(report: ChaosReport) -> None:
    print(json.dumps(report.numbers, indent=2, sort_keys=True))
    for check in report.checks:
        print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    n = report.numbers
    daemon = ""
    if n.get("driver") == "daemon":
        kills = "; ".join(
            f"{app} {kill['worker']} killed {kill['at_seconds']} s into sending holding "
            f"{kill['leases_held']} leases{' as the leader' if kill.get('was_leader') else ''}, "
            f"all on survivors {kill.get('recovered_seconds')} s later"
            for app, kill in n.get("kills", {}).items()
        )
        workers = n.get("workers", {})
        daemon = (
            f"KCL daemon, {n.get('shards')} shards, {workers.get('consumer')} consumer + "
            f"{workers.get('aggregator')} aggregator workers ({kills}), "
        )
    print(
        f"SUMMARY chaos: {daemon}{n.get('accepted')} accepted, "
        f"Timestream {n.get('timestream_distinct_event_ids')} "
        f"distinct / {n.get('timestream_raw_records')} raw, New Relic {n.get('newrelic_distinct')} "
        f"distinct / {n.get('newrelic_logs')} logs, DLQ {n.get('dlq_messages')} for "
        f"{n.get('poison_put')} poison, {n.get('total_seconds')} s: {'PASS' if report.ok else 'FAIL'}"
    )


def main(argv: list[str] | None = None) -> int:
    report = run(parse_args(argv))
    print_report(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
