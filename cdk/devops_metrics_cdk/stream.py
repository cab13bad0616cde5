"""The Kinesis data stream every event goes through (gateway -> consumer/aggregator -> back)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

__all__ = ["EventStream"]


class EventStream(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shard_count: int,
        retention_hours: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        provisioned = shard_count > 0
        # No stream name: a retained stream from a failed first deploy never blocks the retry.
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.PROVISIONED if provisioned else kinesis.StreamMode.ON_DEMAND,
            shard_count=shard_count if provisioned else None,
            # Longer than any sink outage the alarms let pass unnoticed: the consumer does not checkpoint
            # while a sink is down, and records older than the retention would be lost.
            retention_period=Duration.hours(retention_hours),
            # The AWS-managed key (aws/kinesis): encrypted at rest, no key policy to keep in sync.
            encryption=kinesis.StreamEncryption.MANAGED,
            removal_policy=removal_policy,
        )
