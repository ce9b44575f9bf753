"""Settling a payload: record its state, then move every waiter of it (update-state's flow).

Shared by update-state (status change events), reconcile (a missed event found later) and
process (a workflow that does not exist makes its payload INVALID), so a final state reaches
the waiters the same way whoever noticed it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from coordinator.observability import logger, metrics
from coordinator.services import Services
from coordinator.states import InvalidCause, State
from coordinator.table import Outcome


class Settled(StrEnum):
    APPLIED = "applied"  # the state was recorded now
    REPEATED = "repeated"  # it was already recorded (a duplicate event): waiters moved again
    STALE = "stale"  # the event is of an older attempt, or would regress the row: ignored
    UNKNOWN = "unknown"  # no STATE row for this payload


@dataclass(frozen=True)
class Settlement:
    settled: Settled
    waiters_moved: int = 0


def settle(
    services: Services,
    payload_id: str,
    execution_arn: str,
    state: State,
    *,
    output: str | None = None,
    output_ref: str | None = None,
    error: str | None = None,
    cause: str | None = None,
    invalid_cause: InvalidCause | None = None,
) -> Settlement:
    """Record `state` for the attempt `execution_arn` of `payload_id`, then move its waiters.

    Order matters: the STATE write comes before the waiter query, and the query is strongly
    consistent; process puts its waiter before it claims. Whichever of the two runs second
    sees the other's write (see `coordinator.process`).
    """
    table = services.table
    now = services.clock()
    inline, reference = _output_fields(output, execution_arn, services.settings.output_inline_bytes)
    reference = reference or output_ref
    applied, current = table.finalize_state(
        payload_id,
        execution_arn,
        state,
        now,
        output=inline,
        output_ref=reference,
        error=error,
        cause=cause,
        invalid_cause=invalid_cause,
    )
    if current is None:
        logger.warning("status for unknown payload", payload_id=payload_id, execution_arn=execution_arn)
        return Settlement(Settled.UNKNOWN)
    if current.execution_arn != execution_arn or (not applied and current.state is not state):
        logger.info(
            "stale status ignored",
            payload_id=payload_id,
            execution_arn=execution_arn,
            status=str(state),
            current_arn=current.execution_arn,
            current_state=str(current.state),
        )
        return Settlement(Settled.STALE)
    if not current.state.is_final:
        return Settlement(Settled.APPLIED if applied else Settled.REPEATED)
    # Applied now, or a repeat of an event that was applied: a crash may have come between
    # that write and the moves below, so the moves always run (each is conditional).
    outcome = Outcome.of(current)
    moved = 0
    for page in table.waiting_pages(payload_id):
        for sk in page:
            moved += table.move_waiter(payload_id, sk, outcome, now)
    if moved:
        metrics.add_metric(name="WaitersResolved", unit="Count", value=moved)
    logger.info(
        "payload settled",
        payload_id=payload_id,
        state=str(current.state),
        execution_arn=execution_arn,
        waiters_moved=moved,
        repeated=not applied,
    )
    return Settlement(Settled.APPLIED if applied else Settled.REPEATED, moved)


def _output_fields(output: str | None, execution_arn: str, limit: int) -> tuple[str | None, str | None]:
    """Small outputs travel inline; a larger one by reference to the execution that has it."""
    if output is None:
        return None, None
    if len(output.encode()) <= limit:
        return output, None
    return None, execution_arn


def error_cause(error: str | None, cause: str | None) -> dict[str, Any]:
    """The error and cause of a failed execution as a JSON-able dict (cause parsed if JSON)."""
    parsed: Any = cause
    if cause:
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = cause
    return {"error": error, "cause": parsed}
