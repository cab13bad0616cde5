"""Benchmark: events per second the aggregator takes from a backlog of mixed events, against the
emulator's DynamoDB, beside a baseline measured in the same run: one conditional PutItem per event
(the naive exactly-once aggregator's minimum cost, before it has even updated a counter).

Starts its own emulator (moto behind hypercorn) on a free port; needs nothing else.
    .venv/bin/python bench/aggregator/run.py            # --events 4000 --batch 500 --repos 10 --days 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aggregator.application import AggregatorApplication  # noqa: E402
from devops_core.events import DevOpsEvent, EventType  # noqa: E402
from devops_core.kcl.processor import InRecord, StreamProcessor  # noqa: E402
from devstack.emulator import free_port  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=4000, help="backlog size (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=500, help="records per KCL batch (default: %(default)s)")
    parser.add_argument(
        "--repos", type=int, default=10, help="repositories in the mix (default: %(default)s)"
    )
    parser.add_argument(
        "--days", type=int, default=3, help="the backlog spans this many days (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    return parser.parse_args(argv)


def backlog(count: int, repos: int, days: int, seed: int) -> list[DevOpsEvent]:
    """Pushes with their commits, deploys of pushed heads (some failing), restores, incidents opened
    and resolved (half naming their cause), test passes; in time order but 10 % arriving late."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    step = (now - start) / count
    heads: dict[str, list[str]] = {}
    open_incidents: dict[str, list[str]] = {}
    events = []

    def sha() -> str:
        return uuid.UUID(int=rng.getrandbits(128)).hex[:12]

    for i in range(count):
        repo = f"repo-{rng.randrange(repos)}"
        moment = start + step * i
        roll = rng.random()
        fields: dict[str, object] = {}
        if roll < 0.40:
            kind = EventType.PUSH
            commits = [sha() for _ in range(rng.randint(1, 5))]
            fields["sha"] = commits[-1]
            fields["commits"] = [
                {"sha": c, "time": moment - timedelta(minutes=rng.randint(1, 600))} for c in commits
            ]
            heads.setdefault(repo, []).append(commits[-1])
        elif roll < 0.70:
            kind = EventType.DEPLOY
            fields["sha"] = rng.choice(heads[repo][-3:]) if heads.get(repo) else sha()
            fields["outcome"] = "failure" if rng.random() < 0.15 else "success"
        elif roll < 0.80:
            kind = EventType.TEST_PASS
        elif roll < 0.88:
            kind = EventType.SERVICE_RESTORED
        elif roll < 0.94 or not open_incidents.get(repo):
            kind = EventType.INCIDENT_OPENED
            fields["incident_id"] = f"inc-{i}"
            if heads.get(repo) and rng.random() < 0.5:
                fields["sha"] = rng.choice(heads[repo][-3:])
            open_incidents.setdefault(repo, []).append(f"inc-{i}")
        else:
            kind = EventType.INCIDENT_RESOLVED
            fields["incident_id"] = open_incidents[repo].pop(0)
        events.append(
            DevOpsEvent.model_validate(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "time": moment,
                    "repo": repo,
                    "event": kind,
                    "source": "bench",
                    "received_at": now,
                    **fields,
                }
            )
        )
    for _ in range(count // 10):  # late arrivals
        a, b = rng.randrange(count), rng.randrange(count)
        events[a], events[b] = events[b], events[a]
    return events


def kcl_records(events: list[DevOpsEvent]) -> list[InRecord]:
    return [
        InRecord(data=e.to_record_data(), sequence_number=str(i), partition_key=e.repo)
        for i, e in enumerate(events)
    ]


def run_baseline(records: list[InRecord], table: str, batch: int) -> float:
    from devops_core.aws import boto_client

    db = boto_client("dynamodb")
    started = time.perf_counter()
    for n, record in enumerate(records, 1):
        event = DevOpsEvent.from_record_data(record.data)
        db.put_item(
            TableName=table,
            Item={"pk": {"S": f"e#{event.event_id}"}, "sk": {"S": "-"}, "repo": {"S": event.repo}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        if n % batch == 0:
            rate = n / (time.perf_counter() - started)
            print(f"  baseline   {n:>6}/{len(records)}  {rate:8.0f} events/s", flush=True)
    return len(records) / (time.perf_counter() - started)


def run_aggregator(records: list[InRecord], settings: object, batch: int) -> tuple[float, StreamProcessor]:
    from aggregator.app import build_processor

    processor = build_processor(settings)  # type: ignore[arg-type]
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        assert processor.handle(records[start : start + batch])
        n = min(start + batch, len(records))
        rate = n / (time.perf_counter() - started)
        print(f"  aggregator {n:>6}/{len(records)}  {rate:8.0f} events/s", flush=True)
    return len(records) / (time.perf_counter() - started), processor


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "devstack.emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert emulator.stdout is not None
        url = json.loads(emulator.stdout.readline())["url"]
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        from devops_core.aws import boto_client
        from devops_core.settings import Settings
        from devstack.resources import provision

        suffix = uuid.uuid4().hex[:8]
        settings = Settings(
            devops_stream_name=f"bench-{suffix}",
            aggregator_state_table=f"bench-state-{suffix}",
            dead_letter_queue_name=f"bench-dlq-{suffix}",
            secret_store_name=f"bench-secret-{suffix}",
            log_level="WARNING",
        )
        provision(settings, shard_count=1)
        baseline_table = f"bench-baseline-{suffix}"
        boto_client("dynamodb").create_table(
            TableName=baseline_table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        events = backlog(args.events, args.repos, args.days, args.seed)
        records = kcl_records(events)
        print(
            f"backlog: {len(events)} mixed events, {args.repos} repos over {args.days} days, "
            f"batches of {args.batch}; emulator {url}",
            flush=True,
        )
        baseline = run_baseline(records, baseline_table, args.batch)
        aggregated, processor = run_aggregator(records, settings, args.batch)
        replay_started = time.perf_counter()
        for start in range(0, len(records), args.batch):  # redelivery of the whole backlog
            assert processor.handle(records[start : start + args.batch])
        replay = len(records) / (time.perf_counter() - replay_started)

        from devops_core.dora import Window, metrics
        from devops_core.metrics_read import Scope

        application = processor.application
        assert isinstance(application, AggregatorApplication)
        days = settings.deployment_freq_timeframe_day
        stored = application.aggregator.read_model.metrics(Scope.all(), days).values
        truth = metrics(events, Window.ending_at(datetime.now(UTC), days), settings.dora_config)
        exact = all(stored[name] == truth[name] for name in truth if name != "calc_recovery_time") and {
            k: v for k, v in stored["calc_recovery_time"].items() if k != "open_failures"
        } == {k: v for k, v in truth["calc_recovery_time"].items() if k != "open_failures"}
        ratio = aggregated / baseline
        print(f"baseline (1 conditional PutItem per event): {baseline:8.0f} events/s")
        print(f"aggregator (event log + day facts + emits): {aggregated:8.0f} events/s")
        print(f"aggregator, replaying the same backlog:     {replay:8.0f} events/s")
        freq, lead = stored["calc_deployment_freq"], stored["calc_lead_time"]
        print(
            f"ALL after the replay: {freq['count']} deploys, {lead['samples']} lead-time samples; the same "
            f"as metrics() over the backlog: {'yes' if exact else 'NO'}"
        )
        verdict = "PASS" if ratio >= 1.0 and exact else "FAIL"
        print(
            f"SUMMARY aggregator {aggregated:.0f} ev/s vs baseline {baseline:.0f} ev/s: "
            f"ratio {ratio:.2f} (target >= 1.0), exactly once {'ok' if exact else 'BROKEN'}: "
            f"{verdict}",
            flush=True,
        )
        return 0 if verdict == "PASS" else 1
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    sys.exit(main())
