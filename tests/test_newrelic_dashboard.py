"""newrelic/dashboard.json: a valid NerdGraph dashboardCreate input whose NRQL names only what the
consumer sends (newrelic/attributes.json) and only metadata keys the aggregator writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent.parent / "newrelic"
DASHBOARD = json.loads((FOLDER / "dashboard.json").read_text())
ATTRIBUTES = json.loads((FOLDER / "attributes.json").read_text())

NRQL_KEYWORDS = {
    "select", "from", "where", "and", "or", "not", "in", "is", "null", "as", "facet", "since", "until",
    "ago", "timeseries", "limit", "max", "compare", "with", "order", "by", "asc", "desc", "like",
    "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months", "auto",
}  # fmt: skip
NRQL_FUNCTIONS = {"count", "latest", "numeric", "jparse", "average", "sum", "uniquecount", "percentage"}
REQUIRED_METRIC_WIDGETS = {
    "calc_deployment_freq",
    "calc_lead_time",
    "calc_change_failure_rate",
    "calc_recovery_time",
    "calc_rework_rate",
}


def _queries() -> list[str]:
    return [
        query["query"]
        for page in DASHBOARD["pages"]
        for widget in page["widgets"]
        for query in widget["rawConfiguration"]["nrqlQueries"]
    ]


def _identifiers(query: str) -> set[str]:
    """Names a query refers to: everything but string literals, numbers, keywords and function names."""
    without_strings = re.sub(r"'(?:[^'\\]|\\.)*'", " ", query)
    names = set()
    for match in re.finditer(r"[A-Za-z_][\w.]*", without_strings):
        word = match.group()
        following = without_strings[match.end() :].lstrip()
        if word.lower() in NRQL_KEYWORDS:
            continue
        if following.startswith("("):
            assert word.lower() in NRQL_FUNCTIONS, f"unexpected function {word} in {query}"
            continue
        names.add(word)
    return names


def test_is_a_dashboard_create_input() -> None:
    assert DASHBOARD["name"]
    assert DASHBOARD["permissions"] in {"PUBLIC_READ_ONLY", "PUBLIC_READ_WRITE", "PRIVATE"}
    for page in DASHBOARD["pages"]:
        assert page["name"]
        for widget in page["widgets"]:
            assert widget["title"]
            assert widget["visualization"]["id"].startswith("viz.")
            layout = widget["layout"]
            assert 1 <= layout["column"] <= 12
            assert layout["column"] + layout["width"] - 1 <= 12
            for query in widget["rawConfiguration"]["nrqlQueries"]:
                assert query["accountIds"] == [0]  # replaced by the account id at import


@pytest.mark.parametrize("query", _queries())
def test_query_reads_only_the_pipelines_logs(query: str) -> None:
    assert f"FROM {ATTRIBUTES['event_type']} WHERE service = 'devops-metrics'" in query


@pytest.mark.parametrize("query", _queries())
def test_query_names_only_attributes_the_consumer_sends(query: str) -> None:
    names = _identifiers(query) - {ATTRIBUTES["event_type"]}
    assert names <= set(ATTRIBUTES["log_attributes"]), names - set(ATTRIBUTES["log_attributes"])


@pytest.mark.parametrize("query", _queries())
def test_metadata_keys_exist_for_the_queried_metric(query: str) -> None:
    keys = re.findall(r"jparse\(metadata, '(\w+)'\)", query)
    if not keys:
        return
    (metric,) = re.findall(r"event = '(calc_\w+)'", query)
    assert set(keys) <= set(ATTRIBUTES["metadata_keys"][metric])


def test_every_dora_metric_is_shown_per_repo() -> None:
    shown = set()
    for query in _queries():
        shown |= {metric for metric in re.findall(r"event = '(calc_\w+)'", query) if "FACET repo" in query}
    assert shown == REQUIRED_METRIC_WIDGETS
    event_counts = [query for query in _queries() if "count(" in query.lower()]
    assert any("FACET event" in query for query in event_counts)
    # The consumer delivers to New Relic at least once (a crash between POST and checkpoint resends):
    # counting distinct event_ids keeps a resent batch from inflating the counts.
    assert all("uniqueCount(event_id)" in query and "count(*)" not in query for query in event_counts)


def test_metadata_keys_are_exactly_what_the_aggregator_writes() -> None:
    from datetime import date

    from devops_core.dora import DayFacts, Window, summarize

    window = Window(30, date(2026, 11, 27))
    values = summarize({window.last_day: DayFacts(deploys=1)}, window, open_failures=0)
    assert {metric: sorted(keys) for metric, keys in values.items()} == {
        metric: sorted(keys) for metric, keys in ATTRIBUTES["metadata_keys"].items()
    }


def test_identifier_check_catches_unknown_attributes() -> None:
    assert _identifiers("SELECT count(*) FROM Log WHERE service = 'x' FACET repository") == {
        "Log",
        "service",
        "repository",
    }
