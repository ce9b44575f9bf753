"""Redrive: a payload's execution restarted from the state that failed, under the same ARN.

Step Functions redrives a FAILED, ABORTED or TIMED_OUT standard execution within 14 days of
its end: the states that succeeded do not run again, the execution keeps its ARN and its
`redriveCount` goes up. Anyone may do it (the console's Redrive button, the API, an operator's
script) and so may the coordinator itself, for a message with `"rerun": "redrive"`.

The STATE row follows every redrive. Each status event carries the run's redrive count, and the
fence is (execution ARN, redrive count) (`PayloadTable.record_status`): a later run's RUNNING
reopens the row (final to PROCESSING, same attempt), its end settles it and resolves the
waiters registered since; an earlier run's event, late or duplicated, is stale. Waiters told of
the failure before the redrive stay told: their tokens are closed.

The paths here:

- `follow_redrive`: before a message runs an ended payload again, one DescribeExecution of its
  execution. A redrive the row does not know of yet (its RUNNING event still on its way) is
  applied first, so the message waits for the redriven run instead of starting a second
  execution beside it. The one window left is a redrive started between that read and the
  message's own StartExecution (milliseconds; Step Functions offers no condition to close it).
- `claim_redrive` + `send_redrive`: the coordinator's own redrive. The claim is a conditional
  write (same attempt, count + 1, CLAIMED) before RedriveExecution, whose `clientToken` is
  derived from (payload id, attempt, count): a duplicate message finds the claim taken, and a
  crash between the two calls leaves a claim that the redelivery or reconcile resumes.
- `resume_redrive`: a redrive claim found later (redelivery, reconcile). DescribeExecution
  first: if the execution was redriven, apply what it says; only if not, send the same token.
  So a redrive is sent at most once even after the token's idempotency window has passed.

A redrive Step Functions refuses (`ExecutionNotRedrivable`: more than 14 days since the end,
a history too long to go on, the execution gone) undoes the claim: the row goes back to the
execution's own end and count, the waiters registered meanwhile are told that end, and the
message is dead-lettered naming the reason. It never falls back to a new attempt on its own: a
new attempt runs every state again, which the sender did not ask for. `coordinator rerun ID`
(without --redrive) starts one.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from coordinator.errors import InvalidMessage
from coordinator.identity import redrive_client_token
from coordinator.observability import Metric, logger, metrics
from coordinator.services import Services
from coordinator.settle import Settlement, apply_status
from coordinator.states import REDRIVABLE, STATE_OF_STATUS, State
from coordinator.table import PayloadState


def describe(services: Services, execution_arn: str) -> dict[str, Any] | None:
    """DescribeExecution, or None if Step Functions has no such execution."""
    try:
        return dict(services.stepfunctions.describe_execution(executionArn=execution_arn))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
            raise
        return None


def redrive_count_of(described: dict[str, Any]) -> int:
    return int(described.get("redriveCount") or 0)


def apply_described(services: Services, payload_id: str, described: dict[str, Any]) -> Settlement:
    """Settle the payload as the execution's description says, for the run it names."""
    state = STATE_OF_STATUS[described["status"]]
    return apply_status(
        services,
        payload_id,
        described["executionArn"],
        state,
        redrive_count=redrive_count_of(described),
        output=described.get("output") if state.is_final else None,
        error=described.get("error") if state.is_final else None,
        cause=described.get("cause") if state.is_final else None,
    )


def follow_redrive(services: Services, current: PayloadState) -> PayloadState:
    """The row once any redrive of its execution that it does not know of has been applied."""
    if current.state not in REDRIVABLE:
        return current  # never ran (INVALID), or cannot be redriven (SUCCEEDED)
    described = describe(services, current.execution_arn)
    if described is None or redrive_count_of(described) <= current.redrive_count:
        return current
    settled = apply_described(services, current.payload_id, described)
    logger.info(
        "redrive found before a re-run",
        payload_id=current.payload_id,
        execution_arn=current.execution_arn,
        redrive_count=redrive_count_of(described),
        status=described["status"],
    )
    return settled.current or current


def send_redrive(services: Services, claimed: PayloadState) -> None:
    """RedriveExecution for the redrive `claimed` holds, with its derived client token."""
    try:
        services.stepfunctions.redrive_execution(
            executionArn=claimed.execution_arn,
            clientToken=redrive_client_token(claimed.payload_id, claimed.attempt, claimed.redrive_count),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ExecutionNotRedrivable":
            raise
        reason = error.response.get("Error", {}).get("Message", "ExecutionNotRedrivable")
        described = describe(services, claimed.execution_arn)
        if described is not None and redrive_count_of(described) >= claimed.redrive_count:
            apply_described(services, claimed.payload_id, described)  # an earlier try sent it
            return
        _undo_claim(services, claimed, described, reason)
    metrics.add_metric(name=Metric.EXECUTIONS_REDRIVEN, unit="Count", value=1)
    logger.info(
        "execution redriven",
        payload_id=claimed.payload_id,
        attempt=claimed.attempt,
        redrive_count=claimed.redrive_count,
        execution_arn=claimed.execution_arn,
    )


def resume_redrive(services: Services, claimed: PayloadState) -> None:
    """A redrive claim found later: apply the redrive if it was sent, else send it now."""
    described = describe(services, claimed.execution_arn)
    if described is not None and redrive_count_of(described) >= claimed.redrive_count:
        apply_described(services, claimed.payload_id, described)
        return
    send_redrive(services, claimed)


def _undo_claim(
    services: Services, claimed: PayloadState, described: dict[str, Any] | None, reason: str
) -> None:
    """Put the row back to the execution's own end and count; tell the waiters; dead-letter."""
    if described is not None and described["status"] in STATE_OF_STATUS:
        state = STATE_OF_STATUS[described["status"]]
        error, cause, count = described.get("error"), described.get("cause"), redrive_count_of(described)
    else:
        state, error, cause, count = State.FAILED, "ExecutionNotRedrivable", reason, claimed.redrive_count - 1
    if not state.is_final:
        state, error, cause = State.FAILED, "ExecutionNotRedrivable", reason
    apply_status(
        services,
        claimed.payload_id,
        claimed.execution_arn,
        state,
        redrive_count=claimed.redrive_count,
        record_redrive_count=count,
        error=error,
        cause=cause,
    )
    metrics.add_metric(name=Metric.REDRIVES_REFUSED, unit="Count", value=1)
    raise InvalidMessage(f"payload {claimed.payload_id!r} cannot be redriven: {reason}")
