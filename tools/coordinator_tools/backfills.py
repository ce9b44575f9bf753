"""A backfill as an object to operate: the chain of executions of the backfill state machine
that one `backfill run` started, its counts so far, and how to stop it.

A backfill continues as a new execution every `pages_per_execution` pages; the continuation's
input names the execution that started it (`AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`) and
carries the totals of the pages before it, and an execution that continued outputs
`continued_as`. So the chain is followed forwards by outputs and backwards by inputs, and a
backfill is named by its first execution.

Counts so far are read from the newest execution's history (each tick's iteration ends in a
TickSucceeded, TickFailed or TickAlreadyDone state) on top of the totals its input carries:
exactly what the backfill has recorded, at the cost of one history read of one execution (at
most pages_per_execution pages of ticks). The ticks' payload rows would cost a read per 100
ticks of the whole span at every poll, and cannot tell a tick this backfill ran from one that
was already done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coordinator import identity
from coordinator.identity import execution_name_of, scheduled_payload_id
from coordinator.states import DependencyError
from coordinator.table import STATE_KEY, from_item
from coordinator_tools import inspection
from coordinator_tools.target import Target

STARTED_BY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"
OUTCOMES = {"TickSucceeded": "succeeded", "TickFailed": "failed", "TickAlreadyDone": "already_done"}
COUNTED = ("succeeded", "failed", "already_done")
# A gated tick whose gate ended (its `after`) never ran: the summary counts it apart from the
# ticks that ran and failed. The state machine's outputs count both as failed (a task token
# failed either way); the tick's row tells them apart (its own error, `gate_ended`).
GATED_OUTCOMES = {
    DependencyError.FAILED: "dependency_failed",
    DependencyError.TIMED_OUT: "dependency_timed_out",
    DependencyError.CYCLE: "dependency_cycle",
}
CANCEL_ERROR = "BackfillCancelled"
IN_FLIGHT_SHOWN = 20


@dataclass
class Backfill:
    """One backfill: its first execution (its id), the request it was started with, the chain
    of executions so far and the newest one's status."""

    id: str
    request: dict[str, Any]
    chain: list[str]
    status: str
    started: datetime
    stopped: datetime | None
    counts: dict[str, int]
    summary: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None
    in_flight: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    @property
    def done(self) -> int:
        return sum(self.counts[name] for name in COUNTED)

    @property
    def ticks(self) -> int:
        return inspection.tick_count(
            schedule=self.request["schedule"],
            start=self.request["start"],
            stop=self.request["stop"],
            timezone=self.request.get("timezone", "UTC"),
        )

    def as_dict(self) -> dict[str, Any]:
        request = self.request
        return {
            "id": self.id,
            "name": execution_name_of(self.id),
            "status": self.status,
            "workflow": request.get("workflow"),
            "start": request.get("start"),
            "stop": request.get("stop"),
            "schedule": request.get("schedule"),
            "timezone": request.get("timezone", "UTC"),
            "policy": request.get("policy", "missing"),
            "ticks": self.ticks,
            **self.counts,
            "started": self.started.isoformat(),
            "stopped": self.stopped.isoformat() if self.stopped else None,
            "chain": self.chain,
            "summary": self.summary,
            "error": self.error,
            "cause": self.cause,
        }


def execution_arn(target: Target, backfill_id: str) -> str:
    """A backfill id as given: an execution ARN, or the name of an execution of the backfill
    state machine (what `backfill run` prints last, after the machine's name)."""
    if backfill_id.startswith("arn:"):
        return backfill_id
    return identity.execution_arn(target.output("BackfillStateMachineArn"), backfill_id)


def start(target: Target, request: dict[str, Any], name: str) -> str:
    sfn = target.client("stepfunctions")
    return str(
        sfn.start_execution(
            stateMachineArn=target.output("BackfillStateMachineArn"), name=name, input=json.dumps(request)
        )["executionArn"]
    )


def load(target: Target, backfill_id: str) -> Backfill:
    """The backfill an execution belongs to (any of its chain; `NotFound` if none), followed
    from its first execution to its newest."""
    sfn = target.client("stepfunctions")
    arn = execution_arn(target, backfill_id)
    try:
        described = sfn.describe_execution(executionArn=arn)
    except (sfn.exceptions.ExecutionDoesNotExist, sfn.exceptions.InvalidArn) as error:
        raise inspection.NotFound(f"no backfill {backfill_id!r}") from error
    while (parent := json.loads(described["input"]).get(STARTED_BY)) is not None:
        described = sfn.describe_execution(executionArn=parent)
    return Tracker(target, described).poll()


