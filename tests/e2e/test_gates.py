"""Gated starts through the offline stack: a daily payload after the 24 hourly ticks of its day."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from coordinator_tools.local import OfflineStack
from tests.e2e.conftest import executions_of

pytestmark = pytest.mark.e2e

HOURLY = {"expression": "cron(0 * * * ? *)", "timezone": "UTC"}
DAILY = {"expression": "cron(0 0 * * ? *)", "timezone": "UTC"}


def hour(day: int, hour: int, **payload_input: Any) -> dict[str, Any]:
    tick = f"2017-06-{day:02d}T{hour:02d}:00:00Z"
    return {"workflow": "example-target", "scheduleTime": tick, "schedule": HOURLY, "input": payload_input}


def daily(day: int) -> dict[str, Any]:
    """The report of day `day`, due at midnight after it, after that day's 24 hourly ticks."""
    return {
        "workflow": "example-target",
        "id": f"daily-report/2017-06-{day:02d}",
        "scheduleTime": f"2017-06-{day + 1:02d}T00:00:00Z",
        "schedule": DAILY,
        "after": [{"workflow": "example-target", "schedule": HOURLY, "within": "data_interval"}],
    }


def wait_for_attempt(
    stack: OfflineStack, payload_id: str, attempt: int, timeout: float = 60
) -> dict[str, Any]:
    """The payload's row once attempt `attempt` of it is final (a re-sent message claims it)."""
    deadline = time.monotonic() + timeout
    while (row := stack.wait_for_payload(payload_id, timeout))["attempt"] != attempt:
        assert time.monotonic() < deadline, f"attempt {attempt} of {payload_id} never ended: {row}"
        time.sleep(0.05)
    return row


def test_a_daily_payload_starts_after_its_24_hourly_ticks_and_ends_naming_a_failed_one(
    stack: OfflineStack,
) -> None:
    stack.submit(daily(1))
    stack.submit(daily(2))
    for tick in range(23):
        stack.submit(hour(1, tick))
    for tick in range(24):
        stack.submit(hour(2, tick, fail=True) if tick == 7 else hour(2, tick))
    for tick in range(23):
        stack.wait_for_payload(f"example-target/2017-06-01T{tick:02d}:00:00Z")
    assert stack.payload_state("daily-report/2017-06-01")["state"] == "GATED"
    assert executions_of(stack, "example-target", "daily-report/2017-06-01") == []

    stack.submit(hour(1, 23))
    last_hour = stack.wait_for_payload("example-target/2017-06-01T23:00:00Z")
    day_one = stack.wait_for_payload("daily-report/2017-06-01")
    day_two = stack.wait_for_payload("daily-report/2017-06-02")

    assert day_one["state"] == "SUCCEEDED"
    assert day_one["started_at"] > last_hour["finished_at"]
    assert len(executions_of(stack, "example-target", "daily-report/2017-06-01")) == 1
    assert (day_two["state"], day_two["error"]) == ("FAILED", "DependencyFailed")
    assert json.loads(day_two["cause"])["upstream"] == "example-target/2017-06-02T07:00:00Z"
    assert executions_of(stack, "example-target", "daily-report/2017-06-02") == []

    stack.submit(hour(2, 7))
    assert wait_for_attempt(stack, "example-target/2017-06-02T07:00:00Z", 2)["state"] == "SUCCEEDED"
    stack.submit(daily(2))
    assert wait_for_attempt(stack, "daily-report/2017-06-02", 2)["state"] == "SUCCEEDED"


def test_previous_ticks_submitted_at_once_start_in_order(stack: OfflineStack) -> None:
    ticks = [f"2017-07-01T{tick:02d}:00:00Z" for tick in range(5)]
    for tick in reversed(ticks):
        stack.submit(
            {
                "workflow": "example-target",
                "scheduleTime": tick,
                "schedule": HOURLY,
                "input": {},
                "after": [{"previous": True, "first": ticks[0]}],
            }
        )

    rows = [stack.wait_for_payload(f"example-target/{tick}", timeout=60) for tick in ticks]

    assert [row["state"] for row in rows] == ["SUCCEEDED"] * 5
    for earlier, later in itertools.pairwise(rows):
        assert later["started_at"] > earlier["finished_at"]
