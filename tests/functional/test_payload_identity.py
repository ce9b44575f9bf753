"""A payload keeps its identity across attempts: the STATE row, not the re-run message, says
what the payload is (its workflow, logical time and input)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordinator.process import process_request
from coordinator.services import Services
from coordinator.settle import settle
from coordinator.states import State
from tests.conftest import Workflows
from tests.support.factories import request

SCHEDULED = {"id": "ingest/daily", "scheduleTime": "2030-05-05T12:00:00+01:00"}


def coordinator_block(services: Services, payload_id: str) -> dict[str, Any]:
    current = services.table.get_state(payload_id)
    assert current is not None
    described = services.stepfunctions.describe_execution(executionArn=current.execution_arn)
    return dict(json.loads(described["input"])["coordinator"])


def ended(services: Services, payload_id: str, state: State) -> None:
    current = services.table.get_state(payload_id)
    assert current is not None
    settle(services, payload_id, current.execution_arn, state, output="{}")


def test_schedule_time_is_stored_in_utc_z_form(services: Services, workflows: Workflows) -> None:
    process_request(services, request(**SCHEDULED), request_id="m1")

    current = services.table.get_state("ingest/daily")
    assert current is not None
    assert current.schedule_time == "2030-05-05T11:00:00Z"


@pytest.mark.parametrize(
    ("ended_as", "rerun"),
    [
        pytest.param(State.SUCCEEDED, {"replace": True}, id="replace (the CLI's rerun)"),
        pytest.param(State.FAILED, {}, id="failed payload retried by a new message"),
        pytest.param(State.ABORTED, {"replace": True, "scheduleTime": "2030-05-05T11:00:00Z"}, id="backfill"),
    ],
)
def test_a_rerun_gives_the_workflow_the_first_attempts_block_but_for_the_attempt(
    services: Services, workflows: Workflows, ended_as: State, rerun: dict[str, Any]
) -> None:
    process_request(services, request(**SCHEDULED), request_id="m1")
    first = coordinator_block(services, "ingest/daily")
    ended(services, "ingest/daily", ended_as)

    process_request(services, request(id="ingest/daily", **rerun), request_id="m2")

    second = coordinator_block(services, "ingest/daily")
    assert second == {**first, "attempt": 2}
    assert first["schedule_time"] == "2030-05-05T11:00:00Z"


def test_a_rerun_of_a_row_written_with_an_offset_keeps_its_instant_in_z_form(
    services: Services, workflows: Workflows
) -> None:
    process_request(services, request(**SCHEDULED), request_id="m1")
    services.dynamodb.update_item(  # as rows were stored before the `...Z` form
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": "ingest/daily"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET schedule_time = :t",
        ExpressionAttributeValues={":t": {"S": "2030-05-05T12:00:00.000000+01:00"}},
    )
    ended(services, "ingest/daily", State.FAILED)

    process_request(services, request(id="ingest/daily"), request_id="m2")

    assert coordinator_block(services, "ingest/daily")["schedule_time"] == "2030-05-05T11:00:00Z"
    current = services.table.get_state("ingest/daily")
    assert current is not None
    assert current.schedule_time == "2030-05-05T11:00:00Z"
