"""A tick fired by the live schedule and the same tick run by a backfill are one payload.

The live schedule (EventBridge Scheduler, `ExampleSchedule` in template.yaml, declared by its
parameters) stamps its message with `<aws.scheduler.scheduled-time>`; the backfill state
machine sends each tick that the range function returns as `scheduleTime`. Both become
`<workflow>/<UTC time>`, so a backfill over a span the schedule already ran resolves those
ticks at once, never twice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from coordinator.errors import InvalidMessage
from coordinator.messages import parse_process_message
from coordinator.schedule import RangeRequest, range_page
from coordinator_tools.kit import ROOT
from coordinator_tools.kit.template import (
    load_template,
    properties,
    state_machine_definitions,
    with_parameters,
)

# Scheduler renders the placeholder as an ISO-8601 UTC instant with a Z.
FIRED_AT = "2022-02-15T01:00:00Z"


def live_schedule(**parameters: str) -> dict[str, Any]:
    """ExampleSchedule's properties as deployed with `parameters` (the defaults for the rest)."""
    resolved: dict[str, Any] = with_parameters(properties("ExampleSchedule"), **parameters)
    return resolved


def live_message(scheduled_time: str, **parameters: str) -> dict[str, Any]:
    rendered = live_schedule(**parameters)["Target"]["Input"].replace(
        "<aws.scheduler.scheduled-time>", scheduled_time
    )
    return dict(json.loads(rendered))


def backfill_message(
    workflow: str,
    payload_input: dict[str, Any],
    tick: str,
    expression: str = "cron(0 * * * ? *)",
    timezone: str = "UTC",
    start: str = "2022-02-15T00:00:00Z",
) -> dict[str, Any]:
    """The backfill's MessageBody for one tick, with its JSONPath fields filled as Map would."""
    definitions = state_machine_definitions()
    machine = next(d for name, d in definitions.items() if "backfill" in name.lower())
    template = json.loads(machine["text"])["States"]["RunTicks"]["ItemProcessor"]["States"]["RunTick"][
        "Parameters"
    ]["MessageBody"]
    run_ticks = json.loads(machine["text"])["States"]["RunTicks"]
    backfill_input = {"schedule": expression, "timezone": timezone, "start": start}
    schedule = {
        key.removesuffix(".$"): backfill_input[path.removeprefix("$.")]
        for key, path in run_ticks["ItemSelector"]["schedule"].items()
    }
    values = {
        "$.workflow": workflow,
        "$.input": payload_input,
        "$.tick": tick,
        "$.replace": False,
        "$.schedule": schedule,
    }
    message = {
        key.removesuffix(".$"): values[path]
        for key, path in template.items()
        if isinstance(path, str) and path in values
    }
    message["callback"] = {"token": "token-of-the-backfill-iteration", "timeout_seconds": 3600}
    return message


def test_live_tick_and_backfilled_tick_have_the_same_payload_id() -> None:
    live = live_message(FIRED_AT)
    schedule = live_schedule()
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


# -- the logical time: the `coordinator` block of a live tick and of the same tick backfilled --


def live_message_of(
    expression: str, timezone: str, scheduled_time: str, start: str | None = None
) -> dict[str, Any]:
    """ExampleSchedule's target input, for a schedule of `expression` in `timezone`.

    For a rate the live schedule's StartDate is its anchor: the template names it as `start`.
    """
    message = live_message(scheduled_time)
    message["schedule"] = {"expression": expression, "timezone": timezone}
    if start is not None:
        message["schedule"]["start"] = start
    return message


def backfilled_block(expression: str, timezone: str, start: str, stop: str, tick: str) -> str:
    """The execution input of `tick` as the backfill of `[start, stop)` sends it."""
    page = range_page(
        RangeRequest.from_event(
            {"start": start, "stop": stop, "schedule": expression, "timezone": timezone, "page_size": 5000}
        )
    )
    assert tick in page.times
    message = backfill_message("example-target", {"wait_seconds": 5}, tick, expression, timezone, start)
    return parse_process_message(json.dumps(message), max_bytes=262_144).execution_input(1)


def test_the_live_schedule_names_its_own_expression_and_zone() -> None:
    schedule = live_schedule()
    assert live_message(FIRED_AT)["schedule"] == {
        "expression": schedule["ScheduleExpression"],
        "timezone": schedule.get("ScheduleExpressionTimezone", "UTC"),
    }


