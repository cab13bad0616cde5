"""The emulator's own read of a Timestream table (what make inspect, the tests and the benchmarks
count): every record written, in write order, duplicates kept, read while writers keep writing.
It replaced moto's whole-state dump, which answered 500 under load (issue 12)."""

from __future__ import annotations

import threading

import boto3

from devstack.emulator import Emulator
from devstack.inspect import timestream_records
from tests.support import CLIENT_KWARGS as KWARGS


def _record(value: str, at: int) -> dict[str, object]:
    return {
        "Dimensions": [{"Name": "event_id", "Value": value}],
        "MeasureName": "m",
        "MeasureValue": "1",
        "Time": str(at),
    }


def test_records_are_read_in_write_order_while_writers_write(fresh_moto: None) -> None:
    emulator = Emulator(port=0).start()
    stop = threading.Event()
    try:
        write = boto3.client("timestream-write", endpoint_url=emulator.url, **KWARGS)
        write.create_database(DatabaseName="db")
        write.create_table(DatabaseName="db", TableName="t")
        write.create_table(DatabaseName="db", TableName="other")
        assert timestream_records(emulator.url, "db", "t") == []
        assert timestream_records(emulator.url, "db", "missing") == []
        assert timestream_records(emulator.url, "nodb", "t") == []

        write.write_records(DatabaseName="db", TableName="t", Records=[_record("a", 1), _record("b", 2)])
        write.write_records(DatabaseName="db", TableName="t", Records=[_record("a", 1)])  # a resend
        write.write_records(DatabaseName="db", TableName="other", Records=[_record("z", 3)])
        stored = timestream_records(emulator.url, "db", "t")
        assert [r["Dimensions"][0]["Value"] for r in stored] == ["a", "b", "a"]

        def keep_writing() -> None:
            client = boto3.client("timestream-write", endpoint_url=emulator.url, **KWARGS)
            n = 0
            while not stop.is_set():
                n += 1
                client.write_records(DatabaseName="db", TableName="t", Records=[_record(f"w{n}", 10 + n)])

        writer = threading.Thread(target=keep_writing, daemon=True)
        writer.start()
        sizes = [len(timestream_records(emulator.url, "db", "t")) for _ in range(30)]
        assert sizes == sorted(sizes)  # only ever grows, every read answered
        assert sizes[0] >= 3
    finally:
        stop.set()
        emulator.stop()
