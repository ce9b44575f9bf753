"""A payload keeps its identity across attempts: the STATE row, not the re-run message, says
what the payload is (its workflow, logical time and input)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordinator.errors import InvalidMessage
from coordinator.messages import parse_process_message
from coordinator.process import Processed, process_request
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State
from coordinator_tools.kit.events import callback, request
from tests.conftest import Workflows
from tests.support.rows import waiter_row
from tests.unit.test_live_schedule import backfill_message, live_message

SCHEDULED = {"id": "ingest/daily", "scheduleTime": "2030-05-05T12:00:00+01:00"}


def coordinator_block(services: Services, payload_id: str) -> dict[str, Any]:
    current = services.table.get_state(payload_id)
    assert current is not None
    described = services.stepfunctions.describe_execution(executionArn=current.execution_arn)
    return dict(json.loads(described["input"])["coordinator"])


def ended(services: Services, payload_id: str, state: State) -> None:
    current = services.table.get_state(payload_id)
    assert current is not None
    apply_status(services, payload_id, current.execution_arn, state, output="{}")


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


ON_SCHEDULE = {
    "id": "ingest/hourly",
    "scheduleTime": "2025-03-30T01:30:00Z",
    "schedule": {"expression": "cron(30 * * * ? *)", "timezone": "Europe/Stockholm"},
}


@pytest.mark.parametrize(
    "rerun",
    [
        pytest.param({"replace": True}, id="no schedule (the CLI's rerun)"),
        pytest.param(
            {
                "replace": True,
                "scheduleTime": "2025-03-30T01:30:00Z",
                "schedule": {"expression": "rate(1 hour)", "start": "2025-03-30T00:30:00Z"},
            },
            id="another schedule of which it is a tick too",
        ),
    ],
)
def test_a_rerun_keeps_the_data_interval_of_the_first_claim(
    services: Services, workflows: Workflows, rerun: dict[str, Any]
) -> None:
    process_request(services, request(**ON_SCHEDULE), request_id="m1")
    first = coordinator_block(services, "ingest/hourly")
    ended(services, "ingest/hourly", State.SUCCEEDED)

    process_request(services, request(id="ingest/hourly", **rerun), request_id="m2")

    assert coordinator_block(services, "ingest/hourly") == {**first, "attempt": 2}
    assert (first["data_interval_start"], first["schedule_time_local"]) == (
        "2025-03-30T00:30:00Z",
        "2025-03-30T03:30:00+02:00",
    )


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


# -- an id belongs to its workflow, its logical time and (when explicit) its input ----------


def finished(services: Services, payload_id: str, state: State, **fields: Any) -> None:
    process_request(services, request(id=payload_id, **fields), request_id=f"first-{payload_id}")
    ended(services, payload_id, state)


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.PROCESSING])
def test_an_id_of_another_workflow_is_refused_and_its_waiter_failed(
    services: Services, workflows: Workflows, state: State, replace: bool
) -> None:
    workflows.create("publish")
    process_request(services, request(id="shared"), request_id="first")
    current = services.table.get_state("shared")
    assert current is not None
    apply_status(services, "shared", current.execution_arn, state, output='{"of": "ingest"}')
    hook = callback()

    with pytest.raises(InvalidMessage, match="belongs to workflow 'ingest', not 'publish'"):
        process_request(
            services, request("publish", id="shared", replace=replace, callback=hook), request_id="m2"
        )

    row = waiter_row(services, "shared", hook["token"])
    assert (row["waiter_state"], row["dependency_error"]) == ("INVALID", "PayloadRefused")
    after = services.table.get_state("shared")
    assert after is not None
    assert (after.workflow, after.state, after.attempt) == ("ingest", state, 1)
    assert workflows.executions("publish") == []


def test_an_explicit_id_with_another_input_is_refused_without_replace(
    services: Services, workflows: Workflows
) -> None:
    finished(services, "p-input", State.SUCCEEDED, input={"granule": "G1"})
    hook = callback()

    with pytest.raises(InvalidMessage, match="another input"):
        process_request(
            services, request(id="p-input", input={"granule": "G2"}, callback=hook), request_id="m2"
        )

    assert waiter_row(services, "p-input", hook["token"])["waiter_state"] == "INVALID"


def test_a_failed_explicit_id_is_not_retried_on_another_input_without_replace(
    services: Services, workflows: Workflows
) -> None:
    finished(services, "p-failed", State.FAILED, input={"granule": "G1"})

    with pytest.raises(InvalidMessage, match="another input"):
        process_request(services, request(id="p-failed", input={"granule": "G2"}), request_id="m2")

    assert len(workflows.executions("ingest")) == 1


def test_replace_runs_an_ended_explicit_id_on_its_new_input_which_becomes_the_payloads(
    services: Services, workflows: Workflows
) -> None:
    finished(services, "p-new-input", State.SUCCEEDED, input={"granule": "G1"})

    process_request(
        services, request(id="p-new-input", input={"granule": "G2"}, replace=True), request_id="m2"
    )

    described = json.loads(
        services.stepfunctions.describe_execution(
            executionArn=services.table.get_state("p-new-input").execution_arn  # type: ignore[union-attr]
        )["input"]
    )
    assert (described["granule"], described["coordinator"]["attempt"]) == ("G2", 2)
    with pytest.raises(InvalidMessage, match="another input"):
        process_request(services, request(id="p-new-input", input={"granule": "G1"}), request_id="m3")


def test_replace_with_another_input_is_refused_while_the_payload_runs(
    services: Services, workflows: Workflows
) -> None:
    finished(services, "p-busy", State.PROCESSING, input={"granule": "G1"})

    with pytest.raises(InvalidMessage, match="another input"):
        process_request(
            services, request(id="p-busy", input={"granule": "G2"}, replace=True), request_id="m2"
        )


def test_the_same_explicit_id_and_input_resolves_at_once(services: Services, workflows: Workflows) -> None:
    finished(services, "p-same", State.SUCCEEDED, input={"granule": "G1"})

    outcome = process_request(
        services, request(id="p-same", input={"granule": "G1"}, callback=callback()), request_id="m2"
    )

    assert outcome is Processed.ALREADY_DONE


def test_an_explicit_id_with_another_schedule_time_is_refused(
    services: Services, workflows: Workflows
) -> None:
    process_request(services, request(**SCHEDULED), request_id="m1")
    ended(services, "ingest/daily", State.FAILED)

    with pytest.raises(InvalidMessage, match="schedule time 2030-05-05T11:00:00Z, not 2030-05-06"):
        process_request(
            services,
            request(id="ingest/daily", scheduleTime="2030-05-06T11:00:00Z", replace=True),
            request_id="m2",
        )


def test_a_cirrus_payload_with_an_explicit_id_and_other_items_is_refused(
    services: Services, workflows: Workflows
) -> None:
    def cirrus(item: str) -> str:
        return json.dumps(
            {
                "type": "FeatureCollection",
                "id": "sentinel/workflow-ingest/fixed",
                "features": [{"id": item, "collection": "sentinel"}],
                "process": [{"workflow": "ingest"}],
            }
        )

    process_request(services, parse_process_message(cirrus("S2A"), max_bytes=262_144), request_id="m1")
    ended(services, "sentinel/workflow-ingest/fixed", State.SUCCEEDED)

    with pytest.raises(InvalidMessage, match="another input"):
        process_request(services, parse_process_message(cirrus("S2B"), max_bytes=262_144), request_id="m2")


def backfilled(services: Services, live: dict[str, Any], payload_input: dict[str, Any]) -> Processed:
    tick = backfill_message(live["workflow"], payload_input, live["scheduleTime"])
    tick["callback"]["token"] = callback()["token"]
    return process_request(
        services, parse_process_message(json.dumps(tick), max_bytes=262_144), request_id="t"
    )


@pytest.fixture
def live_tick(services: Services, workflows: Workflows) -> dict[str, Any]:
    workflows.create("example-target")
    live = live_message("2022-02-15T01:00:00Z")
    process_request(services, parse_process_message(json.dumps(live), max_bytes=262_144), request_id="live")
    return live


def test_a_backfilled_tick_with_the_live_input_is_the_live_payload(
    services: Services, live_tick: dict[str, Any]
) -> None:
    payload_id = f"{live_tick['workflow']}/{live_tick['scheduleTime']}"
    ended(services, payload_id, State.SUCCEEDED)

    assert backfilled(services, live_tick, live_tick["input"]) is Processed.ALREADY_DONE


def test_a_failed_tick_is_backfilled_on_the_backfills_input(
    services: Services, live_tick: dict[str, Any]
) -> None:
    payload_id = f"{live_tick['workflow']}/{live_tick['scheduleTime']}"
    ended(services, payload_id, State.FAILED)

    assert backfilled(services, live_tick, {"corrected": True}) is Processed.STARTED
    block = coordinator_block(services, payload_id)
    assert (block["attempt"], block["schedule_time"]) == (2, "2022-02-15T01:00:00Z")
