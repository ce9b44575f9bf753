"""The ASL files: placeholders match the template's substitutions, moto's interpreter accepts
them, and the example target runs for real in moto's executing mode."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coordinator.states import DependencyError
from coordinator_tools.kit.template import properties, resources, state_machine_definitions, substitute

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/state-machine"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
MACHINES = state_machine_definitions()


def _plausible_value(expression: Any) -> str:
    """What a substitution resolves to at deploy time, for a resource of this template."""
    if isinstance(expression, dict) and "Ref" in expression:
        target = expression["Ref"]
        if resources()[target]["Type"] == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{target}"
        return str(target)
    if isinstance(expression, dict) and "Fn::GetAtt" in expression:
        target = expression["Fn::GetAtt"][0]
        kind = resources()[target]["Type"]
        if kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{target}"
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{target}"
    raise AssertionError(f"no plausible value for substitution {expression!r}")


def _definition(logical_id: str) -> str:
    machine = MACHINES[logical_id]
    values = {name: _plausible_value(expr) for name, expr in machine["substitutions"].items()}
    return substitute(machine["text"], values)


def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, nested Map and Parallel states included."""
    for name, state in definition["States"].items():
        yield name, state
        for nested in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if nested:
                yield from _states(nested)


def _wait_for(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.05)
    raise AssertionError(f"{execution_arn} still running")


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


def test_the_template_has_the_three_state_machines_as_files() -> None:
    assert set(MACHINES) == {"ExampleTargetStateMachine", "ExampleWaiterStateMachine", "BackfillStateMachine"}
    for machine in MACHINES.values():
        assert machine["path"].suffixes == [".asl", ".json"]


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(logical_id: str) -> None:
    machine = MACHINES[logical_id]

    assert set(PLACEHOLDER.findall(machine["text"])) == set(machine["substitutions"])


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_state_machine_is_named_with_the_workflow_prefix(logical_id: str) -> None:
    name = properties(logical_id)["Name"]["Fn::Sub"]

    assert name.startswith("${WorkflowPrefix}")


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_every_wait_is_bounded(logical_id: str) -> None:
    definition = json.loads(_definition(logical_id))

    assert definition["TimeoutSeconds"] > 0
    for name, state in _states(definition):
        if state["Type"] == "Task" and state["Resource"].endswith(".waitForTaskToken"):
            assert "TimeoutSeconds" in state or "TimeoutSecondsPath" in state, name


@pytest.mark.parametrize("logical_id", sorted(MACHINES))
def test_moto_accepts_the_definition(sfn: Any, logical_id: str) -> None:
    created = sfn.create_state_machine(name=logical_id, definition=_definition(logical_id), roleArn=ROLE)

    assert created["stateMachineArn"].endswith(f":stateMachine:{logical_id}")


def test_moto_rejects_a_broken_definition(sfn: Any) -> None:
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Nxt": "B"}}}

    with pytest.raises(sfn.exceptions.ClientError):
        sfn.create_state_machine(name="broken", definition=json.dumps(broken), roleArn=ROLE)


def test_example_waiter_catches_every_dependency_error_and_timeouts() -> None:
    definition = json.loads(_definition("ExampleWaiterStateMachine"))
    (task,) = [s for _, s in _states(definition) if s.get("Resource", "").endswith(".waitForTaskToken")]
    caught = {error for catcher in task["Catch"] for error in catcher["ErrorEquals"]}

    assert caught >= {error.value for error in DependencyError} | {"States.Timeout"}
    assert task["Parameters"]["MessageBody"]["callback"]["token.$"] == "$$.Task.Token"
    assert task["Parameters"]["MessageBody"]["callback"]["waiter.$"] == "$$.Execution.Id"


def test_backfill_turns_range_errors_into_its_own_failure() -> None:
    definition = json.loads(_definition("BackfillStateMachine"))
    read_page = definition["States"]["ReadPage"]
    (catcher,) = read_page["Catch"]

    assert set(catcher["ErrorEquals"]) == {"InvalidSchedule", "InvalidTimezone", "InvalidRange"}
    assert definition["States"][catcher["Next"]]["Type"] == "Fail"


def test_backfill_ticks_carry_schedule_time_replace_and_a_token() -> None:
    definition = json.loads(_definition("BackfillStateMachine"))
    run_tick = definition["States"]["RunTicks"]["ItemProcessor"]["States"]["RunTick"]
    body = run_tick["Parameters"]["MessageBody"]

    assert body["scheduleTime.$"] == "$.tick"
    assert body["replace.$"] == "$.replace"
    assert body["callback"]["token.$"] == "$$.Task.Token"
    assert [c["ErrorEquals"] for c in run_tick["Catch"]] == [["States.ALL"]]


def test_example_target_succeeds_with_a_small_output(sfn: Any) -> None:
    machine = sfn.create_state_machine(
        name="example-target", definition=_definition("ExampleTargetStateMachine"), roleArn=ROLE
    )["stateMachineArn"]

    execution = sfn.start_execution(stateMachineArn=machine, name="ok", input=json.dumps({"n": 1}))
    result = _wait_for(sfn, execution["executionArn"])

    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"])["done"] is True


def test_example_target_waits_when_asked_then_succeeds(sfn: Any) -> None:
    machine = sfn.create_state_machine(
        name="example-target", definition=_definition("ExampleTargetStateMachine"), roleArn=ROLE
    )["stateMachineArn"]

    execution = sfn.start_execution(
        stateMachineArn=machine, name="wait", input=json.dumps({"wait_seconds": 1})
    )
    result = _wait_for(sfn, execution["executionArn"])

    assert result["status"] == "SUCCEEDED"


def test_example_target_fails_with_its_error_when_asked(sfn: Any) -> None:
    machine = sfn.create_state_machine(
        name="example-target", definition=_definition("ExampleTargetStateMachine"), roleArn=ROLE
    )["stateMachineArn"]

    execution = sfn.start_execution(stateMachineArn=machine, name="fail", input=json.dumps({"fail": True}))
    result = _wait_for(sfn, execution["executionArn"])

    assert result["status"] == "FAILED"
    assert result["error"] == "ExampleFailure"
