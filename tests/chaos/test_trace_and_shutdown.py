"""Operations: one event traced by its event_id through the JSON logs of the gateway and the
consumer's two sinks (and the aggregator); SIGTERM makes every process drain, checkpoint and exit 0."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.chaos.run import Proc
from bench.common import wait_http
from devops_core.kcl.leases import LeaseTable
from tests.support import Stack, announced_gateway_port

pytestmark = pytest.mark.timeout(90)


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a non-JSON line (e.g. a library printing) is not ours to check
    return out


def _mentions(path: Path, event_id: str, message_prefix: str) -> list[dict[str, Any]]:
    return [
        line
        for line in _lines(path)
        if str(line.get("msg", "")).startswith(message_prefix)
        and (line.get("event_id") == event_id or event_id in line.get("event_ids", []))
    ]


def _post(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return dict(json.load(response))


def test_event_id_is_traceable_and_sigterm_checkpoints(
    stack: Stack, emulator: str, newrelic_standin: str, tmp_path: Path
) -> None:
    s = stack.settings
    env = {
        "AWS_ENDPOINT_URL": emulator,
        "DEVOPS_STREAM_NAME": s.devops_stream_name,
        "DEVOPS_TABLE_NAME": s.devops_table_name,
        "SECRET_STORE_NAME": s.secret_store_name,
        "DEAD_LETTER_QUEUE_NAME": s.dead_letter_queue_name,
        "AGGREGATOR_STATE_TABLE": s.aggregator_state_table,
        "CONSUMER_APPLICATION_NAME": s.consumer_application_name,
        "AGGREGATOR_APPLICATION_NAME": s.aggregator_application_name,
        "LOGGER_API_KEY": "trace-" + uuid.uuid4().hex[:8],
        "NEW_RELIC_LOG_ENDPOINT": f"{newrelic_standin}/log/v1",
        "LOG_LEVEL": "INFO",
    }
    gateway = Proc("gateway", ["-m", "producer", "--port", "0"], env, tmp_path)  # logs the port it bound
    consumer = Proc("consumer", ["-m", "consumer", "--driver", "local"], env, tmp_path)
    aggregator = Proc("aggregator", ["-m", "aggregator", "--driver", "local"], env, tmp_path)
    procs = [gateway, consumer, aggregator]
    try:
        for proc in procs:
            proc.start()
        port = announced_gateway_port(
            gateway.log, lambda: gateway.process is not None and gateway.process.poll() is None
        )
        wait_http(f"http://127.0.0.1:{port}/healthz")
        event_id = str(uuid.uuid4())
        accepted = _post(
            f"http://127.0.0.1:{port}/process-event",
            stack.token,
            {"repo": "trace-repo", "event": "deploy", "event_id": event_id, "metadata": "v1"},
        )
        logs = {proc.name: tmp_path / f"{proc.name}.1.log" for proc in procs}
        wanted = {
            "timestream": (logs["consumer"], "events written to timestream"),
            "newrelic": (logs["consumer"], "events written to newrelic"),
            "aggregator": (logs["aggregator"], "events received"),
        }
        deadline = time.monotonic() + 30
        found: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline and len(found) < len(wanted):
            for name, (path, prefix) in wanted.items():
                if name not in found and (hits := _mentions(path, event_id, prefix)):
                    found[name] = hits
            time.sleep(0.2)
        assert set(found) == set(wanted), f"event_id {event_id} not logged by {set(wanted) - set(found)}"
        [gateway_line] = _mentions(logs["gateway"], event_id, "events accepted")
        position = gateway_line["event_ids"].index(event_id)
        assert gateway_line["sequence_numbers"][position] == accepted["sequence_number"]
        assert gateway_line["shard_ids"][position] == accepted["shard_id"]
        assert all(line["level"] == "info" for hits in found.values() for line in hits)

        # SIGTERM: each process drains, checkpoints and exits 0.
        for proc in procs:
            assert proc.signal(signal.SIGTERM, timeout=40) == 0, f"{proc.name} did not stop cleanly"
        consumer_lines = _lines(logs["consumer"])
        shutdowns = {line["shard_id"] for line in consumer_lines if line.get("msg") == "shutdown requested"}
        assert len(shutdowns) == 2  # both shards were asked to checkpoint
        shard = accepted["shard_id"]
        for application in (s.consumer_application_name, s.aggregator_application_name):
            lease = LeaseTable(application, "inspector").get(shard)
            assert lease is not None, application
            # covers the event (the aggregator's metric events may follow it on the shard)
            assert int(lease.checkpoint) >= int(accepted["sequence_number"]), application
            assert not lease.owner, f"{application}: lease not released on SIGTERM"
        assert any(line.get("msg") == "gateway stopped" for line in _lines(logs["gateway"]))
    finally:
        for proc in procs:
            proc.stop()
