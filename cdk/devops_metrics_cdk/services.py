"""The three deployables as ECS Fargate services, all from one image built from the repo's Dockerfile.

gateway    behind an Application Load Balancer (HTTPS when a certificate is given), health check /healthz
consumer   KCL application: stream -> Timestream + New Relic, DLQ for records that can never succeed
aggregator KCL application: stream -> DynamoDB windows -> calc_* events back into the stream
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from constructs import Construct

from devops_metrics_cdk.constants import (
    AGGREGATOR_COMMAND,
    APP_NAME,
    CONSUMER_COMMAND,
    GATEWAY_COMMAND,
    GATEWAY_PORT,
    HEALTH_CHECK_PATH,
)
from devops_metrics_cdk.nag import acknowledge

__all__ = [
    "INTERFACE_ENDPOINTS",
    "REPO_ROOT",
    "Https",
    "PipelineServices",
    "ServiceSizes",
    "grant_kcl_metrics",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServiceSizes:
    gateway_desired_count: int
    gateway_max_count: int
    gateway_workers: int
    # (minimum, maximum) tasks of each KCL application: one per N shards, at most one per shard.
    kcl_workers: tuple[int, int]


@dataclass(frozen=True)
class Https:
    """How the load balancer gets its certificate: an ACM ARN, or a domain in a Route 53 zone."""

    certificate_arn: str | None = None
    domain_name: str | None = None
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.certificate_arn or self.domain_name)


# CPU share the gateway and KCL services scale out at, and the ALB requests per target per minute.
SCALE_CPU_PERCENT = 60
GATEWAY_REQUESTS_PER_TARGET = 6000
# Interface endpoints the tasks need when the VPC has no NAT gateway (S3 and DynamoDB are gateway
# endpoints, added always: they are free and keep that traffic off the NAT).
INTERFACE_ENDPOINTS = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "Kinesis": ec2.InterfaceVpcEndpointAwsService.KINESIS_STREAMS,
    "Firehose": ec2.InterfaceVpcEndpointAwsService.KINESIS_FIREHOSE,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
}
HEALTHCHECK = "/usr/local/bin/devops-metrics-healthcheck"


def gateway_cpu(workers: int) -> int:
    """Fargate CPU units for N gateway processes: the next valid size with >= 1/4 vCPU per worker."""
    return min(4096, 256 * 2 ** math.ceil(math.log2(workers)))


def grant_kcl_metrics(grantee: iam.IGrantable, application_name: str) -> None:
    """The KCL publishes its metrics (MillisBehindLatest...) to a namespace named after the application.
    Its DynamoDB tables are CloudFormation's (kcl_tables.py), granted there."""
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
        https: Https,
        log_retention: logs.RetentionDays,
        nat_gateways: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # Without NAT the tasks' subnets are isolated and reach AWS through VPC endpoints only.
        private = ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_gateways else ec2.SubnetType.PRIVATE_ISOLATED
        self.private_subnets = ec2.SubnetSelection(subnet_type=private)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=private, cidr_mask=22),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
        )
        if not nat_gateways:
            for endpoint_id, service in INTERFACE_ENDPOINTS.items():
                endpoint = self.vpc.add_interface_endpoint(
                    endpoint_id, service=service, subnets=self.private_subnets, private_dns_enabled=True
                )
                for security_group in endpoint.connections.security_groups:
                    acknowledge(
                        security_group,
                        "AwsSolutions-EC23",
                        "The endpoint accepts HTTPS from this VPC's own CIDR only (open=True), which cdk-nag "
                        "cannot read from the CIDR's CloudFormation reference.",
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
        zone = (
            route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=https.hosted_zone_id, zone_name=https.hosted_zone_name
            )
            if https.domain_name and https.hosted_zone_id and https.hosted_zone_name
            else None
        )
        certificate: acm.ICertificate | None = None
        if https.certificate_arn:
            certificate = acm.Certificate.from_certificate_arn(self, "Certificate", https.certificate_arn)
        elif https.domain_name and zone:
            certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=https.domain_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )
        self.gateway = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Gateway",
            cluster=self.cluster,
            task_definition=gateway_task,
            desired_count=sizes.gateway_desired_count,
            public_load_balancer=True,
            certificate=certificate,
            domain_name=https.domain_name if zone else None,
            domain_zone=zone,
            protocol=elbv2.ApplicationProtocol.HTTPS if certificate else elbv2.ApplicationProtocol.HTTP,
            redirect_http=bool(certificate),
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if certificate else None,
            task_subnets=self.private_subnets,
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
        # aws-ecs-patterns adds an explicit DependsOn from the service to its listener rule, which a Ref
        # already implies (cfn-lint W3005): redundant and harmless, and not ours to change.
        gateway_service = self.gateway.service.node.default_child
        assert isinstance(gateway_service, ecs.CfnService)
        gateway_service.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        # In-flight requests get the gateway's own drain window, not the default 300 s.
        self.gateway.target_group.set_attribute("deregistration_delay.timeout_seconds", "30")
        self.load_balancer = self.gateway.load_balancer
        self.load_balancer.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")
        host = https.domain_name if zone else self.load_balancer.load_balancer_dns_name
        self.gateway_url = f"{'https' if certificate else 'http'}://{host}"
        self.gateway_scaling = self.gateway.service.auto_scale_task_count(
            min_capacity=sizes.gateway_desired_count, max_capacity=sizes.gateway_max_count
        )
        self.gateway_scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=SCALE_CPU_PERCENT)
        self.gateway_scaling.scale_on_request_count(
            "Requests",
            requests_per_target=GATEWAY_REQUESTS_PER_TARGET,
            target_group=self.gateway.target_group,
        )

        self.consumer = self._kcl_service(
            "Consumer",
            command=CONSUMER_COMMAND,
            environment=consumer_environment,
            secrets=consumer_secrets,
            workers=sizes.kcl_workers,
        )
        self.aggregator = self._kcl_service(
            "Aggregator",
            command=AGGREGATOR_COMMAND,
            environment=aggregator_environment,
            secrets={},
            workers=sizes.kcl_workers,
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
            # docker/healthcheck.py: the gateway's /healthz, or a KCL command's MultiLangDaemon alive.
            health_check=ecs.HealthCheck(
                command=["CMD", "python", HEALTHCHECK, command[0]],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                # the KCL's JVM needs a while before its daemon runs
                start_period=Duration.seconds(20 if port else 60),
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
        workers: tuple[int, int],
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
        service = ecs.FargateService(
            self,
            name,
            cluster=self.cluster,
            task_definition=task,
            desired_count=workers[0],
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=self.private_subnets,
            enable_execute_command=False,
        )
        # KCL 3.x balances leases by worker CPU: add workers when they are busy, up to one per shard.
        scaling = service.auto_scale_task_count(min_capacity=workers[0], max_capacity=workers[1])
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=SCALE_CPU_PERCENT)
        return service

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
