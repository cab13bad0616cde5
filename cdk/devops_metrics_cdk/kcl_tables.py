"""The KCL's own DynamoDB tables, created by CloudFormation with the key schemas KCL 3.x expects.

KCL 3.x (amazon-kinesis-client 3.1, DynamoDBLeaseRefresher, CoordinatorStateDAO, WorkerMetricStatsDAO)
describes each table first and creates only what is missing, so when these exist it creates nothing:

- ``<application>``: the lease table, ``leaseKey`` (S) hash key, and the ``LeaseOwnerToLeaseKeyIndex``
  GSI (``leaseOwner`` hash, ``leaseKey`` range, keys only) that KCL 3 would otherwise add itself;
- ``<application>-CoordinatorState``: ``key`` (S) hash key;
- ``<application>-WorkerMetricStats``: ``wid`` (S) hash key.

They are always deleted with the stack (also on a rollback): `cdk destroy` leaves nothing of the
KCL behind, and a redeploy never resumes from checkpoints of a stream that no longer exists.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from devops_metrics_cdk.nag import acknowledge

__all__ = ["LEASE_OWNER_INDEX", "KclTables"]

LEASE_OWNER_INDEX = "LeaseOwnerToLeaseKeyIndex"


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class KclTables(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, application_name: str) -> None:
        super().__init__(scope, construct_id)
        self.application_name = application_name
        common = {"billing": dynamodb.Billing.on_demand(), "removal_policy": RemovalPolicy.DESTROY}
        self.leases = dynamodb.TableV2(
            self,
            "Leases",
            table_name=application_name,
            partition_key=_string("leaseKey"),
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=LEASE_OWNER_INDEX,
                    partition_key=_string("leaseOwner"),
                    sort_key=_string("leaseKey"),
                    projection_type=dynamodb.ProjectionType.KEYS_ONLY,
                )
            ],
            **common,
        )
        self.coordinator_state = dynamodb.TableV2(
            self,
            "CoordinatorState",
            table_name=f"{application_name}-CoordinatorState",
            partition_key=_string("key"),
            **common,
        )
        self.worker_metrics = dynamodb.TableV2(
            self,
            "WorkerMetricStats",
            table_name=f"{application_name}-WorkerMetricStats",
            partition_key=_string("wid"),
            **common,
        )
        self.tables = (self.leases, self.coordinator_state, self.worker_metrics)
        for table in self.tables:
            # Checkpoints are worth keeping for the life of the stream only; PITR would outlive it.
            acknowledge(
                table,
                "AwsSolutions-DDB3",
                "KCL lease/coordinator/worker-metrics state is valid only for this stack's stream and is "
                "rebuilt by the KCL from the stream; point-in-time recovery of it has nothing to restore.",
            )

    def grant(self, grantee: iam.IGrantable) -> None:
        """Item access for the KCL (what it does at run time); no CreateTable, no UpdateTable."""
        actions = [
            "dynamodb:DescribeTable",
            "dynamodb:Scan",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ]
        iam.Grant.add_to_principal(
            grantee=grantee, actions=actions, resource_arns=[table.table_arn for table in self.tables]
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:Query"],
            resource_arns=[f"{self.leases.table_arn}/index/{LEASE_OWNER_INDEX}"],
        )
