"""Baseline (b) of bench/gateway: the seed service's shape, a synchronous Flask app under gunicorn
that authenticates, builds the record and calls Kinesis PutRecord once per request, answering only
after Kinesis accepted it (the same durability promise as the gateway's 202).

    DEVOPS_STREAM_NAME=... DEVOPS_EVENTS_SECRET_TOKEN=... \\
        gunicorn --workers 5 --bind 127.0.0.1:8002 bench.gateway.seed_flask_app:app
"""

from __future__ import annotations

import hmac
import json
import os
import uuid
from datetime import UTC, datetime

from flask import Flask, request

from devops_core.aws import boto_client

app = Flask(__name__)
STREAM = os.environ["DEVOPS_STREAM_NAME"]
TOKEN = os.environ["DEVOPS_EVENTS_SECRET_TOKEN"].encode()
# gunicorn (without --preload) imports this module in each worker after the fork: one client each.
kinesis = boto_client("kinesis")


@app.post("/process-event")
def process_event() -> tuple[dict[str, str], int]:
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(given, TOKEN):
        return {"error": "unauthorized"}, 401
    body = request.get_json(force=True)
    record = {
        "event_id": str(uuid.uuid4()),
        "time": datetime.now(UTC).isoformat(),
        "repo": body["repo"],
        "event": body["event"],
        "metadata": body.get("metadata"),
    }
    kinesis.put_record(StreamName=STREAM, Data=json.dumps(record).encode(), PartitionKey=record["repo"])
    return {"event_id": record["event_id"]}, 202


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
