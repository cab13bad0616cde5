"""Consumer benchmark: drain a backlog into Timestream + New Relic, beside a bare boto3 baseline.

1. Starts its own AWS emulator and New Relic stand-in (subprocesses) and fills a stream with
   ``--records`` events (PutRecords, 500 per call).
2. Baseline: a bare boto3 loop that only reads every shard (GetRecords) and writes Timestream
   batches of 100 (WriteRecords), one call at a time, to the same emulator.
3. Consumer: the real record processor on the in-process KCL driver drains the same backlog into
   Timestream and the stand-in (both sinks, checkpoints in the lease table). 2 and 3 alternate
   ``--rounds`` times on the same backlog (same machine load for both); medians are compared.
4. Latency: a fresh stream; events posted one by one to the real gateway; for each, the time from
   the gateway's 202 to the Timestream WriteRecords that stored it returning (p50/p99).

Prints progress lines and one summary line; ``--help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from consumer.local import LocalConsumer  # noqa: E402
from consumer.sinks.base import Sink, WriteResult  # noqa: E402
from devops_core.aws import boto_client, client_config  # noqa: E402
from devops_core.events import DevOpsEvent  # noqa: E402
from devops_core.settings import Settings  # noqa: E402
from devstack.emulator import free_port  # noqa: E402
from devstack.inspect import timestream_records  # noqa: E402
from devstack.resources import provision  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_child(module: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{module} did not start")
    return process, json.loads(line)["url"]


def settings_for(tag: str, standin_url: str) -> Settings:
    suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
    return Settings.model_validate(
        {
            "devops_stream_name": f"bench-{suffix}",
            "devops_table_name": f"bench-{suffix}",
            "secret_store_name": f"bench-{suffix}",
            "dead_letter_queue_name": f"bench-{suffix}",
            "aggregator_state_table": f"bench-{suffix}",
            "consumer_application_name": f"bench-consumer-{suffix}",
            "logger_api_key": f"bench-key-{suffix}",
            "new_relic_log_endpoint": f"{standin_url}/log/v1",
            "devops_events_secret_token": "bench-token-0123456789",
            "batch_linger_ms": 2.0,
            "log_level": "WARNING",
        }
    )


def fill_stream(settings: Settings, count: int) -> None:
    kinesis = boto_client("kinesis")
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    sent = 0
    while sent < count:
        entries = []
        for i in range(min(500, count - sent)):
            event = DevOpsEvent(
                event_id=str(uuid.uuid4()),
                time=now,
                repo=f"repo-{(sent + i) % 50}",
                event="deploy" if (sent + i) % 4 == 0 else "push",  # type: ignore[arg-type]
                metadata='{"pipeline":"bench","build":' + str(sent + i) + "}",
                source="bench",
                received_at=now,
            )
            entries.append({"Data": event.to_record_data(), "PartitionKey": event.repo})
        response = kinesis.put_records(StreamName=settings.devops_stream_name, Records=entries)
        if response["FailedRecordCount"]:
            raise RuntimeError("PutRecords partly failed while filling the backlog")
        sent += len(entries)
        if sent % 10_000 == 0:
            log(f"  backlog: {sent}/{count} records")


def _timestream_record(data: dict[str, Any]) -> dict[str, Any]:
    """The consumer's record shape, built straight from the JSON (no model validation)."""
    measures = [{"Name": "count", "Value": "1", "Type": "BIGINT"}]
    if data.get("metadata"):
        measures.append({"Name": "metadata", "Value": data["metadata"], "Type": "VARCHAR"})
    return {
        "Dimensions": [
            {"Name": "repo", "Value": data["repo"]},
            {"Name": "event", "Value": data["event"]},
            {"Name": "source", "Value": data["source"]},
            {"Name": "event_id", "Value": data["event_id"]},
        ],
        "MeasureName": "devops_event",
        "MeasureValueType": "MULTI",
        "MeasureValues": measures,
        "Time": str(int(time.time() * 1000)),
        "TimeUnit": "MILLISECONDS",
        "Version": 1,
    }


