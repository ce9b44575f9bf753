"""A payload's STATE row through its runs: claimed for an attempt (or a redrive), then moved
forward by the attempt's execution until it ends.

- `claim_payload` takes STATE only if absent, or final and re-runnable (FAILED, ABORTED,
  TIMED_OUT, INVALID for a cause outside the message, or any final state with `replace`),
  never from CLAIMED/PROCESSING. It writes the *prospective* execution ARN of the new
  attempt; the attempt number is the row's version.
- `record_status` writes a run's status (PROCESSING, or a final state) only if `execution_arn`
  is the event's and the move goes forward (a final state only from CLAIMED/PROCESSING): the
  fence that keeps a stale or duplicate event from regressing the row.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from coordinator.identity import execution_arn, execution_name, format_utc
from coordinator.states import FINAL, InvalidCause, State, may_run_again
from coordinator.table.access import TableAccess, redrive_count_is
from coordinator.table.rows import STATE_KEY, PayloadState, StateWrite, pending_shard, stamp, state_key

if TYPE_CHECKING:
    from coordinator.messages import PayloadRequest

# Claims can race with other claims for the same payload; each lost race costs one retry.
MAX_CLAIM_ROUNDS = 5


class ClaimContention(RuntimeError):
    """Too many concurrent claimers of one payload; the record is retried later."""


class ClaimRows(TableAccess):
    """The writes of a STATE row: its claims, and its moves to PROCESSING and to its end."""

    def claim_payload(
        self,
        request: PayloadRequest,
        state_machine: str,
        now: datetime,
        *,
        request_id: str,
        rerun_of: PayloadState | None = None,
    ) -> StateWrite:
        """Claim the payload for its next attempt, writing the attempt's prospective ARN.

        Without `rerun_of` the claim assumes a new payload. A failed condition hands back the
        row; a row that may be re-run comes back `rerunnable`, unclaimed: its execution may be
        being redriven, which only Step Functions knows, so the caller looks first
        (`coordinator.redrive`) and, if a new attempt it is, claims again with `rerun_of`: that
        claims attempt+1 conditional on the attempt, state and redrive count of the row as seen
        (optimistic: a concurrent claimer, or a redrive's event, makes the condition fail and
        the rounds go on from the row it left). A message never claims twice (`claimed_by`): its
        redelivery after its own attempt finished must not start yet another attempt.

        A re-run keeps the payload's identity: its `schedule_time` is the row's (stored at the
        first claim, UTC `...Z`), not the re-run message's, so every attempt's execution sees
        the same `coordinator` block but for the attempt number.
        """
        from coordinator import messages  # process's own module; see `PayloadState.tick_schedule`

        attempt, condition = 1, "attribute_not_exists(#payload_id)"
        expected: dict[str, Any] = {}
        seen: PayloadState | None = None
        if rerun_of is not None:
            attempt, condition, expected, request = _rerun_round(request, rerun_of)
            seen = rerun_of
        for _ in range(MAX_CLAIM_ROUNDS):
            arn = execution_arn(state_machine, execution_name(request.payload_id, attempt))
            execution_input = request.execution_input(attempt)
            if seen is not None and (too_large := messages.execution_input_problem(execution_input)):
                # A re-run's block differs (its attempt, the row's schedule time): checked again.
                return StateWrite(applied=False, current=seen, refusal=too_large)
            state = State.GATED if request.after else State.CLAIMED
            row = {
                ":claimed": str(state),
                ":attempt": attempt,
                ":arn": arn,
                ":workflow": request.workflow,
                ":input": execution_input,
                ":digest": request.input_sha256,
                ":by": request_id,
                ":now": stamp(now),
                ":shard": pending_shard(STATE_KEY, request.payload_id),
                ":no_redrives": 0,
            }
            sets = [
                "#state = :claimed",
                "#attempt = :attempt",
                "#execution_arn = :arn",
                "#workflow = :workflow",
                "#input = :input",
                "#input_sha256 = :digest",
                "#claimed_by = :by",
                "#claimed_at = :now",
                "#updated_at = :now",
                "#pending_shard = :shard",
                "#pending_since = :now",
                "#redrive_count = :no_redrives",
            ]
            if request.schedule_time is not None:
                row[":schedule_time"] = format_utc(request.schedule_time)
                sets.append("#schedule_time = :schedule_time")
            if request.schedule is not None:
                row[":schedule"] = request.schedule.model_dump_json()
                sets.append("#schedule = :schedule")
            removes = [
                "#output",
                "#output_ref",
                "#error",
                "#cause",
                "#invalid_cause",
                "#finished_at",
                "#gate_met",
                "#gate_ended",
                "#ended_by",
            ]
            armed_at = int(now.timestamp())
            gate = {upstream.payload_id: armed_at + upstream.timeout_seconds for upstream in request.after}
            if gate:
                row[":gate"] = gate
                sets.append("#gate_upstreams = :gate")
            else:
                removes.append("#gate_upstreams")
            update = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
            answer = self._update(state_key(request.payload_id), update, condition, {**row, **expected})
            if not answer.applied:
                current = answer.state()
                assert current is not None  # the condition fails on a row, which ALL_OLD returns
                if refusal := identity_conflict(request, current):
                    return StateWrite(applied=False, current=current, refusal=refusal)
                if not may_rerun(request, current, request_id):
                    return StateWrite(applied=False, current=current)
                if seen is None:
                    return StateWrite(applied=False, current=current, rerunnable=True)
                seen = current
                attempt, condition, expected, request = _rerun_round(request, current)
                continue
            return StateWrite(
                applied=True,
                current=PayloadState(
                    payload_id=request.payload_id,
                    state=state,
                    attempt=attempt,
                    execution_arn=arn,
                    workflow=request.workflow,
                    schedule_time=format_utc(request.schedule_time) if request.schedule_time else None,
                    schedule=request.schedule.model_dump_json() if request.schedule else None,
                    input=execution_input,
                    input_sha256=request.input_sha256,
                    claimed_by=request_id,
                    gate_upstreams=gate or None,
                ),
            )
        raise ClaimContention(request.payload_id)

    def claim_redrive(self, seen: PayloadState, now: datetime, *, request_id: str) -> StateWrite:
        """Claim the attempt's ended execution for its next redrive: same attempt, count + 1.

        Conditional on the row as seen (attempt, final state, redrive count), so of two messages
        asking for the same redrive one claims it; the other finds it CLAIMED. The claim is
        written before RedriveExecution, whose client token is derived from (payload, attempt,
        count): every later try of this redrive sends the same token (`coordinator.redrive`).
        """
        answer = self._update(
            state_key(seen.payload_id),
            "SET #state = :claimed, #redrive_count = :count, #claimed_by = :by, #claimed_at = :now, "
            "#updated_at = :now, #pending_shard = :shard, #pending_since = :now "
            "REMOVE #output, #output_ref, #error, #cause, #finished_at",
            _seen_row(seen),
            {
                ":seen_attempt": seen.attempt,
                ":seen_state": str(seen.state),
                ":seen_redrives": seen.redrive_count,
                ":claimed": str(State.CLAIMED),
                ":count": seen.redrive_count + 1,
                ":by": request_id,
                ":now": stamp(now),
                ":shard": pending_shard(STATE_KEY, seen.payload_id),
            },
            return_new=True,
        )
        return StateWrite(applied=answer.applied, current=answer.state())

    def record_status(
        self,
        payload_id: str,
        arn: str,
        state: State,
        now: datetime,
        *,
        redrive_count: int = 0,
        output: str | None = None,
        output_ref: str | None = None,
        error: str | None = None,
        cause: str | None = None,
        invalid_cause: InvalidCause | None = None,
        record_redrive_count: int | None = None,
    ) -> StateWrite:
        """Move STATE to `state` for run `redrive_count` of the execution `arn`, if that is the
        current attempt's and the move goes forward. Writes PROCESSING as well as final states.

        The fence is (execution ARN, redrive count). For the run the row knows (same count),
        PROCESSING is only taken from CLAIMED (a late RUNNING event never reopens a final row)
        and a final state from CLAIMED or PROCESSING. A later run (a higher count: the execution
        was redriven, by anyone) moves the row whatever its state: RUNNING reopens a final row
        to PROCESSING, same attempt, and its final state settles it. A run earlier than the
        row's is stale. `record_redrive_count` writes another count than the fence's (a redrive
        claim that Step Functions refused goes back to the execution's own count).

        The answer's row is None only when there is no STATE row.
        """
        values: dict[str, Any] = {
            ":arn": arn,
            ":state": str(state),
            ":now": stamp(now),
            ":claimed": str(State.CLAIMED),
            ":count": redrive_count,
            ":recorded": redrive_count if record_redrive_count is None else record_redrive_count,
        }
        same_run = redrive_count_is(redrive_count, placeholder=":count")
        # A later run than the row's: for the first run (count 0) there is none.
        later_run = (
            "attribute_not_exists(#redrive_count) OR #redrive_count < :count" if redrive_count else None
        )
        sets = ["#state = :state", "#updated_at = :now", "#redrive_count = :recorded"]
        removes: list[str] = []
        if state is State.PROCESSING:
            condition = _fence(f"({same_run}) AND #state = :claimed", later_run)
            values[":shard"] = pending_shard(STATE_KEY, payload_id)
            sets += ["#started_at = :now", "#pending_shard = :shard", "#pending_since = :now"]
            removes += ["#output", "#output_ref", "#error", "#cause", "#finished_at"]
        else:
            condition = _fence(f"({same_run}) AND #state IN (:claimed, :processing)", later_run)
            values[":processing"] = str(State.PROCESSING)
            sets.append("#finished_at = :now")
            for name, value in (
                ("output", output),
                ("output_ref", output_ref),
                ("error", error),
                ("cause", cause),
            ):
                if value is not None:
                    values[f":{name}"] = value
                    sets.append(f"#{name} = :{name}")
                else:
                    removes.append(f"#{name}")  # a redriven run's end replaces the earlier run's
            if invalid_cause is not None:
                values[":invalid_cause"] = str(invalid_cause)
                sets.append("#invalid_cause = :invalid_cause")
            removes += ["#pending_shard", "#pending_since"]
        update = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        answer = self._update(state_key(payload_id), update, condition, values, return_new=True)
        return StateWrite(applied=answer.applied, current=answer.state())


def identity_conflict(request: PayloadRequest, current: PayloadState) -> str | None:
    """Why `request` may not name the payload `current` is, or None if it may.

    A payload id belongs to the workflow it was first submitted with, and to its logical time;
    an explicit id also to its input, unless the message sets `replace` on a payload that has
    ended: that starts a new attempt on the new input, the payload's input from then on. A
    derived id is its own check (the input's hash; the tick; cirrus's items). Decided on the
    claim's ALL_OLD answer, so refusing costs no call.
    """
    if current.workflow and current.workflow != request.workflow:
        return (
            f"payload id {request.payload_id!r} belongs to workflow {current.workflow!r}, "
            f"not {request.workflow!r}"
        )
    stored = current.schedule_instant
    if request.schedule_time is not None and stored != request.schedule_time:
        return (
            f"payload {request.payload_id!r} has schedule time "
            f"{format_utc(stored) if stored else 'none'}, not {format_utc(request.schedule_time)}"
        )
    if request.explicit_id and not (request.replace and current.state in FINAL):
        digest = current.input_digest()
        if digest is not None and digest != request.input_sha256:
            return (
                f"payload {request.payload_id!r} was submitted with another input; "
                "send it with replace to run it on this one once it has ended"
            )
    return None


def may_rerun(request: PayloadRequest, current: PayloadState, request_id: str) -> bool:
    """Whether `request` may run the payload `current` again (`states.may_run_again`), and is
    not this very message, whose redelivery must not start yet another attempt: neither the one
    that claimed the attempt nor one whose arming of its gate ended it."""
    return may_run_again(
        current.state, current.invalid_cause, replace=request.replace
    ) and request_id not in (current.claimed_by, current.ended_by)


def _seen_row(seen: PayloadState) -> str:
    """The condition that the row is still as seen: its attempt, its state, its redrive count."""
    return f"#attempt = :seen_attempt AND #state = :seen_state AND ({redrive_count_is(seen.redrive_count)})"


def _rerun_round(
    request: PayloadRequest, seen: PayloadState
) -> tuple[int, str, dict[str, Any], PayloadRequest]:
    """(attempt, condition, its values, request) of a claim of the attempt after `seen`."""
    expected = {
        ":seen_attempt": seen.attempt,
        ":seen_state": str(seen.state),
        ":seen_redrives": seen.redrive_count,
    }
    request = dataclasses.replace(request, schedule_time=seen.schedule_instant, schedule=seen.tick_schedule)
    return seen.attempt + 1, _seen_row(seen), expected, request


def _fence(same_run: str, later_run: str | None) -> str:
    """The execution is the row's, and the event is of the row's run (moving forward) or later."""
    if later_run is None:
        return f"#execution_arn = :arn AND {same_run}"
    return f"#execution_arn = :arn AND (({same_run}) OR {later_run})"
