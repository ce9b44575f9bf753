"""The coordinator table: one STATE row per payload, one WAITER row per waiting task token.

Every write that decides something is conditional, and a failed condition returns the row as
it was (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so no decision needs an extra read:

- `register_waiter` puts WAITER#<sha256(token)> only if absent; a redelivery finds it there.
- `claim_payload` takes STATE only if absent, or final and re-runnable (FAILED, ABORTED,
  TIMED_OUT, INVALID for a cause outside the message, or any final state with `replace`),
  never from CLAIMED/PROCESSING. It writes the *prospective* execution ARN of the new
  attempt; the attempt number is the row's version.
- `finalize_state` writes a final state only if `execution_arn` is the event's and the row is
  still CLAIMED/PROCESSING: the fence that keeps a stale or duplicate event from regressing it.
- `move_waiter` moves a waiter only from WAITING, so the two paths that may both try to move
  it (process after its claim, update-state after its finalize) cannot both take effect.
- `mark_notified` records the dispatcher's outcome once and stamps the TTL of the audit trail.

Rows that still expect something (CLAIMED, PROCESSING, WAITING) carry `pending_shard` and
`pending_since`, the keys of the sparse `by_pending` index reconcile pages through; a row
leaves the index by removing them when it resolves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from coordinator.identity import (
    METADATA_KEY,
    execution_arn,
    execution_name,
    format_utc,
    input_digest,
    token_key,
)
from coordinator.states import (
    ACTIVE,
    FINAL,
    RETRYABLE,
    InvalidCause,
    State,
    WaiterState,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from coordinator.messages import Callback, PayloadRequest, TickSchedule
else:
    DynamoDBClient = Any

STATE_KEY = "STATE"
WAITER_PREFIX = "WAITER#"
WAITER_PAGE = 100
PENDING_SHARDS = 8
BY_WAITER = "by_waiter"
BY_PENDING = "by_pending"
GATE_PREFIX = "WAITER#GATE#"
# Claims can race with other claims for the same payload; each lost race costs one retry.
MAX_CLAIM_ROUNDS = 5

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (whole numbers as int)."""
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def pending_shard(kind: str, payload_id: str) -> str:
    bucket = int(hashlib.sha256(payload_id.encode()).hexdigest()[:8], 16) % PENDING_SHARDS
    return f"{kind}#{bucket}"


def pending_shards() -> list[str]:
    return [f"{kind}#{bucket}" for kind in (STATE_KEY, "WAITER") for bucket in range(PENDING_SHARDS)]


def gate_key(gated_execution_arn: str) -> str:
    """Sort key of a gate's row on an upstream payload: one per gated attempt (its ARN)."""
    return GATE_PREFIX + hashlib.sha256(gated_execution_arn.encode()).hexdigest()


