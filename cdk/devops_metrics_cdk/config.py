"""Deploy-time parameters, validated once from CDK context (``cdk deploy -c stage=prod -c ...``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devops_metrics_cdk.constants import Stage, resource_names

__all__ = ["LOG_RETENTION_DAYS", "StageConfig"]

LOG_RETENTION_DAYS = frozenset({7, 14, 30, 90, 180, 365})


class StageConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage = "test"
    # Kinesis: 0 = on-demand (the default); N > 0 = provisioned with N shards.
    stream_shard_count: int = Field(default=0, ge=0, le=500)
    stream_retention_hours: int = Field(default=24, ge=24, le=8760)
    # Timestream retention; late events go to the magnetic store (writes to it are on).
    memory_retention_hours: int = Field(default=24, ge=1, le=8766)
    magnetic_retention_days: int = Field(default=3650, ge=1, le=73000)
    # ECS services.
    gateway_desired_count: int = Field(default=2, ge=0, le=50)
    gateway_workers: int = Field(default=1, ge=1, le=16)
    consumer_desired_count: int = Field(default=1, ge=0, le=50)
    aggregator_desired_count: int = Field(default=1, ge=0, le=50)
    deployment_freq_timeframe_day: int = Field(default=30, ge=1, le=365)
    # HTTPS on the load balancer when an ACM certificate ARN is given (HTTP otherwise).
    certificate_arn: str | None = None
    # An existing Secrets Manager secret holding the New Relic license key (its whole string); when
    # absent the consumer runs with its New Relic sink off.
    new_relic_secret_name: str | None = None
    new_relic_region: Literal["US", "EU"] = "US"
    alarm_email: str | None = None
    log_retention_days: int = 30
    nat_gateways: int = Field(default=1, ge=0, le=3)

    @field_validator("certificate_arn", "new_relic_secret_name", "alarm_email", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None

    @field_validator("log_retention_days")
    @classmethod
    def _supported_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {sorted(LOG_RETENTION_DAYS)}")
        return value

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
