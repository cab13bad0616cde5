from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp.test_utils import TestClient, TestServer

from devops_core.settings import Settings
from producer.app import create_app


@asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncIterator[TestClient]:
    """The real app on a real port; the token comes from Secrets Manager unless settings set one."""
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
