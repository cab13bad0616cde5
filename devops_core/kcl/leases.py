"""The KCL lease table, as far as the local driver needs it: one item per shard, keyed like the KCL's.

The KCL keeps its leases in a DynamoDB table named after the application: hash key ``leaseKey`` (the
shard id), ``checkpoint`` (a sequence number or a sentinel such as TRIM_HORIZON / SHARD_END),
``checkpointSubSequenceNumber``, ``leaseOwner`` and ``leaseCounter``. The local driver writes the same
attributes, so a checkpoint written locally reads like one written by the MultiLangDaemon.
Every write is conditional on ``leaseOwner`` being this worker: a failed condition means the lease
was taken by someone else (:class:`LeaseLostError`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from devops_core.aws import boto_client

__all__ = ["SHARD_END", "Lease", "LeaseLostError", "LeaseTable"]

logger = logging.getLogger(__name__)

SHARD_END = "SHARD_END"


class LeaseLostError(Exception):
    """The lease item is no longer owned by this worker."""


@dataclass(frozen=True)
class Lease:
    shard_id: str
    checkpoint: str
    sub_sequence_number: int
    counter: int
    owner: str | None


class LeaseTable:
    """Sync DynamoDB access to one application's lease table (one boto3 client, thread-safe calls)."""

    def __init__(self, table_name: str, owner: str, *, client: Any = None) -> None:
        self.table_name = table_name
        self.owner = owner
        self._dynamodb = client or boto_client("dynamodb")

    def ensure(self) -> None:
        """Create the table if missing (on-demand billing, as the KCL does by default)."""
        try:
            self._dynamodb.describe_table(TableName=self.table_name)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        try:
            self._dynamodb.create_table(
                TableName=self.table_name,
                KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            logger.info("lease table created", extra={"table": self.table_name})
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        self._dynamodb.get_waiter("table_exists").wait(
            TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    def get(self, shard_id: str) -> Lease | None:
        item = self._dynamodb.get_item(
            TableName=self.table_name, Key={"leaseKey": {"S": shard_id}}, ConsistentRead=True
        ).get("Item")
        return _lease(item) if item else None

    def take(self, shard_id: str, *, initial_checkpoint: str, parents: list[str]) -> Lease:
        """Own the lease (creating it at ``initial_checkpoint`` if new); its checkpoint is kept.

        The local driver is a single worker, so it takes a lease whoever held it before (a crashed
        earlier run); the KCL would wait for the old owner's lease to expire first.
        """
        names = {"#owner": "leaseOwner", "#counter": "leaseCounter", "#cp": "checkpoint"}
        values: dict[str, Any] = {
            ":me": {"S": self.owner},
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":initial": {"S": initial_checkpoint},
        }
        update = (
            "SET #owner = :me, #counter = if_not_exists(#counter, :zero) + :one, "
            "#cp = if_not_exists(#cp, :initial), "
            "checkpointSubSequenceNumber = if_not_exists(checkpointSubSequenceNumber, :zero), "
            "ownerSwitchesSinceCheckpoint = if_not_exists(ownerSwitchesSinceCheckpoint, :zero)"
        )
        if parents:
            update += ", parentShardId = :parents"
            values[":parents"] = {"SS": parents}
        item = self._dynamodb.update_item(
            TableName=self.table_name,
            Key={"leaseKey": {"S": shard_id}},
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return _lease(item)

    def checkpoint(self, shard_id: str, checkpoint: str, sub_sequence_number: int = 0) -> None:
        """Record progress; raises :class:`LeaseLostError` if another worker owns the lease now."""
        try:
            self._dynamodb.update_item(
                TableName=self.table_name,
                Key={"leaseKey": {"S": shard_id}},
                UpdateExpression=(
                    "SET #cp = :cp, checkpointSubSequenceNumber = :sub, "
                    "ownerSwitchesSinceCheckpoint = :zero, #counter = #counter + :one"
                ),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={
                    "#cp": "checkpoint",
                    "#owner": "leaseOwner",
                    "#counter": "leaseCounter",
                },
                ExpressionAttributeValues={
                    ":cp": {"S": checkpoint},
                    ":sub": {"N": str(sub_sequence_number)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":me": {"S": self.owner},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLostError(shard_id) from error
            raise

    def release(self, shard_id: str) -> bool:
        """Give the lease up (graceful shutdown); False if it was not ours anymore."""
        try:
            self._dynamodb.update_item(
                TableName=self.table_name,
                Key={"leaseKey": {"S": shard_id}},
                UpdateExpression="REMOVE #owner",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "leaseOwner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _lease(item: dict[str, Any]) -> Lease:
    return Lease(
        shard_id=item["leaseKey"]["S"],
        checkpoint=item.get("checkpoint", {}).get("S", ""),
        sub_sequence_number=int(item.get("checkpointSubSequenceNumber", {}).get("N", "0")),
        counter=int(item.get("leaseCounter", {}).get("N", "0")),
        owner=item.get("leaseOwner", {}).get("S"),
    )
