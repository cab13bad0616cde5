from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devops_core.settings import Settings
from producer.app import create_app
from producer.limits import server_kwargs
from producer.server import GatewayRunner


class GatewayTestServer(TestServer):
    """``TestServer`` serving through the gateway's own runner (producer/server.py), as production does."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return GatewayRunner(self.app, **kwargs)


async def start_test_gateway(app: web.Application, settings: Settings) -> GatewayTestServer:
    server = GatewayTestServer(app)
    # TestServer(app, **kwargs) does not pass kwargs on to the runner; start_server(**kwargs) does.
    await server.start_server(**server_kwargs(settings))
    return server


@asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncIterator[TestClient]:
    """The real app on a real port; the token comes from Secrets Manager unless settings set one."""
    server = await start_test_gateway(create_app(settings), settings)
    async with TestClient(server) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
