"""The scenario of `make demo`: the coordinator at work on the offline stack, as a timeline.

Four stories, each checked, in well under a minute:

1. A waiter whose three dependencies are already succeeded, running, and not yet started
   resumes once all three have finished (and not before).
2. A failed dependency fails its waiter with `DependencyFailed`, caught by the example workflow.
3. A 3-day daily backfill starts 3 executions; the same backfill again starts none and reports
   3 already done.
4. A dependency cycle is failed at once with `DependencyCycle`.
5. A dependency whose second state fails is redriven: the same execution resumes from the
   failed state, a waiter registered during the redrive resumes with success, and the first
   waiter keeps the failure it was told.

The timeline interleaves what the demo does with the status changes the offline EventBridge
delivers to update-state. Exit status 1 names every expectation that did not hold.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from coordinator_tools.local.stack import OfflineStack, StackTimeout

# Dates of the backfill story: the README's backfill example (01:00 on the 15th, 16th, 17th).
BACKFILL = {
    "workflow": "example-target",
    "start": "2022-02-15T00:00:00Z",
    "stop": "2022-02-18T00:00:00Z",
    "schedule": "0 1 * * *",
    "timezone": "UTC",
    # Spelled out: the range function rejects the null defaults backfill.asl.json passes for
    # these two (reported to the lead); the values are the documented defaults.
    "dst_gap": "skip",
    "dst_fold": "once",
}


@dataclass
class Timeline:
    """Readable, timestamped lines: seconds since the demo began, then what happened."""

    out: TextIO = sys.stdout
    started: float = field(default_factory=time.monotonic)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[{time.monotonic() - self.started:6.2f}s] {text}\n")
            self.out.flush()

    def expect(self, holds: bool, text: str) -> bool:
        self.note(f"{'ok  ' if holds else 'FAIL'} {text}")
        if not holds:
            self.failures.append(text)
        return holds

    def section(self, title: str) -> None:
        self.note("")
        self.note(f"== {title}")


def describe_status_event(event: dict[str, Any], workflow_prefix: str = "") -> str:
    """`example-target dep-b: SUCCEEDED` from a status-change event (payload id from the input)."""
    detail = event["detail"]
    workflow = detail["stateMachineArn"].rsplit(":", 1)[1].removeprefix(workflow_prefix)
    try:
        payload_id = json.loads(detail.get("input") or "{}").get("coordinator", {}).get("payload_id")
    except ValueError:
        payload_id = None
    text = f"{workflow} {payload_id or detail['name']}: {detail['status']}"
    if detail.get("error"):
        text += f" ({detail['error']})"
    return text


def run(stack: OfflineStack, timeline: Timeline) -> None:
    stories: list[Callable[[OfflineStack, Timeline], None]] = [
        waiter_resumes_after_its_three_dependencies,
        failed_dependency_fails_its_waiter,
        backfill_twice,
        cycle_fails_at_once,
        redrive_resumes_the_failed_state,
    ]
    for story in stories:
        try:
            story(stack, timeline)
        except StackTimeout as timeout:
            timeline.expect(False, f"{story.__name__}: {timeout}")


def waiter_resumes_after_its_three_dependencies(stack: OfflineStack, timeline: Timeline) -> None:
    timeline.section("a waiter on three dependencies: already succeeded, running, not yet started")
    stack.submit({"workflow": "example-target", "id": "dep-succeeded"})
    stack.wait_for_payload("dep-succeeded")
    timeline.note("dep-succeeded is SUCCEEDED before anyone waits on it")
    stack.submit({"workflow": "example-target", "id": "dep-running", "input": {"wait_seconds": 3}})
    _wait_for_state(stack, "dep-running", {"CLAIMED", "PROCESSING"})
    timeline.note("dep-running is running (it waits 3 s); dep-not-started has no record at all")
    stack.submit(
        {
            "workflow": "example-waiter",
            "id": "waiter",
            "input": {
                "dependencies": [
                    {"workflow": "example-target", "id": "dep-succeeded"},
                    {"workflow": "example-target", "id": "dep-running", "input": {"wait_seconds": 3}},
                    {"workflow": "example-target", "id": "dep-not-started", "input": {"wait_seconds": 2}},
                ]
            },
        }
    )
    timeline.note("waiter submitted: one process message per dependency, each with its task token")
    waiter = stack.wait_for_payload("waiter", timeout=30)
    running = stack.payload_state("dep-running") or {}
    not_started = stack.payload_state("dep-not-started") or {}
    timeline.expect(waiter["state"] == "SUCCEEDED", f"waiter SUCCEEDED (got {waiter['state']})")
    timeline.expect(
        json.loads(waiter.get("output") or "{}").get("dependencies_met") == 3,
        f"waiter resumed with all three dependencies met: output {waiter.get('output')}",
    )
    timeline.expect(
        running.get("state") == "SUCCEEDED" and not_started.get("state") == "SUCCEEDED",
        "dep-running and dep-not-started (started by the waiter's own message) SUCCEEDED",
    )
    timeline.expect(
        waiter.get("finished_at", "")
        >= max(running.get("finished_at", ""), not_started.get("finished_at", "")),
        "the waiter finished only after its last dependency did",
    )


def failed_dependency_fails_its_waiter(stack: OfflineStack, timeline: Timeline) -> None:
    timeline.section("a failed dependency")
    stack.submit(
        {
            "workflow": "example-waiter",
            "id": "waiter-of-failure",
            "input": {
                "dependencies": [{"workflow": "example-target", "id": "dep-fails", "input": {"fail": True}}]
            },
        }
    )
    timeline.note("waiter-of-failure submitted, waiting on dep-fails (asked to fail)")
    waiter = stack.wait_for_payload("waiter-of-failure", timeout=30)
    cause = _json_or_none(waiter.get("cause"))
    timeline.expect(
        waiter["state"] == "FAILED" and waiter.get("error") == "DependencyFailed",
        f"waiter-of-failure FAILED with {waiter.get('error')}, caught by its Catch on Dependency* errors",
    )
    timeline.expect(
        isinstance(cause, dict)
        and cause.get("payload_id") == "dep-fails"
        and cause.get("error") == "ExampleFailure",
        f"the cause names the dependency and its own error: {waiter.get('cause')}",
    )


def backfill_twice(stack: OfflineStack, timeline: Timeline) -> None:
    timeline.section("a 3-day daily backfill, then the same backfill again")
    backfill_arn = stack.outputs["BackfillStateMachineArn"]
    before = len(stack.executions("example-target"))
    first = stack.wait_for_execution(stack.start_execution(backfill_arn, BACKFILL), timeout=40)
    started = len(stack.executions("example-target")) - before
    summary = _json_or_none(first.get("output")) or {}
    timeline.note(f"first backfill {first['status']}: {first.get('output') or first.get('error')}")
    timeline.expect(started == 3, f"the first backfill started 3 executions (started {started})")
    timeline.expect(summary.get("succeeded") == 3, "its summary counts 3 succeeded")
    before = len(stack.executions("example-target"))
    second = stack.wait_for_execution(stack.start_execution(backfill_arn, BACKFILL), timeout=40)
    started = len(stack.executions("example-target")) - before
    summary = _json_or_none(second.get("output")) or {}
    timeline.note(f"second backfill {second['status']}: {second.get('output') or second.get('error')}")
    timeline.expect(started == 0, f"the same backfill again started no execution (started {started})")
    timeline.expect(summary.get("already_done") == 3, "its summary reports 3 already done")


def cycle_fails_at_once(stack: OfflineStack, timeline: Timeline) -> None:
    timeline.section("a dependency cycle: cycle-x waits on cycle-y, which waits on cycle-x")
    submitted = time.monotonic()
    stack.submit(
        {
            "workflow": "example-waiter",
            "id": "cycle-x",
            "input": {
                "dependencies": [
                    {
                        "workflow": "example-waiter",
                        "id": "cycle-y",
                        "input": {"dependencies": [{"workflow": "example-waiter", "id": "cycle-x"}]},
                    }
                ]
            },
        }
    )
    closing = stack.wait_for_payload("cycle-y", timeout=30)
    seconds = time.monotonic() - submitted
    cause = _json_or_none(closing.get("cause")) or {}
    timeline.expect(
        closing.get("error") == "DependencyCycle",
        f"cycle-y FAILED with {closing.get('error')}: cycle {' -> '.join(cause.get('cycle', []))}",
    )
    timeline.expect(seconds < 10, f"failed at once, not at a timeout ({seconds:.1f}s after submitting)")
    opener = stack.wait_for_payload("cycle-x", timeout=30)
    timeline.expect(
        opener.get("error") == "DependencyFailed",
        f"cycle-x, whose dependency failed, FAILED with {opener.get('error')}",
    )


FLAKY = "flaky-step"


def redrive_resumes_the_failed_state(stack: OfflineStack, timeline: Timeline) -> None:
    timeline.section("a redrive: the failed state runs again, in the same execution")
    sqs, sfn = stack.client("sqs"), stack.client("stepfunctions")
    work = sqs.create_queue(QueueName="demo-flaky-step-work")["QueueUrl"]
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Result": "ready", "ResultPath": "$.prepared", "Next": "Work"},
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": work, "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            },
        },
    }
    sfn.create_state_machine(
        name=stack.outputs["WorkflowPrefix"] + FLAKY,
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/demo-flaky-step",
    )
    timeline.note(f"{FLAKY}: Prepare passes, Work waits for the demo to say how it went")

    def waiter(payload_id: str) -> dict[str, Any]:
        return {
            "workflow": "example-waiter",
            "id": payload_id,
            "input": {"dependencies": [{"workflow": FLAKY, "id": "dep-flaky"}]},
        }

    stack.submit(waiter("first-waiter"))
    sfn.send_task_failure(taskToken=_next_token(sqs, work), error="UpstreamDown", cause="the source was late")
    first = stack.wait_for_payload("first-waiter", timeout=30)
    failed = stack.wait_for_payload("dep-flaky")
    timeline.expect(
        first.get("error") == "DependencyFailed",
        f"dep-flaky FAILED in Work; first-waiter FAILED with {first.get('error')}",
    )
    sfn.redrive_execution(executionArn=failed["execution_arn"])
    timeline.note("dep-flaky's execution redriven (as the console's Redrive button does)")
    _wait_for_state(stack, "dep-flaky", {"PROCESSING"})
    stack.submit(waiter("second-waiter"))
    timeline.note("second-waiter submitted during the redrive: it waits for the redriven run")
    token = _next_token(sqs, work)
    _wait_for_state(stack, "second-waiter", {"PROCESSING"})
    sfn.send_task_success(taskToken=token, output='{"rows": 42}')
    second = stack.wait_for_payload("second-waiter", timeout=30)
    redriven = stack.wait_for_payload("dep-flaky")
    timeline.expect(second["state"] == "SUCCEEDED", f"second-waiter SUCCEEDED (got {second['state']})")
    timeline.expect(
        redriven["state"] == "SUCCEEDED"
        and redriven["execution_arn"] == failed["execution_arn"]
        and int(redriven.get("redrive_count", 0)) == 1
        and len(stack.executions(FLAKY)) == 1,
        "dep-flaky SUCCEEDED in the same execution (redrive count 1), and no second execution exists",
    )
    history = sfn.get_execution_history(executionArn=failed["execution_arn"])["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    timeline.expect(entered == ["Prepare", "Work", "Work"], f"states entered: {entered} (Prepare ran once)")
    timeline.expect(
        (stack.payload_state("first-waiter") or {}).get("error") == "DependencyFailed",
        "first-waiter keeps the failure it was told (its token was closed)",
    )


def _next_token(sqs: Any, queue_url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return str(json.loads(message["Body"])["token"])
    raise StackTimeout(f"no task token on {queue_url} after {timeout}s")


def _wait_for_state(stack: OfflineStack, payload_id: str, states: set[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = stack.payload_state(payload_id)
        if state is not None and state.get("state") in states:
            return
        time.sleep(0.05)
    raise StackTimeout(f"{payload_id} never reached {sorted(states)}")


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def main(out: TextIO = sys.stdout) -> int:
    timeline = Timeline(out=out)
    timeline.note("starting the offline stack from template.yaml (moto server, executing state machines)")
    with OfflineStack() as stack:
        timeline.note(f"stack up at {stack.endpoint_url}: {len(stack.provisioned.physical)} resources")
        prefix = stack.outputs["WorkflowPrefix"]
        if stack.status_poller is not None:
            stack.status_poller.listeners.append(
                lambda event: timeline.note(f"  event  {describe_status_event(event, prefix)}")
            )
        run(stack, timeline)
    timeline.section("result")
    if timeline.failures:
        timeline.note(f"{len(timeline.failures)} expectation(s) did not hold:")
        for failure in timeline.failures:
            timeline.note(f"  - {failure}")
        return 1
    timeline.note("every expectation held")
    return 0
