"""The dashboard in a real browser: `make run` (python -m devstack) on free ports, events seeded through
the gateway, the aggregator's numbers read by headless Chromium (Debian's package, driven by Playwright),
compared with GET /metrics, operated by keyboard only, and photographed into test-artifacts/."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.support import ROOT, LocalStackProcess, start_local_stack

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
METRICS = ("deployment_frequency", "lead_time", "change_failure_rate", "recovery_time")


@pytest.fixture(scope="module")
def devstack() -> Iterator[LocalStackProcess]:
    """`make run` (python -m devstack) as a child process: emulator, gateway, consumer and aggregator."""
    stack = start_local_stack()
    yield stack
    stack.stop()


def call(stack: LocalStackProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        stack.gateway + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def seed_events(now: datetime) -> tuple[list[dict[str, Any]], int, int]:
    """Three repos with a week of history: (events, deploys, lead-time samples)."""
    events: list[dict[str, Any]] = []
    hour, day = timedelta(hours=1), timedelta(days=1)

    def add(repo: str, event: str, at: datetime, sha: str | None = None) -> None:
        events.append(
            {"repo": repo, "event": event, "time": at.isoformat(), "sha": sha}
            if sha
            else {"repo": repo, "event": event, "time": at.isoformat()}
        )

    def change(repo: str, deployed: datetime, lead: timedelta) -> None:
        sha = uuid.uuid4().hex[:12]
        add(repo, "push", deployed - lead, sha)
        add(repo, "deploy", deployed, sha)

    for n, lead_hours in enumerate([2, 5, 1, 3, 8, 2, 4]):  # web-shop: daily, lead of hours
        change("web-shop", now - n * day - hour, timedelta(hours=lead_hours))
    change("web-shop", now - 2 * day - 4 * hour, timedelta(minutes=45))
    add("web-shop", "deploy_failed", now - 2 * day - 3 * hour)
    add("web-shop", "service_restored", now - 2 * day - 2 * hour - 15 * timedelta(minutes=1))
    for n in (0, 3, 6):  # payments-api: every three days, lead of days
        change("payments-api", now - n * day - 2 * hour, timedelta(days=1, hours=n))
    add("payments-api", "deploy_failed", now - 3 * day)
    add("payments-api", "service_restored", now - 3 * day + 5 * hour)
    add("docs-site", "deploy", now - 1 * day)  # no sha: frequency only
    add("docs-site", "deploy", now - 4 * day)
    deploys = sum(1 for e in events if e["event"] in ("deploy", "deploy_failed"))  # a failed one is one too
    samples = sum(1 for e in events if e["event"] == "deploy" and "sha" in e)
    return events, deploys, samples


@pytest.fixture(scope="module")
def seeded(devstack: LocalStackProcess) -> dict[str, Any]:
    now = datetime.now(UTC) - timedelta(minutes=1)
    events, deploys, samples = seed_events(now)
    status, result = call(devstack, "POST", "/events", events)
    assert status == 202, result
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the aggregator works asynchronously; /metrics caches 5 s
        _, body = call(devstack, "GET", "/metrics")
        everything = body["repos"][0]
        if (everything["deployment_frequency"]["count"], everything["lead_time"]["samples"]) == (
            deploys,
            samples,
        ):
            return body
        time.sleep(1)
    raise AssertionError(f"aggregator did not count {deploys} deploys in time: {body}")


def js_fixed(value: float, digits: int) -> str:
    """Number.prototype.toFixed: the exact binary value, ties away from zero."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    if seconds < 3600:
        return js_fixed(seconds / 60, 1) + " min"
    if seconds < 86400:
        return js_fixed(seconds / 3600, 1) + " h"
    return js_fixed(seconds / 86400, 1) + " d"


