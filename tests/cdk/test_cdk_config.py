"""Deploy-time parameters: CDK context strings validated once, bad values refused before synth."""

from __future__ import annotations

import pytest
from devops_metrics_cdk.config import StageConfig
from devops_metrics_cdk.services import gateway_cpu
from pydantic import ValidationError

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
NEW_RELIC = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devops-metrics/new-relic-Ab12Cd"


def test_context_strings_are_coerced() -> None:
    context = {
        "stage": "prod",
        "stream_shard_count": "4",
        "gateway_workers": "3",
        "certificate_arn": CERTIFICATE,
    }
    config = StageConfig.from_context(context.get)
    assert config.stage == "prod"
    assert config.stream_shard_count == 4
    assert config.gateway_workers == 3
    assert config.https
    assert config.names["consumer_app"] == "devops-metrics-consumer"


def test_defaults() -> None:
    config = StageConfig.from_context({"throwaway": "true"}.get)
    assert config.stage == "test"
    assert config.raw_store == "s3"  # any account can create it
    assert config.stream_shard_count == 0  # on-demand
    assert config.stream_retention_hours == 168
    assert config.kcl_workers == (1, 4)  # on-demand starts with 4 shards, 4 per worker


def test_https_is_required_unless_the_stage_is_a_throwaway() -> None:
    with pytest.raises(ValidationError, match="HTTPS is required"):
        StageConfig.from_context({}.get)
    with pytest.raises(ValidationError, match="prod cannot be a throwaway"):
        StageConfig.model_validate({"stage": "prod", "throwaway": True})
    domain = {"domain_name": "m.example.com", "hosted_zone_id": "Z1", "hosted_zone_name": "example.com"}
    assert StageConfig.model_validate(domain).https
    with pytest.raises(ValidationError, match="go together"):
        StageConfig.model_validate({"domain_name": "m.example.com"})


def test_new_relic_key_needs_the_complete_secret_arn() -> None:
    with pytest.raises(ValidationError, match="new_relic_secret_arn"):
        StageConfig.model_validate({"throwaway": True, "new_relic_secret_name": "devops-metrics/new-relic"})
    with pytest.raises(ValidationError, match="new_relic_secret_arn"):  # a partial ARN (no -XXXXXX)
        StageConfig.model_validate(
            {"throwaway": True, "new_relic_secret_arn": NEW_RELIC.removesuffix("-Ab12Cd")}
        )
    assert StageConfig.model_validate({"throwaway": True, "new_relic_secret_arn": NEW_RELIC})


def test_without_nat_only_what_vpc_endpoints_reach() -> None:
    with pytest.raises(ValidationError, match="New Relic"):
        StageConfig.model_validate({"throwaway": True, "nat_gateways": 0, "new_relic_secret_arn": NEW_RELIC})
    with pytest.raises(ValidationError, match="raw_store=s3"):
        StageConfig.model_validate({"throwaway": True, "nat_gateways": 0, "raw_store": "timestream"})


@pytest.mark.parametrize(
    ("shards", "per_worker", "workers"), [(0, 4, (1, 4)), (8, 4, (2, 8)), (3, 4, (1, 3)), (10, 1, (10, 10))]
)
def test_kcl_workers_follow_the_shard_count(shards: int, per_worker: int, workers: tuple[int, int]) -> None:
    config = StageConfig.model_validate(
        {"throwaway": True, "stream_shard_count": shards, "shards_per_worker": per_worker}
    )
    assert config.kcl_workers == workers


@pytest.mark.parametrize(
    "context",
    [
        {"stage": "staging"},
        {"log_retention_days": "31"},
        {"gateway_workers": "0"},
        {"unknown_key": "1"},
        {"raw_store": "dynamodb"},
        {"stream_retention_hours": "12"},
        {"gateway_desired_count": "5", "gateway_max_count": "2"},
    ],
)
def test_bad_context_is_refused(context: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        StageConfig.model_validate({"throwaway": True, **context})


@pytest.mark.parametrize(
    ("workers", "cpu"), [(1, 256), (2, 512), (3, 1024), (4, 1024), (16, 4096), (64, 4096)]
)
def test_gateway_cpu_gives_each_worker_a_quarter_vcpu(workers: int, cpu: int) -> None:
    assert gateway_cpu(workers) == cpu
