"""Waiting workflows through the offline stack: statemachines/example_waiter.asl.json for real."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator_tools.local import OfflineStack
from tests.e2e.conftest import executions_of

pytestmark = pytest.mark.e2e


def waiter_on(payload_id: str, *dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"workflow": "example-waiter", "id": payload_id, "input": {"dependencies": list(dependencies)}}


def target(payload_id: str, **payload_input: Any) -> dict[str, Any]:
    return {"workflow": "example-target", "id": payload_id, "input": payload_input}


def test_waiter_resumes_once_its_succeeded_running_and_unstarted_dependencies_finish(
    stack: OfflineStack,
) -> None:
    stack.submit(target("done-first"))
    stack.wait_for_payload("done-first")
    stack.submit(target("still-running", wait_seconds=2))

    stack.submit(
        waiter_on(
            "resumed-waiter",
            target("done-first"),
            target("still-running", wait_seconds=2),
            target("never-started", wait_seconds=1),
        )
    )

    waiter = stack.wait_for_payload("resumed-waiter")
    assert waiter["state"] == "SUCCEEDED"
    assert json.loads(waiter["output"]) == {"dependencies_met": 3}
    last_dependency = max(
        stack.wait_for_payload(dependency)["finished_at"] for dependency in ("still-running", "never-started")
    )
    assert waiter["finished_at"] > last_dependency
    assert len(executions_of(stack, "example-target", "done-first")) == 1


def test_failed_dependency_fails_its_waiter_with_dependency_failed_through_its_catch(
    stack: OfflineStack,
) -> None:
    stack.submit(waiter_on("failing-waiter", target("fails", fail=True)))

    waiter = stack.wait_for_payload("failing-waiter")

    assert (waiter["state"], waiter["error"]) == ("FAILED", "DependencyFailed")
    cause = json.loads(waiter["cause"])
    assert (cause["payload_id"], cause["error"]) == ("fails", "ExampleFailure")
    history = stack.client("stepfunctions").get_execution_history(executionArn=waiter["execution_arn"])
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in history["events"]
        if "stateEnteredEventDetails" in event
    ]
    assert "DependencyNotMet" in entered  # the Catch on Dependency* errors took it there


def test_dependency_cycle_is_failed_at_once_with_dependency_cycle(stack: OfflineStack) -> None:
    stack.submit(waiter_on("cycle-a", waiter_on("cycle-b", waiter_on("cycle-a"))))

    closing = stack.wait_for_payload("cycle-b", timeout=15)

    assert (closing["state"], closing["error"]) == ("FAILED", "DependencyCycle")
    # DependencyCycle, not a timeout: the closing wait was refused when it registered.
    assert json.loads(closing["cause"])["cycle"] == ["cycle-b", "cycle-a", "cycle-b"]
    assert stack.wait_for_payload("cycle-a")["error"] == "DependencyFailed"


def test_malformed_dependency_message_is_dead_lettered_and_fails_its_waiter_with_dependency_invalid(
    stack: OfflineStack,
) -> None:
    stack.submit(waiter_on("invalid-waiter", {"workflow": "no such workflow!", "id": "malformed"}))

    waiter = stack.wait_for_payload("invalid-waiter")

    assert (waiter["state"], waiter["error"]) == ("FAILED", "DependencyInvalid")
    dead = [json.loads(message["Body"]) for message in stack.dead_letters()]
    assert {"workflow": "no such workflow!", "id": "malformed"}.items() <= next(
        body for body in dead if body.get("id") == "malformed"
    ).items()


def test_redelivered_message_starts_its_execution_once(stack: OfflineStack) -> None:
    for _ in range(3):
        stack.submit(target("sent-three-times"))

    stack.wait_for_payload("sent-three-times")
    every_message_processed(stack)

    assert len(executions_of(stack, "example-target", "sent-three-times")) == 1


def every_message_processed(stack: OfflineStack, hang_guard: float = 30.0) -> None:
    """Wait until the process queue holds nothing, visible or in flight: every copy was handled."""
    sqs, url = stack.client("sqs"), stack.outputs["ProcessQueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + hang_guard
    while any(
        int(count)
        for count in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"].values()
    ):
        assert time.monotonic() < deadline, "the process queue never drained"
        time.sleep(0.05)


# Under the 32 KiB inline limit each; nine of them are over Step Functions' 256 KiB state.
BIG_OUTPUT_BYTES = 30_000


@pytest.fixture(scope="module")
def big_output_workflow(stack: OfflineStack) -> str:
    """A coordinated workflow whose output is BIG_OUTPUT_BYTES of JSON, whatever its input."""
    definition = {
        "StartAt": "Big",
        "States": {"Big": {"Type": "Pass", "Result": {"blob": "x" * BIG_OUTPUT_BYTES}, "End": True}},
    }
    stack.client("stepfunctions").create_state_machine(
        name=f"{stack.outputs['WorkflowPrefix']}big-output",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/big-output",
    )
    return "big-output"


def test_waiter_on_nine_dependencies_with_outputs_near_the_inline_limit_stays_inside_its_state(
    stack: OfflineStack, big_output_workflow: str
) -> None:
    dependencies = [{"workflow": big_output_workflow, "id": f"big-{n}", "input": {"n": n}} for n in range(9)]

    stack.submit(waiter_on("fan-in-waiter", *dependencies))

    waiter = stack.wait_for_payload("fan-in-waiter", timeout=60)
    assert (waiter["state"], waiter.get("error")) == ("SUCCEEDED", None), waiter.get("cause")
    assert json.loads(waiter["output"]) == {"dependencies_met": 9}
    # Each output is still there for the waiter's own work, by reference: its payload's row.
    assert len(stack.wait_for_payload("big-0")["output"]) > BIG_OUTPUT_BYTES


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> dict[str, Any]:
    """The README's "Wait on these payloads" state, exactly as printed there."""
    section = README.read_text().split("### Wait on these payloads", 1)[1]
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    return dict(json.loads("{" + block + "}"))


