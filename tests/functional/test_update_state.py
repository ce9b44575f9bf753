"""update-state: status changes applied behind the execution-ARN fence."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest

from coordinator.identity import token_key
from coordinator.process import process_request
from coordinator.services import Services
from coordinator.settle import Settled, apply_status
from coordinator.states import State
from coordinator.status import ExecutionStatusEvent, apply_status_change
from coordinator_tools.kit.events import callback, request, status_event
from functions.update_state import app
from tests.conftest import Workflows


def started(services: Services, payload_id: str, **fields: Any) -> tuple[str, str]:
    process_request(services, request(id=payload_id, **fields), request_id=f"m-{payload_id}")
    current = services.table.get_state(payload_id)
    assert current is not None
    described = services.stepfunctions.describe_execution(executionArn=current.execution_arn)
    return current.execution_arn, described["input"]


def apply(services: Services, event: dict[str, Any]) -> Any:
    return apply_status_change(services, ExecutionStatusEvent.model_validate(event).detail)


def test_running_moves_claimed_to_processing(services: Services, workflows: Workflows) -> None:
    arn, execution_input = started(services, "p1")

    apply(services, status_event(arn, "RUNNING", execution_input))

    current = services.table.get_state("p1")
    assert current is not None
    assert current.state is State.PROCESSING


def test_succeeded_records_the_state_and_output(services: Services, workflows: Workflows) -> None:
    arn, execution_input = started(services, "p1")

    settlement = apply(services, status_event(arn, "SUCCEEDED", execution_input, output='{"n": 1}'))

    current = services.table.get_state("p1")
    assert current is not None
    assert (current.state, current.output) == (State.SUCCEEDED, '{"n": 1}')
    assert settlement.settled is Settled.APPLIED


def test_late_running_event_never_reopens_a_final_state(services: Services, workflows: Workflows) -> None:
    arn, execution_input = started(services, "p1")
    apply(services, status_event(arn, "SUCCEEDED", execution_input, output="{}"))

    settlement = apply(services, status_event(arn, "RUNNING", execution_input))

    current = services.table.get_state("p1")
    assert current is not None
    assert current.state is State.SUCCEEDED
    assert settlement.settled is Settled.STALE


def test_stale_event_of_an_older_attempt_leaves_the_state_unchanged(
    services: Services, workflows: Workflows
) -> None:
    old_arn, old_input = started(services, "p1")
    apply(services, status_event(old_arn, "FAILED", old_input, error="Boom"))
    process_request(services, request(id="p1"), request_id="m-retry")
    before = services.table.get_state("p1")
    assert before is not None
    assert before.attempt == 2

    for status in ("SUCCEEDED", "FAILED", "RUNNING", "ABORTED"):
        settlement = apply(services, status_event(old_arn, status, old_input))
        assert settlement.settled is Settled.STALE

    assert services.table.get_state("p1") == before


def test_duplicate_final_event_changes_nothing_but_still_moves_waiters(
    services: Services, workflows: Workflows
) -> None:
    arn, execution_input = started(services, "p1")
    event = status_event(arn, "SUCCEEDED", execution_input, output="{}")
    apply(services, event)
    # A waiter row left WAITING by a crash between the first settle's write and its moves.
    hook = callback()
    services.table.register_waiter(
        "p1", request(id="p1", callback=hook).callback, services.clock(), retention_seconds=60
    )  # type: ignore[arg-type]
    before = services.table.get_state("p1")

    settlement = apply(services, event)

    assert settlement.settled is Settled.REPEATED
    assert settlement.waiters_moved == 1
    assert services.table.get_state("p1") == before


def test_conflicting_final_event_for_the_same_attempt_does_not_overwrite(
    services: Services, workflows: Workflows
) -> None:
    arn, execution_input = started(services, "p1")
    apply(services, status_event(arn, "SUCCEEDED", execution_input, output="{}"))

    settlement = apply(services, status_event(arn, "FAILED", execution_input, error="Late"))

    current = services.table.get_state("p1")
    assert current is not None
    assert current.state is State.SUCCEEDED
    assert settlement.settled is Settled.STALE


def test_dropped_input_is_read_back_with_describe_execution(services: Services, workflows: Workflows) -> None:
    arn, _ = started(services, "p-big")

    apply(services, status_event(arn, "SUCCEEDED", None, inputDetails={"included": False}, output="{}"))

    current = services.table.get_state("p-big")
    assert current is not None
    assert current.state is State.SUCCEEDED


def test_dropped_output_is_passed_on_by_reference(services: Services, workflows: Workflows) -> None:
    arn, execution_input = started(services, "p-out")

    apply(services, status_event(arn, "SUCCEEDED", execution_input, outputDetails={"included": False}))

    current = services.table.get_state("p-out")
    assert current is not None
    assert (current.output, current.output_ref) == (None, arn)


def test_output_over_the_inline_limit_is_kept_by_reference(services: Services, workflows: Workflows) -> None:
    arn, execution_input = started(services, "p-large")
    large = json.dumps({"blob": "x" * (services.settings.output_inline_bytes + 1)})

    apply(services, status_event(arn, "SUCCEEDED", execution_input, output=large))

    current = services.table.get_state("p-large")
    assert current is not None
    assert (current.output, current.output_ref) == (None, arn)


def test_execution_not_started_by_the_coordinator_is_ignored(
    services: Services, workflows: Workflows
) -> None:
    foreign = workflows.create("foreign")
    arn = services.stepfunctions.start_execution(stateMachineArn=foreign, name="manual", input='{"a": 1}')[
        "executionArn"
    ]

    assert apply(services, status_event(arn, "SUCCEEDED", '{"a": 1}')) is None


def test_waiters_of_a_failed_payload_carry_its_error(services: Services, workflows: Workflows) -> None:
    hook = callback()
    arn, execution_input = started(services, "p1", callback=hook)

    apply(
        services, status_event(arn, "FAILED", execution_input, error="States.TaskFailed", cause="disk full")
    )

    item = services.dynamodb.get_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": "p1"}, "sk": {"S": token_key(hook["token"])}},
        ConsistentRead=True,
    )["Item"]
    assert item["waiter_state"]["S"] == "FAILED"
    assert item["dependency_error"]["S"] == "States.TaskFailed"


def test_handler_parses_the_eventbridge_event(
    services: Services, workflows: Workflows, lambda_env: None, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "services", lambda: services)
    arn, execution_input = started(services, "p1")

    response = app.lambda_handler(status_event(arn, "SUCCEEDED", execution_input, output="{}"), context)

    assert response == {"settled": "applied", "waiters_moved": 0}


def test_settle_of_unknown_payload_reports_it(services: Services) -> None:
    assert apply_status(services, "nobody", "arn:x", State.SUCCEEDED).settled is Settled.UNKNOWN


def test_running_and_failed_events_with_null_details_are_applied(
    services: Services, workflows: Workflows
) -> None:
    arn, execution_input = started(services, "p-null")
    running = status_event(arn, "RUNNING", execution_input, outputDetails=None)
    failed = status_event(arn, "FAILED", execution_input, outputDetails=None, error="Boom", cause="why")

    apply(services, running)
    settlement = apply(services, failed)

    assert settlement.settled is Settled.APPLIED
    current = services.table.get_state("p-null")
    assert current is not None
    assert (current.state, current.output_ref) == (State.FAILED, None)


def test_a_dropped_input_of_an_execution_that_no_longer_exists_is_skipped(
    services: Services, workflows: Workflows, caplog: pytest.LogCaptureFixture
) -> None:
    arn, _ = started(services, "p-gone")
    gone = arn.rsplit(":", 1)[0] + ":no-such-execution"
    event = status_event(gone, "SUCCEEDED", None, inputDetails={"included": False})

    assert apply(services, event) is None

    assert "status of an execution that no longer exists skipped" in caplog.text
    current = services.table.get_state("p-gone")
    assert current is not None
    assert current.state is State.CLAIMED


def _moves_by_thread(services: Services, payload_id: str, waiters: int) -> tuple[Settled, int, set[str]]:
    """Settle a payload with `waiters` waiters; the threads its waiter moves were made from."""
    arn, execution_input = started(services, payload_id)
    for number in range(waiters):
        hook = callback(f"AQCEAAAAKgAAAAMAAAAAAAAAA{number:04d}" + "x" * 200)
        services.table.register_waiter(
            payload_id, request(id=payload_id, callback=hook).callback, services.clock(), retention_seconds=60
        )  # type: ignore[arg-type]
    threads: set[str] = set()

    def seen(params: dict[str, Any], **_: Any) -> None:
        if params.get("ConditionExpression") == "#waiter_state = :waiting":
            threads.add(threading.current_thread().name)

    events = services.dynamodb.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", seen, unique_id="moves-by-thread")
    try:
        settlement = apply(services, status_event(arn, "SUCCEEDED", execution_input, output="{}"))
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", unique_id="moves-by-thread")
    return settlement.settled, settlement.waiters_moved, threads


def test_settle_moves_waiters_concurrently_across_pages(services: Services, workflows: Workflows) -> None:
    settled, moved, threads = _moves_by_thread(services, "p1", 130)  # two query pages

    assert (settled, moved) == (Settled.APPLIED, 130)
    assert services.table.get_state("p1") is not None
    assert len(threads) > 1
    assert all(name.startswith("settle-move") for name in threads)


def test_settle_moves_serially_with_a_concurrency_of_one(services: Services, workflows: Workflows) -> None:
    serial = replace(services, settings=services.settings.model_copy(update={"move_concurrency": 1}))

    settled, moved, threads = _moves_by_thread(serial, "p1", 3)

    assert (settled, moved) == (Settled.APPLIED, 3)
    assert threads == {threading.current_thread().name}
