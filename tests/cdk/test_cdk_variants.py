"""Two more ways to deploy, each synthesized once through cdk-nag and cfn-lint: HTTPS from a Route 53
domain (the stack makes the certificate) with no NAT gateway (the tasks reach AWS through VPC
endpoints); and a stage without any certificate, which is refused unless it is a throwaway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from tests.cdk.cdk_synth import CDK_DIR, Synthesized, synthesize

DOMAIN = {
    "stage": "test",
    "domain_name": "devops-metrics.example.com",
    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
    "hosted_zone_name": "example.com",
    "nat_gateways": "0",
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk-variant"), DOMAIN)


def test_the_stack_makes_a_dns_validated_certificate_and_an_alias(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::CertificateManager::Certificate",
        {"DomainName": "devops-metrics.example.com", "ValidationMethod": "DNS"},
    )
    synth.template.has_resource_properties(
        "AWS::Route53::RecordSet", {"Name": "devops-metrics.example.com.", "Type": "A"}
    )
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 443, "Protocol": "HTTPS"}
    )
    assert json.dumps(synth.template_json()["Outputs"]["GatewayUrl"]["Value"]) == (
        '"https://devops-metrics.example.com"'
    )


def test_without_nat_the_tasks_reach_aws_through_vpc_endpoints(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::EC2::NatGateway", 0)
    endpoints = synth.template.find_resources("AWS::EC2::VPCEndpoint")
    services = {json.dumps(e["Properties"]["ServiceName"]) for e in endpoints.values()}
    for service in ("ecr.api", "ecr.dkr", "logs", "monitoring", "kinesis-streams", "kinesis-firehose",
                    "secretsmanager", "sqs", "s3", "dynamodb"):  # fmt: skip
        assert any(service in name for name in services), service
    synth.template.all_resources_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": Match.any_value()})
    # the services run in isolated subnets (no route to the internet)
    routes = synth.template.find_resources(
        "AWS::EC2::Route", {"Properties": {"NatGatewayId": Match.any_value()}}
    )
    assert not routes


def test_cfn_lint_is_clean(synth: Synthesized) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--config-file", str(CDK_DIR / ".cfnlintrc.yaml"),
         "--", str(synth.template_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_certificate_and_not_a_throwaway_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="HTTPS is required"):
        synthesize(tmp_path, {"stage": "test"})
