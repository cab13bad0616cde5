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
# (with a GSI on leaseOwner) and two tables for worker metrics and coordinator state. CloudFormation
# creates them with the KCL's key schemas (kcl_tables.py); the KCL finds them and creates nothing.
KCL_TABLE_SUFFIXES = ("", "-CoordinatorState", "-WorkerMetricStats")
# KCL publishes its metrics (MillisBehindLatest...) to a CloudWatch namespace named after the app.
KCL_LAG_METRIC = "MillisBehindLatest"

# Physical names: only for what the running services must know before deploy-time references exist,
# and never on a retained resource (a failed first deploy leaves retained resources behind, and a retry
# with the same fixed names fails with "already exists"). The KCL application name is also its lease
# table's name and its CloudWatch namespace; the KCL tables are deleted with the stack (rollback
# included), so the name never collides on a retry and a redeploy never finds stale checkpoints.
_NAMES: dict[str, dict[str, str]] = {
    "prod": {
        "consumer_app": "devops-metrics-consumer",
        "aggregator_app": "devops-metrics-aggregator",
        "glue_database": "devops_metrics",
        "workgroup": "devops-metrics",
    },
    "test": {
        "consumer_app": "devops-metrics-consumer-test",
        "aggregator_app": "devops-metrics-aggregator-test",
        "glue_database": "devops_metrics_test",
        "workgroup": "devops-metrics-test",
    },
}


def resource_names(stage: Stage) -> dict[str, str]:
    return dict(_NAMES[stage])
