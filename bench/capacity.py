"""What DynamoDB calls cost: item sizes and capacity units by the pricing rules, and a `Meter`
that counts a client's AWS calls and the capacity each DynamoDB call consumes.

DynamoDB Developer Guide, "DynamoDB read and write operations" and "Item sizes and formats":
a write unit is 1 KB of item (the larger of the item before and after), a strongly consistent
read unit 4 KB (eventually consistent: half), a Query sums the sizes of the items it *read*
(before its filter) and rounds up once, and an index whose entry appears, changes or
disappears costs its own write (two when its key changes: a delete and a put). A conditional
write whose condition fails still consumes write units for the item's size (at least one).
"""

from __future__ import annotations

import base64
import copy
import math
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coordinator_tools.kit.template import table_create_kwargs

# -- item sizes and capacity units, per the pricing rules ---------------------------------------


def attribute_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return len(data if isinstance(data, bytes) else base64.b64decode(data))
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: item}) for item in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


def index_entry(item: Mapping[str, Any] | None, index: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item's entry in a sparse GSI, or None when a key attribute is missing."""
    if not item or any(key not in item for key in index["keys"]):
        return None
    if index["all"]:
        return dict(item)
    return {name: item[name] for name in index["attributes"] if name in item}


def index_writes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, indexes: list[dict[str, Any]]
) -> dict[str, int]:
    units: dict[str, int] = {}
    for index in indexes:
        old, new = index_entry(before, index), index_entry(after, index)
        if old is None and new is None:
            continue
        if old is None or new is None:
            units[index["name"]] = write_units(item_size(old or new))
        elif any(old.get(k) != new.get(k) for k in index["keys"]):
            units[index["name"]] = write_units(item_size(old)) + write_units(item_size(new))
        elif old != new:
            units[index["name"]] = write_units(max(item_size(old), item_size(new)))
    return units


def table_indexes() -> list[dict[str, Any]]:
    """The table's GSIs from the template: name, key attribute names and projected attributes."""
    kwargs = table_create_kwargs(table_name="probe")
    table_keys = [key["AttributeName"] for key in kwargs["KeySchema"]]
    found = []
    for index in kwargs.get("GlobalSecondaryIndexes", []):
        keys = [key["AttributeName"] for key in index["KeySchema"]]
        projection = index["Projection"]
        projected = (
            projection.get("NonKeyAttributes", []) if projection["ProjectionType"] == "INCLUDE" else []
        )
        found.append(
            {
                "name": index["IndexName"],
                "keys": keys,
                "attributes": sorted({*keys, *table_keys, *projected}),
                "all": projection["ProjectionType"] == "ALL",
            }
        )
    return found


# -- the meter -----------------------------------------------------------------------------------


@dataclass
class Call:
    operation: str
    error: str | None
    reported: float | None  # ConsumedCapacity.CapacityUnits as the service (moto) returned it
    table_units: float  # computed from the items' sizes by the pricing rules
    index_units: dict[str, int]
    kind: str  # "read" or "write" or "" (not DynamoDB)

    @property
    def units(self) -> float:
        return self.table_units + sum(self.index_units.values())


_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


