"""The embedded AWS emulator: moto's server app served by hypercorn.

moto's own server (werkzeug) speaks HTTP/1.1 only, but the KCL's Kinesis client speaks HTTP/2 only;
hypercorn serves HTTP/1.1 and cleartext HTTP/2 (h2c) on one port, so boto3 and the real
MultiLangDaemon can share one emulator. Run embedded (``Emulator().start()``, a background thread)
or standalone (``python -m devstack.emulator --port 4566``).

The listening socket is bound before anything else happens, by us: a port already in use is a clear
``PortInUseError``, never a silent attach to whatever else answers there. ``make run`` passes a
snapshot path (devstack/snapshot.py): the emulator's state is loaded from it before serving and saved
to it on ``save_snapshot()``.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import errno
import json
import logging
import signal
import socket
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from devstack.snapshot import RequestGate, SnapshotInfo, is_mutating, load_backends, save_backends

__all__ = ["Emulator", "PortInUseError", "bind_listener", "free_port", "wait_for_http"]

logger = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024 * 1024


class PortInUseError(OSError):
    """The address is taken by another process (or cannot be bound at all)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"{host}:{port} {reason}")
        self.host = host
        self.port = port
        self.reason = reason


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 = any free port), or PortInUseError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise PortInUseError(host, port, f"cannot be resolved ({error.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As asyncio's servers do: lets a restarted stack reuse a port in TIME_WAIT, never a listening one.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as error:
        sock.close()
        in_use = error.errno == errno.EADDRINUSE
        reason = "is already in use" if in_use else f"cannot be bound ({error.strerror})"
        raise PortInUseError(host, port, reason) from None
    sock.setblocking(False)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.05)


_DYNAMODB_WRITES = frozenset(
    f"DynamoDB_20120810.{action}"
    for action in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
)


class _Gated:
    """Every request passes the snapshot gate (devstack/snapshot.py); one path of our own reads
    Timestream records."""

    def __init__(self, app: Any, gate: RequestGate) -> None:
        self._app = app
        self._gate = gate

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == TIMESTREAM_RECORDS_PATH:
            return _timestream_records(environ, start_response)
        with self._gate.request(is_mutating(environ)):
            return self._app(environ, start_response)


# moto's Timestream query API does not evaluate SQL, so the records a table holds are read here.
# moto's own state dump (/moto-api/data.json) gave them too, but it walks every object of every
# backend, properties included, while other threads write: it answered 500 under load (the real
# daemon test of tests/consumer, issue 12). This reads one table's list and nothing else.
TIMESTREAM_RECORDS_PATH = "/_devstack/timestream/records"


def _timestream_records(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    from urllib.parse import parse_qs

    from moto.timestreamwrite.models import timestreamwrite_backends

    query = parse_qs(environ.get("QUERY_STRING", ""))
    database, table = query.get("database", [""])[0], query.get("table", [""])[0]
    records: list[dict[str, Any]] | None = None
    for regions in list(timestreamwrite_backends.values()):
        for backend in list(regions.values()):
            found = backend.databases.get(database)
            if found is not None and table in found.tables:
                records = list(found.tables[table].records)  # a copy: writers only append
    if records is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [json.dumps({"error": f"no Timestream table {database}.{table}"}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(records).encode()]


class _SerializedWrites:
    """moto is not thread-safe where AWS is atomic, and hypercorn runs the WSGI app on several threads.

    - Kinesis: moto numbers a shard's records ``max + 1`` without a lock: two concurrent PutRecords on
      one shard could get the same sequence number and the second overwrote the first (both answered
      success; bench/chaos found an accepted event lost this way).
    - DynamoDB: a conditional write or a transaction checks, then writes: two concurrent ones could
      both pass a condition that AWS lets exactly one pass (first write wins, tests/aggregator).

    Those writes therefore run one at a time (per service); everything else stays concurrent."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._kinesis = threading.Lock()
        self._dynamodb = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("Kinesis_20131202.PutRecord"):
            with self._kinesis:
                return self._app(environ, start_response)
        if target in _DYNAMODB_WRITES:
            with self._dynamodb:
                return self._app(environ, start_response)
        return self._app(environ, start_response)


def _item_level_transaction_rollback() -> None:
    """moto backs up a whole table before every item of a TransactWriteItems (a deep copy of the
    table per item, per call), to roll back a cancelled transaction: with a few thousand items a
    100-item transaction copied hundreds of thousands of items, and bench/aggregator took the
    emulator to 20 GB. Here only the items the transaction touches are saved and restored; moto's
    own table copies become no-ops (DynamoDB writes are serialized, see _SerializedWrites)."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class _TablesAreNotCopied:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = _TablesAreNotCopied  # type: ignore[assignment,attr-defined]  # this module only
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") if op_type != "Put" else op.get("Item")
            if not key or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            saved.append(
                (table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value)))
            )
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                if table.range_key_attr is not None:
                    if item is None:
                        table.items.get(hash_value, {}).pop(range_value, None)
                    else:
                        table.items[hash_value][range_value] = item
                elif item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _constant_time_kinesis_puts() -> None:
    """moto 5 finds a shard's last sequence number with ``list(records.keys())[-1]``: a copy of every
    key for every record put, so each put got slower as the stream grew (a third of the emulator's
    CPU after 10,000 records, and benchmark results that depended on what ran before). The records
    dict is in sequence order, so its last key is the same number, read in O(1)."""
    from moto.kinesis.models import Shard

    def get_max_sequence_number(self: Shard) -> int:
        return next(reversed(self.records), 0)

    def get_min_sequence_number(self: Shard) -> int:
        return next(iter(self.records), 0)

    Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]
    Shard.get_min_sequence_number = get_min_sequence_number  # type: ignore[method-assign]