@pytest.fixture(scope="module")
def readme_waiter(stack: OfflineStack) -> str:
    """A coordinated workflow made of the README's snippet and a last state of its own."""
    states = readme_snippet()
    (wait,) = [state for state in states.values() if state["Type"] == "Map"]
    task = wait["ItemProcessor"]["States"]["WaitForDependency"]
    assert task["Parameters"]["QueueUrl"] == "<ProcessQueueUrl output>"
    task["Parameters"]["QueueUrl"] = stack.outputs["ProcessQueueUrl"]
    definition = {
        "StartAt": next(iter(states)),
        "States": {**states, wait["Next"]: {"Type": "Pass", "Result": {"own_work": "done"}, "End": True}},
    }
    stack.client("stepfunctions").create_state_machine(
        name=f"{stack.outputs['WorkflowPrefix']}readme-waiter",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/readme-waiter",
    )
    return "readme-waiter"


def test_readme_snippet_waits_on_dependencies_given_with_and_without_input(
    stack: OfflineStack, readme_waiter: str
) -> None:
    dependencies = [{"workflow": "example-target"}, {"workflow": "example-target", "input": {"n": "readme"}}]

    stack.submit({"workflow": readme_waiter, "id": "readme-waiter", "input": {"dependencies": dependencies}})

    waiter = stack.wait_for_payload("readme-waiter", timeout=60)
    assert (waiter["state"], waiter.get("error")) == ("SUCCEEDED", None), waiter.get("cause")
    assert json.loads(waiter["output"]) == {"own_work": "done"}


def test_readme_snippet_on_nine_dependencies_with_outputs_near_the_inline_limit_stays_inside_its_state(
    stack: OfflineStack, readme_waiter: str, big_output_workflow: str
) -> None:
    dependencies = [{"workflow": big_output_workflow, "input": {"readme": n}} for n in range(9)]

    stack.submit({"workflow": readme_waiter, "id": "readme-fan-in", "input": {"dependencies": dependencies}})

    waiter = stack.wait_for_payload("readme-fan-in", timeout=60)
    assert (waiter["state"], waiter.get("error")) == ("SUCCEEDED", None), waiter.get("cause")
