"""The README's picture of the dashboard, reproducible from the repo:

    .venv/bin/python -m tests.dashboard.screenshot [--output docs/images/dashboard.png]

Starts `make run`'s stack (python -m devstack) on free ports, sends a realistic four-month history
(tests/dashboard/history.py) through the real gateway, waits until the aggregator has counted every
production deployment, then photographs the page in Debian's Chromium (Playwright, never
`playwright install`) and prints what it measured (JSON on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import FloatRect, sync_playwright

from tests.dashboard.history import realistic_history
from tests.dashboard.test_dashboard_browser import CHROMIUM, LAUNCH_ARGS, call, sign_in
from tests.support import ROOT, start_local_stack


def counted_deploys(events: list[dict[str, Any]], first_day: date) -> int:
    """Production deployments on or after ``first_day``: what GET /metrics must count once caught up."""
    return sum(
        1
        for event in events
        if event["event"] in ("deploy", "deploy_failed")
        and "environment" not in event
        and datetime.fromisoformat(event["time"]).date() >= first_day
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--days", type=int, default=180, help="days of history to send (90 + the trend's 90)")
    parser.add_argument("--view", default="#/?window=90", help="the dashboard view (URL hash) to photograph")
    parser.add_argument("--height", type=int, default=860, help="pixels from the top of the page to keep")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the aggregator")
    args = parser.parse_args(argv)

    measured: dict[str, Any] = {}
    stack = start_local_stack()
    try:
        now = datetime.now(UTC)
        events = realistic_history(now, days=args.days, seed=args.seed)
        measured["events"] = len(events)
        started = time.monotonic()
        chunk = 0
        while chunk < len(events):
            status, result = call(stack, "POST", "/events", events[chunk : chunk + 500])
            if status == 429:  # the gateway's per-token rate limit (500 events/s): wait as it says
                time.sleep(1)
                continue
            if status != 202:
                print(
                    json.dumps({"error": "POST /events", "status": status, "result": result}), file=sys.stderr
                )
                return 1
            chunk += 500
        measured["post_seconds"] = round(time.monotonic() - started, 2)

        first_day = now.date() - timedelta(days=89)
        expected = counted_deploys(events, first_day)
        deadline = time.monotonic() + args.timeout
        while True:
            _, body = call(stack, "GET", "/metrics?window=90")
            if body["repos"][0]["deployment_frequency"]["count"] == expected:
                break
            if time.monotonic() > deadline:
                print(
                    json.dumps({"error": "aggregator not caught up", "expected": expected}), file=sys.stderr
                )
                return 1
            time.sleep(1)
        measured["aggregated_seconds"] = round(time.monotonic() - started, 2)
        measured["deploys_in_90_days"] = expected
        time.sleep(6)  # past the gateway's 5 s metrics cache, so the page reads settled numbers
        for query in ("/metrics?window=30", "/metrics?window=90", "/metrics/web-shop?window=90"):
            started = time.monotonic()
            call(stack, "GET", query)
            measured[f"GET {query} ms"] = round((time.monotonic() - started) * 1000)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                started = time.monotonic()
                page.goto(stack.gateway + "/dashboard" + args.view)
                sign_in(page, stack.token)
                measured["page_ready_ms"] = round((time.monotonic() - started) * 1000)
                page.locator("#window").blur()  # no focus ring in the picture
                page.wait_for_timeout(300)  # let the charts' canvases settle
                args.output.parent.mkdir(parents=True, exist_ok=True)
                clip = FloatRect(x=0, y=0, width=1366, height=args.height)
                page.screenshot(path=str(args.output), clip=clip)
                measured["output"] = str(args.output)
            finally:
                browser.close()
    finally:
        stack.stop()
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