def is_condition_failure(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


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

    @property
    def is_retryable(self) -> bool:
        """A new message may claim a new attempt without `replace`."""
        return self.state in RETRYABLE or (
            self.state is State.INVALID and self.invalid_cause == InvalidCause.DEPLOYMENT
        )

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
class Claim:
    """The outcome of `claim_payload`: ours to start, or the row that stopped us.

    `refusal` says why the message may not have this payload at all (`identity_conflict`).
    """

    claimed: bool
    current: PayloadState
    refusal: str | None = None
    # Not claimed because the row may be re-run: the caller decides how (`coordinator.redrive`).
    rerunnable: bool = False

    @property
    def execution_arn(self) -> str:
        return self.current.execution_arn


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
    output: str | None = None
    output_ref: str | None = None
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0

    @classmethod
    def of(cls, payload: PayloadState) -> Outcome:
        return cls(
            state=payload.state,
            execution_arn=payload.execution_arn,
            output=payload.output,
            output_ref=payload.output_ref,
            error=payload.error,
            cause=payload.cause,
            redrive_count=payload.redrive_count,
        )

    @property
    def run(self) -> Run:
        return Run(self.execution_arn, self.redrive_count, self.state)


class PayloadTable:
    """Access to the coordinator table, in the protocol's terms (docs/design.md)."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    # -- waiters -----------------------------------------------------------------------------

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
            "registered_at": _stamp(now),
            # The token is dead after its timeout; the row is kept for the audit trail after.
            "expiration_time": int(now.timestamp()) + callback.timeout_seconds + retention_seconds,
        }
        if callback.waiter:
            row["waiter"] = callback.waiter
        if callback.waiter_payload_id:
            row["waiter_payload_id"] = callback.waiter_payload_id
        if state is WaiterState.WAITING:
            row["pending_shard"] = pending_shard("WAITER", payload_id)
            row["pending_since"] = _stamp(now)
        else:
            row["resolved_at"] = _stamp(now)
        if cause is not None:
            row["cause"] = cause
        return self._put_waiter(row)

    def _put_waiter(self, row: dict[str, Any]) -> WaiterState | None:
        """Put a WAITER row (a token's or a gate's) unless one is there: None if put, else the
        state of the row found."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_to_item(row),
                ConditionExpression="attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            old = from_item(error.response.get("Item", {}))
            return WaiterState(old.get("waiter_state", WaiterState.WAITING))
        return None

    def move_waiter(
        self, payload_id: str, sk: str, outcome: Outcome, now: datetime, *, at_once: bool = False
    ) -> bool:
        """Move one waiter from WAITING to the payload's final state; False if it had moved."""
        values: dict[str, Any] = {
            ":state": str(outcome.state),
            ":waiting": str(WaiterState.WAITING),
            ":now": _stamp(now),
            ":arn": outcome.execution_arn,
            ":at_once": at_once,
        }
        sets = [
            "waiter_state = :state",
            "resolved_at = :now",
            "dependency_execution_arn = :arn",
            "already_done = :at_once",
        ]
        for name in ("output", "output_ref", "error", "cause"):
            value = getattr(outcome, name)
            if value is not None:
                values[f":{name}"] = value
                sets.append(f"dependency_{name} = :{name}")
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_to_item({"payload_id": payload_id, "sk": sk}),
                UpdateExpression=f"SET {', '.join(sets)} REMOVE pending_shard, pending_since",
                ConditionExpression="waiter_state = :waiting",
                ExpressionAttributeValues=_to_item(values),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

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
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "KeyConditionExpression": "payload_id = :p",
                "FilterExpression": "attribute_exists(#state) OR waiter_state = :waiting",
                "ProjectionExpression": "sk, #state, execution_arn, redrive_count",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": _to_item(
                    {":p": payload_id, ":waiting": str(WaiterState.WAITING)}
                ),
                "ConsistentRead": True,
                "Limit": WAITER_PAGE,
            }
            if start:
                request["ExclusiveStartKey"] = start
            page = self.client.query(**request)
            rows = [from_item(item) for item in page.get("Items", [])]
            run = next((Run.of_row(row) for row in rows if row["sk"] == STATE_KEY), None)
            yield WaitingPage([row["sk"] for row in rows if row["sk"] != STATE_KEY], run)
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def mark_notified(
        self, payload_id: str, sk: str, outcome: str, now: datetime, *, retention_seconds: int
    ) -> bool:
        """Record the dispatcher's outcome once and let the row expire after the retention."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_to_item({"payload_id": payload_id, "sk": sk}),
                UpdateExpression="SET notified_at = :now, outcome = :outcome, expiration_time = :ttl",
                ConditionExpression="attribute_exists(sk) AND attribute_not_exists(notified_at)",
                ExpressionAttributeValues=_to_item(
                    {
                        ":now": _stamp(now),
                        ":outcome": outcome,
                        ":ttl": int(now.timestamp()) + retention_seconds,
                    }
                ),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def dependencies_of(self, waiter_payload_id: str) -> list[str]:
        """Payloads that `waiter_payload_id` currently waits on (index by_waiter)."""
        found: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": BY_WAITER,
                "KeyConditionExpression": "waiter_payload_id = :w",
                "FilterExpression": "waiter_state = :waiting",
                "ExpressionAttributeValues": _to_item(
                    {":w": waiter_payload_id, ":waiting": str(WaiterState.WAITING)}
                ),
            }
            if start:
                request["ExclusiveStartKey"] = start
            page = self.client.query(**request)
            found.extend(from_item(item)["payload_id"] for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return sorted(set(found))

    # -- gates -------------------------------------------------------------------------------

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
            "registered_at": _stamp(now),
            "expiration_time": gated.gate_upstreams[upstream_id] + retention_seconds,
            "pending_shard": pending_shard("WAITER", upstream_id),
            "pending_since": _stamp(now),
        }
        return self._put_waiter(row)

    def count_upstream(self, gated_id: str, arn: str, upstream_id: str, now: datetime) -> PayloadState | None:
        """Add `upstream_id` to the gated attempt's succeeded upstreams (a set: counting it twice
        changes nothing). Only while the row is that attempt, GATED. Returns the row as it now
        is (or as it was, if it is not GATED at that attempt any more; None: no row)."""
        return self._gate_write(
            gated_id,
            arn,
            "SET updated_at = :now ADD gate_met :upstream",
            {":upstream": {upstream_id}, ":now": _stamp(now)},
        )

    def open_gate(self, gated_id: str, arn: str, now: datetime) -> PayloadState | None:
        """GATED -> CLAIMED for the attempt `arn`; the row after (or as it was, if not GATED).

        Whoever finds the row CLAIMED at `arn` starts the attempt: its name makes the start
        happen once however many callers find it so (`coordinator.process.start_attempt`)."""
        values = {
            ":claimed": str(State.CLAIMED),
            ":now": _stamp(now),
            ":shard": pending_shard(STATE_KEY, gated_id),
        }
        update = (
            "SET #state = :claimed, claimed_at = :now, updated_at = :now, "
            "pending_shard = :shard, pending_since = :now"
        )
        return self._gate_write(gated_id, arn, update, values)

    def end_gate(
        self, gated_id: str, arn: str, state: State, now: datetime, *, error: str, cause: str
    ) -> PayloadState | None:
        """GATED -> `state` (FAILED or TIMED_OUT) with `error` naming the upstream; the row after
        (or before, if the gate had opened or ended already). settle then moves its waiters."""
        values = {":final": str(state), ":now": _stamp(now), ":error": error, ":cause": cause, ":ended": True}
        update = (
            "SET #state = :final, #error = :error, cause = :cause, gate_ended = :ended, updated_at = :now, "
            "finished_at = :now REMOVE pending_shard, pending_since"
        )
        return self._gate_write(gated_id, arn, update, values)

    def _gate_write(
        self, gated_id: str, arn: str, update: str, values: dict[str, Any]
    ) -> PayloadState | None:
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_to_item({"payload_id": gated_id, "sk": STATE_KEY}),
                UpdateExpression=update,
                ConditionExpression="execution_arn = :arn AND #state = :gated",
                ExpressionAttributeNames=_names({"#state": "state", "#error": "error"}, update + "#state"),
                ExpressionAttributeValues=_to_item({**values, ":arn": arn, ":gated": str(State.GATED)}),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as failure:
            if not is_condition_failure(failure):
                raise
            old = failure.response.get("Item")
            return PayloadState.from_row(from_item(old)) if old else None
        return PayloadState.from_row(from_item(response["Attributes"]))

    def get_states(self, payload_ids: list[str]) -> dict[str, PayloadState]:
        """The STATE rows of many payloads, strongly consistent, 100 to a BatchGetItem."""
        found: dict[str, PayloadState] = {}
        for first in range(0, len(payload_ids), 100):
            keys = [_to_item({"payload_id": p, "sk": STATE_KEY}) for p in payload_ids[first : first + 100]]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    state = PayloadState.from_row(from_item(item))
                    found[state.payload_id] = state
                request = response.get("UnprocessedKeys") or {}
        return found

    # -- payload state -----------------------------------------------------------------------

    def claim_payload(
        self,
        request: PayloadRequest,
        state_machine: str,
        now: datetime,
        *,
        request_id: str,
        rerun_of: PayloadState | None = None,
    ) -> Claim:
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
        from coordinator import messages  # process's own module; see `tick_schedule`

        attempt, condition = 1, "attribute_not_exists(payload_id)"
        expected: dict[str, Any] = {}
        seen: PayloadState | None = None
        if rerun_of is not None:
            attempt, condition, expected, request = _rerun_round(request, rerun_of)
            seen = rerun_of
        for _ in range(MAX_CLAIM_ROUNDS):
            name = execution_name(request.payload_id, attempt)
            arn = execution_arn(state_machine, name)
            execution_input = request.execution_input(attempt)
            if seen is not None and (too_large := messages.execution_input_problem(execution_input)):
                # A re-run's block differs (its attempt, the row's schedule time): checked again.
                return Claim(claimed=False, current=seen, refusal=too_large)
            state = State.GATED if request.after else State.CLAIMED
            row = {
                ":claimed": str(state),
                ":attempt": attempt,
                ":arn": arn,
                ":workflow": request.workflow,
                ":input": execution_input,
                ":digest": request.input_sha256,
                ":by": request_id,
                ":now": _stamp(now),
                ":shard": pending_shard(STATE_KEY, request.payload_id),
                ":no_redrives": 0,
            }
            sets = [
                "#state = :claimed",
                "attempt = :attempt",
                "execution_arn = :arn",
                "workflow = :workflow",
                "#input = :input",
                "input_sha256 = :digest",
                "claimed_by = :by",
                "claimed_at = :now",
                "updated_at = :now",
                "pending_shard = :shard",
                "pending_since = :now",
                "redrive_count = :no_redrives",
            ]
            if request.schedule_time is not None:
                row[":schedule"] = format_utc(request.schedule_time)
                sets.append("schedule_time = :schedule")
            if request.schedule is not None:
                row[":tick_schedule"] = request.schedule.model_dump_json()
                sets.append("#tick_schedule = :tick_schedule")
            removes = [
                "#output",
                "output_ref",
                "#error",
                "cause",
                "invalid_cause",
                "finished_at",
                "gate_met",
                "gate_ended",
            ]
            armed_at = int(now.timestamp())
            gate = {upstream.payload_id: armed_at + upstream.timeout_seconds for upstream in request.after}
            if gate:
                row[":gate"] = gate
                sets.append("gate_upstreams = :gate")
            else:
                removes.append("gate_upstreams")
            update = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=_to_item({"payload_id": request.payload_id, "sk": STATE_KEY}),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=_names(
                        {
                            "#state": "state",
                            "#input": "input",
                            "#output": "output",
                            "#error": "error",
                            "#tick_schedule": "schedule",
                        },
                        update,
                        condition,
                    ),
                    ExpressionAttributeValues=_to_item({**row, **expected}),
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
                current = PayloadState.from_row(from_item(error.response["Item"]))
                if refusal := identity_conflict(request, current):
                    return Claim(claimed=False, current=current, refusal=refusal)
                if not may_rerun(request, current, request_id):
                    return Claim(claimed=False, current=current)
                if seen is None:
                    return Claim(claimed=False, current=current, rerunnable=True)
                seen = current
                attempt, condition, expected, request = _rerun_round(request, current)
                continue
            return Claim(
                claimed=True,
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

    def claim_redrive(self, seen: PayloadState, now: datetime, *, request_id: str) -> Claim:
        """Claim the attempt's ended execution for its next redrive: same attempt, count + 1.

        Conditional on the row as seen (attempt, final state, redrive count), so of two messages
        asking for the same redrive one claims it; the other finds it CLAIMED. The claim is
        written before RedriveExecution, whose client token is derived from (payload, attempt,
        count): every later try of this redrive sends the same token (`coordinator.redrive`).
        """
        count = seen.redrive_count + 1
        condition = (
            f"attempt = :seen_attempt AND #state = :seen_state AND ({_redrive_count_is(seen.redrive_count)})"
        )
        update = (
            "SET #state = :claimed, redrive_count = :count, claimed_by = :by, claimed_at = :now, "
            "updated_at = :now, pending_shard = :shard, pending_since = :now "
            "REMOVE #output, output_ref, #error, cause, finished_at"
        )
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_to_item({"payload_id": seen.payload_id, "sk": STATE_KEY}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state", "#output": "output", "#error": "error"},
                ExpressionAttributeValues=_to_item(
                    {
                        ":seen_attempt": seen.attempt,
                        ":seen_state": str(seen.state),
                        ":seen_redrives": seen.redrive_count,
                        ":claimed": str(State.CLAIMED),
                        ":count": count,
                        ":by": request_id,
                        ":now": _stamp(now),
                        ":shard": pending_shard(STATE_KEY, seen.payload_id),
                    }
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            return Claim(claimed=False, current=PayloadState.from_row(from_item(error.response["Item"])))
        return Claim(claimed=True, current=PayloadState.from_row(from_item(response["Attributes"])))

    def finalize_state(
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
    ) -> tuple[bool, PayloadState | None]:
        """Move STATE to `state` for run `redrive_count` of the execution `arn`, if that is the
        current attempt's and the move goes forward. Writes PROCESSING as well as final states.

        The fence is (execution ARN, redrive count). For the run the row knows (same count),
        PROCESSING is only taken from CLAIMED (a late RUNNING event never reopens a final row)
        and a final state from CLAIMED or PROCESSING. A later run (a higher count: the execution
        was redriven, by anyone) moves the row whatever its state: RUNNING reopens a final row
        to PROCESSING, same attempt, and its final state settles it. A run earlier than the
        row's is stale. `record_redrive_count` writes another count than the fence's (a redrive
        claim that Step Functions refused goes back to the execution's own count).

        Returns (applied, row as it now is), the row being None only when there is no STATE row.
        """
        values: dict[str, Any] = {
            ":arn": arn,
            ":state": str(state),
            ":now": _stamp(now),
            ":claimed": str(State.CLAIMED),
            ":count": redrive_count,
            ":recorded": redrive_count if record_redrive_count is None else record_redrive_count,
        }
        same_run = _redrive_count_is(redrive_count, placeholder=":count")
        # A later run than the row's: for the first run (count 0) there is none.
        later_run = "attribute_not_exists(redrive_count) OR redrive_count < :count" if redrive_count else None
        sets = ["#state = :state", "updated_at = :now", "redrive_count = :recorded"]
        removes: list[str] = []
        if state is State.PROCESSING:
            condition = _fence(f"({same_run}) AND #state = :claimed", later_run)
            values[":shard"] = pending_shard(STATE_KEY, payload_id)
            sets += ["started_at = :now", "pending_shard = :shard", "pending_since = :now"]
            removes += ["#output", "output_ref", "#error", "cause", "finished_at"]
        else:
            condition = _fence(f"({same_run}) AND #state IN (:claimed, :processing)", later_run)
            values[":processing"] = str(State.PROCESSING)
            sets.append("finished_at = :now")
            for name, value in (
                ("output", output),
                ("output_ref", output_ref),
                ("error", error),
                ("cause", cause),
            ):
                placeholder = f"#{name}" if name in {"output", "error"} else name
                if value is not None:
                    values[f":{name}"] = value
                    sets.append(f"{placeholder} = :{name}")
                else:
                    removes.append(placeholder)  # a redriven run's end replaces the earlier run's
            if invalid_cause is not None:
                values[":invalid_cause"] = str(invalid_cause)
                sets.append("invalid_cause = :invalid_cause")
            removes += ["pending_shard", "pending_since"]
        update = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_to_item({"payload_id": payload_id, "sk": STATE_KEY}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(
                    {"#state": "state", "#output": "output", "#error": "error"}, update + condition
                ),
                ExpressionAttributeValues=_to_item(_used(values, update + condition)),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as failure:
            if not is_condition_failure(failure):
                raise
            old = failure.response.get("Item")
            return False, PayloadState.from_row(from_item(old)) if old else None
        return True, PayloadState.from_row(from_item(response["Attributes"]))

    def get_state(self, payload_id: str) -> PayloadState | None:
        """A strongly consistent read of STATE (reconcile and the tools; never on a hot path)."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key=_to_item({"payload_id": payload_id, "sk": STATE_KEY}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return PayloadState.from_row(from_item(item)) if item else None

    # -- reconcile ---------------------------------------------------------------------------

    def pending(self, shard: str, older_than: datetime, limit: int) -> list[dict[str, Any]]:
        """The oldest rows of one shard of by_pending whose `pending_since` is before a time."""
        response = self.client.query(
            TableName=self.table_name,
            IndexName=BY_PENDING,
            KeyConditionExpression="pending_shard = :s AND pending_since < :t",
            ExpressionAttributeValues=_to_item({":s": shard, ":t": _stamp(older_than)}),
            Limit=limit,
        )
        return [from_item(item) for item in response.get("Items", [])]

    def touch_pending(self, payload_id: str, sk: str, seen_since: str, now: datetime) -> bool:
        """Send a row to the back of the reconcile queue (after a check found nothing to do)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_to_item({"payload_id": payload_id, "sk": sk}),
                UpdateExpression="SET pending_since = :now",
                ConditionExpression="pending_since = :seen",
                ExpressionAttributeValues=_to_item({":now": _stamp(now), ":seen": seen_since}),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True


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
    """Whether `request` may run the payload `current` again: it ended and may be re-run
    (retryable, or any end with `replace`), and not by this very message (a redelivery)."""
    rerunnable = current.is_retryable or (request.replace and current.state in FINAL)
    return rerunnable and current.state not in ACTIVE and current.claimed_by != request_id


def _rerun_round(
    request: PayloadRequest, seen: PayloadState
) -> tuple[int, str, dict[str, Any], PayloadRequest]:
    """(attempt, condition, its values, request) of a claim of the attempt after `seen`."""
    condition = (
        f"attempt = :seen_attempt AND #state = :seen_state AND ({_redrive_count_is(seen.redrive_count)})"
    )
    expected = {
        ":seen_attempt": seen.attempt,
        ":seen_state": str(seen.state),
        ":seen_redrives": seen.redrive_count,
    }
    request = dataclasses.replace(request, schedule_time=seen.schedule_instant, schedule=seen.tick_schedule)
    return seen.attempt + 1, condition, expected, request


def _fence(same_run: str, later_run: str | None) -> str:
    """The execution is the row's, and the event is of the row's run (moving forward) or later."""
    if later_run is None:
        return f"execution_arn = :arn AND {same_run}"
    return f"execution_arn = :arn AND (({same_run}) OR {later_run})"


def _redrive_count_is(count: int, *, placeholder: str = ":seen_redrives") -> str:
    """The row's redrive count is `count` (a row written before counts were kept has none: 0)."""
    if count == 0:
        return f"attribute_not_exists(redrive_count) OR redrive_count = {placeholder}"
    return f"redrive_count = {placeholder}"


class ClaimContention(RuntimeError):
    """Too many concurrent claimers of one payload; the record is retried later."""


def _used(values: Mapping[str, Any], expression: str) -> dict[str, Any]:
    """Only the values an expression uses (DynamoDB rejects unused values)."""
    return {placeholder: value for placeholder, value in values.items() if placeholder in expression}


def _names(candidates: Mapping[str, str], *expressions: str) -> dict[str, str]:
    """Only the placeholders an expression uses (DynamoDB rejects unused names)."""
    text = " ".join(expressions)
    return {placeholder: name for placeholder, name in candidates.items() if placeholder in text}
