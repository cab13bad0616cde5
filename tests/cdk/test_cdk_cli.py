"""`cdk synth` through the pinned npm CLI (prod stage, HTTPS, provisioned stream, raw_store=timestream),
offline and quiet except for the loud Timestream warning.

cdk/node_modules comes from `make test` (npm ci from cdk/package-lock.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from tests.cdk.cdk_synth import CDK_DIR

CDK_CLI = CDK_DIR / "node_modules" / ".bin" / "cdk"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
STACK = "DevOpsMetrics-prod"
NEW_RELIC = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devops-metrics/new-relic-Ab12Cd"


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    assert CDK_CLI.exists(), "cdk/node_modules is missing: run `make test` (it runs npm ci in cdk/)"
    outdir = tmp_path_factory.mktemp("cdk-cli")
    env = {
        **os.environ,
        # the app runs with this venv's python (cdk.json: "python app.py")
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "CDK_VALIDATION": "false",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    context = {
        "stage": "prod",
        "certificate_arn": CERTIFICATE,
        "stream_shard_count": "4",
        "gateway_workers": "3",
        "gateway_desired_count": "3",
        "shards_per_worker": "2",
        "log_retention_days": "90",
        "raw_store": "timestream",
        "new_relic_secret_arn": NEW_RELIC,
    }
    args = [str(CDK_CLI), "synth", "--no-notices", "--no-version-reporting", "--quiet", "-o", str(outdir)]
    for key, value in context.items():
        args += ["-c", f"{key}={value}"]
    started = time.monotonic()
    result = subprocess.run(args, cwd=CDK_DIR, env=env, capture_output=True, text=True, timeout=300)
    print(f"cdk synth (npm CLI) took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    return outdir, result


@pytest.fixture(scope="module")
def template(cli_synth: tuple[Path, subprocess.CompletedProcess[str]]) -> Template:
    return Template.from_json(json.loads((cli_synth[0] / f"{STACK}.template.json").read_text()))


def test_cli_version_is_pinned_to_the_v2_line() -> None:
    package = json.loads((CDK_DIR / "package.json").read_text())
    version = package["devDependencies"]["aws-cdk"]
    assert version.startswith("2.1")  # exact, CLI 2.1xxx: the v2 line, never 3.x
    assert version.replace(".", "").isdigit()
    lock = json.loads((CDK_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == version
    installed = json.loads((CDK_DIR / "node_modules" / "aws-cdk" / "package.json").read_text())
    assert installed["version"] == version


def test_synth_is_quiet(cli_synth: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = cli_synth
    assert "NOTICES" not in result.stdout + result.stderr
    assert "telemetry" not in (result.stdout + result.stderr).lower()


def test_timestream_choice_warns_loudly(cli_synth: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    output = cli_synth[1].stdout + cli_synth[1].stderr
    assert "closed to new customers since 2025-06-20" in output
    assert "raw_store=s3" in output


def test_prod_retains_its_data_under_generated_names(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {"Name": Match.absent(), "ShardCount": 4, "StreamModeDetails": {"StreamMode": "PROVISIONED"}},
    )
    template.has_resource_properties("AWS::Timestream::Table", {"TableName": Match.absent()})
    for resource_type in (
        "AWS::Kinesis::Stream",
        "AWS::Timestream::Database",
        "AWS::Timestream::Table",
        "AWS::SecretsManager::Secret",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
    ):
        template.all_resources(resource_type, {"DeletionPolicy": "Retain"})
    # retained resources carry no fixed name, so a retry after a failed first deploy cannot collide
    retained = [r for r in template.to_json()["Resources"].values() if r.get("DeletionPolicy") == "Retain"]
    assert retained
    for resource in retained:
        properties = resource.get("Properties", {})
        for key in ("Name", "TableName", "QueueName", "BucketName", "DatabaseName", "StreamName"):
            assert not isinstance(properties.get(key), str), resource
    # the KCL's tables go with the stack
    kcl = [
        r
        for r in template.to_json()["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::GlobalTable"
        and "devops-metrics-" in str(r["Properties"].get("TableName"))
    ]
    assert len(kcl) == 6
    assert {r["DeletionPolicy"] for r in kcl} == {"Delete"}


def test_https_with_certificate_and_redirect(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": CERTIFICATE}]},
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "DefaultActions": [
                Match.object_like(
                    {
                        "Type": "redirect",
                        "RedirectConfig": Match.object_like({"Protocol": "HTTPS", "Port": "443"}),
                    }
                )
            ],
        },
    )
    outputs = template.find_outputs("GatewayUrl")
    assert "https://" in json.dumps(outputs)


def test_sizes_from_context(template: Template) -> None:
    template.has_resource_properties("AWS::ECS::Service", {"DesiredCount": 3})
    template.has_resource_properties("AWS::ECS::Service", {"DesiredCount": 2})  # 4 shards, 2 per worker
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 4}
    )
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "Cpu": "1024",
            "Memory": "2048",
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "Name": "gateway",
                        "Environment": Match.array_with([{"Name": "GATEWAY_WORKERS", "Value": "3"}]),
                    }
                )
            ],
        },
    )
    template.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_timestream_store_is_wired(template: Template) -> None:
    consumer = template.find_resources(
        "AWS::ECS::TaskDefinition",
        {"Properties": {"ContainerDefinitions": [Match.object_like({"Name": "consumer"})]}},
    )
    ((_, definition),) = consumer.items()
    container = definition["Properties"]["ContainerDefinitions"][0]
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert environment["RAW_STORE"] == "timestream"
    assert "Ref" in json.dumps(environment["DEVOPS_DB_NAME"])  # by reference: generated name
    assert container["Secrets"] == [{"Name": "LOGGER_API_KEY", "ValueFrom": NEW_RELIC}]
    template.resource_count_is("AWS::KinesisFirehose::DeliveryStream", 0)


def test_cfn_lint_is_clean(cli_synth: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            *("--config-file", str(CDK_DIR / ".cfnlintrc.yaml")),
            *("--", str(cli_synth[0] / f"{STACK}.template.json")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
