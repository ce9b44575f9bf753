"""Step Functions status changes as EventBridge events, which moto never emits.

Step Functions puts an "Step Functions Execution Status Change" event on the default bus when
an execution starts and when it ends, and again when a redrive restarts it and when that run
ends (each event carries the execution's `redriveCount`). Offline, `ExecutionStatusPoller` is told of both by
moto's status point (`moto_patches.hooks`: every execution start and end calls `told` with the
execution's ARN, so nothing is listed and a running execution costs nothing while it runs).
At its interval it describes each execution it was told of, builds the event in its real
shape, matches it against each enabled rule's own pattern from the template and delivers it to
the rule's Lambda targets.

Delivery is asynchronous invocation, as EventBridge does it: a function error is retried by
Lambda (the function's EventInvokeConfig MaximumRetryAttempts, default 2), and an event still
failing lands in the function's dead-letter queue (else the target's), never dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from coordinator.states import FINAL_STATUSES
from coordinator_tools.local.patterns import load_pattern, matches
from coordinator_tools.local.sources import Poller, invoke

logger = logging.getLogger(__name__)

DETAIL_TYPE = "Step Functions Execution Status Change"


def status_change_event(execution: dict[str, Any], *, account: str, region: str) -> dict[str, Any]:
    """The EventBridge event for one described execution, in the shape Step Functions sends."""
    status = execution["status"]
    start = execution["startDate"]
    stop = execution.get("stopDate") if status in FINAL_STATUSES else None
    moment = stop or start
    output = execution.get("output") if status == "SUCCEEDED" else None
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.states",
        "account": account,
        "time": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [execution["executionArn"]],
        "detail": {
            "executionArn": execution["executionArn"],
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": status,
            "startDate": _epoch_millis(start),
            "stopDate": _epoch_millis(stop) if stop else None,
            "input": execution.get("input", "{}"),
            "output": output,
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if output is not None else None,
            "error": execution.get("error"),
            "cause": execution.get("cause"),
            "redriveCount": execution.get("redriveCount", 0),
            "redriveDate": _epoch_millis(redriven) if (redriven := execution.get("redriveDate")) else None,
            "redriveStatus": execution.get("redriveStatus"),
            "redriveStatusReason": execution.get("redriveStatusReason"),
        },
    }
    return event


def _epoch_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FunctionTargets(Protocol):
    """What delivering to a rule's Lambda target takes, as EventBridge and Lambda do it."""

    def function_of(self, arn: str) -> str | None:
        """The function's name, if the ARN is one of the stack's functions."""

    def retries_of(self, function_name: str) -> int:
        """How often a failed asynchronous invocation is tried again."""

    def dead_letter_of(self, function_name: str) -> str | None:
        """Where an event whose invocations all failed goes (the function's DeadLetterConfig)."""


class ExecutionStatusPoller(Poller):
    name = "execution-status"

    def __init__(
        self,
        *,
        stepfunctions: Any,
        sqs: Any,
        lambda_client: Any,
        rules: dict[str, dict[str, Any]],
        functions: FunctionTargets,
        account: str,
        region: str,
        interval: float,
    ) -> None:
        super().__init__(interval)
        self._told: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.stepfunctions = stepfunctions
        self.sqs = sqs
        self.lambda_client = lambda_client
        self.rules = [
            {**rule, "pattern": load_pattern(rule["pattern"])}
            for rule in rules.values()
            if rule.get("state", "ENABLED") == "ENABLED"
        ]
        self.functions = functions
        self.account = account
        self.region = region
        # execution ARN -> (redrive count, status) of the last event sent for it
        self.known: dict[str, tuple[int, str]] = {}
        self.events_sent = 0
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def told(self, execution_arn: str) -> None:
        """An execution started or ended (moto's status point calls this, from moto's threads)."""
        self._told.put(execution_arn)

    def poll_once(self) -> bool:
        changes = 0
        while True:
            try:
                execution_arn = self._told.get_nowait()
            except queue.Empty:
                return changes > 0
            changes += self._observe(execution_arn)

    def _observe(self, execution_arn: str) -> int:
        execution = self.stepfunctions.describe_execution(executionArn=execution_arn)
        run = execution.get("redriveCount", 0)
        sent = 0
        if self.known.get(execution_arn, (-1, ""))[0] < run:
            # Every run (the first, and each redrive) starts RUNNING, and Step Functions says so
            # even if it ended since.
            started = {
                **execution,
                "status": "RUNNING",
                "output": None,
                "error": None,
                "cause": None,
                "redriveStatus": "NOT_REDRIVABLE",
                "redriveStatusReason": "Execution is RUNNING and cannot be redriven",
            }
            self._publish(status_change_event(started, account=self.account, region=self.region))
            self.known[execution_arn] = (run, "RUNNING")
            sent += 1
        if (run, execution["status"]) != self.known[execution_arn]:
            self._publish(status_change_event(execution, account=self.account, region=self.region))
            self.known[execution_arn] = (run, execution["status"])
            sent += 1
        return sent

    def _publish(self, event: dict[str, Any]) -> None:
        self.events_sent += 1
        for listener in self.listeners:
            listener(event)
        for rule in self.rules:
            if not matches(rule["pattern"], event):
                continue
            for target in rule["targets"]:
                self._deliver(rule, target, event)

    def _deliver(self, rule: dict[str, Any], target: dict[str, Any], event: dict[str, Any]) -> None:
        function_name = self.functions.function_of(target["Arn"])
        if function_name is None:
            logger.warning("rule target not offline rule=%s target=%s", rule["name"], target["Arn"])
            return
        attempts = 1 + self.functions.retries_of(function_name)
        for _attempt in range(attempts):
            if not invoke(self.lambda_client, function_name, event).errored:
                return
        dead_letter = self.functions.dead_letter_of(function_name)
        dead_letter = dead_letter or target.get("DeadLetterConfig", {}).get("Arn")
        logger.warning(
            "status event failed function=%s execution_arn=%s dead_letter=%s",
            function_name,
            event["detail"]["executionArn"],
            dead_letter,
        )
        if dead_letter:
            queue_url = self.sqs.get_queue_url(QueueName=dead_letter.rsplit(":", 1)[1])["QueueUrl"]
            self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
