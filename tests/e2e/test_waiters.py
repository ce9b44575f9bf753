"""Waiting workflows through the offline stack: statemachines/example_waiter.asl.json for real."""

from __future__ import annotations

import json
import time
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
    submitted = time.monotonic()
    stack.submit(waiter_on("cycle-a", waiter_on("cycle-b", waiter_on("cycle-a"))))

    closing = stack.wait_for_payload("cycle-b", timeout=15)

    assert (closing["state"], closing["error"]) == ("FAILED", "DependencyCycle")
    assert json.loads(closing["cause"])["cycle"] == ["cycle-b", "cycle-a", "cycle-b"]
    assert time.monotonic() - submitted < 10
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
    time.sleep(0.5)  # let every copy be processed

    assert len(executions_of(stack, "example-target", "sent-three-times")) == 1
