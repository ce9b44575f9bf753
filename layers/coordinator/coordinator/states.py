"""The states a payload and a waiter go through (docs/design.md), and how they map to the outside."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """`state` of a payload's STATE row."""

    GATED = "GATED"  # waiting for its upstream payloads (`coordinator.gate`); no execution yet
    CLAIMED = "CLAIMED"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"
    TIMED_OUT = "TIMED_OUT"
    INVALID = "INVALID"

    @property
    def is_final(self) -> bool:
        return self not in ACTIVE


class InvalidCause(StrEnum):
    """`invalid_cause` of an INVALID row: whether a later message may try the payload again."""

    MESSAGE = "message"  # the message itself (its input, its ARN): the same message fails again
    DEPLOYMENT = "deployment"  # the state machine is missing or being deleted: it may be deployed


class Rerun(StrEnum):
    """`rerun` of a process message: how a payload that ended without success runs again."""

    NEW_ATTEMPT = "new_attempt"  # a new execution, attempt N+1, from the start (the default)
    REDRIVE = "redrive"  # the same execution, redriven from the state that failed


ACTIVE = frozenset({State.GATED, State.CLAIMED, State.PROCESSING})
RETRYABLE = frozenset({State.FAILED, State.ABORTED, State.TIMED_OUT})
# The ends Step Functions can redrive an execution from (within 14 days of it).
REDRIVABLE = RETRYABLE
FINAL = frozenset(State) - ACTIVE


def may_run_again(state: State, invalid_cause: str | None = None, *, replace: bool = False) -> bool:
    """Whether a payload in `state` may be claimed for a new attempt: it has ended, and either
    may be retried (FAILED, ABORTED, TIMED_OUT, or INVALID for a cause outside the message:
    its state machine was missing) or the message sets `replace`, which re-runs any end."""
    if state in ACTIVE:
        return False
    return (
        replace or state in RETRYABLE or (state is State.INVALID and invalid_cause == InvalidCause.DEPLOYMENT)
    )


class WaiterState(StrEnum):
    """`waiter_state` of a WAITER row: WAITING, then the dependency's final state (or CYCLE)."""

    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"
    TIMED_OUT = "TIMED_OUT"
    INVALID = "INVALID"
    CYCLE = "CYCLE"


class DependencyError(StrEnum):
    """The typed `error` of a SendTaskFailure; a waiting state machine Catches these names."""

    FAILED = "DependencyFailed"
    INVALID = "DependencyInvalid"
    ABORTED = "DependencyAborted"
    TIMED_OUT = "DependencyTimedOut"
    CYCLE = "DependencyCycle"


FAILURE_OF: dict[WaiterState, DependencyError] = {
    WaiterState.FAILED: DependencyError.FAILED,
    WaiterState.INVALID: DependencyError.INVALID,
    WaiterState.ABORTED: DependencyError.ABORTED,
    WaiterState.TIMED_OUT: DependencyError.TIMED_OUT,
    WaiterState.CYCLE: DependencyError.CYCLE,
}

# Step Functions execution status -> the payload state it means.
STATE_OF_STATUS: dict[str, State] = {
    "RUNNING": State.PROCESSING,
    "SUCCEEDED": State.SUCCEEDED,
    "FAILED": State.FAILED,
    "TIMED_OUT": State.TIMED_OUT,
    "ABORTED": State.ABORTED,
}
# The statuses an execution ends in (until a redrive runs it again).
FINAL_STATUSES = frozenset(status for status, state in STATE_OF_STATUS.items() if state in FINAL)
