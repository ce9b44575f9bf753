"""The benchmarks' `Meter` (bench/capacity.py) prices each call from its own items, on any thread."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3

from bench.capacity import Meter
from coordinator_tools.kit.resources import create_table

TABLE = "coordinator-meter"


def pending_row(payload_id: str) -> dict[str, Any]:
    """A STATE row in the sparse by_pending index."""
    return {
        "payload_id": {"S": payload_id},
        "sk": {"S": "STATE"},
        "pending_shard": {"S": "STATE#0"},
        "pending_since": {"S": "2026-01-05T12:00:00+00:00"},
    }


def test_calls_answered_out_of_order_on_two_threads_are_each_priced_from_their_own_item(aws: None) -> None:
    dynamodb = boto3.client("dynamodb")
    create_table(dynamodb, TABLE)
    meter = Meter(dynamodb, probe=boto3.client("dynamodb"))
    # Both calls are sent before either is answered, and the one sent first is answered first
    # (as on settle's thread pool): a meter that pairs an answer with the other thread's call
    # reads an item not written yet, and misses its index entry.
    first_sent, first_answered = threading.Event(), threading.Event()
    both_sent = threading.Barrier(2, timeout=30)

    def hold(**_: Any) -> None:
        if threading.current_thread().name == "first":
            first_sent.set()
            both_sent.wait()
        else:
            both_sent.wait()
            first_answered.wait(timeout=30)

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", hold)

    def put(payload_id: str) -> None:
        dynamodb.put_item(TableName=TABLE, Item=pending_row(payload_id))
        if payload_id == "first":
            first_answered.set()

    first = threading.Thread(target=put, args=("first",), name="first")
    second = threading.Thread(target=put, args=("second",), name="second")
    first.start()
    assert first_sent.wait(timeout=30)
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)

    assert [call.index_units for call in meter.calls] == [{"by_pending": 1}, {"by_pending": 1}]
    assert meter.index_total() == Counter(by_pending=2)
