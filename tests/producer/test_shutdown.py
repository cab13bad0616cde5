"""Graceful shutdown: SIGTERM lets accepted work finish and drains the batcher before exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from devops_core.aws import aio_client
from devstack.emulator import wait_for_http
from devstack.inspect import read_stream, read_stream_events
from producer.batcher import BatcherClosed, KinesisBatcher
from tests.support import ROOT, Stack, announced_gateway_port


async def test_close_sends_everything_still_queued(stack: Stack) -> None:
    """Records waiting for a (long) linger are sent at close, not dropped."""
    async with aio_client("kinesis") as kinesis:
        batcher = KinesisBatcher(kinesis, stack.settings.devops_stream_name, linger=60.0)
        batcher.start()
        futures = [batcher.submit(f'{{"n": {i}}}'.encode(), f"key-{i}") for i in range(25)]
        await asyncio.sleep(0.1)
        assert not any(f.done() for f in futures), "linger should still be holding the batch"
        await batcher.close()
        results = await asyncio.gather(*futures)
    assert all(r.sequence_number for r in results)
    assert len(read_stream(stack.settings.devops_stream_name)) == 25
    with pytest.raises(BatcherClosed):
        batcher.submit(b"late", "k")


async def wait_until_queued(session: aiohttp.ClientSession, readyz: str, count: int) -> None:
    """Until the gateway's batcher holds ``count`` records (its /readyz says so): a fixed sleep
    would be too short on a busy machine, and SIGTERM must find every request inside."""
    while True:
        async with session.get(readyz) as response:
            if (await response.json())["queued"] == count:
                return
        await asyncio.sleep(0.02)


async def test_sigterm_under_load_answers_every_request_and_loses_nothing(
    emulator: str, stack: Stack, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DEVOPS_STREAM_NAME": stack.settings.devops_stream_name,
        "SECRET_STORE_NAME": stack.settings.secret_store_name,
        "BATCH_LINGER_MS": "60000",  # hold records in the queue so SIGTERM finds them there
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        gateway = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "producer",
            "--port",
            "0",  # the OS picks a free port; the gateway logs which
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        port = await asyncio.to_thread(announced_gateway_port, log, lambda: gateway.returncode is None)
        await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{port}/healthz")
        headers = {"Authorization": f"Bearer {stack.token}"}
        async with aiohttp.ClientSession() as session:

            async def send(i: int) -> tuple[int, str]:
                async with session.post(
                    f"http://127.0.0.1:{port}/process-event",
                    json={"repo": "r", "event": "push", "event_id": f"drain-{i}"},
                    headers=headers,
                ) as response:
                    return response.status, (await response.json()).get("event_id", "")

            requests = [asyncio.create_task(send(i)) for i in range(40)]
            await wait_until_queued(session, f"http://127.0.0.1:{port}/readyz", 40)
            started = time.monotonic()
            gateway.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*requests)
        exit_code = await asyncio.wait_for(gateway.wait(), 15)
        stopped_in = time.monotonic() - started
    finally:
        if gateway.returncode is None:
            gateway.kill()
    assert exit_code == 0
    assert stopped_in < 10
    assert [status for status, _ in results] == [202] * 40
    stored = {event.event_id for event in read_stream_events(stack.settings.devops_stream_name)}
    assert stored == {f"drain-{i}" for i in range(40)}
