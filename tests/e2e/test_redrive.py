"""Redrive through the offline stack (issue 15's must-show).

A dependency whose second state fails is redriven, by `coordinator rerun --redrive` and by boto3
directly: the same execution resumes from the failed state, a waiter registered during the
redrive resumes with success, the first waiter keeps the failure it was told, and no second
execution exists. A message for an EXPRESS workflow is refused at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coordinator_tools.cli import app
from coordinator_tools.local import OfflineStack
from coordinator_tools.target import write_local_state
from tests.e2e.conftest import executions_of

pytestmark = pytest.mark.e2e

FLAKY = "flaky-step"
HANG_GUARD = 60.0


class FlakyStep:
    """A workflow whose Prepare state passes and whose Work state waits on a task token that
    the test fails or completes: the cause of a failure is "fixed" between the runs."""

    def __init__(self, stack: OfflineStack) -> None:
        self.sqs = stack.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName="flaky-step-work")["QueueUrl"]
        definition = {
            "StartAt": "Prepare",
            "States": {
                "Prepare": {"Type": "Pass", "Result": "prepared", "ResultPath": "$.prepared", "Next": "Work"},
                "Work": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {
                        "QueueUrl": self.queue_url,
                        "MessageBody": {
                            "token.$": "$$.Task.Token",
                            "payload_id.$": "$.coordinator.payload_id",
                        },
                    },
                    "End": True,
                },
            },
        }
        self.stepfunctions = stack.client("stepfunctions")
        self.stepfunctions.create_state_machine(
            name=stack.outputs["WorkflowPrefix"] + FLAKY,
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{stack.account_id}:role/flaky-step",
        )
        self.tokens: dict[str, list[str]] = {}

    def token_of(self, payload_id: str, run: int) -> str:
        """The task token of Work in run `run` (1 the first run, 2 its redrive) of a payload."""
        deadline = time.monotonic() + HANG_GUARD
        while len(self.tokens.get(payload_id, [])) < run:
            assert time.monotonic() < deadline, f"Work of {payload_id} never asked for run {run}"
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in received.get("Messages", []):
                body = json.loads(message["Body"])
                self.tokens.setdefault(body["payload_id"], []).append(body["token"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return self.tokens[payload_id][run - 1]

    def fail(self, payload_id: str, run: int = 1) -> None:
        self.stepfunctions.send_task_failure(
            taskToken=self.token_of(payload_id, run),
            error="UpstreamDown",
            cause="the source was not there yet",
        )

    def succeed(self, payload_id: str, run: int) -> None:
        self.stepfunctions.send_task_success(taskToken=self.token_of(payload_id, run), output='{"rows": 42}')

    def succeed_on_redrive(self, payload_id: str) -> None:
        self.succeed(payload_id, 2)


@pytest.fixture(scope="module")
def flaky(stack: OfflineStack) -> FlakyStep:
    return FlakyStep(stack)


def waiter_on(payload_id: str, dependency: str) -> dict[str, Any]:
    return {
        "workflow": "example-waiter",
        "id": payload_id,
        "input": {"dependencies": [{"workflow": FLAKY, "id": dependency}]},
    }


def until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + HANG_GUARD
    while not (value := condition()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)
    return value


def waiter_count(stack: OfflineStack, payload_id: str) -> int:
    found = stack.client("dynamodb").query(
        TableName=stack.outputs["TableName"],
        KeyConditionExpression="payload_id = :p AND begins_with(sk, :w)",
        ExpressionAttributeValues={":p": {"S": payload_id}, ":w": {"S": "WAITER#"}},
        ConsistentRead=True,
    )
    return int(found["Count"])


def fail_then_redrive(
    stack: OfflineStack, flaky: FlakyStep, dependency: str, redrive: Callable[[str], None]
) -> None:
    """The must-show, with `redrive` (given the execution ARN) doing the redrive."""
    stack.submit(waiter_on(f"{dependency}-first-waiter", dependency))
    flaky.fail(dependency)
    first = stack.wait_for_payload(f"{dependency}-first-waiter")
    assert (first["state"], first["error"]) == ("FAILED", "DependencyFailed")
    failed = stack.wait_for_payload(dependency)
    assert (failed["state"], failed["error"]) == ("FAILED", "UpstreamDown")

    redrive(failed["execution_arn"])
    reopened = until(
        lambda: (row := stack.payload_state(dependency)) and row["state"] == "PROCESSING" and row,
        f"{dependency} reopened by its redrive",
    )
    assert (reopened["attempt"], reopened["redrive_count"]) == (1, 1)
    stack.submit(waiter_on(f"{dependency}-second-waiter", dependency))
    until(lambda: waiter_count(stack, dependency) == 2, f"a second waiter on {dependency}")
    flaky.succeed_on_redrive(dependency)

    second = stack.wait_for_payload(f"{dependency}-second-waiter")
    assert second["state"] == "SUCCEEDED", second
    succeeded = stack.wait_for_payload(dependency)
    assert (succeeded["state"], succeeded["attempt"], succeeded["redrive_count"]) == ("SUCCEEDED", 1, 1)
    assert succeeded["execution_arn"] == failed["execution_arn"]
    assert json.loads(succeeded["output"]) == {"rows": 42}
    assert [item["executionArn"] for item in executions_of(stack, FLAKY, dependency)] == [
        failed["execution_arn"]
    ]
    history = stack.client("stepfunctions").get_execution_history(executionArn=failed["execution_arn"])[
        "events"
    ]
    entered = [
        event["stateEnteredEventDetails"]["name"] for event in history if "stateEnteredEventDetails" in event
    ]
    assert entered == ["Prepare", "Work", "Work"]  # Prepare succeeded the first time: not run again
    assert stack.payload_state(f"{dependency}-first-waiter")["error"] == "DependencyFailed"  # stays told


def test_rerun_redrive_resumes_the_failed_execution_and_a_waiter_of_the_redrive_succeeds(
    stack: OfflineStack, flaky: FlakyStep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_file = write_local_state(
        stack.endpoint_url, stack.region, dict(stack.outputs), tmp_path / "local.json"
    )
    monkeypatch.setenv("COORDINATOR_LOCAL_STATE", str(state_file))

    def by_the_cli(_: str) -> None:
        result = CliRunner().invoke(app, ["--local", "--json", "rerun", "dep-cli", "--redrive"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["rerun"] == "redrive"

    fail_then_redrive(stack, flaky, "dep-cli", by_the_cli)


def test_a_redrive_started_with_boto3_is_followed_the_same_way(stack: OfflineStack, flaky: FlakyStep) -> None:
    def by_boto3(execution_arn: str) -> None:
        stack.client("stepfunctions").redrive_execution(executionArn=execution_arn)

    fail_then_redrive(stack, flaky, "dep-boto3", by_boto3)


def test_a_message_for_an_express_workflow_is_dead_lettered_and_its_waiter_failed_at_once(
    stack: OfflineStack,
) -> None:
    stack.client("stepfunctions").create_state_machine(
        name=stack.outputs["WorkflowPrefix"] + "express-step",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/express-step",
        type="EXPRESS",
    )
    stack.submit(
        {
            "workflow": "example-waiter",
            "id": "express-waiter",
            "input": {"dependencies": [{"workflow": "express-step", "id": "express-dep"}]},
        }
    )

    waiter = stack.wait_for_payload("express-waiter")

    assert (waiter["state"], waiter["error"]) == ("FAILED", "DependencyInvalid")
    assert "EXPRESS" in json.loads(waiter["cause"])["cause"]
    assert stack.payload_state("express-dep") is None  # never claimed, never started
    dead = until(
        lambda: [m for m in stack.dead_letters() if json.loads(m["Body"]).get("id") == "express-dep"],
        "express-dep dead-lettered",
    )
    assert "EXPRESS" in json.dumps(dead[0].get("MessageAttributes", {}))


def test_a_backfill_with_policy_redrive_redrives_its_failed_ticks(
    stack: OfflineStack, flaky: FlakyStep
) -> None:
    backfills = stack.outputs["BackfillStateMachineArn"]
    window = {
        "workflow": FLAKY,
        "start": "2022-07-01T00:00:00Z",
        "stop": "2022-07-03T00:00:00Z",
        "schedule": "0 1 * * *",
        "dst_gap": "skip",
        "dst_fold": "once",
    }
    failing, passing = (f"{FLAKY}/2022-07-0{day}T01:00:00Z" for day in (1, 2))
    first = stack.start_execution(backfills, window)
    flaky.fail(failing)
    flaky.succeed(passing, 1)
    summary = json.loads(stack.wait_for_execution(first, timeout=HANG_GUARD)["output"])
    assert summary == {"ticks": 2, "succeeded": 1, "failed": 1, "already_done": 0, "map_mode": "inline"}
    failed_arn = stack.wait_for_payload(failing)["execution_arn"]

    again = stack.start_execution(backfills, {**window, "policy": "redrive"})
    flaky.succeed(failing, 2)  # Work asks again: only the failed state runs

    summary = json.loads(stack.wait_for_execution(again, timeout=HANG_GUARD)["output"])
    assert summary == {"ticks": 2, "succeeded": 1, "failed": 0, "already_done": 1, "map_mode": "inline"}
    redriven = stack.wait_for_payload(failing)
    assert (redriven["state"], redriven["attempt"], redriven["redrive_count"]) == ("SUCCEEDED", 1, 1)
    assert [item["executionArn"] for item in executions_of(stack, FLAKY, failing)] == [failed_arn]
