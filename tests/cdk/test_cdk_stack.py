"""The stack's resources and permissions (a throwaway test stage on the default raw store, s3, with a
New Relic key), synthesized once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from tests.cdk.cdk_synth import CDK_DIR, Synthesized, synthesize

NEW_RELIC_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devops-metrics/new-relic-Ab12Cd"
# Resource "*" is acceptable only for actions that have no resource type.
WILDCARD_ONLY_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "timestream:DescribeEndpoints",
    "cloudwatch:PutMetricData",
}
NAME_PROPERTIES = ("Name", "TableName", "QueueName", "BucketName", "DatabaseName")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(
        tmp_path_factory.mktemp("cdk-test"),
        {
            "stage": "test",
            "throwaway": "true",
            "new_relic_secret_arn": NEW_RELIC_SECRET,
            "alarm_email": "oncall@example.com",
        },
    )


def _policies_of_role(synth: Synthesized, role_fragment: str) -> list[dict]:
    """Statements of the IAM policies attached to roles whose logical id contains role_fragment."""
    resources = synth.template_json()["Resources"]
    statements = []
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        roles = [ref["Ref"] for ref in resource["Properties"]["Roles"]]
        if any(role_fragment in role for role in roles):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statements: list[dict]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        actions = statement["Action"]
        found |= {actions} if isinstance(actions, str) else set(actions)
    return found


def _container(synth: Synthesized, name: str) -> dict:
    for resource in synth.template_json()["Resources"].values():
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            for container in resource["Properties"]["ContainerDefinitions"]:
                if container["Name"] == name:
                    return container
    raise AssertionError(f"no container {name}")


def test_stream_is_on_demand_and_encrypted(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::Kinesis::Stream", 1)
    synth.template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
            # a week: longer than a sink outage may block checkpoints
            "RetentionPeriodHours": 168,
        },
    )


def test_default_raw_store_is_firehose_to_s3_with_athena(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::Timestream::Database", 0)
    synth.template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"},
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {"CompressionFormat": "GZIP", "Prefix": "events/dt=!{timestamp:yyyy-MM-dd}/"}
            ),
        },
    )
    synth.template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": Match.any_value(),
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        },
    )
    table = synth.template.find_resources("AWS::Glue::Table")
    ((_, resource),) = table.items()
    table_input = resource["Properties"]["TableInput"]
    assert table_input["Name"] == "raw_events"
    assert table_input["Parameters"]["projection.enabled"] == "true"
    assert table_input["Parameters"]["projection.dt.type"] == "date"
    columns = [c["Name"] for c in table_input["StorageDescriptor"]["Columns"]]
    assert columns[:3] == ["event_id", "time", "received_at"]
    assert columns[columns.index("sha") + 1] == "before"  # a push's previous head, kept like sha
    synth.template.resource_count_is("AWS::Glue::Crawler", 0)  # partition projection, no crawler
    synth.template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {"WorkGroupConfiguration": Match.object_like({"EnforceWorkGroupConfiguration": True})},
    )
    names = {
        r["Properties"]["Name"] for r in synth.template.find_resources("AWS::Athena::NamedQuery").values()
    }
    assert names == {
        "create-events-deduped-view",
        "conflicting-event-ids",
        "deployment-frequency",
        "change-lead-time",
        "change-failure-rate",
        "recovery-time",
        "rework-rate",
    }
    # throwaway stage: the bucket and its objects go with the stack
    synth.template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete"})


def test_no_resource_kept_on_delete_has_a_fixed_name(synth: Synthesized) -> None:
    """A failed first deploy retains what has DeletionPolicy Retain; fixed names would block the retry.
    (Here, and for prod in test_cdk_variants.)"""
    for logical_id, resource in synth.template_json()["Resources"].items():
        if resource.get("DeletionPolicy") == "Retain":
            properties = resource.get("Properties", {})
            assert not [p for p in NAME_PROPERTIES if isinstance(properties.get(p), str)], logical_id


def test_aggregator_state_table(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::DynamoDB::GlobalTable", 7)  # + 2 x 3 KCL tables
    synth.template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "TableName": Match.absent(),
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "Replicas": [
                Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
            ],
        },
    )


def test_token_secret_is_generated(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::SecretsManager::Secret", 1)
    synth.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": Match.absent(),
            "GenerateSecretString": Match.object_like(
                {"GenerateStringKey": "token", "SecretStringTemplate": "{}", "ExcludePunctuation": True}
            ),
        },
    )


def test_dead_letter_queue(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": Match.absent(),
            "MessageRetentionPeriod": 1209600,
            "SqsManagedSseEnabled": True,
        },
    )
    synth.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                    )
                ]
            }
        },
    )


def test_three_services_from_one_image(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::ECS::Cluster", 1)
    synth.template.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )
    synth.template.resource_count_is("AWS::ECS::Service", 3)
    synth.template.resource_count_is("AWS::ECS::TaskDefinition", 3)
    images = {json.dumps(_container(synth, name)["Image"]) for name in ("gateway", "consumer", "aggregator")}
    assert len(images) == 1
    commands = {name: _container(synth, name)["Command"] for name in ("gateway", "consumer", "aggregator")}
    assert commands == {"gateway": ["gateway"], "consumer": ["consumer"], "aggregator": ["aggregator"]}
    # exactly one image asset, built from the repository's Dockerfile
    manifest = json.loads((synth.outdir / f"{synth.stack_name}.assets.json").read_text())
    (image_asset,) = manifest["dockerImages"].values()
    assert image_asset["source"]["dockerFile"] == "Dockerfile"
    staged = synth.outdir / image_asset["source"]["directory"]
    assert (staged / "Dockerfile").read_text() == (CDK_DIR.parent / "Dockerfile").read_text()
    assert not (staged / ".venv").exists()
    assert not (staged / "cdk").exists()


def test_desired_counts_and_fargate_sizes(synth: Synthesized) -> None:
    # gateway 2; KCL apps: on-demand starts with 4 shards, 4 shards per worker -> 1
    for desired in (2, 1, 1):
        synth.template.has_resource_properties(
            "AWS::ECS::Service", {"DesiredCount": desired, "LaunchType": "FARGATE"}
        )
    synth.template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            )
        },
    )


def _env(container: dict) -> dict:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def test_service_configuration(synth: Synthesized) -> None:
    gateway = _env(_container(synth, "gateway"))
    assert gateway["GATEWAY_HOST"] == "0.0.0.0"
    assert gateway["GATEWAY_PORT"] == "8000"
    assert gateway["GATEWAY_WORKERS"] == "1"
    secret_id = next(
        e for e in _container(synth, "gateway")["Environment"] if e["Name"] == "SECRET_STORE_NAME"
    )
    assert secret_id["Value"]["Ref"].startswith("SecretsToken")  # the secret's ARN: it has no fixed name
    assert "SECRET_STORE_NAME" in gateway
    assert "DEVOPS_STREAM_NAME" in gateway
    assert "AGGREGATOR_STATE_TABLE" in gateway  # GET /metrics
    assert gateway["DEPLOYMENT_FREQ_TIMEFRAME_DAY"] == "30"
    consumer = _env(_container(synth, "consumer"))
    assert consumer["CONSUMER_APPLICATION_NAME"] == "devops-metrics-consumer-test"
    assert consumer["RAW_STORE"] == "s3"
    assert "RAW_EVENTS_DELIVERY_STREAM" in consumer
    assert "DEVOPS_DB_NAME" not in consumer
    assert consumer["NEW_RELIC_REGION"] == "US"
    assert "DEAD_LETTER_QUEUE_NAME" in consumer
    for kcl_app in (consumer, _env(_container(synth, "aggregator"))):
        assert kcl_app["KCL_RETRIEVAL_MODE"] == "POLLING"  # what the IAM grants allow
        assert kcl_app["KCL_METRICS_LEVEL"] == "SUMMARY"  # what the lag alarms read
    aggregator = _env(_container(synth, "aggregator"))
    assert aggregator["AGGREGATOR_APPLICATION_NAME"] == "devops-metrics-aggregator-test"
    assert aggregator["DEPLOYMENT_FREQ_TIMEFRAME_DAY"] == "30"
    assert "AGGREGATOR_STATE_TABLE" in aggregator


def test_new_relic_key_is_injected_into_the_consumer_only(synth: Synthesized) -> None:
    (secret,) = _container(synth, "consumer")["Secrets"]
    assert secret["Name"] == "LOGGER_API_KEY"
    # the complete ARN (from_secret_name_v2 put a partial one here, which ECS could not resolve)...
    assert secret["ValueFrom"] == NEW_RELIC_SECRET
    # ...and the execution role may read exactly that ARN
    grants = [
        s
        for s in _policies_of_role(synth, "ConsumerTaskExecutionRole")
        if "secretsmanager:GetSecretValue" in s["Action"]
    ]
    assert [g["Resource"] for g in grants] == [NEW_RELIC_SECRET]
    for name in ("gateway", "aggregator"):
        assert "Secrets" not in _container(synth, name)
    # no secret value ever appears in the environment
    for name in ("gateway", "consumer", "aggregator"):
        assert not {"LOGGER_API_KEY", "DEVOPS_EVENTS_SECRET_TOKEN"} & set(_env(_container(synth, name)))


def test_gateway_behind_load_balancer_with_health_check(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {"Scheme": "internet-facing", "Type": "application"},
    )
    # a throwaway stage without a certificate: plain HTTP on 80
    synth.template.resource_count_is("AWS::ElasticLoadBalancingV2::Listener", 1)
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 80, "Protocol": "HTTP"}
    )
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        Match.object_like(
            {"HealthCheckPath": "/healthz", "Matcher": {"HttpCode": "200"}, "TargetType": "ip"}
        ),
    )
    health = _container(synth, "gateway")["HealthCheck"]
    assert health["Command"] == ["CMD", "python", "/usr/local/bin/devops-metrics-healthcheck", "gateway"]
    assert _container(synth, "gateway")["PortMappings"][0]["ContainerPort"] == 8000


def test_log_groups_with_retention(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::Logs::LogGroup", 5)  # 3 services, VPC flow log, Firehose
    synth.template.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})
    for name in ("gateway", "consumer", "aggregator"):
        options = _container(synth, name)["LogConfiguration"]
        assert options["LogDriver"] == "awslogs"
        assert options["Options"]["awslogs-stream-prefix"] == name


def test_gateway_may_write_the_stream_read_the_token_and_read_the_metrics_state_only(
    synth: Synthesized,
) -> None:
    statements = _policies_of_role(synth, "GatewayTaskTaskRole")
    actions = _actions(statements)
    assert {"kinesis:PutRecord", "kinesis:PutRecords", "secretsmanager:GetSecretValue"} <= actions
    assert "kinesis:DescribeStreamSummary" in actions  # /readyz
    assert not {a for a in actions if a.startswith(("kinesis:Get", "timestream:", "sqs:", "firehose:"))}
    (state,) = [s for s in statements if any(a.startswith("dynamodb:") for a in s["Action"])]
    assert sorted(state["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"]
    assert "StorageTable" in json.dumps(state["Resource"])  # its ARN, by reference


def test_consumer_permissions(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, "ConsumerTaskTaskRole")
    actions = _actions(statements)
    assert {"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"} <= actions
    assert {"firehose:PutRecordBatch", "sqs:SendMessage"} <= actions
    assert not {a for a in actions if a.startswith("timestream:")}
    assert "kinesis:PutRecords" not in actions  # the consumer never writes to the stream
    text = json.dumps(statements)
    assert "ConsumerKcl" in text
    assert "AggregatorKcl" not in text
    write = next(s for s in statements if "firehose:PutRecordBatch" in s["Action"])
    assert "RawEventsDeliveryStream" in json.dumps(write["Resource"])  # the stream's ARN, not a wildcard


def test_aggregator_permissions(synth: Synthesized) -> None:
    statements = _policies_of_role(synth, "AggregatorTaskTaskRole")
    actions = _actions(statements)
    assert {"kinesis:GetRecords", "kinesis:PutRecords", "dynamodb:PutItem", "dynamodb:Query"} <= actions
    assert not {a for a in actions if a.startswith("timestream:")}
    assert "devops-metrics-aggregator-state-test" not in json.dumps(statements)  # by reference, not name


@pytest.mark.parametrize("app", ["consumer", "aggregator"])
def test_kcl_tables_are_cloudformations_with_the_kcl_key_schemas(synth: Synthesized, app: str) -> None:
    name = f"devops-metrics-{app}-test"
    expected = {
        name: [{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        f"{name}-CoordinatorState": [{"AttributeName": "key", "KeyType": "HASH"}],
        f"{name}-WorkerMetricStats": [{"AttributeName": "wid", "KeyType": "HASH"}],
    }
    tables = {
        r["Properties"]["TableName"]: r
        for r in synth.template_json()["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::GlobalTable" and r["Properties"].get("TableName", "").startswith(name)
    }
    assert set(tables) == set(expected)
    for table_name, key_schema in expected.items():
        table = tables[table_name]
        assert table["Properties"]["KeySchema"] == key_schema
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
        # deleted with the stack, rollback included: destroy leaves nothing, a redeploy starts fresh
        assert table["DeletionPolicy"] == "Delete"
    (index,) = tables[name]["Properties"]["GlobalSecondaryIndexes"]
    assert index == {
        "IndexName": "LeaseOwnerToLeaseKeyIndex",
        "KeySchema": [
            {"AttributeName": "leaseOwner", "KeyType": "HASH"},
            {"AttributeName": "leaseKey", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }


@pytest.mark.parametrize(("role", "app"), [("Consumer", "consumer"), ("Aggregator", "aggregator")])
def test_kcl_may_use_only_its_own_tables_and_create_none(synth: Synthesized, role: str, app: str) -> None:
    statements = _policies_of_role(synth, f"{role}TaskTaskRole")
    actions = _actions(statements)
    assert not {"dynamodb:CreateTable", "dynamodb:UpdateTable", "dynamodb:DeleteTable"} & actions
    assert any(
        f"{role}Kcl" in json.dumps(s["Resource"]) for s in statements if "dynamodb:UpdateItem" in s["Action"]
    )
    assert {"Aggregator": "ConsumerKcl", "Consumer": "AggregatorKcl"}[role] not in json.dumps(statements)
    metrics = next(s for s in statements if s["Action"] == "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": f"devops-metrics-{app}-test"}}


def test_kcl_services_stop_before_their_tables_go(synth: Synthesized) -> None:
    resources = synth.template_json()["Resources"]
    for app in ("Consumer", "Aggregator"):
        (service,) = [
            r
            for k, r in resources.items()
            if r["Type"] == "AWS::ECS::Service" and k.startswith(f"Services{app}")
        ]
        assert any(f"{app}Kcl" in dependency for dependency in service["DependsOn"])


def test_every_service_has_a_health_check(synth: Synthesized) -> None:
    for name in ("gateway", "consumer", "aggregator"):
        health = _container(synth, name)["HealthCheck"]
        assert health["Command"] == ["CMD", "python", "/usr/local/bin/devops-metrics-healthcheck", name]


def test_autoscaling(synth: Synthesized) -> None:
    targets = synth.template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    bounds = sorted(
        (t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"]) for t in targets.values()
    )
    assert bounds == [(1, 4), (1, 4), (2, 10)]  # KCL apps: 1 per 4 shards, up to 1 per shard; gateway
    policies = synth.template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    metrics = sorted(
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for p in policies.values()
    )
    assert metrics == [
        "ALBRequestCountPerTarget",
        "ECSServiceAverageCPUUtilization",
        "ECSServiceAverageCPUUtilization",
        "ECSServiceAverageCPUUtilization",
    ]


def test_tasks_reach_aws_through_nat_and_free_gateway_endpoints(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::EC2::NatGateway", 1)
    endpoints = synth.template.find_resources("AWS::EC2::VPCEndpoint")
    assert sorted(e["Properties"]["VpcEndpointType"] for e in endpoints.values()) == ["Gateway", "Gateway"]


def test_no_wildcard_resource_where_an_arn_exists(synth: Synthesized) -> None:
    for resource in synth.template_json()["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Resource"] == "*":
                actions = statement["Action"]
                actions = {actions} if isinstance(actions, str) else set(actions)
                assert actions <= WILDCARD_ONLY_ACTIONS, statement


def test_alarms(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::CloudWatch::Alarm", 6)
    for app in ("devops-metrics-consumer-test", "devops-metrics-aggregator-test"):
        query = f"SELECT MAX(MillisBehindLatest) FROM \"{app}\" WHERE Operation = 'ProcessTask'"
        synth.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Metrics": [Match.object_like({"Expression": query, "Period": 60})],
                "Threshold": 300000,
                "TreatMissingData": "breaching",
            },
        )
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"Namespace": "AWS/Kinesis", "MetricName": "GetRecords.IteratorAgeMilliseconds"},
    )
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
        },
    )
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Threshold": 5,
            "Metrics": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Expression": "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) "
                            "/ MAX([FILL(requests, 0), 1])"
                        }
                    )
                ]
            ),
        },
    )
    synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "HealthyHostCount", "Threshold": 1, "TreatMissingData": "breaching"},
    )
    # every alarm pages through the topic
    synth.template.all_resources_properties(
        "AWS::CloudWatch::Alarm", {"AlarmActions": [{"Ref": Match.string_like_regexp("AlarmsTopic")}]}
    )
    synth.template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})
    synth.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_outputs(synth: Synthesized) -> None:
    outputs = synth.template_json()["Outputs"]
    for name in ("GatewayUrl", "StreamName", "TokenSecretArn", "DeadLetterQueueUrl", "AlarmTopicArn"):
        assert name in outputs
    assert "http://" in json.dumps(outputs["GatewayUrl"]["Value"])


def test_cdk_nag_has_no_unacknowledged_finding(synth: Synthesized) -> None:
    """Synthesis itself fails on an unacknowledged error; the report also lists no warning."""
    report = synth.validation_report()
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []


def test_every_acknowledgment_has_a_reason(synth: Synthesized) -> None:
    import aws_cdk as cdk

    acknowledged: dict[str, str] = {}
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                acknowledged |= {
                    f"{construct.node.path} {rule}": reason for rule, reason in entry.data.items()
                }
    nag = {key: reason for key, reason in acknowledged.items() if "AwsSolutions-" in key}
    rules = {key.split(" ", 1)[1].split("[")[0].removeprefix("Annotation::") for key in nag}
    assert rules == {
        "AwsSolutions-IAM5",
        "AwsSolutions-EC23",
        "AwsSolutions-ECS2",
        "AwsSolutions-ELB2",
        "AwsSolutions-SMG4",
        "AwsSolutions-SQS3",
        "AwsSolutions-S1",
        "AwsSolutions-DDB3",
    }
    for key, reason in nag.items():
        assert len(reason) >= 60, key


def test_cdk_nag_is_live(tmp_path: Path) -> None:
    """An unacknowledged finding (an SQS queue without SSL enforcement) fails the synth."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Nagged")
    sqs.Queue(stack, "Queue")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()


def test_cfn_lint_is_clean(synth: Synthesized) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--config-file",
            str(CDK_DIR / ".cfnlintrc.yaml"),
            "--",
            str(synth.template_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
