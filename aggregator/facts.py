"""Writes a repo's derived day facts (and its ALL-day contributions, indexes and open failures),
each guarded by the log version it was derived from: an older derivation never replaces a newer one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from devops_core.dora.model import DayFacts, FactKey
from devops_core.metrics_store import Keys, OpenFailure, encode_facts
from devops_core.retry import Backoff

__all__ = ["FactsWriter"]

logger = logging.getLogger(__name__)

_NEWER = "attribute_not_exists(#v) OR #v <= :v"
_UNPROCESSED = Backoff(base=0.05, cap=2.0)


def _epoch(day: date, plus: timedelta) -> int:
    return int((datetime.combine(day, datetime.min.time(), UTC) + plus).timestamp())


class FactsWriter:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        retention_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = client
        self._table = table
        self._retention = timedelta(days=retention_days)
        self._clock = clock
        self.writes = 0
        # Index items this process has written: they never change, so each is put once per process
        # (every batch touching a repo names its services again).
        self._indexed: set[tuple[str, str]] = set()

    def _conditional(self, **params: Any) -> bool:
        """One conditional write; False when a newer derivation is already stored."""
        self.writes += 1
        try:
            self._db.update_item(TableName=self._table, **params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def write_day(self, repo: str, day: date, facts: dict[FactKey, DayFacts], version: int) -> bool:
        """The repo's facts of ``day`` (empty: none any more) and its share of the ALL day."""
        expires = {"N": str(_epoch(day, self._retention))}
        encoded = encode_facts(facts)
        written = self._conditional(
            Key={"pk": {"S": Keys.day(repo)}, "sk": {"S": day.isoformat()}},
            UpdateExpression="SET f = :f, #v = :v, expires_at = :exp",
            ConditionExpression=_NEWER,
            ExpressionAttributeNames={"#v": "v"},
            ExpressionAttributeValues={":f": {"S": encoded}, ":v": {"N": str(version)}, ":exp": expires},
        )
        if not written:
            return False
        # The repo's share of the ALL day: its facts summed per environment ("" = production).
        totals: dict[str, DayFacts] = {}
        for key, value in facts.items():
            totals.setdefault(key.environment or "", DayFacts()).add(value)
        shares = {env: total.to_json() for env, total in sorted(totals.items()) if not total.is_empty()}
        names = {"#f": Keys.all_attribute(repo), "#v": Keys.all_version(repo)}
        values: dict[str, Any] = {":v": {"N": str(version)}, ":exp": expires}
        if not shares:
            update = "REMOVE #f SET #v = :v, expires_at = :exp"
        else:
            update = "SET #f = :f, #v = :v, expires_at = :exp"
            values[":f"] = {"S": json.dumps(shares, separators=(",", ":"), sort_keys=True)}
        return self._conditional(
            Key={"pk": {"S": Keys.all_day(day)}, "sk": {"S": Keys.all_shard(repo)}},
            UpdateExpression=update,
            ConditionExpression=_NEWER,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def write_open_failures(self, repo: str, failures: Iterable[OpenFailure], version: int) -> bool:
        """The repo's failures not ended (yet): what "open now" is read from."""
        items = sorted(failure.encode() for failure in failures)
        return self._conditional(
            Key={"pk": {"S": Keys.REPOS}, "sk": {"S": repo}},
            UpdateExpression="SET #open = :open, #ov = :v",
            ConditionExpression="attribute_not_exists(#ov) OR #ov <= :v",
            ExpressionAttributeNames={"#open": "open", "#ov": "open_v"},
            ExpressionAttributeValues={
                ":open": {"S": json.dumps(items, separators=(",", ":"))},
                ":v": {"N": str(version)},
            },
        )

    def claim(self, name: str, *, expires_at: int) -> bool:
        """True for exactly one caller per ``name`` (one periodic emit per period, across tasks)."""
        self.writes += 1
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"pk": {"S": f"claim#{name}"}, "sk": {"S": "-"}, "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def index(self, repo: str, keys: Iterable[FactKey]) -> None:
        """Teams, services (the repo's own name included, for events naming none) and environments
        that the repo's events name (idempotent puts), so filters and their lists find them."""
        requests: list[dict[str, Any]] = []
        for key in set(keys):
            if key.team:
                requests += [_put(Keys.TEAMS, key.team), _put(Keys.team(key.team), repo)]
            requests += [_put(Keys.SERVICES, key.service), _put(Keys.service(key.service), repo)]
            if key.environment:
                requests.append(_put(Keys.ENVIRONMENTS, key.environment))
        unique = [
            request
            for item_key, request in {_key_of(request): request for request in requests}.items()
            if item_key not in self._indexed
        ]
        for start in range(0, len(unique), 25):
            pending: dict[str, Any] = {self._table: unique[start : start + 25]}
            failures = 0
            while pending:
                self.writes += 1
                pending = self._db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if pending:
                    failures += 1
                    if failures > 10:  # the processor core retries the batch
                        raise RuntimeError("BatchWriteItem kept returning unprocessed items")
                    time.sleep(_UNPROCESSED.delay(failures))
            self._indexed.update(_key_of(request) for request in unique[start : start + 25])


def _key_of(request: dict[str, Any]) -> tuple[str, str]:
    item = request["PutRequest"]["Item"]
    return (item["pk"]["S"], item["sk"]["S"])


def _put(pk: str, sk: str) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"pk": {"S": pk}, "sk": {"S": sk}}}}
