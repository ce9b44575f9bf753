"""Redrive against the table protocol: the record follows any redrive, a message never starts an
attempt beside one, `rerun: "redrive"` redrives once, and reconcile repairs what a crash or a lost
event left (coordinator.redrive).

Step Functions is moto for everything but the execution's redrive: `Executions` answers
DescribeExecution and RedriveExecution for the executions a test describes, as the service
does (its redrive count and status), so each test sets exactly the moment it is about.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from botocore.exceptions import ClientError

from coordinator.errors import InvalidMessage
from coordinator.identity import redrive_client_token, state_machine_arn, token_key
from coordinator.process import Processed, process_request
from coordinator.reconcile import reconcile
from coordinator.services import Services
from coordinator.settle import Settled, apply_status
from coordinator.states import InvalidCause, State, WaiterState
from coordinator.table import PayloadState
from coordinator_tools.kit.events import callback, request
from tests.conftest import Clock, Workflows

P = "p-redrive"


class Executions:
    """Step Functions with a scripted execution: moto for the rest of the API."""

    def __init__(self, moto: Any) -> None:
        self.moto = moto
        self.described: dict[str, dict[str, Any]] = {}
        self.redrives: list[dict[str, str]] = []
        self.not_redrivable: str | None = None
        self.crash_next_redrive = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto, name)

    def ended(self, arn: str, status: str, *, redrive_count: int = 0, **fields: Any) -> None:
        self.described[arn] = {"executionArn": arn, "status": status, "redriveCount": redrive_count, **fields}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        if executionArn not in self.described:
            return dict(self.moto.describe_execution(executionArn=executionArn))
        return dict(self.described[executionArn])

    def redrive_execution(self, executionArn: str, clientToken: str) -> dict[str, Any]:
        if self.crash_next_redrive:
            self.crash_next_redrive = False
            raise ConnectionError("the process died before RedriveExecution")
        if self.not_redrivable is not None:
            raise ClientError(
                {"Error": {"Code": "ExecutionNotRedrivable", "Message": self.not_redrivable}},
                "RedriveExecution",
            )
        self.redrives.append({"arn": executionArn, "token": clientToken})
        described = self.described[executionArn]
        described.update(status="RUNNING", redriveCount=described["redriveCount"] + 1)
        for name in ("error", "cause", "output"):
            described.pop(name, None)
        return {"redriveDate": "2026-01-05T12:00:00Z"}


@pytest.fixture
def executions(services: Services) -> Executions:
    return Executions(services.stepfunctions)


@pytest.fixture
def sfn(services: Services, executions: Executions, workflows: Workflows) -> Services:
    return dataclasses.replace(services, stepfunctions=executions)


def failed_payload(
    sfn: Services, executions: Executions, *, waiter: dict[str, Any] | None = None
) -> PayloadState:
    """P ran once and FAILED (its events applied); `waiter` waited on it and was told."""
    process_request(sfn, request(id=P, callback=waiter), request_id="first-message")
    row = current(sfn)
    executions.ended(row.execution_arn, "FAILED", error="UpstreamDown", cause="not there yet")
    apply_status(sfn, P, row.execution_arn, State.PROCESSING)
    apply_status(sfn, P, row.execution_arn, State.FAILED, error="UpstreamDown", cause="not there yet")
    return current(sfn)


def current(services: Services) -> PayloadState:
    row = services.table.get_state(P)
    assert row is not None
    return row


def waiter_state(services: Services, hook: dict[str, Any]) -> str:
    item = services.dynamodb.get_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": P}, "sk": {"S": token_key(hook["token"])}},
        ConsistentRead=True,
    )["Item"]
    return str(item["waiter_state"]["S"])


# -- the record follows any redrive -------------------------------------------------------------


def test_a_redriven_run_reopens_the_failed_row_and_its_end_resolves_the_waiters_since(
    sfn: Services, executions: Executions, workflows: Workflows
) -> None:
    told, since = callback(), callback()
    failed = failed_payload(sfn, executions, waiter=told)

    reopened = apply_status(sfn, P, failed.execution_arn, State.PROCESSING, redrive_count=1)
    during = process_request(sfn, request(id=P, callback=since), request_id="waiter-during")
    ended = apply_status(
        sfn, P, failed.execution_arn, State.SUCCEEDED, redrive_count=1, output='{"rows": 42}'
    )

    assert (reopened.settled, during, ended.settled) == (
        Settled.APPLIED,
        Processed.IN_PROGRESS,
        Settled.APPLIED,
    )
    row = current(sfn)
    assert (row.state, row.attempt, row.redrive_count, row.output) == (State.SUCCEEDED, 1, 1, '{"rows": 42}')
    assert (row.error, row.cause) == (None, None)  # the failed run's error went with it
    assert (waiter_state(sfn, since), waiter_state(sfn, told)) == (WaiterState.SUCCEEDED, WaiterState.FAILED)
    assert len(workflows.executions("ingest")) == 1


def test_a_reopened_row_is_pending_again_and_holds_no_stale_outcome(
    sfn: Services, executions: Executions
) -> None:
    failed = failed_payload(sfn, executions)

    apply_status(sfn, P, failed.execution_arn, State.PROCESSING, redrive_count=1)

    row = current(sfn)
    assert (row.state, row.attempt, row.redrive_count, row.error, row.cause) == (
        State.PROCESSING,
        1,
        1,
        None,
        None,
    )
    item = sfn.dynamodb.get_item(
        TableName=sfn.settings.table_name,
        Key={"payload_id": {"S": P}, "sk": {"S": "STATE"}},
        ConsistentRead=True,
    )["Item"]
    assert {"pending_shard", "pending_since"} <= item.keys()
    assert "finished_at" not in item


@pytest.mark.parametrize("redriven_state", [State.PROCESSING, State.SUCCEEDED, State.FAILED])
@pytest.mark.parametrize("earlier", [State.PROCESSING, State.FAILED])
def test_an_earlier_runs_event_late_or_duplicated_never_regresses_the_row(
    sfn: Services, executions: Executions, redriven_state: State, earlier: State
) -> None:
    failed = failed_payload(sfn, executions)
    apply_status(sfn, P, failed.execution_arn, State.PROCESSING, redrive_count=1)
    if redriven_state is not State.PROCESSING:
        apply_status(sfn, P, failed.execution_arn, redriven_state, redrive_count=1, error="Again")
    before = current(sfn)

    late = apply_status(sfn, P, failed.execution_arn, earlier, redrive_count=0, error="UpstreamDown")

    assert late.settled in {Settled.STALE, Settled.REPEATED}
    after = current(sfn)
    assert (after.state, after.redrive_count, after.error) == (before.state, 1, before.error)


def test_a_redriven_runs_end_settles_the_row_when_its_running_event_was_lost(
    sfn: Services, executions: Executions
) -> None:
    failed = failed_payload(sfn, executions)

    ended = apply_status(sfn, P, failed.execution_arn, State.SUCCEEDED, redrive_count=1, output="{}")

    assert ended.settled is Settled.APPLIED
    assert (current(sfn).state, current(sfn).redrive_count) == (State.SUCCEEDED, 1)


# -- nobody starts an attempt beside a redrive --------------------------------------------------


def test_a_message_during_a_redrive_it_was_not_told_of_waits_for_the_redriven_run(
    sfn: Services, executions: Executions, workflows: Workflows
) -> None:
    failed = failed_payload(sfn, executions)
    executions.ended(failed.execution_arn, "RUNNING", redrive_count=1)  # RUNNING event not yet applied
    hook = callback()

    outcome = process_request(sfn, request(id=P, callback=hook), request_id="waiter-during")

    assert outcome is Processed.IN_PROGRESS
    row = current(sfn)
    assert (row.state, row.attempt, row.redrive_count) == (State.PROCESSING, 1, 1)
    assert waiter_state(sfn, hook) == WaiterState.WAITING
    assert len(workflows.executions("ingest")) == 1


def test_a_message_after_an_unapplied_redrive_succeeded_is_answered_by_it(
    sfn: Services, executions: Executions, workflows: Workflows
) -> None:
    failed = failed_payload(sfn, executions)
    executions.ended(failed.execution_arn, "SUCCEEDED", redrive_count=1, output='{"rows": 1}')
    hook = callback()

    outcome = process_request(sfn, request(id=P, callback=hook), request_id="late-waiter")

    assert outcome is Processed.ALREADY_DONE
    assert (current(sfn).state, current(sfn).output) == (State.SUCCEEDED, '{"rows": 1}')
    assert waiter_state(sfn, hook) == WaiterState.SUCCEEDED
    assert len(workflows.executions("ingest")) == 1


def test_a_message_for_a_failed_payload_not_redriven_starts_attempt_two(
    sfn: Services, executions: Executions, workflows: Workflows
) -> None:
    failed_payload(sfn, executions)

    outcome = process_request(sfn, request(id=P), request_id="retry")

    assert outcome is Processed.STARTED
    assert (current(sfn).attempt, current(sfn).redrive_count) == (2, 0)
    assert len(workflows.executions("ingest")) == 2


# -- rerun: "redrive" ---------------------------------------------------------------------------


def test_rerun_redrive_claims_the_attempt_and_redrives_it_once_with_a_derived_token(
    sfn: Services, executions: Executions, workflows: Workflows
) -> None:
    failed = failed_payload(sfn, executions)

    first = process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-1")
    duplicate = process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-2")

    assert (first, duplicate) == (Processed.REDRIVEN, Processed.RESTARTED)
    assert executions.redrives == [{"arn": failed.execution_arn, "token": redrive_client_token(P, 1, 1)}]
    row = current(sfn)
    assert (row.state, row.attempt, row.redrive_count) == (State.PROCESSING, 1, 1)
    assert len(workflows.executions("ingest")) == 1


def test_a_crash_between_the_redrive_claim_and_the_call_is_resumed_by_the_redelivery(
    sfn: Services, executions: Executions
) -> None:
    failed_payload(sfn, executions)
    executions.crash_next_redrive = True
    with pytest.raises(ConnectionError):
        process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-1")
    assert current(sfn).is_redrive_claim

    again = process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-1")

    assert again is Processed.RESTARTED
    assert [call["token"] for call in executions.redrives] == [redrive_client_token(P, 1, 1)]


def test_a_crash_after_the_redrive_call_never_redrives_twice(sfn: Services, executions: Executions) -> None:
    failed_payload(sfn, executions)
    process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-1")  # its ack was lost

    again = process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-1")

    assert again is Processed.RESTARTED
    assert len(executions.redrives) == 1
    assert current(sfn).state is State.PROCESSING


def test_a_redrive_step_functions_refuses_puts_the_row_back_and_names_the_reason(
    sfn: Services, executions: Executions, workflows: Workflows
) -> None:
    failed = failed_payload(sfn, executions)
    executions.not_redrivable = "Execution can no longer be redriven: it ended more than 14 days ago"
    hook = callback()

    with pytest.raises(InvalidMessage, match="more than 14 days"):
        process_request(sfn, request(id=P, rerun="redrive", callback=hook), request_id="redrive-1")

    row = current(sfn)
    assert (row.state, row.attempt, row.redrive_count, row.error) == (State.FAILED, 1, 0, "UpstreamDown")
    assert row.execution_arn == failed.execution_arn
    assert waiter_state(sfn, hook) == WaiterState.FAILED  # told the payload's own end, not left waiting
    assert len(workflows.executions("ingest")) == 1  # no silent fall back to a new attempt


@pytest.mark.parametrize("ended_as", ["SUCCEEDED", "INVALID"])
def test_rerun_redrive_of_a_payload_with_nothing_to_redrive_is_answered_as_usual(
    sfn: Services, executions: Executions, workflows: Workflows, ended_as: str
) -> None:
    process_request(sfn, request(id=P), request_id="first-message")
    row = current(sfn)
    if ended_as == "SUCCEEDED":
        apply_status(sfn, P, row.execution_arn, State.SUCCEEDED, output="{}")
    else:  # its state machine was missing: a later message may try it again
        apply_status(sfn, P, row.execution_arn, State.INVALID, invalid_cause=InvalidCause.DEPLOYMENT)
    hook = callback()

    outcome = process_request(sfn, request(id=P, rerun="redrive", callback=hook), request_id="redrive-1")

    # SUCCEEDED: already done, the waiter gets the output. INVALID never ran: a new attempt.
    expected = Processed.ALREADY_DONE if ended_as == "SUCCEEDED" else Processed.STARTED
    assert outcome is expected
    assert executions.redrives == []


# -- reconcile ----------------------------------------------------------------------------------


def past_the_lease(services: Services, clock: Clock) -> None:
    clock.advance(services.settings.lease_seconds + 1)


def test_reconcile_sends_a_redrive_that_was_claimed_but_never_sent(
    sfn: Services, executions: Executions, clock: Clock
) -> None:
    failed_payload(sfn, executions)
    executions.crash_next_redrive = True
    with pytest.raises(ConnectionError):
        process_request(sfn, request(id=P, rerun="redrive"), request_id="redrive-1")
    past_the_lease(sfn, clock)

    report = reconcile(sfn)

    assert report.restarted == 1
    assert [call["token"] for call in executions.redrives] == [redrive_client_token(P, 1, 1)]
    past_the_lease(sfn, clock)
    assert reconcile(sfn).restarted == 0  # sent once: the next run sees it RUNNING
    assert len(executions.redrives) == 1


def test_reconcile_settles_a_redriven_run_whose_events_were_lost(
    sfn: Services, executions: Executions, clock: Clock
) -> None:
    hook = callback()
    failed = failed_payload(sfn, executions)
    apply_status(sfn, P, failed.execution_arn, State.PROCESSING, redrive_count=1)
    process_request(sfn, request(id=P, callback=hook), request_id="waiter-during")
    executions.ended(failed.execution_arn, "SUCCEEDED", redrive_count=1, output='{"rows": 7}')  # event lost
    past_the_lease(sfn, clock)

    report = reconcile(sfn)

    assert report.settled == 1
    assert (current(sfn).state, current(sfn).redrive_count) == (State.SUCCEEDED, 1)
    assert waiter_state(sfn, hook) == WaiterState.SUCCEEDED


# -- EXPRESS workflows ---------------------------------------------------------------------------


def test_a_message_for_an_express_workflow_is_refused_at_once_and_the_type_asked_once(
    services: Services, workflows: Workflows
) -> None:
    services.stepfunctions.create_state_machine(
        name=state_machine_arn("cc-test-", "express").rsplit(":", 1)[-1],
        definition='{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}',
        roleArn="arn:aws:iam::123456789012:role/workflow",
        type="EXPRESS",
    )
    asked: list[str] = []
    services.stepfunctions.meta.events.register(
        "before-call.sfn.DescribeStateMachine", lambda **_: asked.append("DescribeStateMachine")
    )
    hooks = [callback(), callback()]

    for number, hook in enumerate(hooks):
        with pytest.raises(InvalidMessage, match="EXPRESS"):
            process_request(
                services, request("express", id=f"e{number}", callback=hook), request_id=f"m{number}"
            )

    assert asked == ["DescribeStateMachine"]
    for number, hook in enumerate(hooks):
        assert services.table.get_state(f"e{number}") is None
        item = services.dynamodb.get_item(
            TableName=services.settings.table_name,
            Key={"payload_id": {"S": f"e{number}"}, "sk": {"S": token_key(hook["token"])}},
            ConsistentRead=True,
        )["Item"]
        assert item["waiter_state"]["S"] == WaiterState.INVALID