def shown(metrics: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What the page must show per metric: (value text, level text), derived from the API's numbers."""
    rate = metrics["change_failure_rate"]["rate"]
    texts = {
        "deployment_frequency": js_fixed(metrics["deployment_frequency"]["per_day"], 2) + " / day",
        "lead_time": duration(metrics["lead_time"]["median_s"]),
        "change_failure_rate": "no deploys" if rate is None else js_fixed(rate * 100, 1) + " %",
        "recovery_time": duration(metrics["recovery_time"]["median_s"]),
    }
    return {name: (texts[name], metrics[name]["level"] or "n/a") for name in METRICS}


def page_table(page: Page) -> dict[str, dict[str, tuple[str, str, str]]]:
    rows: dict[str, dict[str, tuple[str, str, str]]] = {}
    for row in page.locator("#repos tbody tr").all():
        repo = row.get_attribute("data-repo") or ""
        rows[repo] = {
            cell.get_attribute("data-metric") or "": (
                cell.locator(".value").inner_text(),
                cell.locator(".level").inner_text().lower(),
                cell.get_attribute("data-value") or "",
            )
            for cell in row.locator("td").all()
        }
    return rows


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement.id || document.activeElement.tagName"))


def test_dashboard_shows_the_api_numbers_and_works_by_keyboard(
    devstack: LocalStackProcess, seeded: dict[str, Any], tmp_path: Path
) -> None:
    assert Path(CHROMIUM).exists(), "needs Debian's chromium: make system-tools installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1366, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(devstack.gateway + "/dashboard")

            # The token is asked for once, with the focus already in the field.
            assert page.locator("#login").is_visible()
            assert focused(page) == "token"
            page.keyboard.type("not-the-token")
            page.keyboard.press("Enter")
            page.wait_for_selector("#error:has-text('not accepted')")
            page.keyboard.type(devstack.token)
            page.keyboard.press("Enter")
            page.wait_for_selector("body[data-loaded='true']")
            assert not page.locator("#login").is_visible()

            # Every number and level shown matches GET /metrics (read after the page, same 5 s cache).
            _, api = call(devstack, "GET", "/metrics")
            table = page_table(page)
            assert (
                list(table)
                == [m["repo"] for m in api["repos"]]
                == ["ALL", "docs-site", "payments-api", "web-shop"]
            )
            for metrics in api["repos"]:
                expected = shown(metrics)
                for name in METRICS:
                    text, level, raw = table[metrics["repo"]][name]
                    assert (text, level) == expected[name], (metrics["repo"], name)
                    value = metrics[name][
                        "per_day"
                        if name == "deployment_frequency"
                        else "rate"
                        if name == "change_failure_rate"
                        else "median_s"
                    ]
                    assert (float(raw) if raw else None) == value
            assert seeded["repos"][0]["deployment_frequency"] == api["repos"][0]["deployment_frequency"]

            # Keyboard only: the focus order runs through the controls, and the focus is visible.
            assert focused(page) == "window"  # after sign-in the focus moves to the first control
            order = []
            for _ in range(6):
                page.keyboard.press("Tab")
                order.append(focused(page))
            assert order == ["refresh", "signout", "repo", "SUMMARY", "SUMMARY", "A"], order
            page.focus("#repo")
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline == "solid"

            # The repo selector works with the arrow keys: the charts follow it.
            assert page.input_value("#repo") == "ALL"
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("ArrowDown")
            assert page.input_value("#repo") == "web-shop"
            assert page.inner_text("#deploys-title") == "Deploys per day: web-shop"
            assert page.locator("#deploys-chart canvas").count() == 1
            web_shop = next(m for m in api["repos"] if m["repo"] == "web-shop")
            page.keyboard.press("Tab")  # open the chart's data table with the keyboard
            page.keyboard.press("Enter")
            rows = page.locator("#deploys-table tbody tr").all_inner_texts()
            days_with_deploys = [p for p in web_shop["daily"] if p["deploys"] or p["change_failures"]]
            assert [r.split("\t")[0] for r in rows] == [p["day"] for p in days_with_deploys]
            assert [int(r.split("\t")[1]) for r in rows] == [p["deploys"] for p in days_with_deploys]

            # A repo without lead-time samples says so instead of showing an empty chart.
            page.focus("#repo")
            page.keyboard.press("Home")
            page.keyboard.press("ArrowDown")
            assert page.input_value("#repo") == "docs-site"
            assert page.locator("#lead-empty").is_visible()
            assert not page.locator("#deploys-empty").is_visible()

            # The window selector: 7 days, chosen by keyboard, reloads from GET /metrics?window=7.
            page.focus("#window")
            page.keyboard.press("Home")
            page.wait_for_selector("#status:has-text('Window 7 days')")
            _, week = call(devstack, "GET", "/metrics?window=7")
            assert (
                page_table(page)["ALL"]["deployment_frequency"][0]
                == shown(week["repos"][0])["deployment_frequency"][0]
            )
            page.focus("#window")
            page.keyboard.press("ArrowDown")
            page.wait_for_selector("#status:has-text('Window 30 days')")

            # The token lasts the browser session: a reload does not ask again.
            page.reload()
            page.wait_for_selector("body[data-loaded='true']")
            assert not page.locator("#login").is_visible()
            page.wait_for_timeout(300)  # let the charts settle before the picture
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            context.close()
    # The one expected error: the browser's own log line for the wrong token's 401.
    assert [e for e in errors if "status of 401" not in e] == [], errors
    assert len(errors) == 1, errors
    assert all(url.startswith(devstack.gateway) for url in requests), "only the gateway's origin (no CDN)"
