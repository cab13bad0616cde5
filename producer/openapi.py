"""/openapi.json, generated from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from devops_core.events import EventIn
from producer.api_models import Accepted, BatchResponse, ErrorBody, Health
from producer.github.models import WebhookResponse
from producer.metrics_models import MetricsOverview, RepoActivity, RepoMetrics

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _github_webhook(components: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    answer = _schema(WebhookResponse, components)
    headers = [
        ("X-Hub-Signature-256", True, "sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>"),
        ("X-GitHub-Event", True, "push, deployment_status, workflow_run, issues, ping; others are ignored"),
        ("X-GitHub-Delivery", True, "Delivery GUID (logged; event ids derive from the payload, not from it)"),
    ]
    return {
        "post": {
            "summary": "GitHub webhook deliveries (push, deployment_status, workflow_run, issues, ping)",
            "description": "Authenticated by GitHub's HMAC signature instead of the bearer token. "
            "See docs/github-webhooks.md for the mapping to DevOps events.",
            "security": [{"githubSignature": []}],
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": required,
                    "schema": {"type": "string"},
                    "description": text,
                }
                for name, required, text in headers
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object", "description": "GitHub's payload"}},
                    "application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "properties": {"payload": {"type": "string"}}}
                    },
                },
            },
            "responses": {
                "200": _json(answer, "ping answered; nothing stored."),
                "202": _json(
                    answer,
                    "accepted (events written to Kinesis), ignored (event or action not mapped), "
                    "or duplicate (redelivery of an accepted delivery).",
                ),
                "400": _json(
                    error, "Missing X-GitHub-Event / X-GitHub-Delivery, or the payload is not JSON."
                ),
                "401": _json(error, "Missing or wrong X-Hub-Signature-256 (SHA-1 alone is refused)."),
                "413": _json(error, "Delivery larger than GITHUB_WEBHOOK_MAX_BODY_BYTES."),
                "415": _json(error, "Content type is neither application/json nor form-encoded."),
                "422": _json(
                    error,
                    "A field the mapping needs is missing or invalid, or a time is out of range; "
                    "detail names the field.",
                ),
                "503": _json(
                    error,
                    "No webhook secret configured, Kinesis did not accept the events, or too many unverified "
                    "deliveries are being received at once (Retry-After).",
                ),
            },
        }
    }


def _metrics_paths(components: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    window = {
        "name": "window",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "enum": [7, 30, 90]},
        "description": "Window in days, ending today (UTC); default DEPLOYMENT_FREQ_TIMEFRAME_DAY.",
    }

    def query(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": description,
        }

    environment = query(
        "environment",
        "'production' (default: every environment DORA_PRODUCTION_ENVIRONMENTS matches), or one other "
        "environment that stored events name (an unknown one is a 404).",
    )
    repo = {"name": "repo", "in": "path", "required": True, "schema": {"type": "string"}}
    common = {
        "401": _json(error, "Missing or wrong bearer token."),
        "422": _json(
            error,
            "window is not 7, 30 or 90, a parameter is repeated or empty, or the route does not take it; "
            "detail names the field and the reason.",
        ),
        "503": _json(error, "The aggregator's state table is unavailable; retry after Retry-After seconds."),
    }
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/metrics": {
            "get": {
                "summary": "DORA metrics, levels and daily series of ALL and every repo seen in the window",
                "description": "Read from the aggregator's state (docs/dashboard.md); cached a few seconds.",
                "security": secured,
                "parameters": [
                    window,
                    query(
                        "team",
                        "Only this team's repositories and events (the teams file, or events naming it).",
                    ),
                    query("service", "Only the events naming this service (not with team)."),
                    environment,
                ],
                "responses": {
                    "200": _json(_schema(MetricsOverview, components), "Metrics."),
                    "404": _json(error, "No stored event names this team, service or environment."),
                    **common,
                },
            }
        },
        "/metrics/{repo}": {
            "get": {
                "summary": "DORA metrics, levels and daily series of one repo (or ALL)",
                "security": secured,
                "parameters": [repo, window, environment],
                "responses": {
                    "200": _json(_schema(RepoMetrics, components), "Metrics."),
                    "404": _json(error, "No stored event of this repo, or of this environment."),
                    **common,
                },
            }
        },
        "/deployments/{repo}": {
            "get": {
                "summary": "One repo's deployments (with the changes each shipped first and their lead "
                "times) and failures in the window, newest first: the dashboard's drill-down",
                "security": secured,
                "parameters": [repo, window],
                "responses": {
                    "200": _json(_schema(RepoActivity, components), "Deployments and failures."),
                    "404": _json(error, "No stored event of this repo."),
                    **common,
                },
            }
        },
        "/dashboard": {
            "get": {
                "summary": "The metrics dashboard (HTML; it asks for the token and calls /metrics)",
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}},
            }
        },
    }


def build_openapi(*, max_body_bytes: int, max_batch: int) -> dict[str, Any]:
    components: dict[str, Any] = {}
    event = _schema(EventIn, components)
    error = _schema(ErrorBody, components)
    errors = {
        "400": _json(error, "Malformed JSON."),
        "401": _json(error, "Missing or wrong bearer token."),
        "408": _json(error, "Body not received in time; the connection is closed."),
        "413": _json(error, f"Body larger than {max_body_bytes} bytes."),
        "415": _json(error, "Content-Type is not application/json."),
        "422": _json(error, "Validation failed; detail names each field and the reason."),
        "429": _json(error, "Per-token rate limit exceeded (a batch counts its events); see Retry-After."),
        "503": _json(error, "Kinesis unavailable or queue full; retry after Retry-After seconds."),
    }
    seed_body = {
        "type": "object",
        "description": "The seed service's body; mapped to the lower-case fields.",
        "properties": {
            "Time": {"type": "string"},
            "Repo": {"type": "string"},
            "Event": {"type": "string"},
            "Metadata": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        },
        "required": ["Repo", "Event"],
        "additionalProperties": False,
    }
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "devops-metrics gateway",
            "version": "1",
            "description": "Accepts DevOps events from CI/CD jobs and writes them to Kinesis. "
            "A 202 means Kinesis has durably accepted the event.",
        },
        "paths": {
            "/process-event": {
                "post": {
                    "summary": "Report one event",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"anyOf": [event, seed_body]}}},
                    },
                    "responses": {
                        "202": _json(_schema(Accepted, components), "Accepted by Kinesis."),
                        **errors,
                    },
                }
            },
            "/events": {
                "post": {
                    "summary": f"Report up to {max_batch} events; one result per event",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": event,
                                    "minItems": 1,
                                    "maxItems": max_batch,
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_schema(BatchResponse, components), "All events accepted."),
                        "207": _json(
                            {"$ref": _REF.format(model="BatchResponse")}, "Some events not accepted."
                        ),
                        **errors,
                    },
                }
            },
            "/webhooks/github": _github_webhook(components, error),
            **_metrics_paths(components, error),
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": _json(_schema(Health, components), "Alive.")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: token loaded, Kinesis reachable and accepting records",
                    "responses": {
                        "200": _json({"$ref": _REF.format(model="Health")}, "Ready."),
                        "503": _json({"$ref": _REF.format(model="Health")}, "Not ready; checks say why."),
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "githubSignature": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature-256"},
            },
        },
    }
