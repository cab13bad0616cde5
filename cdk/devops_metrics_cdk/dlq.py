"""The dead-letter queue: records that can never be stored (poison pills, permanent rejections)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from devops_metrics_cdk.nag import acknowledge

__all__ = ["DeadLetterQueue"]


class DeadLetterQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(  # no queue name: retry-safe when a failed deploy retained it
            self,
            "Queue",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=removal_policy,
        )
        acknowledge(
            self.queue,
            "AwsSolutions-SQS3",
            "This queue is itself the pipeline's dead-letter queue; its messages are inspected and "
            "replayed by an operator (alarm: DLQ not empty), never redriven automatically.",
        )