def test_the_readmes_schedule_block_for_a_teams_template_fires_ticks_identical_to_the_backfills(
    tmp_path: Path,
) -> None:
    """The copy-paste block the README gives a team, as CloudFormation would resolve it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "AWS::Scheduler::Schedule" in b)
    (tmp_path / "team.yaml").write_text(block, encoding="utf-8")
    team = load_template(tmp_path / "team.yaml")
    queue = "arn:aws:sqs:eu-north-1:000000000000:coordinator-process"
    schedule = with_parameters(
        team["Resources"]["NightlyExport"]["Properties"], team, CoordinatorQueueArn=queue
    )
    tick = "2025-03-31T00:30:00Z"
    live = json.loads(schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", tick))
    expression, timezone = schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]

    assert live["schedule"] == {"expression": expression, "timezone": timezone}
    message = backfill_message(
        live["workflow"], live["input"], tick, expression, timezone, "2025-03-25T00:00:00"
    )
    assert parse_process_message(json.dumps(live), max_bytes=262_144).execution_input(1) == (
        parse_process_message(json.dumps(message), max_bytes=262_144).execution_input(1)
    )


def test_a_schedule_declared_by_its_parameters_fires_ticks_identical_to_the_backfills() -> None:
    """The parameters are the whole declaration: workflow, expression, zone and input, each named
    once, so the schedule fires when its message says and the tick's execution input is the
    backfill's, byte for byte (here a daily 02:30 in Stockholm, across spring forward)."""
    parameters = {
        "ScheduledWorkflow": "nightly-export",
        "ScheduleExpression": "cron(30 2 * * ? *)",
        "ScheduleTimezone": "Europe/Stockholm",
        "ScheduleInput": '{"bucket": "exports", "full": false}',
    }
    schedule = live_schedule(**parameters)
    tick = "2025-03-31T00:30:00Z"
    live = live_message(tick, **parameters)

    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        "cron(30 2 * * ? *)",
        "Europe/Stockholm",
    )
    assert live["workflow"] == "nightly-export"
    assert live["input"] == {"bucket": "exports", "full": False}
    assert live["schedule"] == {"expression": "cron(30 2 * * ? *)", "timezone": "Europe/Stockholm"}
    message = backfill_message(
        "nightly-export", live["input"], tick, "cron(30 2 * * ? *)", "Europe/Stockholm", "2025-03-25T00:00:00"
    )
    live_parsed = parse_process_message(json.dumps(live), max_bytes=262_144)
    backfilled = parse_process_message(json.dumps(message), max_bytes=262_144)
    assert live_parsed.payload_id == backfilled.payload_id == f"nightly-export/{tick}"
    assert live_parsed.execution_input(1) == backfilled.execution_input(1)
    assert json.loads(live_parsed.execution_input(1))["coordinator"]["data_interval_start"] == (
        "2025-03-29T01:30:00Z"
    )


@pytest.mark.parametrize(
    ("expression", "timezone", "live_start", "backfill_start", "tick", "expected"),
    [
        # Spring forward in Stockholm (2025-03-30): 02:30 does not exist, so the tick before
        # 03:30 CEST is 01:30 CET, two wall hours but one hour of elapsed time earlier.
        (
            "cron(30 * * * ? *)",
            "Europe/Stockholm",
            None,
            "2025-03-30T00:00:00",
            "2025-03-30T01:30:00Z",
            ("2025-03-30T03:30:00+02:00", "2025-03-30T00:30:00Z"),
        ),
        # A daily 02:30 skips the spring-forward day: the interval of the 31st starts on the 29th.
        (
            "cron(30 2 * * ? *)",
            "Europe/Stockholm",
            None,
            "2025-03-25T00:00:00",
            "2025-03-31T00:30:00Z",
            ("2025-03-31T02:30:00+02:00", "2025-03-29T01:30:00Z"),
        ),
        # Fall back (2025-10-26): 02:30 happens twice and fires once, at the first (CEST).
        (
            "cron(30 2 * * ? *)",
            "Europe/Stockholm",
            None,
            "2025-10-20T00:00:00",
            "2025-10-27T01:30:00Z",
            ("2025-10-27T02:30:00+01:00", "2025-10-26T00:30:00Z"),
        ),
        (
            "cron(30 2 * * ? *)",
            "Europe/Stockholm",
            None,
            "2025-10-20T00:00:00",
            "2025-10-26T00:30:00Z",
            ("2025-10-26T02:30:00+02:00", "2025-10-25T00:30:00Z"),
        ),
        # A rate is elapsed time from its start, whatever the zone does.
        (
            "rate(90 minutes)",
            "Europe/Stockholm",
            "2025-03-30T00:00:00Z",
            "2025-03-30T01:00:00+01:00",
            "2025-03-30T03:00:00Z",
            ("2025-03-30T05:00:00+02:00", "2025-03-30T01:30:00Z"),
        ),
    ],
)
def test_a_live_tick_and_the_same_tick_backfilled_have_identical_execution_inputs(
    expression: str,
    timezone: str,
    live_start: str | None,
    backfill_start: str,
    tick: str,
    expected: tuple[str, str],
) -> None:
    live = parse_process_message(
        json.dumps(live_message_of(expression, timezone, tick, start=live_start or backfill_start)),
        max_bytes=262_144,
    ).execution_input(1)
    backfilled = backfilled_block(expression, timezone, backfill_start, "2025-11-01T00:00:00Z", tick)

    assert live == backfilled
    block = json.loads(live)["coordinator"]
    local, interval_start = expected
    assert block["schedule_time"] == block["data_interval_end"] == tick
    assert block["schedule_time_local"] == local
    assert block["data_interval_start"] == interval_start
    assert block["schedule"]["expression"] == expression


