"""The dashboard in a real browser: `make run` (python -m devstack) on free ports, a small history sent
through the gateway (POST /events with environments, outcomes, remediations, commits, incidents, teams
and services), read by headless Chromium (Debian's package, driven by Playwright), compared with
GET /metrics, GET /metrics/{repo} and GET /deployments/{repo}, operated by keyboard, and photographed
into test-artifacts/.

What the page must show is derived here from the API's numbers with the page's own formatting rules
(written again in Python, so a formatting or sorting slip in dashboard.js fails)."""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from devops_core.dora import levels
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
METRICS = ("deployment_frequency", "lead_time", "change_failure_rate", "recovery_time", "rework_rate")
HEADLINE = {
    "deployment_frequency": "per_day",
    "lead_time": "median_s",
    "change_failure_rate": "rate",
    "recovery_time": "median_s",
    "rework_rate": "rate",
}
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


# -- the stack and its data ---------------------------------------------------------------------------
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
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(stack: LocalStackProcess, path: str, **params: str | None) -> Any:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
    status, body = call(stack, "GET", path + ("?" + query if query else ""))
    assert status == 200, (path, params, body)
    return body


@dataclass
class History:
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, repo: str, event: str, at: datetime, **fields: Any) -> None:
        self.events.append({"repo": repo, "event": event, "time": at.isoformat(), **fields})

    def change(
        self, repo: str, deployed: datetime, lead: timedelta, fields: dict[str, str], *, staging: bool = False
    ) -> str:
        """A commit pushed ``lead`` before its production deployment (optionally through staging)."""
        sha = uuid.uuid4().hex[:16]
        commits = [{"sha": sha, "time": (deployed - lead).isoformat()}]
        self.add(repo, "push", deployed - lead + timedelta(minutes=1), sha=sha, commits=commits, **fields)
        if staging:
            self.add(
                repo, "deploy", deployed - timedelta(minutes=30), sha=sha, environment="staging", **fields
            )
        self.add(repo, "deploy", deployed, sha=sha, commits=commits, **fields)
        return sha


def seed_history(now: datetime) -> History:
    """Five repos in three teams; a week of hand-countable activity and an older month for trends."""
    h = History()
    shop = {"team": "storefront", "service": "shop"}
    for n, lead_hours in enumerate([2, 5, 1, 3, 8, 2, 4]):  # web-shop: daily, through staging
        h.change("web-shop", now - n * DAY - HOUR, timedelta(hours=lead_hours), shop, staging=n < 3)
    h.add("web-shop", "deploy_failed", now - 2 * DAY - 3 * HOUR, **shop)
    h.add("web-shop", "service_restored", now - 2 * DAY - 2 * HOUR - timedelta(minutes=15), **shop)
    h.add("web-shop", "deploy", now - DAY - timedelta(minutes=30), remediation="hotfix", **shop)
    for n in (35, 40, 45):  # the previous 30 days: rarer deploys and slower changes (the trend)
        h.change("web-shop", now - n * DAY, timedelta(hours=30), shop)

    payments = {"team": "payments"}
    for n in (0, 3, 6):  # payments-api: every three days, lead of days; one deploy causes an incident
        h.change("payments-api", now - n * DAY - 2 * HOUR, timedelta(days=1, hours=n), payments)
    h.add("payments-api", "deploy", now - 4 * DAY, deployment_id="pay-41", **payments)
    h.add("payments-api", "incident_opened", now - 3 * DAY - 20 * HOUR, incident_id="INC-7",
          deployment_id="pay-41", **payments)  # fmt: skip
    h.add("payments-api", "incident_resolved", now - 3 * DAY - 15 * HOUR, incident_id="INC-7", **payments)

    platform = {"team": "platform"}
    for n in range(22):  # docs-site: daily, no commits (frequency only); more than a page of 20
        h.add("docs-site", "deploy", now - n * DAY - 3 * HOUR, **shop)
    h.change("octo-org/api-gateway", now - 2 * DAY, timedelta(minutes=50), platform)  # a slash in its name
    h.add("design-tokens", "push", now - 2 * DAY, sha=uuid.uuid4().hex[:12], **platform)  # pushes only
    return h


REPOS = ["design-tokens", "docs-site", "octo-org/api-gateway", "payments-api", "web-shop"]


