"""No lost wake-up, by enumeration.

Every interleaving, at AWS-call granularity, of process registering a waiter on payload P
and update-state settling P (which is running) must leave the waiter moved to P's final state
exactly once. The same harness run on the cirrus draft's ordering (docs/design.md) (callback row written after
the start, behind a read of the state) finds the interleaving that loses the wake-up: the
check can fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coordinator.identity import token_key
from coordinator.messages import PayloadRequest
from coordinator.process import process_request
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.table import Outcome, PayloadTable
from coordinator_tools.kit.events import callback, request
from coordinator_tools.kit.resources import create_workflow
from coordinator_tools.kit.template import table_create_kwargs
from tests.conftest import TABLE, WORKFLOW_PREFIX
from tests.support.interleavings import Run, Turnstile, explore, run_schedule

PAYLOAD = "ingest/P"


class Moves:
    """Counts the waiter moves that took effect (a successful conditional update each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()
        original = PayloadTable.move_waiter

        def counted(table: PayloadTable, *args: Any, **kwargs: Any) -> bool:
            moved = original(table, *args, **kwargs)
            if moved:
                with self._lock:
                    self.count += 1
            return moved

        monkeypatch.setattr(PayloadTable, "move_waiter", counted)


def make_services(settings: Settings, register: Callable[[Any], Any]) -> Services:
    return Services(
        settings=settings,
        dynamodb=register(boto3.client("dynamodb")),
        stepfunctions=register(boto3.client("stepfunctions")),
        sqs=register(boto3.client("sqs")),
        # A warm container, which knows the workflow is STANDARD: the type is asked once per
        # container (test_call_counts) and touches no row, so it is not a step of the race.
        machine_types={f"{settings.state_machine_arn_prefix}ingest": "STANDARD"},
    )


def world() -> tuple[Settings, str, PayloadRequest]:
    """P claimed, started and PROCESSING: the moment a waiter and the finish can race."""
    account = boto3.client("sts").get_caller_identity()["Account"]
    settings = Settings(
        TABLE_NAME=TABLE,
        STATE_MACHINE_ARN_PREFIX=f"arn:aws:states:us-east-1:{account}:stateMachine:{WORKFLOW_PREFIX}",
    )
    boto3.client("dynamodb").create_table(**table_create_kwargs(table_name=TABLE))
    sfn = boto3.client("stepfunctions")
    create_workflow(sfn, f"{WORKFLOW_PREFIX}ingest", account)
    base = Services(
        settings=settings,
        dynamodb=boto3.client("dynamodb"),
        stepfunctions=sfn,
        sqs=boto3.client("sqs"),
    )
    process_request(base, request(id=PAYLOAD), request_id="producer")
    running = base.table.get_state(PAYLOAD)
    assert running is not None
    apply_status(base, PAYLOAD, running.execution_arn, State.PROCESSING)
    return settings, running.execution_arn, request(id=PAYLOAD, callback=callback())


def process_as_cirrus_draft(services: Services, waiting: PayloadRequest) -> None:
    """The draft's ordering: look at the state first, write the callback row only after."""
    assert waiting.callback is not None
    table, now = services.table, services.clock()
    current = table.get_state(waiting.payload_id)
    table.register_waiter(waiting.payload_id, waiting.callback, now, retention_seconds=60)
    if current is not None and current.state.is_final:
        table.move_waiter(waiting.payload_id, token_key(waiting.callback.token), Outcome.of(current), now)


def check(waiting: PayloadRequest, moves: Moves) -> list[str]:
    assert waiting.callback is not None
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE,
        Key={"payload_id": {"S": PAYLOAD}, "sk": {"S": token_key(waiting.callback.token)}},
        ConsistentRead=True,
    )
    state = item.get("Item", {}).get("waiter_state", {}).get("S")
    violations = []
    if state != WaiterState.SUCCEEDED:
        violations.append(f"waiter left {state}")
    if moves.count != (1 if state == WaiterState.SUCCEEDED else 0):
        violations.append(f"waiter moved {moves.count} times")
    return violations


def explore_race(monkeypatch: pytest.MonkeyPatch, *, draft: bool) -> list[Run]:
    def run_one(prefix: list[str]) -> Run:
        with mock_aws():
            settings, execution_arn, waiting = world()
            moves = Moves(monkeypatch)

            def instrument(actor: str, turnstile: Turnstile) -> Callable[[Any], Any]:
                def register(client: Any) -> Any:
                    client.meta.events.register("before-call.*.*", turnstile.hook(actor))
                    return client

                return register

            def process_actor(register: Callable[[Any], Any]) -> None:
                services = make_services(settings, register)
                if draft:
                    process_as_cirrus_draft(services, waiting)
                else:
                    process_request(services, waiting, request_id="waiter-message")

            def update_state_actor(register: Callable[[Any], Any]) -> None:
                services = make_services(settings, register)
                apply_status(services, PAYLOAD, execution_arn, State.SUCCEEDED, output="{}")

            schedule, calls, options = run_schedule(
                {"process": process_actor, "update-state": update_state_actor}, prefix, instrument
            )
            run = Run(schedule, calls, options)
            run.violations = check(waiting, moves)
            monkeypatch.undo()
            return run

    return list(explore(run_one))


def test_every_interleaving_moves_the_waiter_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = explore_race(monkeypatch, draft=False)

    # process: PutItem, UpdateItem (+ UpdateItem if it saw the final state);
    # update-state: UpdateItem, Query (+ UpdateItem if it found the waiter): 14 orders.
    assert len(runs) == 14
    assert len({tuple(run.schedule) for run in runs}) == len(runs)
    assert [run for run in runs if run.violations] == []


def test_the_same_harness_finds_the_cirrus_draft_losing_the_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = explore_race(monkeypatch, draft=True)

    lost = [run for run in runs if run.violations]
    # The one losing order: the draft reads PROCESSING, update-state finalizes and finds no
    # waiter, then the draft writes its waiter row, which nothing will ever move.
    assert [(run.calls, run.violations) for run in lost] == [
        (
            [
                ("process", "GetItem"),
                ("update-state", "UpdateItem"),
                ("update-state", "Query"),
                ("process", "PutItem"),
            ],
            ["waiter left WAITING"],
        )
    ]
