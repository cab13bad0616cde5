"""The one settings object, read from the environment (names kept from the seed service).

Build it in ``main()`` and pass it down; never read the environment anywhere else. AWS endpoints are
deliberately absent: boto3 reads AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> itself.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devops_core.dora.model import DEFAULT_PRODUCTION_PATTERN, DoraConfig

__all__ = ["NEW_RELIC_ENDPOINTS", "Settings"]

NEW_RELIC_ENDPOINTS = {
    "US": "https://log-api.newrelic.com/log/v1",
    "EU": "https://log-api.eu.newrelic.com/log/v1",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", populate_by_name=True)

    # --- auth -------------------------------------------------------------------------------
    devops_events_secret_token: SecretStr | None = Field(
        default=None,
        description="Shared token; when set it is used instead of Secrets Manager.",
    )
    secret_store_name: str = Field(
        default="DevOpsSecretStore", description="Secrets Manager secret holding the token(s)."
    )
    token_refresh_seconds: float = Field(
        default=60.0, gt=0, description="How often the gateway re-reads the secret (rotation)."
    )

    # --- stream -----------------------------------------------------------------------------
    devops_stream_name: str = Field(default="devops-events", description="Kinesis stream.")

    # --- raw-event store ------------------------------------------------------------------------
    raw_store: Literal["s3", "timestream"] = Field(
        default="timestream",
        description="Where the consumer stores every event: s3 (Amazon Data Firehose -> S3, queried with "
        "Athena; any account can create it, the CDK app's default) or timestream (Timestream for "
        "LiveAnalytics, closed to new AWS customers since 2025-06-20).",
    )
    raw_events_delivery_stream: str = Field(
        default="devops-raw-events", description="Firehose delivery stream (RAW_STORE=s3)."
    )
    raw_events_bucket: str = Field(
        default="devops-metrics-raw-events",
        description="S3 bucket the delivery stream writes to (provisioning and readers; the consumer "
        "only talks to Firehose).",
    )
    devops_db_name: str = Field(default="DORAStats", description="Timestream database.")
    devops_table_name: str = Field(default="DORARawEventsTest", description="Timestream table.")

    # --- New Relic ----------------------------------------------------------------------------
    logger_api_key: SecretStr | None = Field(
        default=None, description="New Relic license/ingest key; unset turns the New Relic sink off."
    )
    new_relic_region: Literal["US", "EU"] = "US"
    new_relic_log_endpoint: str | None = Field(
        default=None, description="Explicit Log API URL; overrides NEW_RELIC_REGION."
    )

    # --- aggregator ---------------------------------------------------------------------------
    deployment_freq_timeframe_day: int = Field(default=30, ge=1, le=365)
    aggregator_emit_interval_seconds: float = Field(default=3600.0, gt=0)
    aggregator_state_table: str = Field(default="devops-metrics-aggregator-state")
    aggregator_retention_days: int = Field(
        default=400,
        ge=400,
        description="How long the aggregator keeps events and day facts (at least 400 days, so that the "
        "longest window plus the lookback always finds its events).",
    )
    dora_production_environments: str = Field(
        default=DEFAULT_PRODUCTION_PATTERN,
        description="Regex (re.search) of the environments whose deployments count; an event that names "
        "no environment is in 'production'. Other deployments are stored and shown, never counted.",
    )
    dora_lookback_days: int = Field(
        default=180,
        ge=1,
        le=365,
        description="How far back a deployment looks for the changes it ships and the failures it ends.",
    )
    teams_file: str | None = Field(
        default=None, description="TOML file mapping teams to repos (re-read when it changes)."
    )

    metrics_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long GET /metrics answers are cached in the gateway."
    )

    # --- KCL applications / dead letters / the one retry policy of their processors --------------
    processor_max_backoff_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("processor_max_backoff_seconds", "consumer_max_backoff_seconds"),
        description="Cap of a record processor's backoff while a batch keeps failing (a sink or DynamoDB "
        "down). CONSUMER_MAX_BACKOFF_SECONDS is accepted too.",
    )
    processor_alarm_after_seconds: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("processor_alarm_after_seconds", "aggregator_retry_deadline_seconds"),
        description="A batch still failing after this is logged at ERROR (the shard is blocked: page "
        "someone); it is retried until it succeeds or the processor is stopped.",
    )
    consumer_application_name: str = "devops-metrics-consumer"
    aggregator_application_name: str = "devops-metrics-aggregator"
    dead_letter_queue_name: str = "devops-events-dlq"

    # --- KCL MultiLangDaemon (devops_core.kcl.daemon) -----------------------------------------
    kcl_initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    kcl_retrieval_mode: Literal["POLLING", "FANOUT"] = Field(
        default="POLLING", description="FANOUT = enhanced fan-out (SubscribeToShard, HTTP/2 push)."
    )
    kcl_metrics_level: Literal["NONE", "SUMMARY", "DETAILED"] = "NONE"
    kcl_failover_time_millis: int = Field(default=10_000, ge=1000)
    kcl_shard_sync_interval_millis: int = Field(default=60_000, ge=100)
    kcl_idle_time_between_reads_millis: int = Field(default=1_000, ge=0)
    kcl_max_records: int = Field(default=10_000, ge=1, le=10_000)
    kcl_graceful_lease_handoff: bool = Field(
        default=False,
        description="KCL 3.x graceful lease handoff (isGracefulLeaseHandoffEnabled). Off: in KCL 3.1.3 a "
        "handoff requested before the old owner's processor initialized is never completed, and the "
        "shard is read by no one again (bench/chaos --driver daemon, docs/kcl.md). Off, a moved lease "
        "is lost by the old owner (no checkpoint) and its last batch redelivered, as in KCL 2.x.",
    )

    # --- gateway ------------------------------------------------------------------------------
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    gateway_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Gateway processes sharing one port (producer.multiworker).",
    )
    max_body_bytes: int = Field(default=1024 * 1024, description="Requests above this get a 413.")
    batch_max_records: int = Field(default=500, ge=1, le=500)
    batch_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=5 * 1024 * 1024)
    batch_linger_ms: float = Field(
        default=0.0,
        ge=0,
        description="Extra wait before a partial batch is sent. 0: at once when no other partial batch is "
        "in flight (records arriving meanwhile ride along in the next call, so batches grow with load).",
    )
    batch_max_pending: int = Field(default=20_000, ge=1, description="Queue bound; beyond it: 503.")
    batch_max_in_flight: int = Field(default=4, ge=1, description="Concurrent PutRecords calls.")
    batch_retry_deadline_seconds: float = Field(
        default=8.0,
        gt=0,
        description="How long a request waits for Kinesis to accept its record (botocore's retries and "
        "timeouts and the resending of refused entries included) before it gets a 503; below GitHub's 10 s "
        "webhook timeout and the CI scripts' 15 s per-request limit.",
    )
    body_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request body not fully received within this gets a 408."
    )
    keepalive_timeout_seconds: float = Field(
        default=75.0,
        gt=0,
        description="Idle keep-alive, and the time a new connection has to send its headers; keep it "
        "above the load balancer's idle timeout (ALB: 60 s).",
    )
    rate_limit_per_second: float = Field(
        default=500.0, ge=0, description="Events per second per token (a batch counts its events); 0 = off."
    )
    rate_limit_burst: int = Field(default=1000, ge=1, description="Events a token may send at once.")

    # --- GitHub webhooks (POST /webhooks/github, see docs/github-webhooks.md) -------------------
    github_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Webhook secret; when unset the gateway reads the 'github_webhook_secret' key of "
        "SECRET_STORE_NAME. With neither, the webhook route refuses every delivery.",
    )
    github_test_workflow_pattern: str = Field(
        default=r"(?i)test|\bci\b",
        description="Regex (re.search) on a workflow's name or path: a successful run is a test_pass.",
    )
    github_deploy_workflow_pattern: str = Field(
        default=r"(?i)deploy",
        description="Regex (re.search) on a workflow's name or path: a run is a deploy / deploy_failed.",
    )
    github_deploy_environment_pattern: str | None = Field(
        default=None,
        description="No longer used (a warning at start says so): the webhook route forwards deployments "
        "of every environment, and the metrics decide which environments are production.",
    )
    github_incident_label: str = Field(
        default="incident",
        min_length=1,
        max_length=50,
        description="Issue label (case-insensitive) that makes an issue an incident, as in fourkeys.",
    )
    github_webhook_max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Larger webhook deliveries get a 413."
    )
    github_webhook_unverified_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Bytes of webhook bodies the gateway holds at once before their signature is checked; "
        "a delivery that would exceed it gets a 503 with Retry-After (bounds unauthenticated memory).",
    )
    github_delivery_cache_size: int = Field(
        default=10_000, ge=0, description="Recent X-GitHub-Delivery ids remembered to answer duplicates."
    )

    # --- logging ------------------------------------------------------------------------------
    log_level: str = "INFO"

    @field_validator(
        "github_test_workflow_pattern",
        "github_deploy_workflow_pattern",
        "github_deploy_environment_pattern",
        "dora_production_environments",
    )
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        try:
            re.compile(value or "")
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @property
    def dora_config(self) -> DoraConfig:
        return DoraConfig(re.compile(self.dora_production_environments), self.dora_lookback_days)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def new_relic_url(self) -> str:
        return self.new_relic_log_endpoint or NEW_RELIC_ENDPOINTS[self.new_relic_region]
