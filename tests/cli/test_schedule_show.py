"""`coordinator schedule show`: a workflow's schedule found on the stack, its next ticks and the
states of its last ones, against a coordinator on a moto server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from coordinator.process import process_request
from coordinator.settle import apply_status
from coordinator.states import State
from coordinator_tools.kit.events import request
from coordinator_tools.target import ExitCode
from tests.conftest import REGION

HOURLY = "cron(0 * * * ? *)"
NOW = "2022-02-15T03:30:00Z"


QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:coordinator-process"


def scheduled(
    offline: dict[str, Any],
    workflow: str,
    expression: str,
    timezone: str = "UTC",
    name: str | None = None,
    queue_arn: str = QUEUE_ARN,
) -> None:
    """A live schedule as the template declares it: its input names the workflow."""
    scheduler = boto3.client("scheduler", endpoint_url=offline["endpoint"], region_name=REGION)
    message = {
        "workflow": workflow,
        "scheduleTime": "<aws.scheduler.scheduled-time>",
        "schedule": {"expression": expression, "timezone": timezone},
    }
    scheduler.create_schedule(
        Name=name or f"{workflow}-live",
        ScheduleExpression=expression,
        ScheduleExpressionTimezone=timezone,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": queue_arn,
            "RoleArn": "arn:aws:iam::000000000000:role/scheduler",
            "Input": json.dumps(message),
        },
    )


def ran(offline: dict[str, Any], tick: str, state: State) -> None:
    services = offline["services"]
    payload = request("ingest", scheduleTime=tick, schedule={"expression": HOURLY, "timezone": "UTC"})
    process_request(services, payload, request_id=f"m-{tick}")
    current = services.table.get_state(payload.payload_id)
    assert current is not None
    apply_status(services, payload.payload_id, current.execution_arn, state, output="{}")


@pytest.fixture
def hourly_ingest(offline: dict[str, Any]) -> dict[str, Any]:
    """ingest ticks hourly: 03:00 succeeded, 02:00 failed, 01:00 never submitted, 00:00 succeeded."""
    scheduled(offline, "other", "cron(0 12 * * ? *)")
    scheduled(offline, "ingest", HOURLY)
    ran(offline, "2022-02-15T03:00:00Z", State.SUCCEEDED)
    ran(offline, "2022-02-15T02:00:00Z", State.FAILED)
    ran(offline, "2022-02-15T00:00:00Z", State.SUCCEEDED)
    return offline


def test_show_lists_next_ticks_and_the_states_of_the_last(hourly_ingest: dict[str, Any], cli: Any) -> None:
    result = cli("--json", "schedule", "show", "ingest", "--now", NOW, "--next", "3", "--last", "4")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schedule"] == {
        "expression": HOURLY,
        "timezone": "UTC",
        "name": "ingest-live",
        "state": "ENABLED",
    }
    assert document["next"] == ["2022-02-15T04:00:00Z", "2022-02-15T05:00:00Z", "2022-02-15T06:00:00Z"]
    assert [(t["tick"], t["payload_id"], t["state"]) for t in document["last"]] == [
        ("2022-02-15T03:00:00Z", "ingest/2022-02-15T03:00:00Z", "SUCCEEDED"),
        ("2022-02-15T02:00:00Z", "ingest/2022-02-15T02:00:00Z", "FAILED"),
        ("2022-02-15T01:00:00Z", "ingest/2022-02-15T01:00:00Z", "MISSING"),
        ("2022-02-15T00:00:00Z", "ingest/2022-02-15T00:00:00Z", "SUCCEEDED"),
    ]


def test_show_prints_a_table_of_ticks(hourly_ingest: dict[str, Any], cli: Any) -> None:
    result = cli("schedule", "show", "ingest", "--now", NOW, "--next", "1", "--last", "3")

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    ticks = [
        [cell for cell in row if cell not in "│┃"] for row in rows if row and row[1:2] and "2022" in row[1]
    ]
    assert ticks == [
        ["2022-02-15T04:00:00Z", "ingest/2022-02-15T04:00:00Z", "next"],
        ["2022-02-15T03:00:00Z", "ingest/2022-02-15T03:00:00Z", "SUCCEEDED"],
        ["2022-02-15T02:00:00Z", "ingest/2022-02-15T02:00:00Z", "FAILED"],
        ["2022-02-15T01:00:00Z", "ingest/2022-02-15T01:00:00Z", "MISSING"],
    ]
    assert HOURLY in result.output


def test_show_counts_ticks_in_the_schedules_zone_across_a_dst_gap(offline: dict[str, Any], cli: Any) -> None:
    """Stockholm springs forward on 2025-03-30: the 02:30 of that day does not exist, so is skipped."""
    scheduled(offline, "ingest", "cron(30 2 * * ? *)", "Europe/Stockholm")

    result = cli(
        "--json", "schedule", "show", "ingest", "--now", "2025-03-29T12:00:00Z", "--next", "2", "--last", "1"
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["next"] == ["2025-03-31T00:30:00Z", "2025-04-01T00:30:00Z"]
    assert [t["tick"] for t in document["last"]] == ["2025-03-29T01:30:00Z"]


def shown_rate_of_90_minutes(cli: Any, start: str, *counts: str) -> dict[str, Any]:
    """`schedule show ingest --json` of an explicit rate(90 minutes) from `start`, as of NOW."""
    result = cli(
        "--json", "schedule", "show", "ingest", "--expression", "rate(90 minutes)", "--start", start,
        "--now", NOW, *counts,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_an_explicit_expression_needs_no_schedule_on_the_stack(offline: dict[str, Any], cli: Any) -> None:
    document = shown_rate_of_90_minutes(cli, "2022-02-15T00:00:00Z", "--next", "2", "--last", "2")

    assert document["next"] == ["2022-02-15T04:30:00Z", "2022-02-15T06:00:00Z"]
    assert [t["tick"] for t in document["last"]] == ["2022-02-15T03:00:00Z", "2022-02-15T01:30:00Z"]
    assert {t["state"] for t in document["last"]} == {"MISSING"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedule", "show", "unknown"], "no schedule names workflow unknown: give --expression"),
        (["schedule", "show", "ingest", "--expression", "cron(61 * * * ? *)"], "schedule"),
        (["schedule", "show", "ingest", "--expression", "rate(1 hour)"], "give --start"),
        (["schedule", "show", "ingest", "--now", "2022-02-15T03:30:00"], "--now needs an offset"),
        (["schedule", "show", "ingest", "--timezone", "Europe/Stockholm"], "give it too"),
    ],
)
def test_a_workflow_without_a_schedule_or_a_bad_option_is_a_usage_error(
    hourly_ingest: dict[str, Any], cli: Any, args: list[str], message: str
) -> None:
    result = cli(*args)

    assert result.exit_code == ExitCode.USAGE, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert message in result.output


def test_two_schedules_of_one_workflow_are_refused_by_name(hourly_ingest: dict[str, Any], cli: Any) -> None:
    """They would fire the same payload ids: which one is meant cannot be guessed."""
    scheduled(hourly_ingest, "ingest", "cron(0 6 * * ? *)", name="ingest-morning")

    result = cli("schedule", "show", "ingest")

    assert result.exit_code == ExitCode.USAGE, result.output
    assert "2 schedules name workflow ingest (ingest-live, ingest-morning)" in result.output


def test_a_schedule_sending_elsewhere_than_the_stacks_queue_is_not_the_workflows(
    offline: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    scheduled(
        offline, "ingest", "cron(0 6 * * ? *)", name="another-coordinator", queue_arn=f"{QUEUE_ARN}-other"
    )
    scheduled(offline, "ingest", HOURLY)
    state = json.loads((tmp_path / "local.json").read_text())
    state["outputs"]["ProcessQueueArn"] = QUEUE_ARN
    (tmp_path / "local.json").write_text(json.dumps(state))

    result = cli("--json", "schedule", "show", "ingest", "--now", NOW, "--last", "0")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["schedule"]["name"] == "ingest-live"


def test_a_rate_starting_later_has_no_last_ticks_and_its_first_tick_at_its_start(
    offline: dict[str, Any], cli: Any
) -> None:
    """Scheduler fires nothing before a schedule's start, and anchors a rate there."""
    document = shown_rate_of_90_minutes(cli, "2022-02-16T00:15:00Z", "--next", "2")

    assert document["next"] == ["2022-02-16T00:15:00Z", "2022-02-16T01:45:00Z"]
    assert document["last"] == []
