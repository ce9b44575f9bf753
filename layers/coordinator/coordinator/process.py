"""process: start each payload's workflow at most once per attempt, and register its waiter.

Why no wake-up is lost
----------------------
A waiter W on payload P must end up moved to P's final state. Two actors can do it:

- process (here): (1) put W's row as WAITING, (2) claim P's STATE with a conditional write
  that hands back the row it found, (3) if that row is final, move W (only from WAITING).
- settle (update-state): (a) write P's final state to STATE, (b) query P's waiters with a
  strongly consistent read, (c) move each WAITING one (only from WAITING).

DynamoDB orders the writes on P's items. If (2) comes after (a), process sees the final state
and moves W itself. If (2) comes before (a), then (1) came before (a) and so before (b), and
the consistent query (b) finds W. Either way at least one actor moves W; both may try, and the
condition "only from WAITING" lets exactly one take effect. The dispatcher then acts on that
single transition. The cirrus draft (docs/design.md) wrote its callback after starting the workflow and found
it through an eventually consistent index: a fast workflow ended in between and its waiter
hung. `tests/functional/test_interleavings.py` enumerates every interleaving of both orders.

At most once per attempt: the claim writes attempt N's execution ARN before StartExecution,
and the name is derived from (payload id, N), so every retry of that attempt asks Step
Functions for the same name, which it starts at most once. A payload that ended without
success runs again either as attempt N+1 or, with `"rerun": "redrive"`, as a redrive of
attempt N's own execution; and no message runs it again while its execution is being
redriven by anyone (`coordinator.redrive`).

Only standard state machines emit the status events the record follows; a message for an
EXPRESS one is refused at once (`refuse_express`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, NoReturn

from botocore.exceptions import ClientError

from coordinator.cycles import find_cycle
from coordinator.errors import InvalidMessage
from coordinator.gate import arm
from coordinator.identity import execution_name_of, state_machine_arn, state_machine_of, token_key
from coordinator.observability import Metric, logger, metrics
from coordinator.redrive import follow_redrive, resume_redrive, send_redrive
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import REDRIVABLE, InvalidCause, Rerun, State, WaiterState
from coordinator.table import Outcome, PayloadState, StateWrite, may_rerun

if TYPE_CHECKING:
    from coordinator.messages import PayloadRequest

# StartExecution answers that retrying this message can never change: the payload is INVALID.
# A cause outside the message does not condemn the payload: a later message tries it again.
UNSTARTABLE: dict[str, InvalidCause] = {
    "StateMachineDoesNotExist": InvalidCause.DEPLOYMENT,
    "StateMachineDeleting": InvalidCause.DEPLOYMENT,
    "InvalidArn": InvalidCause.MESSAGE,
    "InvalidExecutionInput": InvalidCause.MESSAGE,
    "InvalidName": InvalidCause.MESSAGE,
    "ValidationException": InvalidCause.MESSAGE,
}


# The `error` a refused waiter's cause carries when its message may not name the payload.
PAYLOAD_REFUSED = "PayloadRefused"


class Processed(StrEnum):
    STARTED = "started"  # this message's claim started a new attempt
    REDRIVEN = "redriven"  # this message's claim redrove the attempt's execution
    RESTARTED = "restarted"  # a claimed attempt found not yet started was started (same name)
    IN_PROGRESS = "in_progress"  # an attempt is running; a waiter will hear from update-state
    ALREADY_DONE = "already_done"  # final and not re-run; the waiter was resolved at once
    CYCLE = "cycle"  # the waiter would close a cycle and was failed at once
    GATED = "gated"  # the payload waits for its upstream payloads (`coordinator.gate`)
    REJECTED = "rejected"  # invalid: its waiter failed, its body dead-lettered (`coordinator.rejection`)


# DynamoDB answers about the request itself (a key or an item over its size, a bad value):
# the same record gets the same answer on every retry, so it is invalid input, not a fault.
NEVER_ON_RETRY = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


def process_request(services: Services, request: PayloadRequest, *, request_id: str) -> Processed:
    try:
        return _process_request(services, request, request_id=request_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in NEVER_ON_RETRY:
            raise
        reason = f"DynamoDB refused the record: {code}: {error.response.get('Error', {}).get('Message', '')}"
        if request.callback is None:
            raise InvalidMessage(reason) from error
        try:
            moved = _move_own_waiter(services, request, code, reason, execution_arn="")
        except ClientError:
            moved = False  # the waiter's own row is what DynamoDB refuses: fail its token directly
        raise InvalidMessage(reason, token=None if moved else request.callback.token) from error


def _process_request(services: Services, request: PayloadRequest, *, request_id: str) -> Processed:
    table = services.table
    config = services.settings
    now = services.clock()
    callback = request.callback
    if callback is not None:
        if callback.waiter_payload_id and (
            cycle := find_cycle(table, callback.waiter_payload_id, request.payload_id)
        ):
            table.register_waiter(
                request.payload_id,
                callback,
                now,
                retention_seconds=config.retention_seconds,
                state=WaiterState.CYCLE,
                cause=json.dumps({"payload_id": request.payload_id, "cycle": cycle}),
            )
            metrics.add_metric(name=Metric.CYCLES_REFUSED, unit="Count", value=1)
            logger.warning("cycle refused", payload_id=request.payload_id, cycle=" -> ".join(cycle))
            return Processed.CYCLE
        if (
            table.register_waiter(
                request.payload_id, callback, now, retention_seconds=config.retention_seconds
            )
            is None
        ):
            metrics.add_metric(name=Metric.WAITERS_REGISTERED, unit="Count", value=1)
            logger.info(
                "waiter registered",
                payload_id=request.payload_id,
                waiter=callback.waiter,
                token_sk=token_key(callback.token),
            )

    machine = state_machine_arn(config.state_machine_arn_prefix, request.workflow)
    refuse_express(services, request, machine)
    claim = table.claim_payload(request, machine, now, request_id=request_id)
    if claim.rerunnable:
        claim = _claim_rerun(services, request, claim.row, machine, request_id=request_id)
    current = claim.row
    if claim.refusal is not None:
        refuse(services, request, claim.refusal, execution_arn=current.execution_arn)
    if claim.applied:
        metrics.add_metric(name=Metric.PAYLOADS_CLAIMED, unit="Count", value=1)
        if current.state is State.GATED:
            metrics.add_metric(name=Metric.GATES_ARMED, unit="Count", value=1)
            arm(services, current, request, request_id=request_id, check_cycles=True)
            return Processed.GATED
        if current.is_redrive_claim:
            send_redrive(services, current)
            return Processed.REDRIVEN
        start_attempt(services, current)
        return Processed.STARTED
    if current.state is State.GATED:
        # Armed by this message or another: arm again (a crash may have left it half armed).
        arm(services, current, request, request_id=request_id)
        return Processed.GATED
    if current.state is State.CLAIMED:
        # Claimed but maybe never started (its claimer crashed between the two calls).
        if current.is_redrive_claim:
            resume_redrive(services, current)
        else:
            start_attempt(services, current)
        return Processed.RESTARTED
    if current.state is State.PROCESSING:
        return Processed.IN_PROGRESS
    if current.state is State.INVALID and current.claimed_by == request_id:
        # Our own claim ended INVALID and we died before finishing: settle again (moves any
        # waiter the crash left WAITING), then dead-letter the record as the first try would.
        apply_status(services, request.payload_id, current.execution_arn, State.INVALID)
        raise InvalidMessage(
            f"workflow {current.workflow!r} cannot be started: {current.error}: {current.cause}"
        )
    if callback is not None:
        moved = table.move_waiter(
            request.payload_id, token_key(callback.token), Outcome.of(current), now, at_once=True
        )
        logger.info(
            "waiter resolved at once", payload_id=request.payload_id, state=str(current.state), moved=moved
        )
    return Processed.ALREADY_DONE


def _claim_rerun(
    services: Services, request: PayloadRequest, seen: PayloadState, machine: str, *, request_id: str
) -> StateWrite:
    """Claim an ended payload again: a redrive of its execution, or its next attempt.

    First `follow_redrive`: if someone redrove the execution, the row moves with it and this
    message waits for (or is answered by) that run instead of starting another.
    """
    table = services.table
    current = follow_redrive(services, seen)
    if current is not seen and not may_rerun(request, current, request_id):
        return StateWrite(applied=False, current=current)
    if request.rerun is Rerun.REDRIVE and current.state in REDRIVABLE and not current.never_started:
        return table.claim_redrive(current, services.clock(), request_id=request_id)
    return table.claim_payload(request, machine, services.clock(), request_id=request_id, rerun_of=current)


def refuse_express(services: Services, request: PayloadRequest, machine: str) -> None:
    """Refuse a message for an EXPRESS state machine: its executions emit no status events and
    cannot be described, so its waiter would hang until its own timeout.

    A state machine's type never changes, so it is asked once per container (one
    DescribeStateMachine per workflow), not per message. A missing state machine is left to
    StartExecution, which makes the payload INVALID for a cause outside the message.
    """
    kind = services.machine_types.get(machine)
    if kind is None:
        try:
            kind = str(services.stepfunctions.describe_state_machine(stateMachineArn=machine)["type"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"StateMachineDoesNotExist", "InvalidArn"}:
                return
            raise
        services.machine_types[machine] = kind
    if kind == "EXPRESS":
        refuse(
            services,
            request,
            f"workflow {request.workflow!r} is an EXPRESS state machine: Step Functions emits no "
            "status events for its executions, so nobody could be told when one ends; "
            "deploy it as a STANDARD state machine",
            execution_arn="",
        )


def refuse(services: Services, request: PayloadRequest, refusal: str, *, execution_arn: str) -> NoReturn:
    """Fail this message's waiter at once (`DependencyInvalid`) and dead-letter the message.

    Its WAITER row was put before the claim, so it is moved to INVALID (only from WAITING) and
    the dispatcher fails the token from the stream as for any other outcome; the row does not
    stay WAITING on a payload it will never hear from. The payload's own row is untouched.
    """
    if request.callback is not None:
        _move_own_waiter(services, request, PAYLOAD_REFUSED, refusal, execution_arn=execution_arn)
    raise InvalidMessage(refusal)


def _move_own_waiter(
    services: Services, request: PayloadRequest, error: str, reason: str, *, execution_arn: str
) -> bool:
    assert request.callback is not None
    return services.table.move_waiter(
        request.payload_id,
        token_key(request.callback.token),
        Outcome(state=State.INVALID, execution_arn=execution_arn, error=error, cause=reason),
        services.clock(),
        at_once=True,
    )


def start_attempt(services: Services, claimed: PayloadState) -> None:
    """StartExecution for the claimed attempt; same name and input as any earlier try of it.

    `ExecutionAlreadyExists` means the attempt was started (by an earlier try, or it already
    ran): success. A workflow that cannot be started at all makes the payload INVALID through
    the settle path (so its waiters are failed) and the record is dead-lettered.
    """
    machine = state_machine_of(claimed.execution_arn)
    name = execution_name_of(claimed.execution_arn)
    try:
        services.stepfunctions.start_execution(
            stateMachineArn=machine, name=name, input=claimed.input or "{}"
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ExecutionAlreadyExists":
            logger.info(
                "execution already exists", payload_id=claimed.payload_id, execution_arn=claimed.execution_arn
            )
            return
        if code in UNSTARTABLE:
            message = error.response.get("Error", {}).get("Message", code)
            apply_status(
                services,
                claimed.payload_id,
                claimed.execution_arn,
                State.INVALID,
                error=code,
                cause=message,
                invalid_cause=UNSTARTABLE[code],
            )
            raise InvalidMessage(
                f"workflow {claimed.workflow!r} cannot be started: {code}: {message}"
            ) from error
        raise
    metrics.add_metric(name=Metric.EXECUTIONS_STARTED, unit="Count", value=1)
    logger.info(
        "execution started",
        payload_id=claimed.payload_id,
        attempt=claimed.attempt,
        execution_arn=claimed.execution_arn,
    )
