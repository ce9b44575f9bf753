"""process against the table protocol (moto): claims, starts, waiters, re-runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from coordinator.errors import InvalidMessage
from coordinator.identity import execution_name
from coordinator.process import Processed, process_request
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator_tools.kit.events import callback, request
from tests.conftest import Workflows
from tests.support.rows import waiter_row


def test_new_payload_is_claimed_and_started_under_its_deterministic_name(
    services: Services, workflows: Workflows
) -> None:
    payload = request(id="ingest/granule-1")

    outcome = process_request(services, payload, request_id="m1")

    assert outcome is Processed.STARTED
    [execution] = workflows.executions("ingest")
    assert execution["name"] == execution_name("ingest/granule-1", 1)
    state = services.table.get_state("ingest/granule-1")
    assert state is not None
    assert state.state is State.CLAIMED
    assert state.execution_arn == execution["executionArn"]


def test_execution_input_carries_the_payload_id_for_update_state(
    services: Services, workflows: Workflows
) -> None:
    process_request(services, request(id="p-meta", input={"x": 1}), request_id="m1")

    [execution] = workflows.executions("ingest")
    described = services.stepfunctions.describe_execution(executionArn=execution["executionArn"])
    document = json.loads(described["input"])
    assert document["x"] == 1
    assert document["coordinator"] == {
        "payload_id": "p-meta",
        "workflow": "ingest",
        "attempt": 1,
        "schedule_time": None,
    }


def test_same_message_delivered_twice_starts_one_execution(services: Services, workflows: Workflows) -> None:
    payload = request(input={"granule": "G7"})

    first = process_request(services, payload, request_id="m1")
    second = process_request(services, payload, request_id="m1")

    assert (first, second) == (Processed.STARTED, Processed.RESTARTED)
    assert len(workflows.executions("ingest")) == 1


def test_redelivery_after_the_attempt_failed_does_not_start_another(
    services: Services, workflows: Workflows
) -> None:
    payload = request(id="p-fail-fast")
    process_request(services, payload, request_id="m1")
    claimed = services.table.get_state("p-fail-fast")
    assert claimed is not None
    apply_status(services, "p-fail-fast", claimed.execution_arn, State.FAILED, error="Boom")

    again = process_request(services, payload, request_id="m1")

    assert again is Processed.ALREADY_DONE
    assert len(workflows.executions("ingest")) == 1


def test_a_new_message_for_a_failed_payload_starts_the_next_attempt(
    services: Services, workflows: Workflows
) -> None:
    process_request(services, request(id="p-retry"), request_id="m1")
    first = services.table.get_state("p-retry")
    assert first is not None
    apply_status(services, "p-retry", first.execution_arn, State.FAILED, error="Boom")

    outcome = process_request(services, request(id="p-retry"), request_id="m2")

    assert outcome is Processed.STARTED
    second = services.table.get_state("p-retry")
    assert second is not None
    assert second.attempt == 2
    assert second.execution_arn.endswith(execution_name("p-retry", 2))
    assert len(workflows.executions("ingest")) == 2


def test_succeeded_payload_is_not_run_again_without_replace(services: Services, workflows: Workflows) -> None:
    process_request(services, request(id="p-done"), request_id="m1")
    done = services.table.get_state("p-done")
    assert done is not None
    apply_status(services, "p-done", done.execution_arn, State.SUCCEEDED, output="{}")

    outcome = process_request(services, request(id="p-done"), request_id="m2")

    assert outcome is Processed.ALREADY_DONE
    assert len(workflows.executions("ingest")) == 1


def test_replace_reruns_a_succeeded_payload_with_a_new_attempt_and_name(
    services: Services, workflows: Workflows
) -> None:
    process_request(services, request(id="p-replace"), request_id="m1")
    done = services.table.get_state("p-replace")
    assert done is not None
    apply_status(services, "p-replace", done.execution_arn, State.SUCCEEDED, output='{"v": 1}')

    outcome = process_request(services, request(id="p-replace", replace=True), request_id="m2")

    assert outcome is Processed.STARTED
    rerun = services.table.get_state("p-replace")
    assert rerun is not None
    assert (rerun.state, rerun.attempt) == (State.CLAIMED, 2)
    assert rerun.output is None
    names = sorted(e["name"] for e in workflows.executions("ingest"))
    assert names == sorted([execution_name("p-replace", 1), execution_name("p-replace", 2)])


def test_replace_never_claims_over_a_running_attempt(services: Services, workflows: Workflows) -> None:
    process_request(services, request(id="p-running"), request_id="m1")
    running = services.table.get_state("p-running")
    assert running is not None
    apply_status(services, "p-running", running.execution_arn, State.PROCESSING)

    outcome = process_request(services, request(id="p-running", replace=True), request_id="m2")

    assert outcome is Processed.IN_PROGRESS
    assert len(workflows.executions("ingest")) == 1


def test_waiter_on_running_payload_stays_waiting(services: Services, workflows: Workflows) -> None:
    process_request(services, request(id="p-dep"), request_id="m1")
    running = services.table.get_state("p-dep")
    assert running is not None
    apply_status(services, "p-dep", running.execution_arn, State.PROCESSING)
    hook = callback()

    outcome = process_request(services, request(id="p-dep", callback=hook), request_id="m2")

    assert outcome is Processed.IN_PROGRESS
    assert waiter_row(services, "p-dep", hook["token"])["waiter_state"] == WaiterState.WAITING


def test_waiter_on_succeeded_payload_is_resumed_at_once(services: Services, workflows: Workflows) -> None:
    process_request(services, request(id="p-ok"), request_id="m1")
    done = services.table.get_state("p-ok")
    assert done is not None
    apply_status(services, "p-ok", done.execution_arn, State.SUCCEEDED, output='{"n": 3}')
    hook = callback()

    outcome = process_request(services, request(id="p-ok", callback=hook), request_id="m2")

    assert outcome is Processed.ALREADY_DONE
    row = waiter_row(services, "p-ok", hook["token"])
    assert row["waiter_state"] == WaiterState.SUCCEEDED
    assert row["dependency_output"] == '{"n": 3}'
    assert row["already_done"] is True
    assert "pending_shard" not in row


def test_waiter_registered_before_the_payload_exists_is_moved_when_it_finishes(
    services: Services, workflows: Workflows
) -> None:
    hook = callback()
    process_request(services, request(id="p-new", callback=hook), request_id="m1")
    claimed = services.table.get_state("p-new")
    assert claimed is not None

    apply_status(services, "p-new", claimed.execution_arn, State.FAILED, error="Boom", cause="bad")

    row = waiter_row(services, "p-new", hook["token"])
    assert row["waiter_state"] == WaiterState.FAILED
    assert (row["dependency_error"], row["dependency_cause"]) == ("Boom", "bad")
    assert row["already_done"] is False


def test_redelivered_waiter_is_registered_once(services: Services, workflows: Workflows) -> None:
    hook = callback()
    payload = request(id="p-twice", callback=hook)

    process_request(services, payload, request_id="m1")
    process_request(services, payload, request_id="m1")

    rows = services.dynamodb.query(
        TableName=services.settings.table_name,
        KeyConditionExpression="payload_id = :p AND begins_with(sk, :w)",
        ExpressionAttributeValues={":p": {"S": "p-twice"}, ":w": {"S": "WAITER#"}},
    )["Items"]
    assert len(rows) == 1


def test_unknown_workflow_makes_the_payload_invalid_and_fails_its_waiter(
    services: Services, workflows: Workflows
) -> None:
    hook = callback()

    with pytest.raises(InvalidMessage, match="StateMachineDoesNotExist"):
        process_request(services, request("no-such-workflow", id="p-lost", callback=hook), request_id="m1")

    state = services.table.get_state("p-lost")
    assert state is not None
    assert state.state is State.INVALID
    assert waiter_row(services, "p-lost", hook["token"])["waiter_state"] == WaiterState.INVALID


def test_a_payload_invalid_for_a_missing_state_machine_is_tried_again_once_it_is_deployed(
    services: Services, workflows: Workflows
) -> None:
    with pytest.raises(InvalidMessage, match="StateMachineDoesNotExist"):
        process_request(services, request("later", id="p-later"), request_id="m1")
    invalid = services.table.get_state("p-later")
    assert invalid is not None
    assert (invalid.state, invalid.invalid_cause) == (State.INVALID, "deployment")
    workflows.create("later")

    outcome = process_request(services, request("later", id="p-later"), request_id="m2")

    assert outcome is Processed.STARTED
    current = services.table.get_state("p-later")
    assert current is not None
    assert (current.state, current.attempt, current.invalid_cause) == (State.CLAIMED, 2, None)
    [execution] = workflows.executions("later")
    assert execution["name"] == execution_name("p-later", 2)


# What DescribeStateMachine answers for a standard workflow (a stubbed client asks it first).
STANDARD_MACHINE = {
    "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:cc-test-ingest",
    "name": "cc-test-ingest",
    "definition": "{}",
    "roleArn": "arn:aws:iam::123456789012:role/workflow",
    "type": "STANDARD",
    "creationDate": datetime(2030, 1, 1, tzinfo=UTC),
}


def test_a_payload_invalid_for_its_own_input_stays_invalid(services: Services, workflows: Workflows) -> None:
    with Stubber(services.stepfunctions) as stubber:
        stubber.add_response("describe_state_machine", STANDARD_MACHINE)
        stubber.add_client_error("start_execution", "InvalidExecutionInput", "not JSON")
        with pytest.raises(InvalidMessage, match="InvalidExecutionInput"):
            process_request(services, request(id="p-bad-input"), request_id="m1")
    hook = callback()

    outcome = process_request(services, request(id="p-bad-input", callback=hook), request_id="m2")

    assert outcome is Processed.ALREADY_DONE
    invalid = services.table.get_state("p-bad-input")
    assert invalid is not None
    assert (invalid.state, invalid.attempt, invalid.invalid_cause) == (State.INVALID, 1, "message")
    assert waiter_row(services, "p-bad-input", hook["token"])["waiter_state"] == WaiterState.INVALID
