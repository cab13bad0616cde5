"""Schemathesis fuzzes the real gateway (``python -m producer`` on a real port) from its own /openapi.json.

Each generated request, valid or not, must get an answer the spec documents: never a 5xx (a 503
only when Kinesis is unavailable, which it is not here), every error a JSON ``{"error", "detail"}``,
every body matching its declared schema, invalid input always rejected with a 4xx.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hardening.conftest import GatewayProcess
from tests.producer.conftest import bearer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# /events validates each event on its own and answers 207 with one result per event, which
# schemathesis' negative_data_rejection counts as "accepted"; there the test asserts "not 202".
BATCH_CHECKS = [check for check in CHECKS if check is not negative_data_rejection]
OPERATIONS = [
    ("POST", "/process-event", GenerationMode.POSITIVE, 60),
    ("POST", "/process-event", GenerationMode.NEGATIVE, 60),
    ("POST", "/events", GenerationMode.POSITIVE, 25),
    ("POST", "/events", GenerationMode.NEGATIVE, 40),
    ("GET", "/healthz", GenerationMode.POSITIVE, 5),
    ("GET", "/readyz", GenerationMode.POSITIVE, 5),
    ("GET", "/openapi.json", GenerationMode.POSITIVE, 5),
]


@pytest.fixture(scope="module")
def api_schema(gateway_process: GatewayProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway_process.url}/openapi.json")


@pytest.mark.parametrize(("method", "path", "mode", "examples"), OPERATIONS)
def test_generated_requests_get_documented_answers(
    api_schema: schemathesis.BaseSchema,
    gateway_process: GatewayProcess,
    method: str,
    path: str,
    mode: GenerationMode,
    examples: int,
) -> None:
    auth = bearer(gateway_process.token)
    statuses: Counter[int] = Counter()
    checks = BATCH_CHECKS if path == "/events" else CHECKS

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        # The valid token replaces the generated Authorization, unless the case broke that header on
        # purpose; then it is sent as generated and must get a 401.
        bad_auth = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
        headers = {} if bad_auth else auth
        response = case.call(base_url=gateway_process.url, headers=headers, timeout=10)
        case.validate_response(response, checks=checks, headers=headers)
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text
        if bad_auth:
            assert response.status_code == 401, response.text
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY):
            assert response.status_code != 202, response.text
        if response.status_code >= 400:
            body = json.loads(response.text)
            assert set(body) == {"error", "detail"}, body

    check()
    if path in {"/process-event", "/events"} and mode is GenerationMode.POSITIVE:
        assert statuses[202] + statuses[207] > 0, f"no generated event was accepted: {statuses}"


def test_gateway_logged_no_unhandled_error(gateway_process: GatewayProcess) -> None:
    """Runs after the fuzz (same module): nothing reached the catch-all 500 handler."""
    assert "unhandled error" not in gateway_process.log.read_text()
