"""reconcile against the table protocol (moto): what a crash or a lost event left pending is repaired."""

from __future__ import annotations

import dataclasses
from typing import Any

from coordinator.identity import execution_name, state_machine_arn, token_key
from coordinator.messages import Callback
from coordinator.process import process_request
from coordinator.reconcile import reconcile
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.table import STATE_KEY, PayloadState, pending_shard
from coordinator_tools.kit.events import callback, new_token, request
from tests.conftest import Clock, Workflows


def past_the_lease(services: Services, clock: Clock) -> None:
    clock.advance(services.settings.lease_seconds + 1)


def claim_without_starting(services: Services, payload_id: str, workflow: str = "ingest") -> PayloadState:
    """What a process call that crashed between its claim and StartExecution leaves behind."""
    claim = services.table.claim_payload(
        request(workflow, id=payload_id),
        state_machine_arn(services.settings.state_machine_arn_prefix, workflow),
        services.clock(),
        request_id="crashed-message",
    )
    assert claim.applied
    return claim.current


def current(services: Services, payload_id: str) -> PayloadState:
    state = services.table.get_state(payload_id)
    assert state is not None
    return state


def raw_row(services: Services, payload_id: str, sk: str = "STATE") -> dict[str, Any]:
    item = services.dynamodb.get_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": payload_id}, "sk": {"S": sk}},
        ConsistentRead=True,
    )["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


def with_batch(services: Services, batch: int) -> Services:
    return dataclasses.replace(
        services, settings=services.settings.model_copy(update={"reconcile_batch": batch})
    )


# -- a claim whose execution was never started -----------------------------------------------


def test_claim_never_started_is_started_under_its_own_name_after_the_lease(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    claimed = claim_without_starting(services, "p-crashed")
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.restarted == 1
    [execution] = workflows.executions("ingest")
    assert execution["name"] == execution_name("p-crashed", 1)
    assert execution["executionArn"] == claimed.execution_arn


def test_restarted_claim_gets_the_input_it_was_claimed_with(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    claimed = claim_without_starting(services, "p-crashed")
    past_the_lease(services, clock)

    reconcile(services)

    described = services.stepfunctions.describe_execution(executionArn=claimed.execution_arn)
    assert described["input"] == claimed.input


def test_claim_within_its_lease_is_left_to_its_claimer(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    claim_without_starting(services, "p-fresh")
    clock.advance(services.settings.lease_seconds - 1)

    report = reconcile(services)

    assert (report.examined, report.restarted) == (0, 0)
    assert workflows.executions("ingest") == []


def test_two_reconcile_runs_start_a_crashed_claim_once(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    claim_without_starting(services, "p-crashed")
    past_the_lease(services, clock)

    first = reconcile(services)
    second = reconcile(services)

    assert (first.restarted, second.restarted) == (1, 0)
    assert len(workflows.executions("ingest")) == 1


def test_claim_whose_claimer_moved_on_is_not_restarted(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    claimed = claim_without_starting(services, "p-settled-meanwhile")
    apply_status(services, "p-settled-meanwhile", claimed.execution_arn, State.FAILED, error="Boom")
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.examined == 0
    assert workflows.executions("ingest") == []


def test_claim_of_a_workflow_that_cannot_start_is_settled_invalid_and_the_run_goes_on(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    claim_without_starting(services, "p-no-workflow", workflow="no-such-workflow")
    claim_without_starting(services, "p-crashed")
    past_the_lease(services, clock)

    report = reconcile(services)

    assert current(services, "p-no-workflow").state is State.INVALID
    assert report.restarted == 1
    assert len(workflows.executions("ingest")) == 1


# -- an execution whose status event was lost ------------------------------------------------


def test_processing_payload_whose_execution_ended_is_settled_with_its_status(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-lost-event"), request_id="m1")
    arn = current(services, "p-lost-event").execution_arn
    apply_status(services, "p-lost-event", arn, State.PROCESSING)
    services.stepfunctions.stop_execution(executionArn=arn)
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.settled == 1
    assert current(services, "p-lost-event").state is State.ABORTED
    assert "pending_shard" not in raw_row(services, "p-lost-event")


def test_settling_a_lost_status_moves_the_payloads_waiters(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    hook = callback()
    process_request(services, request(id="p-lost-event", callback=hook), request_id="m1")
    arn = current(services, "p-lost-event").execution_arn
    apply_status(services, "p-lost-event", arn, State.PROCESSING)
    services.stepfunctions.stop_execution(executionArn=arn)
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.waiters_moved == 1
    row = raw_row(services, "p-lost-event", token_key(hook["token"]))
    assert row["waiter_state"] == WaiterState.ABORTED
    assert row["dependency_execution_arn"] == arn


def test_claimed_payload_whose_execution_ended_is_settled_too(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-quick"), request_id="m1")
    arn = current(services, "p-quick").execution_arn
    services.stepfunctions.stop_execution(executionArn=arn)
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.settled == 1
    assert current(services, "p-quick").state is State.ABORTED


# -- work still legitimately in progress -----------------------------------------------------


def test_claimed_payload_whose_execution_runs_becomes_processing(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-running"), request_id="m1")
    past_the_lease(services, clock)

    reconcile(services)

    assert current(services, "p-running").state is State.PROCESSING


def test_running_payload_is_sent_to_the_back_of_the_queue(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-running"), request_id="m1")
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.deferred == 1
    assert raw_row(services, "p-running")["pending_since"] == clock().isoformat(timespec="microseconds")


def test_deferred_payload_is_not_examined_again_within_a_lease(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-running"), request_id="m1")
    past_the_lease(services, clock)
    reconcile(services)
    clock.advance(services.settings.lease_seconds - 1)

    report = reconcile(services)

    assert report.examined == 0


def test_waiter_of_a_running_payload_is_deferred_not_moved(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    hook = callback()
    process_request(services, request(id="p-running", callback=hook), request_id="m1")
    apply_status(services, "p-running", current(services, "p-running").execution_arn, State.PROCESSING)
    past_the_lease(services, clock)

    report = reconcile(services)

    row = raw_row(services, "p-running", token_key(hook["token"]))
    assert row["waiter_state"] == WaiterState.WAITING
    assert row["pending_since"] == clock().isoformat(timespec="microseconds")
    assert report.waiters_moved == 0


# -- a waiter that missed its payload's final state ------------------------------------------


def register_late_waiter(services: Services, payload_id: str) -> str:
    """A WAITING row put after its payload settled, with no process call to move it at once."""
    token = new_token()
    services.table.register_waiter(
        payload_id,
        Callback(token=token),
        services.clock(),
        retention_seconds=services.settings.retention_seconds,
    )
    return token


def test_waiting_waiter_of_a_final_payload_is_moved(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-done"), request_id="m1")
    apply_status(
        services, "p-done", current(services, "p-done").execution_arn, State.SUCCEEDED, output='{"n": 1}'
    )
    token = register_late_waiter(services, "p-done")
    past_the_lease(services, clock)

    report = reconcile(services)

    assert report.waiters_moved == 1
    row = raw_row(services, "p-done", token_key(token))
    assert row["waiter_state"] == WaiterState.SUCCEEDED
    assert row["dependency_output"] == '{"n": 1}'
    assert "pending_shard" not in row


def test_waiting_waiter_within_its_lease_is_left_alone(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-done"), request_id="m1")
    apply_status(services, "p-done", current(services, "p-done").execution_arn, State.SUCCEEDED, output="{}")
    token = register_late_waiter(services, "p-done")

    reconcile(services)

    assert raw_row(services, "p-done", token_key(token))["waiter_state"] == WaiterState.WAITING


# -- bounded work ----------------------------------------------------------------------------


def test_one_run_examines_at_most_the_batch_and_later_runs_finish_the_rest(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    small = with_batch(services, 16)
    payload_ids = [f"p-stuck-{n:02d}" for n in range(40)]
    for payload_id in payload_ids:
        claim_without_starting(small, payload_id)
    past_the_lease(small, clock)

    runs = []
    while len(workflows.executions("ingest")) < len(payload_ids) and len(runs) < 40:
        runs.append(reconcile(small))
        clock.advance(60)

    assert all(run.examined <= 16 for run in runs)
    assert runs[0].restarted < len(payload_ids)
    assert sum(run.restarted for run in runs) == len(payload_ids)


def test_a_batch_smaller_than_the_number_of_shards_still_bounds_a_run(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    small = with_batch(services, 4)
    for n in range(40):
        claim_without_starting(small, f"p-stuck-{n:02d}")
    past_the_lease(small, clock)

    report = reconcile(small)

    assert report.examined <= 4


def ids_in_one_shard(count: int) -> list[str]:
    """Payload ids whose STATE rows share one shard of the reconcile queue."""
    candidates = (f"p-shard-{n:03d}" for n in range(10_000))
    shard = pending_shard(STATE_KEY, "p-shard-000")
    return [c for c in candidates if pending_shard(STATE_KEY, c) == shard][:count]


def test_rows_reconcile_cannot_repair_do_not_starve_the_rows_behind_them(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    small = with_batch(services, 16)  # two rows per shard and run
    *orphans, stuck = ids_in_one_shard(3)
    for payload_id in orphans:
        # PROCESSING, but Step Functions no longer knows the execution (history expired,
        # or the state machine was deleted under it).
        orphan = claim_without_starting(small, payload_id)
        apply_status(small, payload_id, orphan.execution_arn, State.PROCESSING)
    clock.advance(1)
    claim_without_starting(small, stuck)
    past_the_lease(small, clock)

    for _ in range(3):
        reconcile(small)
        clock.advance(60)

    assert [e["name"] for e in workflows.executions("ingest")] == [execution_name(stuck, 1)]


# -- the report ------------------------------------------------------------------------------


def test_report_measures_the_oldest_claim_and_the_oldest_waiter(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-old"), request_id="m1")
    clock.advance(10)
    services.table.register_waiter(
        "p-old",
        Callback(token=new_token()),
        clock(),
        retention_seconds=services.settings.retention_seconds,
    )
    clock.advance(390)

    report = reconcile(services)

    assert report.oldest_claim_seconds == 400.0
    assert report.oldest_waiting_seconds == 390.0


def test_report_ages_count_rows_still_within_their_lease(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    process_request(services, request(id="p-young", callback=callback()), request_id="m1")
    clock.advance(30)

    report = reconcile(services)

    assert (report.oldest_claim_seconds, report.oldest_waiting_seconds) == (30.0, 30.0)
    assert report.examined == 0


def test_report_of_an_empty_table_is_all_zero(services: Services, workflows: Workflows) -> None:
    report = reconcile(services)

    assert dataclasses.asdict(report) == dataclasses.asdict(type(report)())