class Meter:
    """Counts the AWS calls of the given clients and what each DynamoDB call costs.

    - Asks DynamoDB for `ReturnConsumedCapacity=TOTAL` on every call that takes it (injected in
      `before-parameter-build`) and keeps what comes back (`after-call`).
    - Computes the units the pricing rules give from the items themselves: before a write it
      reads the item, after it reads it again, and a Query is re-run without its filter or
      projection to see the items it read, all through `probe`, a client without hooks, so the
      meter never counts its own look-ups.
    - Optionally keeps every call's parameters, for a bare script to replay them (a timed replay
      passes `ask_capacity=False`: the code it measures then sends exactly what it sends deployed).
    """

    def __init__(
        self, *clients: Any, probe: Any = None, record_params: bool = False, ask_capacity: bool = True
    ) -> None:
        self.calls: list[Call] = []
        self.params: list[tuple[str, str, dict[str, Any]]] = []
        self.probe = probe
        self.record_params = record_params
        self.indexes = table_indexes() if probe is not None else []
        # A call's before-image waits for its after-call on its own thread: settle moves waiters
        # on a thread pool, and one shared stack paired a call with another thread's after-call.
        self._threads = threading.local()
        for client in clients:
            events = client.meta.events
            if ask_capacity:
                events.register("before-parameter-build.dynamodb.*", self._ask_capacity)
            events.register("before-parameter-build.*.*", self._before)
            events.register("after-call.*.*", self._after)

    # hooks

    def _ask_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members and "ReturnConsumedCapacity" not in params:
            params["ReturnConsumedCapacity"] = "TOTAL"

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        if self.record_params:
            kept = {k: v for k, v in params.items() if k != "ReturnConsumedCapacity"}
            self.params.append((service, model.name, copy.deepcopy(kept)))
        before = None
        if self.probe is not None and service == "dynamodb" and model.name in _WRITES:
            before = self._item(params["TableName"], params["Key"] if "Key" in params else self._key(params))
        # Only the capacity computation reads a call's parameters back: without a probe, copying
        # them would be the meter's own cost charged to the code it measures.
        kept_params = copy.deepcopy(params) if self.probe is not None else {}
        self._pending().append((model.name, kept_params, before))

    def _after(self, model: Any, parsed: Mapping[str, Any], **_: Any) -> None:
        pending = self._pending()
        if not pending:
            return
        name, params, before = pending.pop()
        service = model.service_model.service_name
        error = parsed.get("Error", {}).get("Code") if "Error" in parsed else None
        reported = None
        consumed = parsed.get("ConsumedCapacity")
        if isinstance(consumed, dict) and "CapacityUnits" in consumed:
            reported = float(consumed["CapacityUnits"])
        index_units: dict[str, int] = {}
        table_units, kind = 0.0, ""
        if service == "dynamodb" and self.probe is not None:
            table_units, index_units, kind = self._computed(name, params, before, error)
        self.calls.append(Call(name, error, reported, table_units, index_units, kind))

    def _pending(self) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        """This thread's calls sent and not yet answered."""
        if not hasattr(self._threads, "pending"):
            self._threads.pending = []
        pending: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = self._threads.pending
        return pending

    # the pricing rules applied to the actual items

    def _key(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: params["Item"][k] for k in ("payload_id", "sk")}

    def _item(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.probe.get_item(TableName=table_name, Key=dict(key), ConsistentRead=True)
        item: dict[str, Any] | None = found.get("Item")
        return item

    def _computed(
        self, name: str, params: Mapping[str, Any], before: dict[str, Any] | None, error: str | None
    ) -> tuple[float, dict[str, int], str]:
        consistent = bool(params.get("ConsistentRead"))
        if name in _WRITES:
            if error == "ConditionalCheckFailedException":
                return float(write_units(item_size(before))), {}, "write"
            if error:
                return 0.0, {}, "write"
            key = params["Key"] if "Key" in params else self._key(params)
            after = self._item(params["TableName"], key)
            units = write_units(max(item_size(before), item_size(after)))
            return float(units), index_writes(before, after, self.indexes), "write"
        if name == "GetItem":
            item = self._item(params["TableName"], params["Key"])
            return read_units(item_size(item), consistent=consistent), {}, "read"
        if name == "Query":
            read = self._query_read(params)
            return read_units(sum(item_size(i) for i in read), consistent=consistent), {}, "read"
        return 0.0, {}, ""

    def _query_read(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The items a Query read: the same key condition, start and limit, no filter or projection."""
        condition = params["KeyConditionExpression"]
        values = {k: v for k, v in params.get("ExpressionAttributeValues", {}).items() if k in condition}
        request: dict[str, Any] = {
            "TableName": params["TableName"],
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        names = {k: v for k, v in params.get("ExpressionAttributeNames", {}).items() if k in condition}
        if names:
            request["ExpressionAttributeNames"] = names
        for option in ("IndexName", "ExclusiveStartKey", "Limit", "ConsistentRead", "ScanIndexForward"):
            if option in params:
                request[option] = params[option]
        return list(self.probe.query(**request).get("Items", []))

    # summaries

    def reset(self) -> None:
        self.calls.clear()
        self.params.clear()

    @property
    def counts(self) -> Counter[str]:
        return Counter(call.operation for call in self.calls)

    def total(self, kind: str) -> float:
        return sum(call.units for call in self.calls if call.kind == kind)

    def reported_total(self) -> float | None:
        values = [call.reported for call in self.calls if call.reported is not None]
        return sum(values) if values else None

    def index_total(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for call in self.calls:
            found.update(call.index_units)
        return found


def describe_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"
