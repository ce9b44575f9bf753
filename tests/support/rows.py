"""Rows read back from the table, for a test to assert on."""

from __future__ import annotations

from typing import Any

from coordinator.identity import token_key


def waiter_row(services: Any, payload_id: str, token: str) -> dict[str, Any]:
    """A WAITER row as plain values (strongly consistent read)."""
    item = services.dynamodb.get_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": payload_id}, "sk": {"S": token_key(token)}},
        ConsistentRead=True,
    )["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}
