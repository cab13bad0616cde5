"""The embedded emulator's CPU per Kinesis call: moto as it ships against the emulator's own answers.

Every test, ``make run`` and every benchmark into the emulator (the seed's Flask baseline too) pays
moto's cost per call. devstack/emulator.py replaces two of moto's costs (its generic serializer for
PutRecords and GetRecords answers, and a directory listing per request); this measures both versions
in the same run, on moto's WSGI app in this process (the stack hypercorn serves, without the socket
and thread hops, which are the same for both), alternating rounds and comparing medians:

  PutRecords of 1, 64 and 500 gateway-shaped records; GetRecords of 500 records.

Prints CPU per call for each, the ratio, and a summary line; exits 1 if the emulator's own version is
slower than moto's anywhere.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import AWS_ENV, gateway_records, progress

REQUEST_HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/kinesis/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=200,
        help="calls per round for 1-record PutRecords; larger calls get fewer (the count divided by "
        "records/8, at least 10) (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    return parser.parse_args()


class MotoApp:
    """The emulator's WSGI stack, called directly with one Kinesis request at a time."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from devstack.emulator import _patch_moto, _SerializedWrites

        _patch_moto()
        self._app = _SerializedWrites(DomainDispatcherApplication(create_backend_app))

    def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        from werkzeug.test import EnvironBuilder

        environ = EnvironBuilder(
            method="POST",
            path="/",
            base_url="http://127.0.0.1:4566",
            data=json.dumps(body),
            headers={**REQUEST_HEADERS, "X-Amz-Target": f"Kinesis_20131202.{action}"},
        ).get_environ()
        statuses: list[str] = []
        answer = b"".join(self._app(environ, lambda status, headers, *_: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{action}: {statuses[0]} {answer[:200]!r}")
        return json.loads(answer) if answer else {}


@contextmanager
def moto_as_shipped() -> Iterator[None]:
    """moto's own functions back in place of the emulator's, for the duration."""
    from devstack.emulator import MOTO_ORIGINALS

    ours = {key: getattr(*key) for key in MOTO_ORIGINALS}
    for (owner, name), original in MOTO_ORIGINALS.items():
        setattr(owner, name, original)
    try:
        yield
    finally:
        for (owner, name), replacement in ours.items():
            setattr(owner, name, replacement)


def base64_records(count: int) -> list[dict[str, str]]:
    """PutRecords entries as they travel in JSON (``Data`` in base64)."""
    return [
        {"Data": base64.b64encode(r.data).decode(), "PartitionKey": r.repo} for r in gateway_records(count)
    ]


def cpu_per_call(work: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        work()
    return (time.process_time() - started) / calls


def main() -> int:
    args = parse_args()
    os.environ.update(AWS_ENV)
    app = MotoApp()
    app.call("CreateStream", {"StreamName": "bench", "ShardCount": 4})
    app.call("CreateStream", {"StreamName": "read", "ShardCount": 1})
    app.call("PutRecords", {"StreamName": "read", "Records": base64_records(500)})
    shard = app.call("ListShards", {"StreamName": "read"})["Shards"][0]["ShardId"]

    def get_500() -> object:
        iterator = app.call(
            "GetShardIterator", {"StreamName": "read", "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}
        )["ShardIterator"]
        return app.call("GetRecords", {"ShardIterator": iterator, "Limit": 500})

    cases: list[tuple[str, Callable[[], object], int]] = []
    for size in (1, 64, 500):
        body = {"StreamName": "bench", "Records": base64_records(size)}
        cases.append((f"PutRecords x{size}", lambda body=body: app.call("PutRecords", body), size))
    cases.append(("GetShardIterator + GetRecords x500", get_500, 500))

    results: list[tuple[str, float, float]] = []
    for name, work, size in cases:
        calls = max(10, args.calls // max(1, size // 8))
        cpu_per_call(work, 5)  # warm-up
        with moto_as_shipped():
            cpu_per_call(work, 5)
        theirs: list[float] = []
        ours: list[float] = []
        for number in range(1, args.rounds + 1):
            progress(f"{name}: round {number}/{args.rounds}, {calls} calls each")
            with moto_as_shipped():
                theirs.append(cpu_per_call(work, calls))
            ours.append(cpu_per_call(work, calls))
        results.append((name, statistics.median(theirs), statistics.median(ours)))

    heading = f"CPU per call, median of {args.rounds} rounds"
    print(f"{heading:44} {'moto':>10} {'emulator':>10} {'ratio':>7}")
    for name, theirs_s, ours_s in results:
        print(f"{name:44} {theirs_s * 1e3:8.2f}ms {ours_s * 1e3:8.2f}ms {theirs_s / ours_s:6.2f}x")
    passed = all(ours_s <= theirs_s for _, theirs_s, ours_s in results)
    print(
        "summary: "
        + "; ".join(f"{name} {theirs_s / ours_s:.2f}x" for name, theirs_s, ours_s in results)
        + f" less CPU than moto as shipped; {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
