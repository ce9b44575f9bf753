"""What every operation on the table shares: its client, the conditional write, and the reads.

Every write that decides something is conditional, and a failed condition returns the row as
it was (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so no decision needs an extra read.
Every attribute an expression names is written `#name`, so no reserved word (`state`,
`input`, `error`...) needs remembering: the aliases are read off the expressions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from coordinator.table.rows import BY_PENDING, PayloadState, from_item, stamp, state_key, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

BATCH_GET = 100
_ALIAS = re.compile(r"#(\w+)")
_VALUE = re.compile(r":\w+")


def expressions(values: Mapping[str, Any] | None = None, **parts: str) -> dict[str, Any]:
    """Request parameters for expressions (`UpdateExpression=...`, `ConditionExpression=...`)
    whose attributes are all written `#name`: the expressions, their aliases, and the values
    they use (DynamoDB rejects an alias or a value that no expression uses)."""
    text = " ".join(parts.values())
    request: dict[str, Any] = dict(parts)
    if aliases := {f"#{name}": name for name in _ALIAS.findall(text)}:
        request["ExpressionAttributeNames"] = aliases
    used = set(_VALUE.findall(text))
    if used_values := {name: value for name, value in (values or {}).items() if name in used}:
        request["ExpressionAttributeValues"] = to_item(used_values)
    return request


def redrive_count_is(count: int, *, placeholder: str = ":seen_redrives") -> str:
    """The row's redrive count is `count` (a row written before counts were kept has none: 0)."""
    if count == 0:
        return f"attribute_not_exists(#redrive_count) OR #redrive_count = {placeholder}"
    return f"#redrive_count = {placeholder}"


@dataclass(frozen=True)
class Answer:
    """A conditional write's answer: whether it took effect, and the item it returned (the
    row after, if asked for; the row as the failed condition found it; None if none)."""

    applied: bool
    item: dict[str, Any] | None

    def state(self) -> PayloadState | None:
        return PayloadState.from_row(self.item) if self.item else None


def is_condition_failure(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class TableAccess:
    """The client and the table, the one conditional write, and the reads of STATE and pending."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def _update(
        self,
        key: Mapping[str, Any],
        update: str,
        condition: str,
        values: Mapping[str, Any] | None = None,
        *,
        return_new: bool = False,
    ) -> Answer:
        """UpdateItem `key` with `update` if `condition` holds."""
        request = expressions(values, UpdateExpression=update, ConditionExpression=condition)
        if return_new:
            request["ReturnValues"] = "ALL_NEW"
        return self._conditionally(self.client.update_item, Key=key, **request)

    def _put_absent(self, row: Mapping[str, Any]) -> Answer:
        """PutItem `row` unless the table has a row at its key."""
        return self._conditionally(
            self.client.put_item, Item=to_item(row), ConditionExpression="attribute_not_exists(sk)"
        )

    def _conditionally(self, write: Any, **request: Any) -> Answer:
        """The one place a failed condition is told from a failure: it is an answer."""
        try:
            response = write(
                TableName=self.table_name, ReturnValuesOnConditionCheckFailure="ALL_OLD", **request
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            old = error.response.get("Item")
            return Answer(False, from_item(old) if old else None)
        new = response.get("Attributes")
        return Answer(True, from_item(new) if new else None)

    def _query(self, **request: Any) -> Iterator[list[dict[str, Any]]]:
        """The pages of a Query, each as plain rows (botocore's paginator follows the keys)."""
        pages = self.client.get_paginator("query").paginate(TableName=self.table_name, **request)
        for page in pages:
            yield [from_item(item) for item in page.get("Items", [])]

    # -- reads -------------------------------------------------------------------------------

    def get_state(self, payload_id: str) -> PayloadState | None:
        """A strongly consistent read of STATE (reconcile and the tools; never on a hot path)."""
        response = self.client.get_item(
            TableName=self.table_name, Key=state_key(payload_id), ConsistentRead=True
        )
        item = response.get("Item")
        return PayloadState.from_row(from_item(item)) if item else None

    def get_states(self, payload_ids: list[str]) -> dict[str, PayloadState]:
        """The STATE rows of many payloads, strongly consistent, 100 to a BatchGetItem."""
        found: dict[str, PayloadState] = {}
        unique = list(dict.fromkeys(payload_ids))
        for first in range(0, len(unique), BATCH_GET):
            keys = [state_key(payload_id) for payload_id in unique[first : first + BATCH_GET]]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:  # BatchGetItem has no paginator: its rest comes back as UnprocessedKeys
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    state = PayloadState.from_row(from_item(item))
                    found[state.payload_id] = state
                request = response.get("UnprocessedKeys") or {}
        return found

    def pending(
        self, shard: str, older_than: datetime | None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The oldest rows of one shard of by_pending whose `pending_since` is before a time (or
        every row of it, with None): the first `limit` of them (reconcile's batch), or all (the
        tools' `stuck`)."""
        if older_than is None:
            request = expressions({":s": shard}, KeyConditionExpression="#pending_shard = :s")
        else:
            request = expressions(
                {":s": shard, ":t": stamp(older_than)},
                KeyConditionExpression="#pending_shard = :s AND #pending_since < :t",
            )
        if limit is not None:
            request["PaginationConfig"] = {"MaxItems": limit, "PageSize": limit}
        return [row for page in self._query(IndexName=BY_PENDING, **request) for row in page]

    def touch_pending(self, payload_id: str, sk: str, seen_since: str, now: datetime) -> bool:
        """Send a row to the back of the reconcile queue (after a check found nothing to do)."""
        return self._update(
            to_item({"payload_id": payload_id, "sk": sk}),
            "SET #pending_since = :now",
            "#pending_since = :seen",
            {":now": stamp(now), ":seen": seen_since},
        ).applied
