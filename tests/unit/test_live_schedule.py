"""A tick fired by the live schedule and the same tick run by a backfill are one payload.

The live schedule (EventBridge Scheduler, `ExampleSchedule` in template.yaml) stamps its
message with `<aws.scheduler.scheduled-time>`; the backfill state machine sends each tick
that the range function returns as `scheduleTime`. Both become `<workflow>/<UTC time>`, so a
backfill over a span the schedule already ran resolves those ticks at once, never twice.
"""

from __future__ import annotations

import json
from typing import Any

from coordinator.messages import parse_process_message
from coordinator.schedule import RangeRequest, range_page
from tests.support.template import properties, state_machine_definitions

# Scheduler renders the placeholder as an ISO-8601 UTC instant with a Z.
FIRED_AT = "2022-02-15T01:00:00Z"


def live_message(scheduled_time: str) -> dict[str, Any]:
    rendered = properties("ExampleSchedule")["Target"]["Input"].replace(
        "<aws.scheduler.scheduled-time>", scheduled_time
    )
    return dict(json.loads(rendered))


def backfill_message(workflow: str, payload_input: dict[str, Any], tick: str) -> dict[str, Any]:
    """The backfill's MessageBody for one tick, with its JSONPath fields filled as Map would."""
    definitions = state_machine_definitions()
    machine = next(d for name, d in definitions.items() if "backfill" in name.lower())
    template = json.loads(machine["text"])["States"]["RunTicks"]["ItemProcessor"]["States"]["RunTick"][
        "Parameters"
    ]["MessageBody"]
    values = {"$.workflow": workflow, "$.input": payload_input, "$.tick": tick, "$.replace": False}
    message = {
        key.removesuffix(".$"): values[path]
        for key, path in template.items()
        if isinstance(path, str) and path in values
    }
    message["callback"] = {"token": "token-of-the-backfill-iteration", "timeout_seconds": 3600}
    return message


def test_live_tick_and_backfilled_tick_have_the_same_payload_id() -> None:
    live = live_message(FIRED_AT)
    schedule = properties("ExampleSchedule")
    page = range_page(
        RangeRequest.from_event(
            {
                "start": "2022-02-15T00:00:00Z",
                "stop": "2022-02-15T03:00:00Z",
                "schedule": schedule["ScheduleExpression"],
                "timezone": schedule.get("ScheduleExpressionTimezone", "UTC"),
            }
        )
    )
    assert FIRED_AT in page.times

    backfilled = backfill_message(live["workflow"], live["input"], FIRED_AT)

    live_id = parse_process_message(json.dumps(live), max_bytes=262_144).payload_id
    backfill_id = parse_process_message(json.dumps(backfilled), max_bytes=262_144).payload_id
    assert live_id == backfill_id == f"{live['workflow']}/{FIRED_AT}"


def test_ticks_of_different_hours_are_different_payloads() -> None:
    first = parse_process_message(json.dumps(live_message("2022-02-15T01:00:00Z")), max_bytes=262_144)
    second = parse_process_message(json.dumps(live_message("2022-02-15T02:00:00Z")), max_bytes=262_144)

    assert first.payload_id != second.payload_id
