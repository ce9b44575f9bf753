"""The load benchmark's gate: a dependency the benchmark finishes when it chooses.

`<prefix>load-gate` sends its task token to a queue of the benchmark, then waits for it; the
fan-in run opens the gate (sends the token back) only once every waiter is WAITING on it.
"""

from __future__ import annotations

import json
import time

from coordinator_tools.local import OfflineStack

GATE_WORKFLOW = "load-gate"
GATE_PAYLOAD = "load-gate-1"
GATE_TOKENS_QUEUE = "load-gate-tokens"


def create_gate(stack: OfflineStack) -> str:
    """`<prefix>load-gate`: sends its task token to a queue of the benchmark, then waits for it."""
    sqs = stack.client("sqs")
    queue_url = sqs.create_queue(QueueName=GATE_TOKENS_QUEUE)["QueueUrl"]
    definition = {
        "Comment": "A dependency the load benchmark ends: it waits for the benchmark to send its token back.",
        "StartAt": "WaitForTheBenchmark",
        "States": {
            "WaitForTheBenchmark": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    prefix = stack.outputs["WorkflowPrefix"]
    stack.client("stepfunctions").create_state_machine(
        name=f"{prefix}{GATE_WORKFLOW}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{stack.account_id}:role/load-gate",
    )
    return str(queue_url)


def open_gate(stack: OfflineStack, queue_url: str) -> None:
    """Receive the gate execution's token and succeed it."""
    sqs = stack.client("sqs")
    deadline = time.monotonic() + 600
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the gate execution never sent its token")
    token = json.loads(messages[0]["Body"])["token"]
    stack.client("stepfunctions").send_task_success(taskToken=token, output=json.dumps({"opened": True}))
