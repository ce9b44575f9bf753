"""A gate's rows: a WAITER row on each upstream payload, and the gated payload's STATE row,
which counts the upstreams that succeeded and opens or ends while GATED (`coordinator.gate`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from coordinator.states import State, WaiterState
from coordinator.table.rows import (
    STATE_KEY,
    PayloadState,
    gate_key,
    pending_shard,
    stamp,
    state_key,
    to_item,
)
from coordinator.table.waiters import WaiterRows


class GateRows(WaiterRows):
    """The operations of a gate: its waiter rows, and its gated row's moves out of GATED."""

    def register_gate(
        self, upstream_id: str, gated: PayloadState, now: datetime, *, retention_seconds: int
    ) -> WaiterState | None:
        """Put the gate's WAITER row on `upstream_id` unless it is there (None if put, else the
        row's state). A waiter like any other to settle and reconcile; its callback is to count
        the upstream on the gated row (`coordinator.gate`), so it has no token."""
        assert gated.gate_upstreams is not None
        row: dict[str, Any] = {
            "payload_id": upstream_id,
            "sk": gate_key(gated.execution_arn),
            "gate_payload_id": gated.payload_id,
            "gate_execution_arn": gated.execution_arn,
            "waiter_payload_id": gated.payload_id,
            "waiter_state": str(WaiterState.WAITING),
            "registered_at": stamp(now),
            "expiration_time": gated.gate_upstreams[upstream_id] + retention_seconds,
            "pending_shard": pending_shard("WAITER", upstream_id),
            "pending_since": stamp(now),
        }
        return self._put_waiter(row)

    def count_upstream(self, gated_id: str, arn: str, upstream_id: str, now: datetime) -> PayloadState | None:
        """Add `upstream_id` to the gated attempt's succeeded upstreams (a set: counting it twice
        changes nothing). Only while the row is that attempt, GATED. Returns the row as it now
        is (or as it was, if it is not GATED at that attempt any more; None: no row)."""
        return self._gate_write(
            gated_id,
            arn,
            "SET #updated_at = :now ADD #gate_met :upstream",
            {":upstream": {upstream_id}, ":now": stamp(now)},
        )

    def open_gate(self, gated_id: str, arn: str, now: datetime) -> PayloadState | None:
        """GATED -> CLAIMED for the attempt `arn`; the row after (or as it was, if not GATED).

        Whoever finds the row CLAIMED at `arn` starts the attempt: its name makes the start
        happen once however many callers find it so (`coordinator.process.start_attempt`)."""
        values = {
            ":claimed": str(State.CLAIMED),
            ":now": stamp(now),
            ":shard": pending_shard(STATE_KEY, gated_id),
        }
        update = (
            "SET #state = :claimed, #claimed_at = :now, #updated_at = :now, "
            "#pending_shard = :shard, #pending_since = :now"
        )
        return self._gate_write(gated_id, arn, update, values)

    def retire_gate_row(self, upstream_id: str, gated_arn: str) -> bool:
        """Take an ended gate's row on an upstream it still waited for out of reconcile's queue
        (by_pending), if it is still WAITING; it expires with its TTL. The upstream's settle still
        moves it if the upstream ends first: the dispatcher then hears it and changes nothing."""
        return self._update(
            to_item({"payload_id": upstream_id, "sk": gate_key(gated_arn)}),
            "REMOVE #pending_shard, #pending_since",
            "#waiter_state = :waiting AND attribute_exists(#pending_shard)",
            {":waiting": str(WaiterState.WAITING)},
        ).applied

    def end_gate(
        self,
        gated_id: str,
        arn: str,
        state: State,
        now: datetime,
        *,
        error: str,
        cause: str,
        ended_by: str | None = None,
    ) -> PayloadState | None:
        """GATED -> `state` (FAILED or TIMED_OUT) with `error` naming the upstream; the row after
        (or before, if the gate had opened or ended already). settle then moves its waiters.
        `ended_by`: the message whose arming ended it (its redelivery must not re-run it)."""
        values: dict[str, Any] = {
            ":final": str(state),
            ":now": stamp(now),
            ":error": error,
            ":cause": cause,
            ":ended": True,
        }
        by = ""
        if ended_by is not None:
            values[":by"] = ended_by
            by = ", #ended_by = :by"
        update = (
            f"SET #state = :final, #error = :error, #cause = :cause, #gate_ended = :ended{by}, "
            "#updated_at = :now, #finished_at = :now REMOVE #pending_shard, #pending_since"
        )
        return self._gate_write(gated_id, arn, update, values)

    def _gate_write(
        self, gated_id: str, arn: str, update: str, values: dict[str, Any]
    ) -> PayloadState | None:
        """`update` the gated row while it is GATED at attempt `arn`: the row after, or as it was."""
        return self._update(
            state_key(gated_id),
            update,
            "#execution_arn = :arn AND #state = :gated",
            {**values, ":arn": arn, ":gated": str(State.GATED)},
            return_new=True,
        ).state()
