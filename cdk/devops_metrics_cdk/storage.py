"""Where events and metric state live: Timestream (every event) and DynamoDB (aggregator windows)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_timestream as timestream
from constructs import Construct

from devops_metrics_cdk.nag import acknowledge

__all__ = ["EventStorage"]


class EventStorage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        database_name: str,
        table_name: str,
        state_table_name: str,
        memory_retention_hours: int,
        magnetic_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database = timestream.CfnDatabase(self, "Database", database_name=database_name)
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
            database_name=database_name,
            table_name=table_name,
            retention_properties={
                "MemoryStoreRetentionPeriodInHours": str(memory_retention_hours),
                "MagneticStoreRetentionPeriodInDays": str(magnetic_retention_days),
            },
            # Late events (CI reporting hours later, replays) land in the magnetic store, not in a
            # RejectedRecordsException.
            magnetic_store_write_properties={"EnableMagneticStoreWrites": True},
        )
        self.table.node.add_dependency(self.database)
        self.table.apply_removal_policy(removal_policy)

        # The aggregator's windows: pk/sk strings, items expire through the TTL attribute.
        self.state_table = dynamodb.TableV2(
            self,
            "AggregatorState",
            table_name=state_table_name,
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
            resource_arns=[self.state_table.table_arn],
        )

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
