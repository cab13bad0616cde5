"""Create, idempotently, every AWS resource the pipeline needs, on whatever endpoint boto3 is
configured for (the embedded emulator, moto, LocalStack). In AWS the CDK app owns these."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from devops_core.aws import boto_client
from devops_core.settings import Settings

__all__ = [
    "RAW_EVENTS_PREFIX",
    "ProvisionResult",
    "dynamodb_table_specs",
    "ensure_raw_event_delivery",
    "generate_token",
    "provision",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProvisionResult:
    token: str
    token_generated: bool
    stream_arn: str
    dead_letter_queue_url: str


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def dynamodb_table_specs(settings: Settings) -> list[dict[str, Any]]:
    """DynamoDB tables owned by the pipeline (KCL lease tables are created by the KCL itself)."""
    return [
        {
            "TableName": settings.aggregator_state_table,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "_ttl_attribute": "expires_at",
        }
    ]


def _ignore_exists(error: ClientError, *codes: str) -> None:
    if error.response["Error"]["Code"] not in codes:
        raise error


def _ensure_stream(settings: Settings, shard_count: int) -> str:
    kinesis = boto_client("kinesis")
    try:
        kinesis.create_stream(StreamName=settings.devops_stream_name, ShardCount=shard_count)
    except ClientError as error:
        _ignore_exists(error, "ResourceInUseException")
    kinesis.get_waiter("stream_exists").wait(
        StreamName=settings.devops_stream_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    summary = kinesis.describe_stream_summary(StreamName=settings.devops_stream_name)
    return str(summary["StreamDescriptionSummary"]["StreamARN"])


def _ensure_timestream(settings: Settings) -> None:
    timestream = boto_client("timestream-write")
    # Look before creating: moto's CreateDatabase replaces an existing database (and drops its tables).
    try:
        timestream.describe_database(DatabaseName=settings.devops_db_name)
    except ClientError as error:
        _ignore_exists(error, "ResourceNotFoundException")
        try:
            timestream.create_database(DatabaseName=settings.devops_db_name)
        except ClientError as create_error:
            _ignore_exists(create_error, "ConflictException")
    # Look before creating here too: moto's CreateTable replaces an existing table and its records (a
    # make run restart keeps the emulator's data, devstack/snapshot.py).
    try:
        timestream.describe_table(DatabaseName=settings.devops_db_name, TableName=settings.devops_table_name)
        return
    except ClientError as error:
        _ignore_exists(error, "ResourceNotFoundException")
    try:
        timestream.create_table(
            DatabaseName=settings.devops_db_name,
            TableName=settings.devops_table_name,
            RetentionProperties={
                "MemoryStoreRetentionPeriodInHours": 24,
                "MagneticStoreRetentionPeriodInDays": 3650,
            },
            # Late events (older than the memory store) are accepted, not rejected.
            MagneticStoreWriteProperties={"EnableMagneticStoreWrites": True},
        )
    except ClientError as error:
        _ignore_exists(error, "ConflictException")


def _ensure_secret(settings: Settings) -> tuple[str, bool]:
    """Return the token the gateway will accept, and whether we generated it."""
    manager = boto_client("secretsmanager")
    wanted = (
        settings.devops_events_secret_token.get_secret_value()
        if settings.devops_events_secret_token
        else None
    )
    try:
        current = manager.get_secret_value(SecretId=settings.secret_store_name)["SecretString"]
        existing = json.loads(current).get("token") if current.startswith("{") else current
    except ClientError as error:
        _ignore_exists(error, "ResourceNotFoundException")
        existing = None
    if wanted is None and existing:
        return existing, False
    token = wanted or generate_token()
    payload = json.dumps({"token": token})
    if existing is None:
        manager.create_secret(Name=settings.secret_store_name, SecretString=payload)
    elif existing != token:
        manager.put_secret_value(SecretId=settings.secret_store_name, SecretString=payload)
    return token, wanted is None


def _ensure_dead_letter_queue(settings: Settings) -> str:
    sqs = boto_client("sqs")
    return str(
        sqs.create_queue(
            QueueName=settings.dead_letter_queue_name,
            Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)},
        )["QueueUrl"]
    )


def _ensure_dynamodb_tables(settings: Settings) -> None:
    dynamodb = boto_client("dynamodb")
    for spec in dynamodb_table_specs(settings):
        params = {key: value for key, value in spec.items() if not key.startswith("_")}
        try:
            dynamodb.create_table(**params)
        except ClientError as error:
            _ignore_exists(error, "ResourceInUseException")
            continue
        dynamodb.get_waiter("table_exists").wait(TableName=spec["TableName"])
        if ttl := spec.get("_ttl_attribute"):
            dynamodb.update_time_to_live(
                TableName=spec["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
            )


# --- raw-event store on S3 (RAW_STORE=s3): a bucket and a DirectPut delivery stream into it ---------
# In AWS the CDK app creates these (cdk/devops_metrics_cdk/raw_store.py) with GZIP, a buffer and a
# date-partitioned prefix; moto delivers each PutRecordBatch to S3 at once, as sent.
RAW_EVENTS_PREFIX = "events/"
_EMULATOR_ROLE_ARN = "arn:aws:iam::123456789012:role/devops-metrics-firehose"


def ensure_raw_event_delivery(settings: Settings) -> None:
    s3 = boto_client("s3")
    try:
        s3.create_bucket(Bucket=settings.raw_events_bucket)
    except ClientError as error:
        _ignore_exists(error, "BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    firehose = boto_client("firehose")
    try:
        firehose.create_delivery_stream(
            DeliveryStreamName=settings.raw_events_delivery_stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": _EMULATOR_ROLE_ARN,
                "BucketARN": f"arn:aws:s3:::{settings.raw_events_bucket}",
                "Prefix": RAW_EVENTS_PREFIX,
                "ErrorOutputPrefix": "errors/",
            },
        )
    except ClientError as error:
        _ignore_exists(error, "ResourceInUseException")


def provision(settings: Settings, *, shard_count: int = 2) -> ProvisionResult:
    stream_arn = _ensure_stream(settings, shard_count)
    _ensure_timestream(settings)
    ensure_raw_event_delivery(settings)
    token, generated = _ensure_secret(settings)
    queue_url = _ensure_dead_letter_queue(settings)
    _ensure_dynamodb_tables(settings)
    logger.info(
        "resources ready",
        extra={
            "stream": settings.devops_stream_name,
            "database": settings.devops_db_name,
            "table": settings.devops_table_name,
            "raw_store": settings.raw_store,
            "delivery_stream": settings.raw_events_delivery_stream,
            "secret_id": settings.secret_store_name,
        },
    )
    return ProvisionResult(token, generated, stream_arn, queue_url)
