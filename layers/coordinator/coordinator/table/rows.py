"""The rows of the coordinator table, as the protocol reads them, and their keys.

A payload has one STATE row (`PayloadState`) and one WAITER row per waiting task token or gate.
Rows that still expect something (CLAIMED, PROCESSING, WAITING) carry `pending_shard` and
`pending_since`, the keys of the sparse `by_pending` index reconcile pages through; a row
leaves the index by removing them when it resolves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from coordinator.identity import METADATA_KEY, input_digest
from coordinator.states import State

if TYPE_CHECKING:
    from coordinator.messages import TickSchedule

STATE_KEY = "STATE"
WAITER_PREFIX = "WAITER#"
GATE_PREFIX = "WAITER#GATE#"
PENDING_SHARDS = 8
BY_WAITER = "by_waiter"
BY_PENDING = "by_pending"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values as a DynamoDB item (or a map of expression values)."""
    return {name: _serializer.serialize(value) for name, value in values.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (whole numbers as int)."""
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def stamp(moment: datetime) -> str:
    """The textual form of the table's timestamps (`pending_since`, `updated_at`...)."""
    return moment.isoformat(timespec="microseconds")


def state_key(payload_id: str) -> dict[str, Any]:
    """The key of a payload's STATE row, as an item."""
    return to_item({"payload_id": payload_id, "sk": STATE_KEY})


def pending_shard(kind: str, payload_id: str) -> str:
    bucket = int(hashlib.sha256(payload_id.encode()).hexdigest()[:8], 16) % PENDING_SHARDS
    return f"{kind}#{bucket}"


def pending_shards() -> list[str]:
    return [f"{kind}#{bucket}" for kind in (STATE_KEY, "WAITER") for bucket in range(PENDING_SHARDS)]


def gate_key(gated_execution_arn: str) -> str:
    """Sort key of a gate's row on an upstream payload: one per gated attempt (its ARN)."""
    return GATE_PREFIX + hashlib.sha256(gated_execution_arn.encode()).hexdigest()


@dataclass(frozen=True)
class PayloadState:
    """A payload's STATE row."""

    payload_id: str
    state: State
    attempt: int
    execution_arn: str
    workflow: str = ""
    schedule_time: str | None = None
    # The `schedule` the first claim's message named (JSON), so a re-run's block keeps it.
    schedule: str | None = None
    input: str | None = None
    input_sha256: str | None = None
    output: str | None = None
    output_ref: str | None = None
    error: str | None = None
    cause: str | None = None
    invalid_cause: str | None = None
    claimed_by: str | None = None
    claimed_at: str | None = None
    ended_by: str | None = None  # the message whose arming of the gate ended it, if one did
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    # How often the attempt's execution has been redriven, as far as the row knows: with the
    # execution ARN, the fence of every status event (an event of an earlier run is stale).
    redrive_count: int = 0
    # A gated attempt's upstream payloads, each with the epoch second its wait ends, and the
    # ones counted as succeeded so far (`coordinator.gate`).
    gate_upstreams: Mapping[str, int] | None = None
    gate_met: frozenset[str] = frozenset()

    @property
    def gate_missing(self) -> list[str]:
        """The upstream payloads of the gate not yet counted, in the order the message gave."""
        return [upstream for upstream in self.gate_upstreams or {} if upstream not in self.gate_met]

    # Ended by its gate (an upstream failed, the wait timed out) before any execution.
    never_started: bool = False

    @property
    def is_redrive_claim(self) -> bool:
        """Claimed to redrive the attempt's execution (rather than to start a new attempt)."""
        return self.state is State.CLAIMED and self.redrive_count > 0

    @property
    def schedule_instant(self) -> datetime | None:
        """The payload's logical time (rows written before it was kept in `...Z` form too)."""
        return datetime.fromisoformat(self.schedule_time) if self.schedule_time else None

    @property
    def tick_schedule(self) -> TickSchedule | None:
        """The schedule kept at the first claim, or None (none named, or a row from before)."""
        if not self.schedule:
            return None
        # Imported here: update-state and the dispatcher read rows but never parse a message, and
        # the message models (with the schedule module) would cost them ~25 ms at cold start.
        from coordinator.messages import TickSchedule

        return TickSchedule.model_validate_json(self.schedule)

    def input_digest(self) -> str | None:
        """The digest of the payload's own input (recomputed for rows stored before it was kept)."""
        if self.input_sha256 is not None or self.input is None:
            return self.input_sha256
        document = json.loads(self.input)
        document.pop(METADATA_KEY, None)
        return input_digest(document)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PayloadState:
        return cls(
            payload_id=row["payload_id"],
            state=State(row["state"]),
            attempt=int(row.get("attempt", 0)),
            execution_arn=row.get("execution_arn", ""),
            workflow=row.get("workflow", ""),
            schedule_time=row.get("schedule_time"),
            schedule=row.get("schedule"),
            input=row.get("input"),
            input_sha256=row.get("input_sha256"),
            output=row.get("output"),
            output_ref=row.get("output_ref"),
            error=row.get("error"),
            cause=row.get("cause"),
            invalid_cause=row.get("invalid_cause"),
            claimed_by=row.get("claimed_by"),
            claimed_at=row.get("claimed_at"),
            ended_by=row.get("ended_by"),
            started_at=row.get("started_at"),
            finished_at=row.get("finished_at"),
            updated_at=row.get("updated_at"),
            redrive_count=int(row.get("redrive_count", 0)),
            gate_upstreams=(
                {upstream: int(deadline) for upstream, deadline in row["gate_upstreams"].items()}
                if row.get("gate_upstreams")
                else None
            ),
            gate_met=frozenset(row.get("gate_met") or ()),
            never_started=bool(row.get("gate_ended", False)),
        )


@dataclass(frozen=True)
class Run:
    """One run of a payload: its execution, that execution's redrive count, and its state."""

    execution_arn: str
    redrive_count: int
    state: State

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Run:
        return cls(row.get("execution_arn", ""), int(row.get("redrive_count", 0)), State(row["state"]))


@dataclass(frozen=True)
class WaitingPage:
    """The sort keys of a page of WAITING waiters, and the row's run if the page read it."""

    waiters: list[str]
    run: Run | None


@dataclass(frozen=True)
class Outcome:
    """What a final state means to a waiter: copied onto its row so the dispatcher needs no read."""

    state: State
    execution_arn: str
    redrive_count: int = 0  # the run of the execution that ended so
    output: str | None = None
    output_ref: str | None = None
    error: str | None = None
    cause: str | None = None

    @classmethod
    def of(cls, payload: PayloadState) -> Outcome:
        """The outcome a row holds: its fields of the same names."""
        return cls(**{field.name: getattr(payload, field.name) for field in dataclasses.fields(cls)})

    @property
    def run(self) -> Run:
        return Run(self.execution_arn, self.redrive_count, self.state)


@dataclass(frozen=True)
class StateWrite:
    """The answer of a conditional write of a STATE row: whether it took effect, and the row as
    it now is (written, or as the failed condition found it; None: there is no row).

    A claim's answer may say more: `refusal`, why the message may not have this payload at all
    (`identity_conflict`); `rerunnable`, not claimed because the row may be re-run, which the
    caller decides how (`coordinator.redrive`).
    """

    applied: bool
    current: PayloadState | None
    refusal: str | None = None
    rerunnable: bool = False

    @property
    def row(self) -> PayloadState:
        """The row, for a write that always finds one (a claim writes it or is refused by it)."""
        if self.current is None:
            raise LookupError("no STATE row")
        return self.current
