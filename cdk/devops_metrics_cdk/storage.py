"""Where state lives: the aggregator's DynamoDB windows, and (raw_store=timestream) Timestream.

No physical names: CloudFormation generates them, the services get them as references, and a failed
first deploy that leaves retained resources behind can simply be retried.
"""

from __future__ import annotations

from aws_cdk import Annotations, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_timestream as timestream
from constructs import Construct

from devops_metrics_cdk.nag import acknowledge

__all__ = ["TIMESTREAM_WARNING", "AggregatorState", "TimestreamStore"]

TIMESTREAM_WARNING = (
    "raw_store=timestream: Amazon Timestream for LiveAnalytics is closed to new customers since "
    "2025-06-20. This stack fails to create in any account that did not use Timestream before then. "
    "Use raw_store=s3 (the default: Firehose -> S3 + Athena) unless this account already has Timestream."
)


class AggregatorState(Construct):
    """The aggregator's windows: pk/sk strings, items expire through the TTL attribute."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy,
        )

    def grant_read_metrics(self, grantee: iam.IGrantable) -> None:
        """The gateway's GET /metrics reads the aggregator's state: BatchGetItem of day buckets and a
        Query of the repo list, on this table only (no index, no write)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"],
            resource_arns=[self.table.table_arn],
        )


class TimestreamStore(Construct):
    """Timestream for LiveAnalytics (only for accounts that already have it): `cdk synth` warns."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        memory_retention_hours: int,
        magnetic_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        Annotations.of(Stack.of(self)).add_warning_v2("devops-metrics:timestream-closed", TIMESTREAM_WARNING)
        self.database = timestream.CfnDatabase(self, "Database")
        acknowledge(
            self.database,
            "AwsSolutions-TS3",
            "Timestream encrypts at rest with the AWS-managed key; the events are CI metadata (repo, "
            "event type, timestamps), not worth a customer key's cost and key-policy upkeep.",
        )
        self.database.apply_removal_policy(removal_policy)
        self.table = timestream.CfnTable(
            self,
            "Table",
            database_name=self.database.ref,
            retention_properties={
                "MemoryStoreRetentionPeriodInHours": str(memory_retention_hours),
                "MagneticStoreRetentionPeriodInDays": str(magnetic_retention_days),
            },
            # Late events (CI reporting hours later, replays) land in the magnetic store, not in a
            # RejectedRecordsException.
            magnetic_store_write_properties={"EnableMagneticStoreWrites": True},
        )
        self.table.apply_removal_policy(removal_policy)
        for resource in (self.database, self.table):
            # cfn-lint W3697 says what the synth warning says (closed to new customers); it is silenced
            # on these two resources only, because choosing Timestream is an explicit decision.
            resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3697"]}})

    @property
    def database_name(self) -> str:
        return self.database.ref

    @property
    def table_name(self) -> str:
        return self.table.attr_name

    def grant_write_events(self, grantee: iam.IGrantable) -> None:
        """WriteRecords on this table only; DescribeEndpoints has no resource (endpoint discovery)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["timestream:WriteRecords", "timestream:DescribeTable"],
            resource_arns=[self.table.attr_arn],
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["timestream:DescribeEndpoints"], resource_arns=["*"]
        )
        if isinstance(grantee.grant_principal, Construct):
            acknowledge(
                grantee.grant_principal,
                "AwsSolutions-IAM5[Resource::*]",
                "timestream:DescribeEndpoints (endpoint discovery, required before any Timestream call) "
                "has no resource type; writes are limited to this table by the other statement.",
            )
