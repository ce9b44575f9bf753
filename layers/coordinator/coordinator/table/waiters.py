"""WAITER rows: a task token's wait on a payload, moved once to the payload's final state.

- `register_waiter` puts WAITER#<sha256(token)> only if absent; a redelivery finds it there.
- `move_waiter` moves a waiter only from WAITING, so the two paths that may both try to move
  it (process after its claim, update-state after its finalize) cannot both take effect.
- `mark_notified` records the dispatcher's outcome once and stamps the TTL of the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from coordinator.identity import token_key
from coordinator.states import WaiterState
from coordinator.table.access import TableAccess, expressions
from coordinator.table.rows import (
    BY_WAITER,
    STATE_KEY,
    WAITER_PREFIX,
    Outcome,
    Run,
    WaitingPage,
    pending_shard,
    stamp,
    to_item,
)

if TYPE_CHECKING:
    from coordinator.messages import Callback

WAITER_PAGE = 100


class WaiterRows(TableAccess):
    """The operations on WAITER rows (a gate's row is one too: `coordinator.table.gates`)."""

    def register_waiter(
        self,
        payload_id: str,
        callback: Callback,
        now: datetime,
        *,
        retention_seconds: int,
        state: WaiterState = WaiterState.WAITING,
        cause: str | None = None,
    ) -> WaiterState | None:
        """Put the WAITER row unless it is there. Returns None if put, else the row's state."""
        row: dict[str, Any] = {
            "payload_id": payload_id,
            "sk": token_key(callback.token),
            "task_token": callback.token,
            "waiter_state": str(state),
            "registered_at": stamp(now),
            # The token is dead after its timeout; the row is kept for the audit trail after.
            "expiration_time": int(now.timestamp()) + callback.timeout_seconds + retention_seconds,
        }
        if callback.waiter:
            row["waiter"] = callback.waiter
        if callback.waiter_payload_id:
            row["waiter_payload_id"] = callback.waiter_payload_id
        if state is WaiterState.WAITING:
            row["pending_shard"] = pending_shard("WAITER", payload_id)
            row["pending_since"] = stamp(now)
        else:
            row["resolved_at"] = stamp(now)
        if cause is not None:
            row["cause"] = cause
        return self._put_waiter(row)

    def _put_waiter(self, row: Mapping[str, Any]) -> WaiterState | None:
        """Put a WAITER row (a token's or a gate's) unless one is there: None if put, else the
        state of the row found."""
        answer = self._put_absent(row)
        if answer.applied:
            return None
        return WaiterState((answer.item or {}).get("waiter_state", WaiterState.WAITING))

    def move_waiter(
        self, payload_id: str, sk: str, outcome: Outcome, now: datetime, *, at_once: bool = False
    ) -> bool:
        """Move one waiter from WAITING to the payload's final state; False if it had moved."""
        values: dict[str, Any] = {
            ":state": str(outcome.state),
            ":waiting": str(WaiterState.WAITING),
            ":now": stamp(now),
            ":arn": outcome.execution_arn,
            ":at_once": at_once,
        }
        sets = [
            "#waiter_state = :state",
            "#resolved_at = :now",
            "#dependency_execution_arn = :arn",
            "#already_done = :at_once",
        ]
        for name in ("output", "output_ref", "error", "cause"):
            value = getattr(outcome, name)
            if value is not None:
                values[f":{name}"] = value
                sets.append(f"#dependency_{name} = :{name}")
        return self._update(
            to_item({"payload_id": payload_id, "sk": sk}),
            f"SET {', '.join(sets)} REMOVE #pending_shard, #pending_since",
            "#waiter_state = :waiting",
            values,
        ).applied

    def waiting_pages(self, payload_id: str) -> Iterator[WaitingPage]:
        """A payload's WAITING waiters, a page of up to 100 rows at a time, each page with the
        run the STATE row was at when it was read (None on pages that do not hold the row).

        Strongly consistent: a waiter put before this query started is in it. That, with
        finalize-before-query here and put-before-claim in process, is the no-lost-wake-up
        argument (see `coordinator.process`). The query reads the whole partition, so its first
        page holds the STATE row too (it sorts before `WAITER#`): settle checks that the run it
        settles is still the row's in the same read that found the waiters (`coordinator.settle`).

        It reads resolved rows too (the filter applies after the read): at 100,000 waiters
        ~15,000 RCU and 1,000 pages a pass, ~5 s (`bench.quota_simulation`), small beside the
        moves. The sparse `by_pending` index holds only WAITING rows, but a GSI is eventually
        consistent: a waiter missing from it would be a lost wake-up, so the query stays here.
        """
        request = expressions(
            {":p": payload_id, ":waiting": str(WaiterState.WAITING)},
            KeyConditionExpression="#payload_id = :p",
            FilterExpression="attribute_exists(#state) OR #waiter_state = :waiting",
            ProjectionExpression="#sk, #state, #execution_arn, #redrive_count",
        )
        for rows in self._query(ConsistentRead=True, PaginationConfig={"PageSize": WAITER_PAGE}, **request):
            run = next((Run.of_row(row) for row in rows if row["sk"] == STATE_KEY), None)
            yield WaitingPage([row["sk"] for row in rows if row["sk"] != STATE_KEY], run)

    def mark_notified(
        self, payload_id: str, sk: str, outcome: str, now: datetime, *, retention_seconds: int
    ) -> bool:
        """Record the dispatcher's outcome once and let the row expire after the retention."""
        return self._update(
            to_item({"payload_id": payload_id, "sk": sk}),
            "SET #notified_at = :now, #outcome = :outcome, #expiration_time = :ttl",
            "attribute_exists(#sk) AND attribute_not_exists(#notified_at)",
            {":now": stamp(now), ":outcome": outcome, ":ttl": int(now.timestamp()) + retention_seconds},
        ).applied

    def waiters_on(self, payload_id: str) -> list[dict[str, Any]]:
        """Every WAITER row on a payload, whatever its state, read consistently (the tools)."""
        request = expressions(
            {":p": payload_id, ":w": WAITER_PREFIX},
            KeyConditionExpression="#payload_id = :p AND begins_with(#sk, :w)",
        )
        return [row for page in self._query(ConsistentRead=True, **request) for row in page]

    def waits_of(self, waiter_payload_id: str, *, waiting_only: bool = False) -> list[dict[str, Any]]:
        """The WAITER rows of `waiter_payload_id`'s waits (index by_waiter, eventually
        consistent): all of them, or only those still WAITING."""
        request = expressions(
            {":w": waiter_payload_id, ":waiting": str(WaiterState.WAITING)},
            KeyConditionExpression="#waiter_payload_id = :w",
            **({"FilterExpression": "#waiter_state = :waiting"} if waiting_only else {}),
        )
        return [row for page in self._query(IndexName=BY_WAITER, **request) for row in page]

    def dependencies_of(self, waiter_payload_id: str) -> list[str]:
        """Payloads that `waiter_payload_id` currently waits on (index by_waiter)."""
        return sorted({row["payload_id"] for row in self.waits_of(waiter_payload_id, waiting_only=True)})
