"""The raw-event store any account can create (raw_store=s3, the default).

consumer --PutRecordBatch--> Firehose (DirectPut) --GZIP JSON lines--> S3 ``events/dt=YYYY-MM-DD/``
Glue table ``raw_events`` over that prefix (partition projection on ``dt``, no crawler), an Athena
workgroup (results under ``athena-results/`` of the same bucket, SSE-S3, its settings enforced) and the
named queries: the ``events_deduped`` view (one row per event_id, the first received) and the DORA
metrics (devops_metrics_cdk/athena/, proven in DuckDB by tests/cdk/test_raw_store_sql.py).

The consumer stays the only writer and checkpoints only after Firehose took every record; Firehose
then delivers at least once, and the view removes the duplicates exactly.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from devops_metrics_cdk.athena import RAW_EVENT_COLUMNS, RAW_TABLE, named_queries
from devops_metrics_cdk.nag import acknowledge

__all__ = ["EVENTS_PREFIX", "RESULTS_PREFIX", "S3RawStore"]

EVENTS_PREFIX = "events/"
ERRORS_PREFIX = "errors/"
RESULTS_PREFIX = "athena-results/"
PROJECTION_START = "2025-01-01"


class S3RawStore(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        glue_database_name: str,
        workgroup_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        destroy = removal_policy == RemovalPolicy.DESTROY
        # No bucket name: retained in prod, and a retry after a failed first deploy must not collide.
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(prefix=RESULTS_PREFIX, expiration=Duration.days(30)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
            removal_policy=removal_policy,
            # a throwaway/test stack is torn down completely, objects included
            auto_delete_objects=destroy,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Only Firehose writes and Athena reads this bucket, both through IAM roles of this stack; "
            "CloudTrail data events are the place for object-level audit, not a second log bucket.",
        )

        log_group = logs.LogGroup(
            self, "DeliveryLogs", retention=log_retention, removal_policy=removal_policy
        )
        log_stream = logs.LogStream(self, "DeliveryErrors", log_group=log_group)
        self.delivery_role = iam.Role(
            self, "DeliveryRole", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com")
        )
        self.delivery_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:ListBucket",
                         "s3:ListBucketMultipartUploads"],
                resources=[self.bucket.bucket_arn],
            )
        )  # fmt: skip
        self.delivery_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                resources=[self.bucket.arn_for_objects(f"{EVENTS_PREFIX}*"),
                           self.bucket.arn_for_objects(f"{ERRORS_PREFIX}*")],
            )
        )  # fmt: skip
        log_group.grant_write(self.delivery_role)
        bucket_id = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))  # type: ignore[arg-type]
        for prefix in (EVENTS_PREFIX, ERRORS_PREFIX):
            acknowledge(
                self.delivery_role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                f"Firehose writes objects with generated names under the {prefix} prefix of this stack's "
                "bucket; the wildcard is exactly those object keys.",
            )
        self.delivery_stream = firehose.CfnDeliveryStream(
            self,
            "DeliveryStream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=self.delivery_role.role_arn,
                prefix=f"{EVENTS_PREFIX}dt=!{{timestamp:yyyy-MM-dd}}/",
                error_output_prefix=f"{ERRORS_PREFIX}!{{firehose:error-output-type}}/dt=!{{timestamp:yyyy-MM-dd}}/",
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=60, size_in_m_bs=int(Size.mebibytes(16).to_mebibytes())
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )  # fmt: skip
        # the role's policy must exist before Firehose checks it can write (the role itself is a GetAtt)
        policy = self.delivery_role.node.find_child("DefaultPolicy")
        self.delivery_stream.node.add_dependency(policy)

        # Metadata: deleted with the stack (the data stays in the bucket; the table is re-created).
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=glue_database_name, description="devops-metrics raw events (Firehose -> S3)"
            ),
        )
        location = f"s3://{self.bucket.bucket_name}/{EVENTS_PREFIX}"
        self.table = glue.CfnTable(
            self,
            "Table",
            catalog_id=stack.account,
            database_name=glue_database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=RAW_TABLE,
                description="Every event the consumer stored, duplicates included; query events_deduped",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    "projection.enabled": "true",
                    "projection.dt.type": "date",
                    "projection.dt.format": "yyyy-MM-dd",
                    "projection.dt.range": f"{PROJECTION_START},NOW",
                    "projection.dt.interval": "1",
                    "projection.dt.interval.unit": "DAYS",
                    "storage.location.template": f"{location}dt=${{dt}}/",
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name="dt", type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hive.hcatalog.data.JsonSerDe"
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=kind)
                        for name, kind in RAW_EVENT_COLUMNS.items()
                    ],
                ),
            ),
        )
        self.table.node.add_dependency(self.database)

        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=workgroup_name,
            description="devops-metrics: SQL over the raw events",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=10 * 1024**3,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.bucket.bucket_name}/{RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )
        self.queries: list[athena.CfnNamedQuery] = []
        for query in named_queries():
            named = athena.CfnNamedQuery(
                self,
                f"Query-{query.name}",
                name=query.name,
                description=query.description,
                database=glue_database_name,
                work_group=self.workgroup.ref,
                query_string=query.sql,
            )
            named.node.add_dependency(self.table)
            self.queries.append(named)
        for resource in (self.database, self.table, self.workgroup):
            resource.apply_removal_policy(RemovalPolicy.DESTROY)

    def grant_write_events(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["firehose:PutRecordBatch", "firehose:PutRecord"],
            resource_arns=[self.delivery_stream.attr_arn],
        )