def _partition_queries() -> None:
    """moto answers a Query on a table's own key by sorting every item of the table and filtering
    them: O(table) per call, where DynamoDB's cost is the partition's. The aggregator queries one
    repo's partition per batch, so on the emulator its speed fell as the table grew (bench/aggregator).
    While such a Query runs, ``all_items`` of that table yields only the queried partition (a
    thread-local, so concurrent requests are unaffected); index queries keep moto's own path."""
    from moto.dynamodb.models.table import Table

    local = threading.local()
    all_items = Table.all_items
    query = Table.query

    def partition_items(self: Table) -> list[Any]:
        wanted = getattr(local, "partition", None)
        if wanted is None or wanted[0] is not self:
            return all_items(self)
        bucket = self.items.get(wanted[1])
        if bucket is None:
            return []
        return list(bucket.values()) if self.range_key_attr else [bucket]

    def partition_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        local.partition = (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            local.partition = None

    Table.all_items = partition_items  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]


MOTO_ORIGINALS: dict[tuple[Any, str], Any] = {}
"""(owner, attribute) -> moto's own function, for each one replaced below: the test that compares
the answers and bench/emulator put them back to measure moto as it ships."""


# The content type moto's serializer sets; the KCL's Java SDK will not read a JSON answer without it.
_JSON_ANSWER = {"Content-Type": "application/x-amz-json-1.1"}


def _epoch_millis(at: datetime) -> int | float:
    """A timestamp as moto's JSON serializer writes it: epoch seconds, truncated to milliseconds."""
    seconds = calendar.timegm(at.timetuple())
    return seconds + (at.microsecond // 1000) / 1000.0 if at.microsecond else seconds


def _plain_kinesis_record_answers() -> None:
    """moto 5.2 writes every answer through a generic serializer driven by botocore's shape model:
    for a PutRecords of 500 records that serializer was 55 % of the emulator's CPU (cProfile: 13.4 of
    24.3 s), more than storing the records. The answers of PutRecords and GetRecords are flat lists
    of strings and one timestamp, so they are written here with ``json.dumps``, byte for byte the
    document moto's serializer produces (tests/devstack/test_emulator_answers.py compares them)."""
    from moto.kinesis.responses import KinesisResponse

    MOTO_ORIGINALS[KinesisResponse, "put_records"] = KinesisResponse.put_records
    MOTO_ORIGINALS[KinesisResponse, "get_records"] = KinesisResponse.get_records

    def put_records(self: KinesisResponse) -> tuple[str, dict[str, str]]:
        answer = self.kinesis_backend.put_records(
            self._get_param("StreamARN"), self._get_param("StreamName"), self._get_param("Records")
        )
        return json.dumps(answer), dict(_JSON_ANSWER)

    def get_records(self: KinesisResponse) -> tuple[str, dict[str, str]]:
        next_iterator, records, behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
        )
        answer: dict[str, Any] = {
            "Records": [
                {
                    "SequenceNumber": str(record.sequence_number),
                    "ApproximateArrivalTimestamp": _epoch_millis(record.created_at_datetime),
                    # moto keeps the base64 text it was sent; its serializer decoded and re-encoded
                    # it, which gives the same text for the canonical base64 every SDK sends.
                    "Data": record.data,
                    "PartitionKey": record.partition_key,
                }
                for record in records
            ]
        }
        if next_iterator is not None:
            answer["NextShardIterator"] = next_iterator
        if behind is not None:
            answer["MillisBehindLatest"] = behind
        return json.dumps(answer), dict(_JSON_ANSWER)

    KinesisResponse.put_records = put_records  # type: ignore[assignment,method-assign]
    KinesisResponse.get_records = get_records  # type: ignore[assignment,method-assign]


