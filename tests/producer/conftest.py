from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp.test_utils import TestClient, TestServer

from devops_core.settings import Settings
from producer.app import create_app
from producer.limits import server_kwargs


@asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncIterator[TestClient]:
    """The real app on a real port; the token comes from Secrets Manager unless settings set one."""
    server = TestServer(create_app(settings))
    # TestServer(app, **kwargs) does not pass kwargs on to the runner; start_server(**kwargs) does.
    await server.start_server(**server_kwargs(settings))
    async with TestClient(server) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
