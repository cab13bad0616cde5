"""The one stack: instantiates the components and grants access between them, nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CfnResource, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from devops_metrics_cdk.alarms import PipelineAlarms
from devops_metrics_cdk.config import StageConfig
from devops_metrics_cdk.constants import APP_NAME, GATEWAY_PORT
from devops_metrics_cdk.dlq import DeadLetterQueue
from devops_metrics_cdk.kcl_tables import KclTables
from devops_metrics_cdk.raw_store import S3RawStore
from devops_metrics_cdk.secrets import PipelineSecrets
from devops_metrics_cdk.services import Https, PipelineServices, ServiceSizes, grant_kcl_metrics
from devops_metrics_cdk.storage import AggregatorState, TimestreamStore
from devops_metrics_cdk.stream import EventStream

__all__ = ["DevOpsMetricsStack"]


class DevOpsMetricsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        names = config.names
        # prod keeps its data when the stack goes; test can be torn down completely.
        removal = RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY
        Tags.of(self).add("app", APP_NAME)
        Tags.of(self).add("stage", config.stage)

        log_retention = _LOG_RETENTION[config.log_retention_days]
        stream = EventStream(
            self,
            "Events",
            shard_count=config.stream_shard_count,
            retention_hours=config.stream_retention_hours,
            removal_policy=removal,
        ).stream
        state = AggregatorState(self, "Storage", removal_policy=removal)
        raw_store: S3RawStore | TimestreamStore
        if config.raw_store == "s3":
            raw_store = S3RawStore(
                self,
                "RawEvents",
                glue_database_name=names["glue_database"],
                workgroup_name=names["workgroup"],
                log_retention=log_retention,
                removal_policy=removal,
            )
            raw_store_environment = {
                "RAW_STORE": "s3",
                "RAW_EVENTS_DELIVERY_STREAM": raw_store.delivery_stream.ref,
                "RAW_EVENTS_BUCKET": raw_store.bucket.bucket_name,
            }
        else:
            raw_store = TimestreamStore(
                self,
                "Timestream",
                memory_retention_hours=config.memory_retention_hours,
                magnetic_retention_days=config.magnetic_retention_days,
                removal_policy=removal,
            )
            raw_store_environment = {
                "RAW_STORE": "timestream",
                "DEVOPS_DB_NAME": raw_store.database_name,
                "DEVOPS_TABLE_NAME": raw_store.table_name,
            }
        secrets = PipelineSecrets(
            self, "Secrets", new_relic_secret_arn=config.new_relic_secret_arn, removal_policy=removal
        )
        dlq = DeadLetterQueue(self, "DeadLetters", removal_policy=removal).queue
        kcl_tables = {
            "consumer": KclTables(self, "ConsumerKcl", application_name=names["consumer_app"]),
            "aggregator": KclTables(self, "AggregatorKcl", application_name=names["aggregator_app"]),
        }

        common = {
            "DEVOPS_STREAM_NAME": stream.stream_name,
            "DEAD_LETTER_QUEUE_NAME": dlq.queue_name,
            # The IAM grants below are sized for polling (no enhanced fan-out consumers), and the lag
            # alarms need the KCL's SUMMARY metrics (MillisBehindLatest).
            "KCL_RETRIEVAL_MODE": "POLLING",
            "KCL_METRICS_LEVEL": "SUMMARY",
        }
        consumer_secrets = (
            {"LOGGER_API_KEY": ecs.Secret.from_secrets_manager(secrets.new_relic_key)}
            if secrets.new_relic_key
            else {}
        )
        services = PipelineServices(
            self,
            "Services",
            sizes=ServiceSizes(
                gateway_desired_count=config.gateway_desired_count,
                gateway_max_count=config.gateway_max_count,
                gateway_workers=config.gateway_workers,
                kcl_workers=config.kcl_workers,
            ),
            gateway_environment={
                "DEVOPS_STREAM_NAME": stream.stream_name,
                # the ARN: GetSecretValue takes it as the secret id, and the secret has no fixed name
                "SECRET_STORE_NAME": secrets.token.secret_arn,
                "GATEWAY_HOST": "0.0.0.0",
                "GATEWAY_PORT": str(GATEWAY_PORT),
                # GET /metrics reads the aggregator's state with the aggregator's window
                "AGGREGATOR_STATE_TABLE": state.table.table_name,
                "DEPLOYMENT_FREQ_TIMEFRAME_DAY": str(config.deployment_freq_timeframe_day),
            },
            consumer_environment={
                **common,
                **raw_store_environment,
                "CONSUMER_APPLICATION_NAME": names["consumer_app"],
                "NEW_RELIC_REGION": config.new_relic_region,
            },
            aggregator_environment={
                **common,
                "AGGREGATOR_APPLICATION_NAME": names["aggregator_app"],
                "AGGREGATOR_STATE_TABLE": state.table.table_name,
                "DEPLOYMENT_FREQ_TIMEFRAME_DAY": str(config.deployment_freq_timeframe_day),
            },
            consumer_secrets=consumer_secrets,
            https=Https(
                certificate_arn=config.certificate_arn,
                domain_name=config.domain_name,
                hosted_zone_id=config.hosted_zone_id,
                hosted_zone_name=config.hosted_zone_name,
            ),
            log_retention=log_retention,
            nat_gateways=config.nat_gateways,
            removal_policy=removal,
        )

        # -- who may do what ---------------------------------------------------------------------------
        gateway_role = services.gateway.task_definition.task_role
        stream.grant_write(gateway_role)
        # /readyz asks Kinesis about the stream (DescribeStreamSummary): without it the gateway is
        # never ready in AWS (moto does not enforce IAM, so only the template test sees this).
        iam.Grant.add_to_principal(
            grantee=gateway_role, actions=["kinesis:DescribeStreamSummary"], resource_arns=[stream.stream_arn]
        )
        secrets.token.grant_read(gateway_role)
        state.grant_read_metrics(gateway_role)

        consumer_role = services.consumer.task_definition.task_role
        stream.grant_read(consumer_role)
        raw_store.grant_write_events(consumer_role)
        dlq.grant_send_messages(consumer_role)

        aggregator_role = services.aggregator.task_definition.task_role
        stream.grant_read_write(aggregator_role)
        state.table.grant_read_write_data(aggregator_role)
        dlq.grant_send_messages(aggregator_role)

        for name, service, role in (
            ("consumer", services.consumer, consumer_role),
            ("aggregator", services.aggregator, aggregator_role),
        ):
            tables = kcl_tables[name]
            tables.grant(role)
            grant_kcl_metrics(role, tables.application_name)
            # Deleted after the service stopped: a running KCL never sees its tables vanish mid-stop.
            service.node.add_dependency(tables)

        alarms = PipelineAlarms(
            self,
            "Alarms",
            stream=stream,
            kcl_applications={"Consumer": names["consumer_app"], "Aggregator": names["aggregator_app"]},
            load_balancer=services.load_balancer,
            target_group=services.gateway.target_group,
            dead_letter_queue=dlq,
            alarm_email=config.alarm_email,
        )

        outputs = {
            "GatewayUrl": (
                services.gateway_url,
                "Base URL CI jobs post to (API_DEVOPS_EVENT_CATCHER = <it>/process-event)",
            ),
            "StreamName": (stream.stream_name, "Kinesis stream"),
            "TokenSecretArn": (
                secrets.token.secret_arn,
                "Secret holding the gateway token (JSON key 'token')",
            ),
            "RawStore": (config.raw_store, "Where raw events are stored"),
            "StateTableName": (state.table.table_name, "Aggregator state table"),
            "DeadLetterQueueUrl": (dlq.queue_url, "Dead-letter queue"),
            "AlarmTopicArn": (alarms.topic.topic_arn, "SNS topic of the alarms"),
            "ClusterName": (services.cluster.cluster_name, "ECS cluster"),
        }
        if isinstance(raw_store, S3RawStore):
            outputs |= {
                "RawEventsBucket": (raw_store.bucket.bucket_name, "S3 bucket of the raw events"),
                "AthenaWorkGroup": (raw_store.workgroup.ref, "Athena workgroup (named DORA queries)"),
                "GlueDatabase": (names["glue_database"], "Glue database holding raw_events"),
            }
        else:
            outputs |= {
                "TimestreamDatabase": (raw_store.database_name, "Timestream database"),
                "TimestreamTable": (raw_store.table_name, "Timestream table"),
            }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
        _silence_cdk_provider_depends_on(self)


def _silence_cdk_provider_depends_on(stack: Stack) -> None:
    """aws-cdk-lib's own custom resource providers (S3 auto-delete, VPC default security group) declare
    a DependsOn on their role that their GetAtt already implies (cfn-lint W3005): redundant, harmless,
    generated by the library. Silenced on exactly those handlers."""
    for construct in stack.node.find_all():
        if isinstance(construct, CfnResource) and construct.node.path.endswith(
            "CustomResourceProvider/Handler"
        ):
            construct.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})


_LOG_RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
