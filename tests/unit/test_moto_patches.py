"""The offline stack's moto patches: each defect shown without its patch and fixed with it.

If a moto upgrade fixes a defect, its `..._without_the_patch` test fails: drop that patch. The
version guard makes the upgrade itself fail loudly first.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from coordinator_tools.local import moto_patches
from coordinator_tools.local.moto_patches import Invocation

ROLE = "arn:aws:iam::123456789012:role/offline-test"


@pytest.fixture
def executing_moto() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def stepfunctions(executing_moto: None) -> Any:
    return boto3.client("stepfunctions")


def wait_for_end(stepfunctions: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        described = stepfunctions.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.02)
    raise AssertionError(f"{execution_arn} still running")


def waiting_task_token(executing_moto: None) -> tuple[Any, str, str]:
    """An execution parked on a task token; returns (client, execution ARN, token)."""
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="tokens")["QueueUrl"]
    stepfunctions = boto3.client("stepfunctions")
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    machine = stepfunctions.create_state_machine(
        name="waits", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    execution_arn = stepfunctions.start_execution(stateMachineArn=machine, name="one")["executionArn"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        if messages:
            return stepfunctions, execution_arn, json.loads(messages[0]["Body"])["token"]
        time.sleep(0.02)
    raise AssertionError("the task never sent its token")


CAUSE = json.dumps({"payload_id": "dep", "state": "FAILED"})


def test_send_task_failure_passes_its_cause_to_the_execution(executing_moto: None) -> None:
    with moto_patches.patched():
        stepfunctions, execution_arn, token = waiting_task_token(executing_moto)
        stepfunctions.send_task_failure(taskToken=token, error="DependencyFailed", cause=CAUSE)
        ended = wait_for_end(stepfunctions, execution_arn)
    assert (ended["error"], ended.get("cause")) == ("DependencyFailed", CAUSE)


def test_moto_drops_the_cause_of_send_task_failure_without_the_patch(executing_moto: None) -> None:
    stepfunctions, execution_arn, token = waiting_task_token(executing_moto)
    stepfunctions.send_task_failure(taskToken=token, error="DependencyFailed", cause=CAUSE)
    ended = wait_for_end(stepfunctions, execution_arn)
    assert ended["error"] == "DependencyFailed"
    assert ended.get("cause") is None


def two_unnamed_executions(stepfunctions: Any) -> list[str]:
    definition = {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 5, "End": True}}}
    machine = stepfunctions.create_state_machine(
        name="unnamed", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    return [
        stepfunctions.start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))["executionArn"]
        for n in (1, 2)
    ]


def test_unnamed_executions_get_distinct_generated_names(stepfunctions: Any) -> None:
    with moto_patches.patched():
        first, second = two_unnamed_executions(stepfunctions)
    assert first != second
    assert not first.endswith(":None")


def test_moto_names_unnamed_executions_none_without_the_patch(stepfunctions: Any) -> None:
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        two_unnamed_executions(stepfunctions)


def a_function(executing_moto: None) -> Any:
    iam = boto3.client("iam")
    iam.create_role(RoleName="offline-test", AssumeRolePolicyDocument="{}")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as package:
        package.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    client = boto3.client("lambda")
    client.create_function(
        FunctionName="echo",
        Runtime="python3.13",
        Role=ROLE,
        Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Environment={"Variables": {"TABLE_NAME": "payloads"}},
    )
    return client


def test_invocations_are_routed_with_the_function_environment(executing_moto: None) -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []

    def router(name: str, environment: dict[str, str], event: Any) -> Invocation:
        seen.append((name, environment, event))
        return Invocation(json.dumps({"echo": event}), errored=False)

    with moto_patches.patched(router):
        response = a_function(executing_moto).invoke(FunctionName="echo", Payload=json.dumps({"n": 1}))
    assert json.loads(response["Payload"].read()) == {"echo": {"n": 1}}
    assert "FunctionError" not in response
    assert seen[0][0] == "echo"
    assert seen[0][1]["TABLE_NAME"] == "payloads"


def test_a_routed_error_is_a_function_error_with_its_type(executing_moto: None) -> None:
    def router(name: str, environment: dict[str, str], event: Any) -> Invocation:
        return Invocation(
            json.dumps({"errorType": "InvalidRange", "errorMessage": "stop before start"}), True
        )

    with moto_patches.patched(router):
        response = a_function(executing_moto).invoke(FunctionName="echo", Payload="{}")
    assert response.get("FunctionError")
    assert json.loads(response["Payload"].read())["errorType"] == "InvalidRange"


def test_patches_refuse_any_other_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    with pytest.raises(moto_patches.UnsupportedMoto, match=r"5\.2\.5"):
        moto_patches.apply()