def _module_list_read_once() -> None:
    """moto's dispatcher asks ``list_of_moto_modules()`` twice per request, and it lists moto's
    package directory and stats each of its ~180 entries every time: a sixth of the emulator's time on
    a 1-record PutRecords (py-spy, the stat calls included). The list cannot change while the process
    runs."""
    from moto import backends

    MOTO_ORIGINALS[backends, "list_of_moto_modules"] = backends.list_of_moto_modules
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


_patched = False


def _patch_moto() -> None:
    global _patched
    if not _patched:
        _plain_kinesis_record_answers()
        _module_list_read_once()
        _constant_time_kinesis_puts()
        _item_level_transaction_rollback()
        _partition_queries()
        _patched = True


def _moto_app(gate: RequestGate | None = None) -> Any:
    from hypercorn.middleware import AsyncioWSGIMiddleware
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    _patch_moto()
    app: Any = _SerializedWrites(DomainDispatcherApplication(create_backend_app))
    app = _Gated(app, gate if gate is not None else RequestGate())
    return AsyncioWSGIMiddleware(app, max_body_size=_MAX_BODY)


async def serve(sock: socket.socket, shutdown: asyncio.Event, gate: RequestGate | None = None) -> None:
    """Serve moto on an already bound, listening socket (see bind_listener) until ``shutdown`` is set."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the descriptor from here on
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    config.h2_max_concurrent_streams = 256
    await hypercorn_serve(_moto_app(gate), config, shutdown_trigger=shutdown.wait)


class Emulator:
    """moto + hypercorn on a background thread with its own event loop.

    ``sock``: a listening socket from ``bind_listener`` (then host/port are read from it); without one,
    ``start()`` binds host:port itself and raises PortInUseError when it is taken. ``snapshot``: a
    file the state is loaded from before serving (if it exists) and saved to by ``save_snapshot()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4566,
        *,
        sock: socket.socket | None = None,
        snapshot: Path | None = None,
    ) -> None:
        self._sock = sock
        if sock is not None:
            host, port = sock.getsockname()[:2]
        self.host = host
        self.port = port
        self.snapshot = snapshot
        self.restored: SnapshotInfo | None = None
        self.gate = RequestGate()
        self._saved_changes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Emulator:
        sock = self._sock or bind_listener(self.host, self.port)
        self._sock = None
        self.host, self.port = sock.getsockname()[:2]
        try:
            if self.snapshot is not None:
                _patch_moto()
                self.restored = load_backends(self.snapshot)
        except BaseException:
            sock.close()
            raise
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._shutdown = asyncio.Event()
            ready.set()
            try:
                self._loop.run_until_complete(serve(sock, self._shutdown, self.gate))
            except BaseException as error:  # reported by start() / stop(), never lost
                self._failure = error
                logger.exception("the emulator stopped with an error")
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="aws-emulator", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        wait_for_http(f"{self.url}/moto-api/", timeout)
        if self._failure is not None or not self._thread.is_alive():
            raise RuntimeError(f"the emulator on {self.url} failed to start: {self._failure!r}")
        self._saved_changes = self.gate.changes
        return self

    def save_snapshot(self, timeout: float = 10.0, *, only_if_changed: bool = False) -> SnapshotInfo | None:
        """Save the whole state to ``snapshot`` while no request is inside moto. None: nothing to do
        (no snapshot file configured, nothing changed, or requests did not finish within ``timeout``)."""
        if self.snapshot is None:
            return None
        if only_if_changed and self.gate.changes == self._saved_changes:
            return None
        with self.gate.paused(timeout) as quiet:
            if not quiet:
                logger.warning("emulator snapshot skipped: requests still running", extra={"wait": timeout})
                return None
            changes = self.gate.changes
            info = save_backends(self.snapshot)
        self._saved_changes = changes
        return info

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop and self._shutdown and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown.set)
            self._thread.join(timeout)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.emulator",
        description="Serve moto's AWS emulator over HTTP/1.1 and h2c (HTTP/2 cleartext) with hypercorn.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=4566, help="port to bind; 0 picks a free one")
    args = parser.parse_args(argv)
    try:
        sock = bind_listener(args.host, args.port)
    except PortInUseError as error:
        message = f"port {error.port} on {error.host} {error.reason}; pick another with --port"
        parser.exit(2, f"{parser.prog}: {message}\n")
    port = sock.getsockname()[1]

    async def run() -> None:
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, shutdown.set)
        task = asyncio.create_task(serve(sock, shutdown))
        await asyncio.to_thread(wait_for_http, f"http://{args.host}:{port}/moto-api/")
        # One JSON line on stdout tells a parent process where we are.
        print(json.dumps({"ready": True, "url": f"http://{args.host}:{port}"}), flush=True)
        await task

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