@pytest.fixture(scope="module")
def seeded(devstack: LocalStackProcess) -> History:
    history = seed_history(datetime.now(UTC) - timedelta(minutes=1))
    status, result = call(devstack, "POST", "/events", history.events)
    assert status == 202, result
    # Counted in the 30-day window once the aggregator has every repo: 7 + 1 failed + 1 hotfix (web-shop),
    # 4 (payments-api), 22 (docs-site), 1 (api-gateway); failures: the failed deploy and the incident's
    # cause; rework: the hotfix.
    expected = (36, 2, 1)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # the aggregator works asynchronously; /metrics caches 5 s
        body = get(devstack, "/metrics")
        everything = body["repos"][0]
        seen = (
            everything["deployment_frequency"]["count"],
            everything["change_failure_rate"]["failures"],
            everything["rework_rate"]["rework"],
        )
        if seen == expected and [m["repo"] for m in body["repos"][1:]] == REPOS:
            return history
        time.sleep(1)
    raise AssertionError(
        f"the aggregator did not count {expected} in time: {seen}, {body['repos'][1:]}"[:2000]
    )


# -- the browser --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "needs Debian's chromium: make system-tools installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    page: Page
    requests: list[str]
    errors: list[str]


@pytest.fixture
def tab(browser: Browser, devstack: LocalStackProcess, seeded: History) -> Iterator[Tab]:
    """A fresh browser context (empty session storage) on the dashboard; at the end, no console error
    and no request to another origin (no CDN)."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    opened = Tab(page, [], [])
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    yield opened
    context.close()
    # The browser logs a failed fetch (the wrong token's 401, an unknown repo's 404) as a console error.
    assert [e for e in opened.errors if "status of 401" not in e and "status of 404" not in e] == []
    assert all(url.startswith(devstack.gateway) for url in opened.requests), "only the gateway's origin"


def sign_in(page: Page, token: str) -> None:
    page.wait_for_selector("#login:not([hidden])")
    page.focus("#token")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-loaded='true']")
    settle(page)


def settle(page: Page) -> None:
    """Wait until the page has rendered the view its URL names."""
    page.wait_for_function(
        "() => document.body.dataset.rendered === (location.hash.startsWith('#/') ? location.hash : '#/')"
    )


def focused(page: Page) -> str:
    return str(
        page.evaluate(
            "(() => { const a = document.activeElement; return a.dataset.focus || a.id || a.tagName; })()"
        )
    )


def tab_to(page: Page, target: str, limit: int = 60) -> None:
    """Press Tab until the focus is on ``target`` (an id or data-focus key): only the keyboard."""
    for _ in range(limit):
        if focused(page) == target:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} is not reachable with Tab (focus on {focused(page)})")


def hash_params(page: Page) -> dict[str, str]:
    fragment = urllib.parse.urlsplit(page.url).fragment
    return dict(urllib.parse.parse_qsl(fragment.partition("?")[2]))


# -- what the page must show, from the API's numbers ----------------------------------------------------
def js_fixed(value: float, digits: int) -> str:
    """Number.prototype.toFixed: the exact binary value, ties away from zero."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def duration(seconds: float) -> str:
    if seconds < 3600:
        return js_fixed(seconds / 60, 1) + " min"
    if seconds < 86400:
        return js_fixed(seconds / 3600, 1) + " h"
    return js_fixed(seconds / 86400, 1) + " d"


def frequency(per_day: float) -> str:
    if per_day >= 1:
        return js_fixed(per_day, 2) + " / day"
    if per_day * 7 >= 1:
        return js_fixed(per_day * 7, 1) + " / week"
    return js_fixed(per_day * 30, 1) + " / month"


def percent(rate: float) -> str:
    return js_fixed(rate * 100, 1) + " %"


def headline_text(name: str, value: float) -> str:
    if name == "deployment_frequency":
        return frequency(value)
    if name in ("lead_time", "recovery_time"):
        return duration(value)
    return percent(value)


def value_text(name: str, metric: dict[str, Any]) -> str:
    value = metric[HEADLINE[name]]
    if name == "deployment_frequency" and not metric["count"]:
        return "no deployments in this window"
    if value is None and name == "lead_time":
        return "no changes shipped"
    if value is None and name == "recovery_time":
        still_open = metric["open_failures"] or 0
        return (
            f"{still_open} failure{'s' if still_open != 1 else ''} open now"
            if still_open
            else "no failures recovered"
        )
    if value is None:
        return "no deployments in this window"
    return headline_text(name, value)


