"""Gated starts: a payload that starts when its upstream payloads have succeeded, holding no
execution while it waits.

A process message with `after` claims its payload GATED (attempt N, its execution ARN written
as for any claim) with the upstream payload ids and each one's deadline. The gate is then one
waiter per upstream: a WAITER row on the upstream's partition (`PayloadTable.register_gate`)
whose callback, instead of a task token, is "count this upstream on the gated row".

Why no upstream is lost
-----------------------
A gate row is a waiter, put before its upstream's state is read (`arm`), moved only from
WAITING by whoever sees the upstream final first: `arm` itself, the upstream's settle (after
its final write, by its consistent query), or reconcile. That is process's argument for task
tokens (`coordinator.process`), edge by edge: every gate row leaves WAITING with its
upstream's outcome, once, and the stream hands it to the dispatcher, which calls `heard`.

The gate's own bookkeeping
--------------------------
- **Each upstream counted once.** `heard` adds the upstream to the gated row's `gate_met`, a
  string set, conditional on the row being that attempt and GATED: a duplicate stream record,
  a retried dispatcher, `arm` and the dispatcher both hearing the same row add nothing.
- **Started exactly once.** The write that counts answers the row as it is after it. Whoever
  sees every upstream counted turns the row GATED -> CLAIMED (conditional, for that attempt:
  one of any number of such callers takes effect), and every caller that then finds the row
  CLAIMED at the attempt calls StartExecution, whose name is the attempt's: one execution,
  however many upstreams arrive at once, and a crash between the claim and the start is
  repaired by the next one to hear (a redelivered record, reconcile), as for any claim.
- **A failed upstream ends the gate.** An upstream that ended FAILED, ABORTED, TIMED_OUT or
  INVALID moves its gate row to that state; `heard` then ends the gated row FAILED with error
  `DependencyFailed` and a cause naming the upstream, only from GATED, so a gate that opened
  is never ended, and its own waiters are moved as settle moves them (they get DependencyFailed
  with that cause). Counting and ending are both conditional on GATED: whichever comes first
  decides, and an upstream's row leaves WAITING once, so one upstream cannot do both.
- **A timeout ends it too.** reconcile ends a gate whose missing upstream is past its
  deadline TIMED_OUT with `DependencyTimedOut`, and re-arms every GATED row it visits: it
  puts missing gate rows, moves those whose upstream ended, and hears the moved ones.

Re-arming: a gated payload that ended (an upstream failed, or its wait timed out) never ran,
so it is re-run as a new attempt (never redriven): re-run the failed upstream, then send the
gated payload's message again; attempt N+1 is GATED with gate rows of its own. A message is
answered once: the redelivery of one whose own arming ended the gate (`ended_by`, as
`claimed_by` for the claimer) does not re-arm it.

An ended gate retires its rows on the upstreams it still waited for: they leave reconcile's
queue (by_pending) and expire with their TTL, so an upstream that is never submitted does not
keep a row visited every lease; one that ends later still moves its row, heard and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coordinator.cycles import find_cycle
from coordinator.errors import InvalidMessage
from coordinator.observability import Metric, logger, metrics
from coordinator.services import Services
from coordinator.settle import error_cause, move_waiters_of
from coordinator.states import DependencyError, State, WaiterState
from coordinator.table import Outcome, PayloadState, gate_key

if TYPE_CHECKING:
    from coordinator.messages import PayloadRequest

# How many missing upstreams a timeout's cause names (the count says how many in all).
NAMED_IN_CAUSE = 20


@dataclass(frozen=True)
class Heard:
    """A gate row that left WAITING: its gated attempt, its upstream, and how that ended."""

    gated_id: str
    gated_arn: str
    upstream_id: str
    upstream_state: WaiterState
    error: str | None = None
    cause: str | None = None

    @classmethod
    def from_image(cls, image: dict[str, Any]) -> Heard | None:
        """The gate in a stream NewImage, or None if the image is not a gate's row to act on."""
        if "gate_payload_id" not in image or image.get("notified_at"):
            return None
        state = WaiterState(image.get("waiter_state", WaiterState.WAITING))
        if state is WaiterState.WAITING:
            return None
        return cls(
            gated_id=str(image["gate_payload_id"]),
            gated_arn=str(image["gate_execution_arn"]),
            upstream_id=str(image["payload_id"]),
            upstream_state=state,
            error=image.get("dependency_error"),
            cause=image.get("dependency_cause"),
        )