class Tracker:
    """Follows one backfill: each `poll` describes only its newest execution and reads only the
    history events that execution added since the last poll."""

    def __init__(self, target: Target, first: dict[str, Any]) -> None:
        self.sfn = target.client("stepfunctions")
        self.first = first
        self.request = {k: v for k, v in json.loads(first["input"]).items() if k != STARTED_BY}
        self.chain = [str(first["executionArn"])]
        self._newest: dict[str, Any] | None = first
        self._counted = {name: 0 for name in COUNTED}
        self._seen_event = 0

    @classmethod
    def of(cls, target: Target, first: str) -> Tracker:
        return cls(target, target.client("stepfunctions").describe_execution(executionArn=first))

    def poll(self) -> Backfill:
        described = self._newest or self.sfn.describe_execution(executionArn=self.chain[-1])
        self._newest = None
        while described["status"] == "SUCCEEDED" and "continued_as" in (output := _output(described)):
            self.chain.append(output["continued_as"])
            self._counted = {name: 0 for name in COUNTED}
            self._seen_event = 0
            described = self.sfn.describe_execution(executionArn=self.chain[-1])
        output = _output(described)
        final = described["status"] == "SUCCEEDED"
        if final:
            counts = {name: int(output.get(name, 0)) for name in COUNTED}
        else:
            for event in self._new_events(described["executionArn"]):
                if event["type"] == "PassStateExited":
                    outcome = OUTCOMES.get(event["stateExitedEventDetails"]["name"])
                    if outcome:
                        self._counted[outcome] += 1
            carried = json.loads(described["input"]).get("totals") or {}
            counts = {name: int(carried.get(name, 0)) + self._counted[name] for name in COUNTED}
        return Backfill(
            id=self.chain[0],
            request=self.request,
            chain=list(self.chain),
            status=described["status"],
            started=self.first["startDate"],
            stopped=described.get("stopDate"),
            counts=counts,
            summary=output if final else None,
            error=described.get("error"),
            cause=described.get("cause"),
        )

    def _new_events(self, arn: str) -> list[dict[str, Any]]:
        """The events after the last one seen, oldest first. Read newest first (`reverseOrder`),
        the reading stops at the first page reaching an event seen before; a service that
        answers oldest first anyway (moto does) is read whole, and the new events kept."""
        fresh: list[dict[str, Any]] = []
        paginator = self.sfn.get_paginator("get_execution_history")
        for page in paginator.paginate(executionArn=arn, reverseOrder=True, includeExecutionData=True):
            ids = [event["id"] for event in page["events"]]
            fresh.extend(event for event in page["events"] if event["id"] > self._seen_event)
            if ids and min(ids) <= self._seen_event and ids == sorted(ids, reverse=True):
                break
        fresh.sort(key=lambda event: event["id"])
        if fresh:
            self._seen_event = fresh[-1]["id"]
        return fresh


def _output(described: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(described.get("output") or "{}") or {})


def recent(target: Target, limit: int) -> list[Backfill]:
    """The `limit` newest backfills, running or ended, newest first; a chain is one backfill.

    Every execution listed is described (its input says whether it continues another), newest
    first, until `limit` first executions are found: a continuation always starts after its
    first execution, so by then every chain found is whole.
    """
    sfn = target.client("stepfunctions")
    paginator = sfn.get_paginator("list_executions")
    listed = [
        execution
        for page in paginator.paginate(stateMachineArn=target.output("BackfillStateMachineArn"))
        for execution in page["executions"]
    ]
    listed.sort(key=lambda execution: execution["startDate"], reverse=True)
    found: list[Backfill] = []
    for execution in listed:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if STARTED_BY in json.loads(described["input"]):
            continue
        found.append(Tracker(target, described).poll())
        if len(found) == limit:
            break
    return found


