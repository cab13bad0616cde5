"""Alarms worth paging on, published to one SNS topic (email subscription optional).

- each KCL application falling behind the stream (its own MillisBehindLatest, plus the stream-wide
  GetRecords.IteratorAgeMilliseconds, the oldest unread record of any reader),
- the gateway answering 5xx to more than 5 % of requests (ALB 503s included when no target is up),
- no healthy gateway task behind the load balancer,
- the dead-letter queue not being empty (a record could not be stored and needs a human).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from devops_metrics_cdk.constants import KCL_LAG_METRIC

__all__ = ["PipelineAlarms", "kcl_lag_query"]

ITERATOR_AGE_THRESHOLD = Duration.minutes(5)
GATEWAY_5XX_PERCENT = 5


def kcl_lag_query(application_name: str) -> str:
    """CloudWatch Metrics Insights over the KCL's own namespace (built from our names, not input)."""
    return f"SELECT MAX({KCL_LAG_METRIC}) FROM \"{application_name}\" WHERE Operation = 'ProcessTask'"  # noqa: S608


class PipelineAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.IStream,
        kcl_applications: dict[str, str],
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        dead_letter_queue: sqs.IQueue,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch can only publish to an encrypted topic whose key lets it; the AWS-managed SNS key
        # does not, hence a customer key.
        self.topic_key = kms.Key(
            self, "TopicKey", enable_key_rotation=True, description="devops-metrics alarm topic"
        )
        self.topic_key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.topic_key, enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        threshold_ms = ITERATOR_AGE_THRESHOLD.to_milliseconds()

        self.alarms["StreamIteratorAge"] = stream.metric_get_records_iterator_age_milliseconds(
            statistic="Maximum", period=Duration.minutes(1)
        ).create_alarm(
            self,
            "StreamIteratorAge",
            alarm_description="The oldest unread record in the stream is older than 5 minutes: a reader "
            "is stuck or too slow.",
            threshold=threshold_ms,
            evaluation_periods=5,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for label, application_name in kcl_applications.items():
            # The KCL publishes MillisBehindLatest per shard (dimensions Operation, ShardId, ...), so a
            # Metrics Insights query takes the worst shard of the application.
            lag = cloudwatch.MathExpression(
                expression=kcl_lag_query(application_name),
                using_metrics={},
                label=f"{application_name} ms behind",
                period=Duration.minutes(1),
            )
            self.alarms[f"{label}Lag"] = lag.create_alarm(
                self,
                f"{label}Lag",
                alarm_description=f"KCL application {application_name} is more than 5 minutes behind "
                "the tip of the stream (or stopped publishing its metrics).",
                threshold=threshold_ms,
                evaluation_periods=5,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                # No data means the workers stopped processing (ProcessTask reports every poll): page.
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )

        five_minutes = Duration.minutes(5)
        lb_metrics = load_balancer.metrics
        error_rate = cloudwatch.MathExpression(
            # FILL: a period in which no target answered has no target5xx datapoint at all (and with
            # every target down the ALB's own 503s are all there is); without FILL the sum has no data
            # either, and the alarm would sit in "not breaching" through the worst outage.
            expression="100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / MAX([FILL(requests, 0), 1])",
            using_metrics={
                "target5xx": lb_metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, statistic="Sum", period=five_minutes
                ),
                "elb5xx": lb_metrics.http_code_elb(
                    elbv2.HttpCodeElb.ELB_5XX_COUNT, statistic="Sum", period=five_minutes
                ),
                "requests": lb_metrics.request_count(statistic="Sum", period=five_minutes),
            },
            label="gateway 5xx %",
            period=five_minutes,
        )
        self.alarms["Gateway5xxRate"] = error_rate.create_alarm(
            self,
            "Gateway5xxRate",
            alarm_description=f"More than {GATEWAY_5XX_PERCENT} % of gateway requests fail with 5xx "
            "(Kinesis unavailable, no healthy task...).",
            threshold=GATEWAY_5XX_PERCENT,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # No healthy gateway task at all: missing data (no targets registered) is as bad as zero.
        self.alarms["GatewayNoHealthyTargets"] = target_group.metrics.healthy_host_count(
            statistic="Minimum", period=Duration.minutes(1)
        ).create_alarm(
            self,
            "GatewayNoHealthyTargets",
            alarm_description="No healthy gateway task behind the load balancer: CI events are refused.",
            threshold=1,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.alarms["DeadLettersWaiting"] = dead_letter_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=Duration.minutes(1)
        ).create_alarm(
            self,
            "DeadLettersWaiting",
            alarm_description="Records were dead-lettered: they could not be stored and need a look.",
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
