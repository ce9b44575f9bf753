"""A status applied to its payload (update-state's flow): `apply_status` records it behind the
fence, and a final one settles the payload: every waiter of it is moved to the outcome.

Shared by update-state (status change events), reconcile (a missed event found later) and
process (a workflow that does not exist makes its payload INVALID), so a final state reaches
the waiters the same way whoever noticed it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from coordinator.observability import Metric, in_current_trace, logger, metrics
from coordinator.services import Services
from coordinator.states import InvalidCause, State
from coordinator.table import Outcome, PayloadState, Run


class Settled(StrEnum):
    APPLIED = "applied"  # the state was recorded now
    REPEATED = "repeated"  # it was already recorded (a duplicate event): waiters moved again
    STALE = "stale"  # the event is of an older attempt, or would regress the row: ignored
    UNKNOWN = "unknown"  # no STATE row for this payload


@dataclass(frozen=True)
class Settlement:
    settled: Settled
    waiters_moved: int = 0
    current: PayloadState | None = None  # the row as it is after (None: no row)


def apply_status(
    services: Services,
    payload_id: str,
    execution_arn: str,
    state: State,
    *,
    redrive_count: int = 0,
    output: str | None = None,
    output_ref: str | None = None,
    error: str | None = None,
    cause: str | None = None,
    invalid_cause: InvalidCause | None = None,
    record_redrive_count: int | None = None,
) -> Settlement:
    """Record `state` (PROCESSING, or a final state) for run `redrive_count` of the attempt
    `execution_arn` of `payload_id` (0 for the execution's first run, N after its Nth
    redrive); if it is final, move the payload's waiters to it.

    Order matters: the STATE write comes before the waiter query, and the query is strongly
    consistent; process puts its waiter before it claims. Whichever of the two runs second
    sees the other's write (see `coordinator.process`).

    The moves run concurrently, at most `Settings.move_concurrency` at once (threads over the
    one boto3 client, which is thread-safe). That leaves the argument as it was: every query
    page is still read after the final write, and each move is its own conditional write
    ("only from WAITING") to its own row, so running them at once only changes the order of
    writes that are independent of each other. A waiter put after a page was read is either
    in a later page or, put after the query ended, sees the final STATE when process claims.
    A crash part-way through leaves some rows WAITING; the redelivered event (or reconcile)
    runs settle again, which moves those and finds the moved ones gone from the query.

    Re-checked with the moves concurrent (issue 19): nothing in the argument depended on their
    order. The finalize still precedes the query that finds the waiters (the pool is fed only
    from pages already read), the run check is still made per page before any of its moves is
    submitted, and a move racing process's own move of the same row, or a second settle's, is
    decided by the row's condition, so it takes effect once whoever wins. The crash sweep runs
    five moves three at a time with a crash at every call, and the race explorer every order
    of the moves with the other actors' calls (tests/reliability).
    """
    table = services.table
    now = services.clock()
    inline, reference = _output_fields(output, execution_arn, services.settings.output_inline_bytes)
    reference = reference or output_ref
    written = table.record_status(
        payload_id,
        execution_arn,
        state,
        now,
        redrive_count=redrive_count,
        output=inline,
        output_ref=reference,
        error=error,
        cause=cause,
        invalid_cause=invalid_cause,
        record_redrive_count=record_redrive_count,
    )
    applied, current = written.applied, written.current
    if current is None:
        logger.warning("status for unknown payload", payload_id=payload_id, execution_arn=execution_arn)
        return Settlement(Settled.UNKNOWN)
    if current.execution_arn != execution_arn or (
        not applied and (current.state is not state or current.redrive_count > redrive_count)
    ):
        logger.info(
            "stale status ignored",
            payload_id=payload_id,
            execution_arn=execution_arn,
            status=str(state),
            redrive_count=redrive_count,
            current_arn=current.execution_arn,
            current_state=str(current.state),
            current_redrive_count=current.redrive_count,
        )
        return Settlement(Settled.STALE, current=current)
    if not current.state.is_final:
        return Settlement(Settled.APPLIED if applied else Settled.REPEATED, current=current)
    # Applied now, or a repeat of an event that was applied: a crash may have come between
    # that write and the moves below, so the moves always run (each is conditional).
    moved = _move_waiters(services, payload_id, Outcome.of(current), now)
    if moved:
        metrics.add_metric(name=Metric.WAITERS_RESOLVED, unit="Count", value=moved)
    logger.info(
        "payload settled",
        payload_id=payload_id,
        state=str(current.state),
        execution_arn=execution_arn,
        waiters_moved=moved,
        repeated=not applied,
    )
    return Settlement(Settled.APPLIED if applied else Settled.REPEATED, moved, current)


def move_waiters_of(services: Services, final: PayloadState) -> int:
    """Move the waiters of a row a caller has just written final itself (a gate's end): the
    half of `apply_status` after its STATE write, so the consistent waiter query still follows it."""
    moved = _move_waiters(services, final.payload_id, Outcome.of(final), services.clock())
    if moved:
        metrics.add_metric(name=Metric.WAITERS_RESOLVED, unit="Count", value=moved)
    logger.info("payload settled", payload_id=final.payload_id, state=str(final.state), waiters_moved=moved)
    return moved


def _move_waiters(services: Services, payload_id: str, outcome: Outcome, now: datetime) -> int:
    """Move every WAITING waiter of the payload to `outcome`, a query page at a time, while
    the row is still at the outcome's run.

    A settle can be slow (a throttled call, a crash and its retry); meanwhile the payload may
    have run again (a new attempt, a redrive) and a waiter registered since may be waiting for
    that run. So each page's moves are made only if the row is still at the run being settled:
    the first page reads the STATE row in the same consistent query as the waiters, a later
    page (over 100 waiters) reads it once more. A page that finds the row moved on stops the
    settle: its waiters are the newer run's, whose settle (after its own finalize) or whose
    waiters' own claims move them, by the same argument as for any waiter. Only a run that
    began and ended, and a waiter put, within one Query call would slip through.

    With `move_concurrency` 1 the moves are made one after another on the calling thread.
    Otherwise a page's moves all end before the next page is read, and a move that raises (a
    crash, an AWS error) ends the rest of the page unmade and is raised here, as a serial loop
    would. The race explorer (tests/reliability/test_races.py) runs each of a page's moves as
    an actor of its own, and the crash sweep crashes them at every call.
    """
    table = services.table
    workers = services.settings.move_concurrency
    moved = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="settle-move") if workers > 1 else None
    move = in_current_trace(table.move_waiter)  # traced in the entity current here (the handler's)
    try:
        for page in table.waiting_pages(payload_id):
            run = page.run
            if run is None and page.waiters:
                current = table.get_state(payload_id)
                run = Run(current.execution_arn, current.redrive_count, current.state) if current else None
            if page.waiters and run != outcome.run:
                logger.info(
                    "settle superseded: the payload ran again",
                    payload_id=payload_id,
                    settled_arn=outcome.execution_arn,
                    settled_redrive_count=outcome.redrive_count,
                    current_arn=run.execution_arn if run else None,
                    current_redrive_count=run.redrive_count if run else None,
                )
                return moved
            if pool is None:
                moved += sum(table.move_waiter(payload_id, sk, outcome, now) for sk in page.waiters)
                continue
            futures = [pool.submit(move, payload_id, sk, outcome, now) for sk in page.waiters]
            try:
                moved += sum(future.result() for future in futures)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return moved


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