def cancel(target: Target, backfill_id: str, *, settle_seconds: float = 60.0) -> Backfill:
    """Stop the backfill's newest execution, and any continuation that started meanwhile.

    StopExecution aborts the Map: no further tick's process message is sent. Messages already
    sent run to the end in the coordinator, which records them in the table (their callback to
    the stopped execution is a closed token, which it treats as an outcome). Those ticks are
    named in `in_flight`, with their state now. A continuation can start between the newest
    execution's last page and the stop: after each stop, one that ended by continuing, and any
    running execution its ContinueAsNewExecution task started, is stopped in turn.
    """
    sfn = target.client("stepfunctions")
    backfill = load(target, backfill_id)
    stopped: list[str] = []
    while True:
        newest = backfill.chain[-1]
        if backfill.running and newest not in stopped:
            sfn.stop_execution(executionArn=newest, error=CANCEL_ERROR, cause="coordinator backfill cancel")
            stopped.append(newest)
        _wait_until_ended(sfn, newest, settle_seconds)
        started_meanwhile = [arn for arn in _running_started_by(target, newest) if arn not in backfill.chain]
        backfill = load(target, backfill.id)
        if started_meanwhile:
            backfill.chain.extend(started_meanwhile)
            backfill.status = "RUNNING"
            continue
        if backfill.chain[-1] == newest:
            break
    if stopped:
        backfill.in_flight = in_flight(target, backfill, stopped)
    return backfill


def _wait_until_ended(sfn: Any, arn: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)


def _running_started_by(target: Target, parent: str) -> Iterator[str]:
    sfn = target.client("stepfunctions")
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(
        stateMachineArn=target.output("BackfillStateMachineArn"), statusFilter="RUNNING"
    ):
        for execution in page["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if json.loads(described["input"]).get(STARTED_BY) == parent:
                yield str(execution["executionArn"])


def in_flight(target: Target, backfill: Backfill, executions: list[str]) -> list[dict[str, Any]]:
    """Ticks the stopped executions had entered (their message sent, or about to be) whose
    outcome they never recorded, with each one's payload state now."""
    sfn = target.client("stepfunctions")
    ticks: list[str] = []
    for arn in executions:
        events = {
            event["id"]: event
            for page in sfn.get_paginator("get_execution_history").paginate(
                executionArn=arn, includeExecutionData=True
            )
            for event in page["events"]
        }
        entered = {
            event["id"]: json.loads(event["stateEnteredEventDetails"]["input"])["tick"]
            for event in events.values()
            if event["type"] == "TaskStateEntered" and event["stateEnteredEventDetails"]["name"] == "RunTick"
        }
        resolved = {
            _entered_by(events, entered, event)
            for event in events.values()
            if event["type"] == "PassStateExited" and event["stateExitedEventDetails"]["name"] in OUTCOMES
        }
        ticks.extend(tick for event_id, tick in entered.items() if event_id not in resolved)
    payload_ids = {tick: scheduled_payload_id(backfill.request["workflow"], _instant(tick)) for tick in ticks}
    states = inspection.payload_states(target, list(payload_ids.values()))
    return [
        {"tick": tick, "payload_id": payload_id, "state": states.get(payload_id)}
        for tick, payload_id in sorted(payload_ids.items())
    ]


def _entered_by(events: dict[int, dict[str, Any]], entered: dict[int, str], event: dict[str, Any]) -> int:
    """The RunTick entry an iteration's event follows from (its previousEventId links)."""
    current = event
    while current["id"] not in entered and current.get("previousEventId"):
        current = events[current["previousEventId"]]
    return int(current["id"])


def _instant(tick: str) -> datetime:
    return datetime.fromisoformat(tick.replace("Z", "+00:00"))


def gated_outcomes(target: Target, payload_ids: list[str]) -> dict[str, int]:
    """How many of these ticks ended on their gate, by outcome, from their STATE rows (a
    BatchGetItem per 100): a row the gate ended carries `gate_ended` and its DependencyError."""
    counts = dict.fromkeys(GATED_OUTCOMES.values(), 0)
    ids = list(dict.fromkeys(payload_ids))
    for first in range(0, len(ids), 100):
        keys = [{"payload_id": {"S": p}, "sk": {"S": STATE_KEY}} for p in ids[first : first + 100]]
        request: dict[str, Any] = {
            target.table_name: {
                "Keys": keys,
                "ProjectionExpression": "payload_id, #e, gate_ended",
                "ExpressionAttributeNames": {"#e": "error"},
            }
        }
        while request:
            response = target.client("dynamodb").batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(target.table_name, []):
                row = from_item(item)
                if row.get("gate_ended") and row.get("error") in GATED_OUTCOMES:
                    counts[GATED_OUTCOMES[DependencyError(row["error"])]] += 1
            request = response.get("UnprocessedKeys") or {}
    return counts


def with_gated_outcomes(counts: dict[str, Any], gated: dict[str, int]) -> dict[str, Any]:
    """`counts` (a summary, or the counts so far) with the gated outcomes taken out of failed."""
    split = {**counts, **gated}
    split["failed"] = max(0, int(counts.get("failed", 0)) - sum(gated.values()))
    return split