def baseline(settings: Settings, count: int) -> float:
    """Read every shard, write Timestream in batches of 100, one call at a time."""
    kinesis = boto_client("kinesis")
    # Same client settings and the same record shape as the consumer's Timestream sink, so the ratio
    # measures what the consumer adds (validation, New Relic, dead letters, checkpoints), not a format.
    timestream = boto_client(
        "timestream-write", config=client_config(max_attempts=3, parameter_validation=False)
    )
    started = time.perf_counter()
    written = 0
    for shard in kinesis.list_shards(StreamName=settings.devops_stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=settings.devops_stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records = response["Records"]
            for start in range(0, len(records), 100):
                batch = [_timestream_record(json.loads(r["Data"])) for r in records[start : start + 100]]
                timestream.write_records(
                    DatabaseName=settings.devops_db_name, TableName=settings.devops_table_name, Records=batch
                )
                written += len(batch)
            if not records or response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    elapsed = time.perf_counter() - started
    if written != count:
        raise RuntimeError(f"baseline wrote {written}, expected {count}")
    return count / elapsed


class CountingSink:
    """Wraps a sink; counts what it took and when (for progress and latency)."""

    def __init__(self, inner: Sink, taken_at: dict[str, float] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.taken = 0
        self.taken_at = taken_at
        self._lock = threading.Lock()

    async def write(self, events: Sequence[DevOpsEvent]) -> WriteResult:
        result = await self.inner.write(events)
        now = time.perf_counter()
        not_taken = {id(e) for e in result.pending} | {id(r.event) for r in result.rejected}
        with self._lock:
            for event in events:
                if id(event) not in not_taken:
                    self.taken += 1
                    if self.taken_at is not None:
                        self.taken_at.setdefault(event.event_id, now)
        return result


def run_consumer(settings: Settings, count: int, timeout: float) -> tuple[float, dict[str, int]]:
    sinks: dict[str, CountingSink] = {}

    def wrap(sink: Sink) -> Sink:
        sinks[sink.name] = CountingSink(sink)
        return sinks[sink.name]

    consumer = LocalConsumer(settings, poll_interval=0.2, wrap_sink=wrap)
    consumer.start()  # set-up (lease table, shard sync) is not part of the drain, as for the baseline
    started = time.perf_counter()
    deadline = started + timeout
    last_report = started
    try:
        while min(s.taken for s in sinks.values()) < count:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"consumer did not drain the backlog in {timeout:.0f}s: {_taken(sinks)}")
            time.sleep(0.02)
            if time.perf_counter() - last_report > 5:
                last_report = time.perf_counter()
                log(f"  consumer: {_taken(sinks)}")
        elapsed = time.perf_counter() - started
    finally:
        consumer.stop()
    return count / elapsed, _taken(sinks)


def _taken(sinks: dict[str, CountingSink]) -> dict[str, int]:
    return {name: sink.taken for name, sink in sinks.items()}


async def measure_latency(settings: Settings, events: int) -> list[float]:
    import aiohttp
    from aiohttp import web

    from producer.app import create_app

    taken_at: dict[str, float] = {}

    def wrap(sink: Sink) -> Sink:
        return CountingSink(sink, taken_at) if sink.name == "timestream" else sink

    consumer = LocalConsumer(settings, poll_interval=0.2, wrap_sink=wrap)
    await asyncio.to_thread(consumer.start)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    accepted: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {settings.devops_events_secret_token.get_secret_value()}"}  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            for i in range(events):
                body = {"repo": f"lat-{i % 5}", "event": "deploy", "metadata": {"i": i}}
                async with session.post(f"http://127.0.0.1:{port}/process-event", json=body) as response:
                    answer = await response.json()
                    if response.status != 202:
                        raise RuntimeError(f"gateway answered {response.status}: {answer}")
                    accepted[answer["event_id"]] = time.perf_counter()
                await asyncio.sleep(0.02)  # ~50 events/s, a busy CI fleet
        deadline = time.perf_counter() + 30
        while len(set(accepted) & set(taken_at)) < len(accepted) and time.perf_counter() < deadline:  # noqa: ASYNC110 - filled by the consumer thread
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
        await asyncio.to_thread(consumer.stop)
    missing = set(accepted) - set(taken_at)
    if missing:
        raise RuntimeError(f"{len(missing)} events never reached Timestream")
    return [max(taken_at[event_id] - at, 0.0) for event_id, at in accepted.items()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/consumer/run.py",
        description="Drain a Kinesis backlog into Timestream + New Relic (stand-in) with the consumer and "
        "compare with a bare boto3 read-and-write loop; then measure gateway-to-Timestream latency.",
    )
    parser.add_argument("--records", type=int, default=50_000, help="backlog size (default: %(default)s)")
    parser.add_argument("--shards", type=int, default=2, help="stream shards (default: %(default)s)")
    parser.add_argument(
        "--latency-events", type=int, default=300, help="events for p50/p99 (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating baseline/consumer rounds (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="drain timeout, seconds (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    emulator, emulator_url = start_child("devstack.emulator")
    standin, standin_url = start_child("devstack.newrelic_standin")
    os.environ["AWS_ENDPOINT_URL"] = emulator_url
    log(f"emulator {emulator_url}, New Relic stand-in {standin_url}")
    try:
        # Latency first, while the emulator's state is small.
        latency_settings = settings_for("latency", standin_url)
        provision(latency_settings, shard_count=args.shards)
        log(f"latency: posting {args.latency_events} events to the gateway, one at a time")
        latencies = asyncio.run(measure_latency(latency_settings, args.latency_events))
        p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
        log(f"latency gateway 202 -> Timestream: p50 {p50:.0f} ms, p99 {p99:.0f} ms")

        base = settings_for("baseline", standin_url)
        provision(base, shard_count=args.shards)
        log(f"filling {base.devops_stream_name} with {args.records} records ({args.shards} shards)")
        fill_stream(base, args.records)

        # Rounds alternate baseline and consumer on the same backlog, so both see the same machine load
        # (this is a shared 2-core box); medians are compared.
        timestream = boto_client("timestream-write")
        baseline_rates: list[float] = []
        consumer_rates: list[float] = []
        last = base
        for round_no in range(1, args.rounds + 1):
            round_base = base.model_copy(
                update={"devops_table_name": f"{base.devops_table_name}-b{round_no}"}
            )
            provision(round_base, shard_count=args.shards)
            baseline_rates.append(baseline(round_base, args.records))
            timestream.delete_table(DatabaseName=base.devops_db_name, TableName=round_base.devops_table_name)
            log(f"round {round_no}: baseline (GetRecords + WriteRecords) {baseline_rates[-1]:,.0f} rec/s")

            if last is not base:  # keep only the last consumer table for the final check
                timestream.delete_table(DatabaseName=base.devops_db_name, TableName=last.devops_table_name)
            last = base.model_copy(
                update={
                    "devops_table_name": f"{base.devops_table_name}-c{round_no}",
                    "consumer_application_name": f"{base.consumer_application_name}-r{round_no}",
                }
            )
            provision(last, shard_count=args.shards)
            rate, taken = run_consumer(last, args.records, args.timeout)
            consumer_rates.append(rate)
            log(f"round {round_no}: consumer (Timestream + New Relic) {rate:,.0f} rec/s {taken}")

        stored = timestream_records(emulator_url, last.devops_db_name, last.devops_table_name)
        ids = {next(d["Value"] for d in r["Dimensions"] if d["Name"] == "event_id") for r in stored}
        import urllib.request

        with urllib.request.urlopen(f"{standin_url}/__standin__/counts", timeout=30) as response:
            nr_logs = json.load(response).get("accepted_logs", 0) - args.latency_events
        log(
            f"check: last round {len(ids)} distinct events in Timestream; "
            f"{nr_logs} logs at the New Relic stand-in over {args.rounds} rounds"
        )
        baseline_rate = statistics.median(baseline_rates)
        consumer_rate = statistics.median(consumer_rates)
        ratio = consumer_rate / baseline_rate
        print(
            f"SUMMARY consumer {consumer_rate:,.0f} rec/s vs baseline {baseline_rate:,.0f} rec/s "
            f"= {ratio:.0%} (medians of {args.rounds} rounds; target >= 80%); "
            f"per round consumer {[round(r) for r in consumer_rates]} "
            f"baseline {[round(r) for r in baseline_rates]}; "
            f"records {args.records}, shards {args.shards}; "
            f"latency gateway->Timestream p50 {p50:.0f} ms p99 {p99:.0f} ms (n={len(latencies)})",
            flush=True,
        )
        ok = len(ids) == args.records and nr_logs == args.records * args.rounds
        return 0 if ok else 1
    finally:
        for child in (standin, emulator):
            child.terminate()
            child.wait(10)


if __name__ == "__main__":
    sys.exit(main())
