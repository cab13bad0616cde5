"""Deploy-time parameters: CDK context strings validated once, bad values refused before synth."""

from __future__ import annotations

import pytest
from devops_metrics_cdk.config import StageConfig
from devops_metrics_cdk.services import gateway_cpu
from pydantic import ValidationError


def test_context_strings_are_coerced() -> None:
    context = {"stage": "prod", "stream_shard_count": "4", "gateway_workers": "3", "certificate_arn": ""}
    config = StageConfig.from_context(context.get)
    assert config.stage == "prod"
    assert config.stream_shard_count == 4
    assert config.gateway_workers == 3
    assert config.certificate_arn is None  # empty context value = not given
    assert config.names["stream"] == "devops-events"


def test_defaults_are_the_test_stage() -> None:
    config = StageConfig.from_context({}.get)
    assert config.stage == "test"
    assert config.stream_shard_count == 0  # on-demand
    assert config.names["table"] == "DORARawEventsTest"


@pytest.mark.parametrize(
    "context",
    [{"stage": "staging"}, {"log_retention_days": "31"}, {"gateway_workers": "0"}, {"unknown_key": "1"}],
)
def test_bad_context_is_refused(context: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        StageConfig.model_validate(context)


@pytest.mark.parametrize(
    ("workers", "cpu"), [(1, 256), (2, 512), (3, 1024), (4, 1024), (16, 4096), (64, 4096)]
)
def test_gateway_cpu_gives_each_worker_a_quarter_vcpu(workers: int, cpu: int) -> None:
    assert gateway_cpu(workers) == cpu
