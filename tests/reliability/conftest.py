"""A lab for runs by the hundred: one moto per test, a fresh world (table, workflows, DLQ) per run.

Building boto3 clients and entering moto are the slow parts of a run (about 0.2 s against
0.03 s for the rest), so the lab makes its clients once and rebuilds only the resources
between runs. Every run goes through the real handlers, whose cached `services` are pointed
at the current world.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from coordinator import settle as settle_module
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator.table import STATE_KEY, WAITER_PREFIX, PayloadState, from_item
from coordinator_tools.kit.events import status_event
from coordinator_tools.kit.resources import create_table
from functions.dispatcher import app as dispatcher_app
from functions.process import app as process_app
from functions.reconcile import app as reconcile_app
from functions.update_state import app as update_state_app
from tests.conftest import REGION, TABLE, WORKFLOW_PREFIX, Clock, FakeContext
from tests.support.crashes import CallLog, Redrives, TaskTokens
from tests.support.interleavings import pool_for_actors


@pytest.fixture(autouse=True)
def forks_are_actors(monkeypatch: pytest.MonkeyPatch) -> None:
    """settle's pool of moves, made on a thread the race explorer schedules, makes each move an
    actor of its own (`ActorPool`); made anywhere else (a crash sweep, a scene being set), it
    is the plain pool settle makes."""
    monkeypatch.setattr(settle_module, "ThreadPoolExecutor", pool_for_actors)


PASS_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@dataclass
class World:
    """One run's resources and the handlers acting on them."""

    lab: Lab
    services: Services
    clock: Clock
    workflows: tuple[str, ...]
    history: list[dict[str, tuple[int, int, str, str]]] = field(default_factory=list)
    delivered: int = 0  # calls already looked at for waiter resolutions (the stream cursor)

    # -- the handlers, as their event sources invoke them ------------------------------------

    def process(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(process_app.lambda_handler(event, FakeContext()))

    def update_state(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(update_state_app.lambda_handler(event, FakeContext()))

    def dispatcher(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(dispatcher_app.lambda_handler(event, FakeContext()))

    def reconcile(self) -> dict[str, Any]:
        return dict(reconcile_app.lambda_handler({}, FakeContext()))

    # -- what the world looks like -----------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
        while True:
            page = self.lab.look.dynamodb.scan(**request)
            items.extend(from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def states(self) -> dict[str, PayloadState]:
        return {
            row["payload_id"]: PayloadState.from_row(row) for row in self.rows() if row["sk"] == STATE_KEY
        }

    def waiters(self) -> list[dict[str, Any]]:
        return [row for row in self.rows() if str(row["sk"]).startswith(WAITER_PREFIX)]

    def state(self, payload_id: str) -> PayloadState:
        return self.states()[payload_id]

    def snapshot(self) -> None:
        """Record every STATE row as (attempt, redrive count, state, execution ARN), to check it
        never went back."""
        self.history.append(
            {
                pid: (s.attempt, s.redrive_count, str(s.state), s.execution_arn)
                for pid, s in self.states().items()
            }
        )

    def executions(self, workflow: str) -> list[dict[str, Any]]:
        arn = f"{self.lab.machine_prefix}{workflow}"
        try:
            return list(self.lab.look.stepfunctions.list_executions(stateMachineArn=arn)["executions"])
        except self.lab.look.stepfunctions.exceptions.StateMachineDoesNotExist:
            return []

    def execution_input(self, execution_arn: str) -> str:
        return str(self.lab.look.stepfunctions.describe_execution(executionArn=execution_arn)["input"])

    def status_of(self, payload_id: str, status: str, **detail: Any) -> dict[str, Any]:
        """The status change event of the payload's current attempt (of its current run, if it
        was redriven: `redriveCount` as Step Functions would send it)."""
        arn = self.state(payload_id).execution_arn
        detail.setdefault("redriveCount", self.lab.redrives.count_of(arn))
        return status_event(arn, status, self.execution_input(arn), **detail)

    def redrivable(self, payload_id: str) -> str:
        """Let Step Functions' redrive know the payload's execution as it ended; its ARN."""
        current = self.state(payload_id)
        self.lab.redrives.ended(
            current.execution_arn,
            self.execution_input(current.execution_arn),
            str(current.state),
            error=current.error,
            cause=current.cause,
            output=current.output,
        )
        return current.execution_arn

    def dead_letters(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            response = self.lab.look.sqs.receive_message(
                QueueUrl=self.services.settings.dead_letter_queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=0,
            )
            batch = response.get("Messages", [])
            if not batch:
                return found
            found.extend(batch)
            for message in batch:
                self.lab.look.sqs.delete_message(
                    QueueUrl=self.services.settings.dead_letter_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )


@dataclass(frozen=True)
class Clients:
    dynamodb: Any
    stepfunctions: Any
    sqs: Any


class Lab:
    """The clients, the observers on them, and a factory of fresh worlds."""

    def __init__(self) -> None:
        self.dynamodb = boto3.client("dynamodb")
        self.stepfunctions = boto3.client("stepfunctions")
        self.sqs = boto3.client("sqs")
        self.clients = [self.dynamodb, self.stepfunctions, self.sqs]
        # The test's own reads go through other clients: never counted, never crashed.
        self.look = Clients(boto3.client("dynamodb"), boto3.client("stepfunctions"), boto3.client("sqs"))
        self.calls = CallLog()
        self.tokens = TaskTokens()
        self.redrives = Redrives()
        for client in self.clients:
            self.calls.attach(client)
        self.tokens.attach(self.stepfunctions)
        self.redrives.attach(self.stepfunctions)
        account = boto3.client("sts").get_caller_identity()["Account"]
        self.machine_prefix = f"arn:aws:states:{REGION}:{account}:stateMachine:{WORKFLOW_PREFIX}"
        self.role = f"arn:aws:iam::{account}:role/coordinator-test-workflow"
        self._runs = itertools.count(1)
        self._machines: set[str] = set()
        self.world: World | None = None

    def fresh(self, workflows: tuple[str, ...] = ("ingest",)) -> World:
        run = next(self._runs)
        if run > 1:
            self.dynamodb.delete_table(TableName=TABLE)
        create_table(self.dynamodb, TABLE)
        for machine in self._machines:
            self.stepfunctions.delete_state_machine(stateMachineArn=machine)
        self._machines = {
            self.stepfunctions.create_state_machine(
                name=f"{WORKFLOW_PREFIX}{workflow}", definition=PASS_DEFINITION, roleArn=self.role
            )["stateMachineArn"]
            for workflow in workflows
        }
        dead_letters = self.sqs.create_queue(QueueName=f"reliability-dlq-{run}")["QueueUrl"]
        self.calls.reset()
        self.tokens.reset()
        self.redrives.reset()
        clock = Clock()
        settings = Settings(
            TABLE_NAME=TABLE,
            STATE_MACHINE_ARN_PREFIX=self.machine_prefix,
            DEAD_LETTER_QUEUE_URL=dead_letters,
            RETENTION_DAYS=7,
            RECONCILE_LEASE_SECONDS=300,
            RECONCILE_BATCH_SIZE=160,
        )
        services = Services(
            settings=settings,
            dynamodb=self.dynamodb,
            stepfunctions=self.stepfunctions,
            sqs=self.sqs,
            clock=clock,
        )
        self.world = World(self, services, clock, workflows)
        return self.world

    def current(self) -> Services:
        assert self.world is not None, "no world yet: call lab.fresh()"
        return self.world.services


@pytest.fixture
def lab(aws: None, lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> Lab:
    laboratory = Lab()
    for module in (process_app, update_state_app, dispatcher_app, reconcile_app):
        monkeypatch.setattr(module, "services", laboratory.current)
    return laboratory
