"""The devops-metrics AWS CDK app: one stack per stage, one construct per component."""

from devops_metrics_cdk.config import StageConfig
from devops_metrics_cdk.stack import DevOpsMetricsStack

__all__ = ["DevOpsMetricsStack", "StageConfig"]
