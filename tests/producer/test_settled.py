"""``_settled`` (producer/handlers.py) answers as ``asyncio.gather(..., return_exceptions=True)`` does,
cancellation included: a cancelled /events request leaves none of its waiting puts to be sent."""

from __future__ import annotations

import asyncio

import pytest

from producer.batcher import KinesisUnavailable, PutResult
from producer.handlers import _settled


async def test_outcomes_in_order_whatever_order_they_settle_in() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[PutResult]] = [loop.create_future() for _ in range(3)]
    waiting = asyncio.ensure_future(_settled(futures))
    failure = KinesisUnavailable("down")
    futures[2].set_result(PutResult("shardId-000000000000", "3"))
    futures[0].set_exception(failure)
    await asyncio.sleep(0)
    assert not waiting.done()
    futures[1].set_result(PutResult("shardId-000000000001", "2"))
    outcomes = await waiting
    expected = await asyncio.gather(*futures, return_exceptions=True)
    assert outcomes == expected
    assert outcomes[0] is failure


async def test_a_put_cancelled_by_someone_else_is_an_outcome() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[PutResult]] = [loop.create_future() for _ in range(2)]
    futures[0].cancel()
    futures[1].set_result(PutResult("shardId-000000000000", "1"))
    outcomes = await _settled(futures)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1] == PutResult("shardId-000000000000", "1")


async def test_a_cancelled_request_cancels_every_put_still_waiting() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[PutResult]] = [loop.create_future() for _ in range(3)]
    futures[0].set_result(PutResult("shardId-000000000000", "1"))
    waiting = asyncio.ensure_future(_settled(futures))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [future.cancelled() for future in futures] == [False, True, True]