@pytest.mark.parametrize(
    ("schedule", "tick", "reason"),
    [
        (
            {"expression": "cron(30 2 * * ? *)", "timezone": "Europe/Stockholm"},
            "2025-03-30T01:30:00Z",
            "not a tick",
        ),
        ({"expression": "cron(0 * * * ? *)", "timezone": "UTC"}, "2025-03-30T01:30:00Z", "not a tick"),
        (
            {"expression": "rate(90 minutes)", "start": "2025-03-30T00:00:00Z"},
            "2025-03-30T01:00:00Z",
            "not a tick",
        ),
        ({"expression": "rate(90 minutes)"}, "2025-03-30T01:30:00Z", "anchored at the schedule's start"),
        ({"expression": "cron(0 * * *)"}, "2025-03-30T01:00:00Z", "schedule"),
        ({"expression": "cron(0 * * * ? *)", "timezone": "Europe/Nowhere"}, "2025-03-30T01:00:00Z", "IANA"),
    ],
)
def test_a_schedule_time_that_is_no_tick_of_its_schedule_is_refused_with_the_reason(
    schedule: dict[str, Any], tick: str, reason: str
) -> None:
    message = {
        "workflow": "example-target",
        "scheduleTime": tick,
        "schedule": schedule,
        "callback": {"token": "t"},
    }

    with pytest.raises(InvalidMessage, match=reason) as refused:
        parse_process_message(json.dumps(message), max_bytes=262_144)
    assert refused.value.token == "t"  # so the waiter is failed at once (DependencyInvalid)


def test_a_schedule_without_a_schedule_time_is_refused() -> None:
    message = {"workflow": "w", "schedule": {"expression": "rate(1 hour)", "start": "2025-01-01T00:00:00Z"}}

    with pytest.raises(InvalidMessage, match="needs a scheduleTime"):
        parse_process_message(json.dumps(message), max_bytes=262_144)


def test_the_live_schedule_sends_no_after_unless_given_one() -> None:
    message = live_message(FIRED_AT)

    assert "after" not in message
    assert parse_process_message(json.dumps(message), max_bytes=262_144).after == ()


def test_the_live_schedules_after_parameter_goes_into_every_ticks_message() -> None:
    """ScheduleAfter is the message's `after`, as a backfill's input `after` is each tick's."""
    after = [{"previous": True, "first": "2022-02-15T00:00:00Z"}, {"id": "reference-data/latest"}]
    message = live_message(FIRED_AT, ScheduleAfter=json.dumps(after))

    assert message["after"] == after
    upstreams = parse_process_message(json.dumps(message), max_bytes=262_144).after
    # The previous tick of the 01:00 tick, and the payload named by id.
    assert [upstream.payload_id for upstream in upstreams] == [
        "example-target/2022-02-15T00:00:00Z",
        "reference-data/latest",
    ]


def test_the_after_parameter_takes_a_json_list_or_nothing() -> None:
    pattern = re.compile(load_template()["Parameters"]["ScheduleAfter"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch('[{"previous": true,\n "first": "2022-02-15T00:00:00Z"}]')
    assert not pattern.fullmatch('{"previous": true}')