def arm(
    services: Services,
    gated: PayloadState,
    request: PayloadRequest | None,
    *,
    request_id: str,
    check_cycles: bool = False,
) -> PayloadState | None:
    """Put the gate's rows, submit the absent upstreams `request` may submit, and hear every
    upstream already ended. Idempotent: a redelivered message and reconcile arm again.

    Returns the gated row as the last write left it (None when nothing was written to it).
    """
    table = services.table
    now = services.clock()
    retention = services.settings.retention_seconds
    heard: list[Heard] = []
    waiting: list[str] = []
    for upstream in gated.gate_missing:
        if check_cycles and (cycle := find_cycle(table, gated.payload_id, upstream)):
            metrics.add_metric(name=Metric.CYCLES_REFUSED, unit="Count", value=1)
            cause = json.dumps({"upstream": upstream, "cycle": cycle})
            return end(
                services, gated.payload_id, gated.execution_arn, State.FAILED, DependencyError.CYCLE, cause
            )
        found = table.register_gate(upstream, gated, now, retention_seconds=retention)
        if found is None or found is WaiterState.WAITING:
            waiting.append(upstream)
        else:
            heard.append(Heard(gated.payload_id, gated.execution_arn, upstream, found))
    states = table.get_states(waiting)
    refused = _submit_absent(services, request, [u for u in waiting if u not in states], request_id)
    if refused:
        states |= table.get_states(list(refused))
    for upstream in waiting:
        current = states.get(upstream)
        if current is None and upstream in refused:
            reason = refused[upstream]
            heard.append(
                Heard(gated.payload_id, gated.execution_arn, upstream, WaiterState.INVALID, cause=reason)
            )
        elif current is not None and current.state.is_final:
            table.move_waiter(upstream, gate_key(gated.execution_arn), Outcome.of(current), now, at_once=True)
            heard.append(
                Heard(
                    gated.payload_id,
                    gated.execution_arn,
                    upstream,
                    WaiterState(current.state),
                    current.error,
                    current.cause,
                )
            )
    row: PayloadState | None = gated
    for each in heard:
        row = hear(services, each, ended_by=request_id if request is not None else None)
    if not heard and not gated.gate_missing:
        row = _open(services, gated.payload_id, gated.execution_arn)
    return row


def _submit_absent(
    services: Services, request: PayloadRequest | None, absent: list[str], request_id: str
) -> dict[str, str]:
    """Submit the absent upstreams the message can submit; the ones refused, with the reason.

    Only absent ones: an upstream that ran and failed is re-run by its owner, not by a gate
    waiting for it. An upstream the coordinator refuses (its workflow cannot start) ends INVALID
    and its gate row with it; one refused before it has a row is named here.
    """
    from coordinator.process import process_request  # process arms gates: imported on use

    refused: dict[str, str] = {}
    if request is None:
        return refused
    for upstream in request.after:
        if upstream.submit is None or upstream.payload_id not in absent:
            continue
        try:
            process_request(services, upstream.submit, request_id=f"{request_id}/after")
        except InvalidMessage as problem:
            refused[upstream.payload_id] = problem.reason
            logger.warning("upstream refused", payload_id=upstream.payload_id, reason=problem.reason)
    return refused


