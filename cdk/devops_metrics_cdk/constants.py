"""Names shared by the stack and the running services (the env names are the app's Settings fields)."""

from __future__ import annotations

from typing import Literal

Stage = Literal["test", "prod"]

APP_NAME = "devops-metrics"
GATEWAY_PORT = 8000
HEALTH_CHECK_PATH = "/healthz"
# The image's entry point (docker/entrypoint.sh) takes one of these as its first argument.
GATEWAY_COMMAND = ["gateway"]
CONSUMER_COMMAND = ["consumer"]
AGGREGATOR_COMMAND = ["aggregator"]

# KCL 3.x keeps its state in DynamoDB tables named after the application: the lease table itself
# (with a GSI on leaseOwner) and two tables for worker metrics and coordinator state.
KCL_TABLE_SUFFIXES = ("", "-CoordinatorState", "-WorkerMetricStats")
# KCL publishes its metrics (MillisBehindLatest...) to a CloudWatch namespace named after the app.
KCL_LAG_METRIC = "MillisBehindLatest"

# Physical names per stage. prod keeps the seed service's names; test gets its own so both stages
# can live in one account and region.
_NAMES: dict[str, dict[str, str]] = {
    "prod": {
        "stream": "devops-events",
        "database": "DORAStats",
        "table": "DORARawEvents",
        "secret": "DevOpsSecretStore",
        "dlq": "devops-events-dlq",
        "state_table": "devops-metrics-aggregator-state",
        "consumer_app": "devops-metrics-consumer",
        "aggregator_app": "devops-metrics-aggregator",
    },
    "test": {
        "stream": "devops-events-test",
        "database": "DORAStatsTest",
        "table": "DORARawEventsTest",
        "secret": "DevOpsSecretStoreTest",
        "dlq": "devops-events-dlq-test",
        "state_table": "devops-metrics-aggregator-state-test",
        "consumer_app": "devops-metrics-consumer-test",
        "aggregator_app": "devops-metrics-aggregator-test",
    },
}


def resource_names(stage: Stage) -> dict[str, str]:
    return dict(_NAMES[stage])
