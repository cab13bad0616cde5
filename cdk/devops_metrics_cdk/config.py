"""Deploy-time parameters, validated once from CDK context (``cdk deploy -c stage=prod -c ...``)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from devops_metrics_cdk.constants import Stage, resource_names

__all__ = ["LOG_RETENTION_DAYS", "ON_DEMAND_INITIAL_SHARDS", "SECRET_ARN_PATTERN", "StageConfig"]

LOG_RETENTION_DAYS = frozenset({7, 14, 30, 90, 180, 365})


# A Secrets Manager ARN as AWS returns it: the name plus "-" and six random characters. The task
# definition needs this complete ARN; a partial one (what from_secret_name_v2 yields) does not match the
# execution role's grant and the task fails to start (aws-cdk issue: ECS secrets from partial ARNs).
SECRET_ARN_PATTERN = (
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"  # noqa: S105
)
# An on-demand stream starts with 4 shards; its shard count is not known at synth.
ON_DEMAND_INITIAL_SHARDS = 4


class StageConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage = "test"
    # A throwaway stage may serve plain HTTP (no certificate); every other stage requires HTTPS.
    throwaway: bool = False
    # Where raw events are stored: s3 (Firehose -> S3 + Glue + Athena, any account) or timestream
    # (Timestream for LiveAnalytics: only accounts that used it before 2025-06-20).
    raw_store: Literal["s3", "timestream"] = "s3"
    # Kinesis: 0 = on-demand (the default); N > 0 = provisioned with N shards.
    stream_shard_count: int = Field(default=0, ge=0, le=500)
    # 7 days: a raw store or New Relic outage blocks checkpoints, and records must outlive it.
    stream_retention_hours: int = Field(default=168, ge=24, le=8760)
    # Timestream retention; late events go to the magnetic store (writes to it are on).
    memory_retention_hours: int = Field(default=24, ge=1, le=8766)
    magnetic_retention_days: int = Field(default=3650, ge=1, le=73000)
    # ECS services. The gateway scales on CPU and requests between its desired and max count; each KCL
    # application runs one worker per `shards_per_worker` shards and scales on CPU up to one per shard.
    gateway_desired_count: int = Field(default=2, ge=1, le=50)
    gateway_max_count: int = Field(default=10, ge=1, le=100)
    gateway_workers: int = Field(default=1, ge=1, le=16)
    shards_per_worker: int = Field(default=4, ge=1, le=100)
    deployment_freq_timeframe_day: int = Field(default=30, ge=1, le=365)
    # HTTPS: an ACM certificate ARN, or a domain in a Route 53 hosted zone (the stack then creates a
    # DNS-validated certificate and an alias record).
    certificate_arn: str | None = None
    domain_name: str | None = None
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None
    # The complete ARN of an existing Secrets Manager secret holding the New Relic license key (its whole
    # string); when absent the consumer runs with its New Relic sink off.
    new_relic_secret_arn: str | None = Field(default=None, pattern=SECRET_ARN_PATTERN)
    new_relic_secret_name: str | None = None  # replaced by new_relic_secret_arn; refused with a hint
    new_relic_region: Literal["US", "EU"] = "US"
    alarm_email: str | None = None
    log_retention_days: int = 30
    # 0 = no NAT: the tasks reach AWS through VPC endpoints (and cannot reach New Relic or Timestream).
    nat_gateways: int = Field(default=1, ge=0, le=3)

    @field_validator(
        "certificate_arn",
        "domain_name",
        "hosted_zone_id",
        "hosted_zone_name",
        "new_relic_secret_arn",
        "new_relic_secret_name",
        "alarm_email",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None

    @field_validator("throwaway", mode="before")
    @classmethod
    def _context_bool(cls, value: Any) -> Any:
        return value.strip().lower() in {"1", "true", "yes"} if isinstance(value, str) else value

    @field_validator("log_retention_days")
    @classmethod
    def _supported_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {sorted(LOG_RETENTION_DAYS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StageConfig:
        if self.new_relic_secret_name:
            raise ValueError(
                "new_relic_secret_name is replaced by new_relic_secret_arn: pass the secret's complete ARN "
                "(aws secretsmanager describe-secret --secret-id NAME --query ARN), ending in -XXXXXX"
            )
        domain = (self.domain_name, self.hosted_zone_id, self.hosted_zone_name)
        if any(domain) and not all(domain):
            raise ValueError("domain_name, hosted_zone_id and hosted_zone_name go together")
        if self.certificate_arn and self.domain_name:
            raise ValueError("give certificate_arn or domain_name (a certificate is then created), not both")
        if not self.https and not self.throwaway:
            raise ValueError(
                "HTTPS is required: pass -c certificate_arn=<ACM ARN> or -c domain_name=... "
                "-c hosted_zone_id=... -c hosted_zone_name=... (docs/deploy.md); only a stage deployed "
                "with -c throwaway=true may serve plain HTTP"
            )
        if self.throwaway and self.stage == "prod":
            raise ValueError("prod cannot be a throwaway stage")
        if self.gateway_max_count < self.gateway_desired_count:
            raise ValueError("gateway_max_count must be at least gateway_desired_count")
        if self.nat_gateways == 0 and self.new_relic_secret_arn:
            raise ValueError("nat_gateways=0 leaves the consumer no way to New Relic's Log API (internet)")
        if self.nat_gateways == 0 and self.raw_store == "timestream":
            raise ValueError("nat_gateways=0 needs raw_store=s3 (Timestream has no plain VPC endpoint)")
        return self

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn or self.domain_name)

    @property
    def kcl_workers(self) -> tuple[int, int]:
        """(minimum, maximum) KCL workers: one per `shards_per_worker` shards, at most one per shard."""
        shards = self.stream_shard_count or ON_DEMAND_INITIAL_SHARDS
        minimum = math.ceil(shards / self.shards_per_worker)
        return minimum, max(minimum, shards)

    @classmethod
    def from_context(cls, get: Any) -> StageConfig:
        """Build from a ``node.try_get_context``-like getter; unset keys keep their defaults."""
        values = {name: get(name) for name in cls.model_fields}
        return cls.model_validate({key: value for key, value in values.items() if value is not None})

    @property
    def names(self) -> dict[str, str]:
        return resource_names(self.stage)

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"