def hear(services: Services, heard: Heard, *, ended_by: str | None = None) -> PayloadState | None:
    """Act on one upstream's end: count a success (and open a gate that is complete), or end
    the gate on a failure. Any number of times: the second changes nothing."""
    if heard.upstream_state is WaiterState.SUCCEEDED:
        now = services.clock()
        row = services.table.count_upstream(heard.gated_id, heard.gated_arn, heard.upstream_id, now)
        if row is not None and row.state is State.GATED and not row.gate_missing:
            return _open(services, heard.gated_id, heard.gated_arn)
        return _start_if_claimed(services, row, heard.gated_arn)
    error = DependencyError.CYCLE if heard.upstream_state is WaiterState.CYCLE else DependencyError.FAILED
    upstream = {"upstream": heard.upstream_id, "state": str(heard.upstream_state)}
    cause = json.dumps({**upstream, **error_cause(heard.error, heard.cause)})
    return end(
        services,
        heard.gated_id,
        heard.gated_arn,
        State.FAILED,
        error,
        cause,
        heard_from=heard.upstream_id,
        ended_by=ended_by,
    )


def expire(services: Services, gated: PayloadState) -> PayloadState | None:
    """End the gate TIMED_OUT if a missing upstream is past its deadline; else None."""
    assert gated.gate_upstreams is not None
    now = services.clock().timestamp()
    late = [u for u in gated.gate_missing if gated.gate_upstreams[u] <= now]
    if not late:
        return None
    cause = json.dumps({"upstreams": late[:NAMED_IN_CAUSE], "missing": len(late)})
    return end(
        services, gated.payload_id, gated.execution_arn, State.TIMED_OUT, DependencyError.TIMED_OUT, cause
    )


def end(
    services: Services,
    gated_id: str,
    arn: str,
    state: State,
    error: DependencyError,
    cause: str,
    *,
    heard_from: str | None = None,
    ended_by: str | None = None,
) -> PayloadState | None:
    """End the GATED attempt `arn` in `state`, then move its own waiters, then retire its rows
    on the upstreams it still waited for (but `heard_from`, whose row has moved).

    `end_gate` is the final STATE write, so only settle's second half follows it (a settle
    would try that write again, refused): the waiters' consistent query, after the write. A
    retired row leaves reconcile's queue: an upstream that is never submitted would otherwise
    keep its row there, visited every lease, until its TTL (deadline + retention)."""
    row = services.table.end_gate(
        gated_id, arn, state, services.clock(), error=str(error), cause=cause, ended_by=ended_by
    )
    if row is None or row.execution_arn != arn or not row.never_started:
        return row  # the gate had opened (or the row moved on): nothing to end
    metrics.add_metric(name=Metric.GATES_ENDED, unit="Count", value=1)
    logger.info("gate ended", payload_id=gated_id, state=str(row.state), error=row.error)
    # Ended now or by an earlier try that crashed before its moves: either way, move them.
    move_waiters_of(services, row)
    for upstream in row.gate_missing:
        if upstream != heard_from:
            services.table.retire_gate_row(upstream, arn)
    return row


def _open(services: Services, gated_id: str, arn: str) -> PayloadState | None:
    row = services.table.open_gate(gated_id, arn, services.clock())
    if row is not None and row.state is State.CLAIMED and row.execution_arn == arn:
        metrics.add_metric(name=Metric.GATES_OPENED, unit="Count", value=1)
        logger.info("gate opened", payload_id=gated_id, upstreams=len(row.gate_upstreams or {}))
    return _start_if_claimed(services, row, arn)


def _start_if_claimed(services: Services, row: PayloadState | None, arn: str) -> PayloadState | None:
    """Start the attempt if the row is CLAIMED at it (opened now, or by a try that crashed)."""
    from coordinator.process import start_attempt

    claimed = row is not None and row.state is State.CLAIMED and row.execution_arn == arn
    if row is not None and claimed and not row.is_redrive_claim:
        try:
            start_attempt(services, row)
        except InvalidMessage as problem:
            # The workflow cannot start: start_attempt settled the payload INVALID, waiters too.
            logger.warning("gated payload cannot start", payload_id=row.payload_id, reason=problem.reason)
    return row
