"""Baseline (a) of bench/gateway: a bare aiohttp handler that reads the body and answers 202, nothing
else (no auth, no validation, no Kinesis). The gateway with an in-memory sink is measured against it,
so the difference is what the gateway's own work costs per request.

    python bench/gateway/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def process_event(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "accepted"}, status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 to listen on")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/process-event", process_event)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