def level_text(name: str, level: str | None) -> str:
    return level or ("no bands" if name == "rework_rate" else "no level")


def trend_text(name: str, metric: dict[str, Any], window_days: int) -> tuple[str, str]:
    trend = metric["trend"]
    if trend["direction"] is None:
        if trend["previous"] is None:
            return f"no data in the previous {window_days} days", "trend-none"
        return "was " + headline_text(name, trend["previous"]), "trend-none"
    if trend["direction"] == "same":
        return "→ no change", "trend-same"
    if trend["change"] is None:
        moved = "▲ from 0" if trend["previous"] == 0 else "▼ to 0"
    else:
        pct = abs(trend["change"] * 100)
        moved = ("▲ " if trend["change"] > 0 else "▼ ") + js_fixed(pct, 1 if pct < 10 else 0) + " %"
    return f"{moved}, {trend['direction']}", f"trend-{trend['direction']}"


def shown(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per metric: value, level, trend text, trend class and raw value, as the page must show them."""
    out = {}
    for name in METRICS:
        metric = metrics[name]
        trend, css = trend_text(name, metric, metrics["window_days"])
        raw = metric[HEADLINE[name]]
        out[name] = {
            "value": value_text(name, metric),
            "level": level_text(name, metric["level"]),
            "trend": trend,
            "trend_class": css,
            "raw": raw,
        }
    return out


READ_CELLS = """(root) => Object.fromEntries([...root.querySelectorAll('[data-metric]')].map((cell) => {
  const trend = cell.querySelector('.trend');
  return [cell.dataset.metric, {
    value: cell.querySelector('.value').textContent,
    level: cell.querySelector('.level').textContent,
    trend: trend.textContent,
    trend_class: [...trend.classList].find((c) => c.startsWith('trend-')),
    raw: cell.dataset.value === undefined ? null : cell.dataset.value,
  }];
}))"""


def page_tiles(page: Page) -> dict[str, dict[str, str]]:
    tiles = page.eval_on_selector("#tiles", READ_CELLS)
    for cells in tiles.values():
        cells.pop("raw")
    return dict(tiles)


def page_table(page: Page) -> dict[str, dict[str, dict[str, Any]]]:
    """Per repo and metric what the table shows; ``raw``: the cell's data-value as a number (or None)."""
    rows = page.eval_on_selector_all(
        "#repos tbody tr", f"(rows) => rows.map((row) => [row.dataset.repo, ({READ_CELLS})(row)])"
    )
    for _, cells in rows:
        for cell in cells.values():
            cell["raw"] = float(cell["raw"]) if cell["raw"] else None
    return {repo: cells for repo, cells in rows}


def table_order(page: Page) -> list[str]:
    return list(
        page.eval_on_selector_all("#repos tbody.repo-rows tr", "(rows) => rows.map((r) => r.dataset.repo)")
    )


def expect_tiles(page: Page, metrics: dict[str, Any]) -> None:
    want = {name: {k: v for k, v in cells.items() if k != "raw"} for name, cells in shown(metrics).items()}
    assert page_tiles(page) == want


def expect_table(page: Page, overview: dict[str, Any]) -> None:
    table = page_table(page)
    assert list(table) == [m["repo"] for m in overview["repos"]]
    for metrics in overview["repos"]:
        assert table[metrics["repo"]] == shown(metrics), metrics["repo"]


def select_by_keyboard(page: Page, select_id: str, value: str) -> None:
    """Move a native select to ``value`` with the arrow keys only (each step applies, like a user's)."""
    options: list[str] = page.eval_on_selector(f"#{select_id}", "(s) => [...s.options].map((o) => o.value)")
    page.focus(f"#{select_id}")
    current = options.index(page.input_value(f"#{select_id}"))
    target = options.index(value)
    for _ in range(abs(target - current)):
        page.keyboard.press("ArrowDown" if target > current else "ArrowUp")
        settle(page)
    assert page.input_value(f"#{select_id}") == value


# -- the tests ----------------------------------------------------------------------------------------
def test_overview_shows_the_api_numbers_levels_and_trends(tab: Tab, devstack: LocalStackProcess) -> None:
    page = tab.page
    page.goto(devstack.gateway + "/dashboard")

    # The token is asked for once, with the focus already in the field; a wrong one is refused.
    page.wait_for_selector("#login:not([hidden])")
    assert focused(page) == "token"
    page.keyboard.type("not-the-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error:has-text('not accepted')")
    sign_in(page, devstack.token)
    assert focused(page) == "window"  # after sign-in the focus moves to the first filter

    # Every number, level and trend shown equals GET /metrics (read after the page: same 5 s cache).
    overview = get(devstack, "/metrics")
    expect_tiles(page, overview["repos"][0])
    expect_table(page, overview)
    assert page.inner_text("#view-title") == "All repositories"

    # Trends are coloured by better or worse, not by up or down: web-shop deploys more often (up, better)
    # and ships faster (down, better) than in the previous 30 days.
    web_shop = page_table(page)["web-shop"]
    assert web_shop["deployment_frequency"]["trend"].startswith("▲")
    assert web_shop["lead_time"]["trend"].startswith("▼")
    assert (
        web_shop["deployment_frequency"]["trend_class"]
        == web_shop["lead_time"]["trend_class"]
        == "trend-better"
    )
    assert web_shop["rework_rate"]["level"] == "no bands"  # DORA publishes none
    assert page_table(page)["payments-api"]["change_failure_rate"]["raw"] == 0.25  # the incident's cause

    # Honest empty states: a repo that only pushed is listed, with no deployments and no level.
    design = page_table(page)["design-tokens"]
    assert design["deployment_frequency"]["value"] == "no deployments in this window"
    assert {cells["level"] for cells in design.values()} == {"no level", "no bands"}
    assert page.locator("#repos tr[data-repo='design-tokens'] .level-low").count() == 0

    # All five metrics are charted, each with its data table: ALL's deployments per day equal the API's.
    assert page.locator("#charts canvas").count() == 5
    rows = page.eval_on_selector_all(
        "#chart-deployment_frequency-table tbody tr",
        "(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))",
    )
    days = [p for p in overview["repos"][0]["daily"] if p["deploys"]]
    assert rows == [
        [p["day"], js_fixed(p["deploys"], 2), str(p["deploys"]), str(p["failed_deploys"])] for p in days
    ]
    lead = page.eval_on_selector_all(
        "#chart-lead_time-table tbody tr", "(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))"
    )
    with_samples = [p for p in overview["repos"][0]["daily"] if p["lead_time_samples"]]
    assert lead == [
        [p["day"], duration(p["lead_time_median_s"]), str(p["lead_time_samples"])] for p in with_samples
    ]

    # The level bands on the page (and drawn on the charts) are devops_core/dora/levels.py's.
    edges = dict(
        page.eval_on_selector_all(
            "#levels-table tbody tr", "(rows) => rows.map((r) => [r.dataset.metric, r.dataset.edges])"
        )
    )
    order = (levels.Level.ELITE, levels.Level.HIGH, levels.Level.MEDIUM)
    assert json.loads(edges["deployment_frequency"]) == pytest.approx(
        [levels.DEPLOYS_PER_DAY_MIN[lvl] for lvl in order]
    )
    assert json.loads(edges["lead_time"]) == [levels.LEAD_TIME_BELOW_SECONDS[lvl] for lvl in order]
    assert json.loads(edges["change_failure_rate"]) == [levels.CHANGE_FAILURE_RATE_MAX[lvl] for lvl in order]
    assert json.loads(edges["recovery_time"]) == [levels.RECOVERY_TIME_BELOW_SECONDS[lvl] for lvl in order]
    assert edges["rework_rate"] == ""

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_filters_and_sorting_by_keyboard_follow_the_url(tab: Tab, devstack: LocalStackProcess) -> None:
    page = tab.page
    page.goto(devstack.gateway + "/dashboard")
    sign_in(page, devstack.token)

    # Window, chosen with the arrow keys: 7 days, in the URL, numbers of GET /metrics?window=7.
    select_by_keyboard(page, "window", "7")
    assert hash_params(page) == {"window": "7"}
    expect_table(page, get(devstack, "/metrics", window="7"))

    # Team: the table lists the team's repos, headed by the team's own metrics.
    assert page.eval_on_selector("#team", "(s) => [...s.options].map((o) => o.value)") == [
        "",
        "payments",
        "platform",
        "storefront",
    ]
    select_by_keyboard(page, "team", "storefront")
    team = get(devstack, "/metrics", window="7", team="storefront")
    expect_table(page, team)
    assert [m["repo"] for m in team["repos"]] == ["storefront", "docs-site", "web-shop"]
    assert page.inner_text("#view-title") == "Team storefront"
    expect_tiles(page, team["repos"][0])

    # Service: choosing one clears the team (the API filters by one or the other).
    select_by_keyboard(page, "service", "shop")
    assert hash_params(page) == {"window": "7", "service": "shop"}
    expect_table(page, get(devstack, "/metrics", window="7", service="shop"))
    select_by_keyboard(page, "service", "")

    # Environment: staging is counted on its own (web-shop's three staging deploys).
    assert page.is_visible("#environment")
    select_by_keyboard(page, "environment", "staging")
    staging = get(devstack, "/metrics", window="7", environment="staging")
    expect_table(page, staging)
    assert staging["repos"][0]["deployment_frequency"]["count"] == 3
    assert "environment staging" in page.inner_text("#status")
    select_by_keyboard(page, "environment", "production")
    assert "environment" not in hash_params(page)

    # An environment no event names (a typo in a shared link): the API's 404 reason, no numbers, no level.
    page.goto(devstack.gateway + "/dashboard#/?window=7&environment=qa")
    page.wait_for_selector("#error:has-text(\"no deployment or incident of environment 'qa'\")")
    assert not page.is_visible("#content")  # no numbers and no level under the error
    page.goto(devstack.gateway + "/dashboard#/?window=7")
    settle(page)

    # Sorting: a column's header button, by keyboard; ascending, then descending; no data sorts last.
    select_by_keyboard(page, "window", "30")
    overview = get(devstack, "/metrics", window="30")
    repos = overview["repos"][1:]

    def expected(name: str, descending: bool) -> list[str]:
        have = [m for m in repos if m[name][HEADLINE[name]] is not None]
        none = sorted(m["repo"] for m in repos if m[name][HEADLINE[name]] is None)
        ordered = sorted(have, key=lambda m: (m[name][HEADLINE[name]], m["repo"]))
        if descending:
            ordered = sorted(have, key=lambda m: (-m[name][HEADLINE[name]], m["repo"]))
        return [m["repo"] for m in ordered] + none

    tab_to(page, "sort-lead_time")
    page.keyboard.press("Enter")
    settle(page)
    assert table_order(page) == expected("lead_time", descending=False)
    assert page.get_attribute("#repos th[data-column='lead_time']", "aria-sort") == "ascending"
    assert focused(page) == "sort-lead_time"  # the focus stays on the button across the re-render
    page.keyboard.press("Enter")
    settle(page)
    assert table_order(page) == expected("lead_time", descending=True)
    assert page.get_attribute("#repos th[data-column='lead_time']", "aria-sort") == "descending"
    assert hash_params(page) == {"window": "30", "sort": "lead_time", "order": "desc"}
    for name in ("deployment_frequency", "change_failure_rate"):
        page.click(f"#repos th[data-column='{name}'] button")
        settle(page)
        assert table_order(page) == expected(name, descending=False), name
    page.click("#repos th[data-column='repo'] button")
    settle(page)
    assert table_order(page) == sorted(m["repo"] for m in repos)

    # Charts per week: each week's deployments are the sum of its days (weeks end on the window's last day).
    select_by_keyboard(page, "per", "week")
    daily = overview["repos"][0]["daily"]
    weeks = [daily[max(0, end - 7) : end] for end in range(len(daily), 0, -7)][::-1]
    rows = page.eval_on_selector_all(
        "#chart-deployment_frequency-table tbody tr",
        "(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))",
    )
    want = []
    for w in weeks:
        deploys, failed = sum(p["deploys"] for p in w), sum(p["failed_deploys"] for p in w)
        if deploys:
            want.append(
                [f"{w[0]['day']} to {w[-1]['day']}", js_fixed(deploys / len(w), 2), str(deploys), str(failed)]
            )
    assert rows == want
    # A week's lead time: the median of its days' medians, weighted by their samples.
    lead_rows = page.eval_on_selector_all(
        "#chart-lead_time-table tbody tr", "(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))"
    )
    weighted = []
    for w in weeks:
        samples = [p["lead_time_median_s"] for p in w for _ in range(p["lead_time_samples"])]
        if samples:
            weighted.append(
                [f"{w[0]['day']} to {w[-1]['day']}", duration(statistics.median(samples)), str(len(samples))]
            )
    assert lead_rows == weighted

    # The URL holds the whole view: a reload (and a shared link) shows the same.
    state = hash_params(page)
    page.reload()
    page.wait_for_selector("body[data-loaded='true']")
    settle(page)
    assert hash_params(page) == state
    assert page.input_value("#per") == "week"
    assert table_order(page) == sorted(m["repo"] for m in repos)


def test_environment_filter_is_hidden_when_the_gateway_lists_no_environments(
    tab: Tab, devstack: LocalStackProcess
) -> None:
    """An older gateway answers GET /metrics without `environments`: the filter hides, the rest works."""
    page = tab.page

    def older_gateway(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body.pop("environments", None)
        route.fulfill(response=response, json=body)

    page.route(lambda url: urllib.parse.urlsplit(url).path == "/metrics", older_gateway)
    page.goto(devstack.gateway + "/dashboard")
    sign_in(page, devstack.token)
    assert not page.is_visible("#environment")
    assert page.is_visible("#team")
    expect_table(page, get(devstack, "/metrics"))


def test_a_row_opens_the_repository_page_and_back_returns(tab: Tab, devstack: LocalStackProcess) -> None:
    page = tab.page
    page.goto(devstack.gateway + "/dashboard#/?window=30&sort=repo")
    sign_in(page, devstack.token)

    # Keyboard: Tab to web-shop's link, Enter: the repo's own URL, the focus on its title.
    tab_to(page, "repo-web-shop")
    page.keyboard.press("Enter")
    settle(page)
    assert urllib.parse.urlsplit(page.url).fragment == "/repo/web-shop?window=30"
    assert focused(page) == "view-title"
    assert page.inner_text("#view-title") == "web-shop"
    expect_tiles(page, get(devstack, "/metrics/web-shop", window="30"))
    assert not page.is_visible("#repos")

    # Its deployments (production, newest first) and the changes each shipped, with their lead time.
    activity = get(devstack, "/deployments/web-shop", window="30")
    counted = [d for d in activity["deployments"] if d["counted"]]
    rows = page.eval_on_selector_all(
        "#deployments tbody tr",
        """(rows) => rows.map((r) => ({
             id: r.dataset.eventId,
             cells: [...r.cells].filter((c, i) => i !== 4).map((c) => c.textContent),
             changes: [...r.cells[4].querySelectorAll('li')].map((li) => [li.dataset.sha, li.textContent]),
           }))""",
    )
    assert [r["id"] for r in rows] == [d["event_id"] for d in counted]
    for row, deployment in zip(rows, counted, strict=True):
        assert row["cells"] == [
            deployment["time"].replace("T", " ").removesuffix("Z").partition(".")[0],
            deployment["environment"],
            deployment["outcome"],
            (deployment["sha"] or "")[:12],
            "yes" if deployment["change_failure"] else "no",
            "yes" if deployment["rework"] else "no",
        ]
        assert row["changes"] == [
            [c["sha"], f"{c['sha'][:12]} {duration(c['lead_time_s'])}"] for c in deployment["changes"]
        ]
    assert sum(len(r["changes"]) for r in rows) == 7  # this week's; the older ones are before the window
    assert [r["cells"][2] for r in rows].count("failure") == 1
    assert [r["cells"][5] for r in rows].count("yes") >= 1  # the hotfix is rework
    hidden = len(activity["deployments"]) - len(counted)
    assert hidden == 3  # web-shop's staging deployments
    assert "3 to other environments not shown" in page.inner_text("#deployments-note")

    # Its failures: the failed deployment, recovered in 45 minutes.
    failures = page.eval_on_selector_all(
        "#failures tbody tr", "(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))"
    )
    assert failures == [
        [
            f["started"].replace("T", " ").removesuffix("Z").partition(".")[0],
            "failed deployment" if f["kind"] == "deployment" else "incident",
            f["environment"],
            f["ended"].replace("T", " ").removesuffix("Z").partition(".")[0] if f["ended"] else "open",
            duration(f["recovery_s"]) if f["recovery_s"] is not None else "not recovered",
        ]
        for f in activity["failures"]
    ]
    assert [row[-1] for row in failures] == ["45.0 min"]

    # The environment filter applies on the repo's page too.
    select_by_keyboard(page, "environment", "staging")
    assert urllib.parse.urlsplit(page.url).fragment == "/repo/web-shop?window=30&environment=staging"
    expect_tiles(page, get(devstack, "/metrics/web-shop", window="30", environment="staging"))
    assert page.locator("#deployments tbody tr").count() == 3
    select_by_keyboard(page, "environment", "production")

    # Back returns to the overview as it was (window and sort), with the focus on the repo's link.
    page.go_back()
    settle(page)
    assert hash_params(page) == {"window": "30", "sort": "repo"}
    assert page.is_visible("#repos")
    assert focused(page) == "repo-web-shop"

    # The repository filter opens a repo's page too, and a click anywhere on a row does.
    select_by_keyboard(page, "repo", "payments-api")
    assert urllib.parse.urlsplit(page.url).fragment.startswith("/repo/payments-api")
    incident = page.eval_on_selector_all(
        "#failures tbody tr", "(rows) => rows.map((r) => r.cells[1].textContent)"
    )
    assert incident == ["incident"]
    page.go_back()
    settle(page)
    page.click("#repos tr[data-repo='docs-site'] td[data-metric='lead_time']")
    settle(page)
    assert page.inner_text("#view-title") == "docs-site"
    assert page.is_visible("#chart-lead_time-empty")  # deploys that name no commits: no lead time
    assert page.text_content("#tiles [data-metric='lead_time'] .level") == "no level"

    # A long history shows the newest 20 deployments and a button, by keyboard, for all of them.
    assert page.locator("#deployments tbody tr").count() == 20
    assert page.inner_text("#more-deployments") == "Show all 22 deployments"
    tab_to(page, "more-deployments")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#deployments tbody tr').length === 22")
    assert not page.is_visible("#more-deployments")
    assert focused(page) == "deployments-title"


def test_a_shared_repository_link_and_an_unknown_repository(tab: Tab, devstack: LocalStackProcess) -> None:
    page = tab.page
    page.goto(devstack.gateway + "/dashboard#/repo/octo-org%2Fapi-gateway?window=7")
    sign_in(page, devstack.token)
    assert page.inner_text("#view-title") == "octo-org/api-gateway"
    assert page.input_value("#window") == "7"
    expect_tiles(page, get(devstack, "/metrics/octo-org/api-gateway", window="7"))
    assert page.eval_on_selector_all("#deployments tbody tr", "(rows) => rows.length") == 1

    # A repository with no events: the API's 404 reason, not a blank page.
    page.goto(devstack.gateway + "/dashboard#/repo/no-such-repo")
    settle(page)
    assert "no events of repo 'no-such-repo'" in page.inner_text("#error")
    assert not page.is_visible("#tiles")  # no stale numbers under the error


def test_keyboard_order_and_visible_focus(tab: Tab, devstack: LocalStackProcess) -> None:
    page = tab.page
    page.goto(devstack.gateway + "/dashboard")
    sign_in(page, devstack.token)
    order = [focused(page)]
    for _ in range(13):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == [
        "window",
        "team",
        "service",
        "repo",
        "environment",
        "per",
        "SUMMARY",  # each chart's data table, in the order of the five charts
        "SUMMARY",
        "SUMMARY",
        "SUMMARY",
        "SUMMARY",
        "sort-repo",
        "sort-deployment_frequency",
        "sort-lead_time",
    ], order
    page.focus("#repo")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"

    # A chart's data table opens with Enter.
    page.focus("#chart-recovery_time-details summary")
    page.keyboard.press("Enter")
    assert page.get_attribute("#chart-recovery_time-details", "open") is not None
    assert page.locator("#chart-recovery_time-table tbody tr").count() >= 1

    # The skip link moves the focus to the content and keeps the view's URL.
    before = page.url
    page.focus(".skip")
    page.keyboard.press("Enter")
    assert focused(page) == "main"
    assert page.url == before

    # The token lasts the browser session: a reload does not ask again; "Forget token" does.
    page.reload()
    page.wait_for_selector("body[data-loaded='true']")
    assert not page.is_visible("#login")
    page.click("#signout")
    assert page.is_visible("#login")
    assert focused(page) == "token"
