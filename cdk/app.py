"""CDK entry point (``cdk synth -c stage=prod``): wires one stack per stage, nothing else."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from devops_metrics_cdk import DevOpsMetricsStack, StageConfig


def build_app(app: cdk.App) -> DevOpsMetricsStack:
    config = StageConfig.from_context(app.node.try_get_context)
    stack = DevOpsMetricsStack(
        app,
        f"DevOpsMetrics-{config.stage}",
        config=config,
        description=f"devops-metrics DORA pipeline ({config.stage})",
    )
    # AwsSolutions findings fail the synth unless acknowledged (with a reason) where they occur.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    app = cdk.App()
    build_app(app)
    app.synth()
