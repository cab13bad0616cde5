"""The aggregator under the real KCL MultiLangDaemon (Java) via its production entry point
``python -m aggregator``: three deploys in the stream become calc_deployment_freq 3 / 0.1 per day,
and SIGTERM stops the daemon cleanly. One daemon run (30-60 s: the KCL waits a random 1-30 s
before it syncs shards into a new lease table)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devops_core.aws import boto_client
from devops_core.events import DevOpsEvent, EventType
from devstack.inspect import read_stream_events
from tests.support import ROOT, Stack

pytestmark = [pytest.mark.kcl_daemon, pytest.mark.timeout(300)]


def test_daemon_aggregates_three_deploys(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    now = datetime.now(UTC)
    kinesis = boto_client("kinesis")
    for _ in range(3):
        event = DevOpsEvent(
            event_id=str(uuid.uuid4()), time=now, repo="demo", event=EventType.DEPLOY, received_at=now
        )
        kinesis.put_record(
            StreamName=settings.devops_stream_name, Data=event.to_record_data(), PartitionKey="demo"
        )
    env = {
        **os.environ,
        "DEVOPS_STREAM_NAME": settings.devops_stream_name,
        "AGGREGATOR_STATE_TABLE": settings.aggregator_state_table,
        "AGGREGATOR_APPLICATION_NAME": settings.aggregator_application_name,
        "DEAD_LETTER_QUEUE_NAME": settings.dead_letter_queue_name,
        "KCL_SHARD_SYNC_INTERVAL_MILLIS": "1000",
        "KCL_FAILOVER_TIME_MILLIS": "5000",
        "KCL_IDLE_TIME_BETWEEN_READS_MILLIS": "200",
    }
    log = tmp_path / "daemon.log"
    with log.open("wb") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--worker-id", f"{settings.aggregator_application_name}-w"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 150
        found: DevOpsEvent | None = None
        while found is None and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(1)
            found = next(
                (
                    e
                    for e in read_stream_events(settings.devops_stream_name)
                    if e.repo == "demo"
                    and e.event == EventType.CALC_DEPLOYMENT_FREQ
                    and json.loads(e.metadata)["count"] == 3
                ),
                None,
            )
        assert found is not None, log.read_text()[-3000:]
        values = json.loads(found.metadata)
        assert (values["per_day"], found.source) == (0.1, "aggregator")
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
    assert code == 0, log.read_text()[-3000:]
