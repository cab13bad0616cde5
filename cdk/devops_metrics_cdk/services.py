"""The three deployables as ECS Fargate services, all from one image built from the repo's Dockerfile.

gateway    behind an Application Load Balancer (HTTPS when a certificate is given), health check /healthz
consumer   KCL application: stream -> Timestream + New Relic, DLQ for records that can never succeed
aggregator KCL application: stream -> DynamoDB windows -> calc_* events back into the stream
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from devops_metrics_cdk.constants import (
    AGGREGATOR_COMMAND,
    APP_NAME,
    CONSUMER_COMMAND,
    GATEWAY_COMMAND,
    GATEWAY_PORT,
    HEALTH_CHECK_PATH,
    KCL_TABLE_SUFFIXES,
)
from devops_metrics_cdk.nag import acknowledge

__all__ = ["REPO_ROOT", "PipelineServices", "ServiceSizes", "grant_kcl_application"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServiceSizes:
    gateway_desired_count: int
    gateway_workers: int
    consumer_desired_count: int
    aggregator_desired_count: int


def gateway_cpu(workers: int) -> int:
    """Fargate CPU units for N gateway processes: the next valid size with >= 1/4 vCPU per worker."""
    return min(4096, 256 * 2 ** math.ceil(math.log2(workers)))


def grant_kcl_application(scope: Construct, grantee: iam.IGrantable, application_name: str) -> None:
    """What the KCL needs for its own metadata (AWS's documented minimum for KCL 3.x), nothing more.

    The KCL creates its lease table (named after the application), the coordinator-state and
    worker-metrics tables and the lease table's GSI itself; it is allowed to on those names only.
    """
    stack = Stack.of(scope)
    lease_table, *other_tables = [
        stack.format_arn(service="dynamodb", resource="table", resource_name=application_name + suffix)
        for suffix in KCL_TABLE_SUFFIXES
    ]
    item_actions = [
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ]
    iam.Grant.add_to_principal(
        grantee=grantee, actions=[*item_actions, "dynamodb:UpdateTable"], resource_arns=[lease_table]
    )
    iam.Grant.add_to_principal(grantee=grantee, actions=item_actions, resource_arns=other_tables)
    iam.Grant.add_to_principal(
        grantee=grantee, actions=["dynamodb:Query"], resource_arns=[f"{lease_table}/index/*"]
    )
    # PutMetricData has no resource type; the namespace condition keeps each app to its own metrics.
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": application_name}},
        )
    )
    if isinstance(grantee.grant_principal, Construct):
        acknowledge(
            grantee.grant_principal,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource type; the statement is limited to the KCL "
            "application's own namespace by a cloudwatch:namespace condition.",
        )
        acknowledge(
            grantee.grant_principal,
            f"AwsSolutions-IAM5[Resource::{_nag_arn(f'dynamodb:<AWS::Region>:<AWS::AccountId>:table/{application_name}')}/index/*]",
            "The KCL creates the lease table's global secondary index itself (its name is the KCL's "
            "internal choice); Query is allowed on the indexes of this application's lease table only.",
        )


def _nag_arn(rest: str) -> str:
    """An ARN as cdk-nag prints it for an environment-agnostic stack."""
    return f"arn:<AWS::Partition>:{rest}"


class PipelineServices(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        sizes: ServiceSizes,
        gateway_environment: dict[str, str],
        consumer_environment: dict[str, str],
        aggregator_environment: dict[str, str],
        consumer_secrets: dict[str, ecs.Secret],
        certificate_arn: str | None,
        log_retention: logs.RetentionDays,
        nat_gateways: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
            ],
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogGroup", retention=log_retention, removal_policy=removal_policy)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        # One image for all three services (the entry point picks the command).
        self.image_asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO_ROOT),
            file="Dockerfile",
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=["cdk/cdk.out", ".venv", "node_modules", ".git"],
        )
        self.image = ecs.ContainerImage.from_docker_image_asset(self.image_asset)

        self.log_groups: dict[str, logs.LogGroup] = {
            name: logs.LogGroup(
                self, f"{name.capitalize()}Logs", retention=log_retention, removal_policy=removal_policy
            )
            for name in ("gateway", "consumer", "aggregator")
        }

        cpu = gateway_cpu(sizes.gateway_workers)
        gateway_task = self._task_definition(
            "Gateway",
            cpu=cpu,
            memory=cpu * 2,
            command=GATEWAY_COMMAND,
            environment={**gateway_environment, "GATEWAY_WORKERS": str(sizes.gateway_workers)},
            secrets={},
            log_group=self.log_groups["gateway"],
            stop_timeout=Duration.seconds(30),
            port=GATEWAY_PORT,
        )
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)
            if certificate_arn
            else None
        )
        self.gateway = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Gateway",
            cluster=self.cluster,
            task_definition=gateway_task,
            desired_count=sizes.gateway_desired_count,
            public_load_balancer=True,
            certificate=certificate,
            protocol=elbv2.ApplicationProtocol.HTTPS if certificate else elbv2.ApplicationProtocol.HTTP,
            redirect_http=bool(certificate),
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if certificate else None,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(30),
        )
        self.gateway.target_group.configure_health_check(
            path=HEALTH_CHECK_PATH,
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        )
        # In-flight requests get the gateway's own drain window, not the default 300 s.
        self.gateway.target_group.set_attribute("deregistration_delay.timeout_seconds", "30")
        self.load_balancer = self.gateway.load_balancer
        self.load_balancer.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")
        self.gateway_url = (
            f"{'https' if certificate else 'http'}://{self.load_balancer.load_balancer_dns_name}"
        )

        self.consumer = self._kcl_service(
            "Consumer",
            command=CONSUMER_COMMAND,
            environment=consumer_environment,
            secrets=consumer_secrets,
            desired_count=sizes.consumer_desired_count,
        )
        self.aggregator = self._kcl_service(
            "Aggregator",
            command=AGGREGATOR_COMMAND,
            environment=aggregator_environment,
            secrets={},
            desired_count=sizes.aggregator_desired_count,
        )
        self._acknowledge_findings()

    # -- building blocks -----------------------------------------------------------------------------
    def _task_definition(
        self,
        name: str,
        *,
        cpu: int,
        memory: int,
        command: list[str],
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
        log_group: logs.ILogGroup,
        stop_timeout: Duration,
        port: int | None = None,
    ) -> ecs.FargateTaskDefinition:
        task = ecs.FargateTaskDefinition(
            self,
            f"{name}Task",
            cpu=cpu,
            memory_limit_mib=memory,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        acknowledge(
            task.obtain_execution_role(),
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource type; image pulls and log writes are scoped to "
            "this stack's repository and log group by the other statements.",
        )
        container = task.add_container(
            name.lower(),
            image=self.image,
            command=command,
            environment={"AWS_REGION": Aws.REGION, "LOG_LEVEL": "INFO", **environment},
            secrets=secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name.lower(), log_group=log_group),
            stop_timeout=stop_timeout,
            essential=True,
            health_check=(
                ecs.HealthCheck(
                    command=[
                        "CMD",
                        "python",
                        "-c",
                        "import urllib.request; "
                        f"urllib.request.urlopen('http://127.0.0.1:{port}{HEALTH_CHECK_PATH}', timeout=3)",
                    ],
                    interval=Duration.seconds(15),
                    timeout=Duration.seconds(5),
                    retries=3,
                    start_period=Duration.seconds(20),
                )
                if port
                else None
            ),
        )
        if port:
            container.add_port_mappings(ecs.PortMapping(container_port=port))
        return task

    def _kcl_service(
        self,
        name: str,
        *,
        command: list[str],
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
        desired_count: int,
    ) -> ecs.FargateService:
        task = self._task_definition(
            name,
            cpu=512,
            memory=1024,
            command=command,
            environment=environment,
            secrets=secrets,
            log_group=self.log_groups[name.lower()],
            # The KCL gets time to finish its batch and checkpoint before SIGKILL.
            stop_timeout=Duration.seconds(60),
        )
        return ecs.FargateService(
            self,
            name,
            cluster=self.cluster,
            task_definition=task,
            desired_count=desired_count,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            enable_execute_command=False,
        )

    def _acknowledge_findings(self) -> None:
        acknowledge(
            self.load_balancer,
            "AwsSolutions-ELB2",
            f"Every request outcome is logged by the {APP_NAME} gateway itself (CloudWatch Logs) and "
            "counted by the ALB metrics behind the 5xx alarm; S3 access logs would need a region-bound "
            "stack and a log bucket for no extra information.",
        )
        for security_group in self.load_balancer.connections.security_groups:
            acknowledge(
                security_group,
                "AwsSolutions-EC23",
                "The gateway is the public ingestion endpoint for CI systems and GitHub webhooks "
                "anywhere on the internet; every request is authenticated (bearer token or HMAC).",
            )
        for service in (self.gateway.service, self.consumer, self.aggregator):
            acknowledge(
                service.task_definition,
                "AwsSolutions-ECS2",
                "The environment holds only resource names and switches; the token and the New "
                "Relic key are injected from Secrets Manager.",
            )
