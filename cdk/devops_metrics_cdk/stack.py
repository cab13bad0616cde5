"""The one stack: instantiates the components and grants access between them, nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack, Tags
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from devops_metrics_cdk.alarms import PipelineAlarms
from devops_metrics_cdk.config import StageConfig
from devops_metrics_cdk.constants import APP_NAME, GATEWAY_PORT
from devops_metrics_cdk.dlq import DeadLetterQueue
from devops_metrics_cdk.secrets import PipelineSecrets
from devops_metrics_cdk.services import PipelineServices, ServiceSizes, grant_kcl_application
from devops_metrics_cdk.storage import EventStorage
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

        stream = EventStream(
            self,
            "Events",
            stream_name=names["stream"],
            shard_count=config.stream_shard_count,
            retention_hours=config.stream_retention_hours,
            removal_policy=removal,
        ).stream
        storage = EventStorage(
            self,
            "Storage",
            database_name=names["database"],
            table_name=names["table"],
            state_table_name=names["state_table"],
            memory_retention_hours=config.memory_retention_hours,
            magnetic_retention_days=config.magnetic_retention_days,
            removal_policy=removal,
        )
        secrets = PipelineSecrets(
            self,
            "Secrets",
            token_secret_name=names["secret"],
            new_relic_secret_name=config.new_relic_secret_name,
            removal_policy=removal,
        )
        dlq = DeadLetterQueue(self, "DeadLetters", queue_name=names["dlq"], removal_policy=removal).queue

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
                gateway_workers=config.gateway_workers,
                consumer_desired_count=config.consumer_desired_count,
                aggregator_desired_count=config.aggregator_desired_count,
            ),
            gateway_environment={
                "DEVOPS_STREAM_NAME": stream.stream_name,
                "SECRET_STORE_NAME": secrets.token.secret_name,
                "GATEWAY_HOST": "0.0.0.0",
                "GATEWAY_PORT": str(GATEWAY_PORT),
                # GET /metrics reads the aggregator's state with the aggregator's window
                "AGGREGATOR_STATE_TABLE": storage.state_table.table_name,
                "DEPLOYMENT_FREQ_TIMEFRAME_DAY": str(config.deployment_freq_timeframe_day),
            },
            consumer_environment={
                **common,
                "CONSUMER_APPLICATION_NAME": names["consumer_app"],
                "DEVOPS_DB_NAME": names["database"],
                "DEVOPS_TABLE_NAME": names["table"],
                "NEW_RELIC_REGION": config.new_relic_region,
            },
            aggregator_environment={
                **common,
                "AGGREGATOR_APPLICATION_NAME": names["aggregator_app"],
                "AGGREGATOR_STATE_TABLE": storage.state_table.table_name,
                "DEPLOYMENT_FREQ_TIMEFRAME_DAY": str(config.deployment_freq_timeframe_day),
            },
            consumer_secrets=consumer_secrets,
            certificate_arn=config.certificate_arn,
            log_retention=_LOG_RETENTION[config.log_retention_days],
            nat_gateways=config.nat_gateways,
            removal_policy=removal,
        )

        # -- who may do what ---------------------------------------------------------------------------
        gateway_role = services.gateway.task_definition.task_role
        stream.grant_write(gateway_role)
        secrets.token.grant_read(gateway_role)
        storage.grant_read_metrics(gateway_role)

        consumer_role = services.consumer.task_definition.task_role
        stream.grant_read(consumer_role)
        storage.grant_write_events(consumer_role)
        dlq.grant_send_messages(consumer_role)
        grant_kcl_application(self, consumer_role, names["consumer_app"])

        aggregator_role = services.aggregator.task_definition.task_role
        stream.grant_read_write(aggregator_role)
        storage.state_table.grant_read_write_data(aggregator_role)
        dlq.grant_send_messages(aggregator_role)
        grant_kcl_application(self, aggregator_role, names["aggregator_app"])

        alarms = PipelineAlarms(
            self,
            "Alarms",
            stream=stream,
            kcl_applications={"Consumer": names["consumer_app"], "Aggregator": names["aggregator_app"]},
            load_balancer=services.load_balancer,
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
            "TimestreamDatabase": (names["database"], "Timestream database"),
            "TimestreamTable": (names["table"], "Timestream table"),
            "StateTableName": (storage.state_table.table_name, "Aggregator state table"),
            "DeadLetterQueueUrl": (dlq.queue_url, "Dead-letter queue"),
            "AlarmTopicArn": (alarms.topic.topic_arn, "SNS topic of the alarms"),
            "ClusterName": (services.cluster.cluster_name, "ECS cluster"),
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)


_LOG_RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
