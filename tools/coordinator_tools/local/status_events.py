"""Step Functions status changes as EventBridge events, which moto never emits.

Step Functions puts an "Step Functions Execution Status Change" event on the default bus when
an execution starts and when it ends. Offline, `ExecutionStatusPoller` learns of both one of two
ways: told, by moto's status point (`moto_patches`: every execution start and end calls
`told` with the execution's ARN, which costs nothing per running execution), or else by polling
the executions of every state machine (newest first, stopping at the first one already seen,
plus the RUNNING ones it knows of: every poll lists every running execution). Either way it
describes the execution, builds the event in its real shape, matches it against each enabled
rule's own pattern from the template and delivers it to the rule's Lambda targets.

Delivery is asynchronous invocation, as EventBridge does it: a function error is retried by
Lambda (the function's EventInvokeConfig MaximumRetryAttempts, default 2), and an event still
failing lands in the function's dead-letter queue (else the target's), never dropped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from coordinator_tools.local.patterns import load_pattern, matches
from coordinator_tools.local.sources import Poller, invoke

logger = logging.getLogger(__name__)

DETAIL_TYPE = "Step Functions Execution Status Change"
FINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
MACHINES_REFRESH_SECONDS = 2.0


def status_change_event(execution: dict[str, Any], *, account: str, region: str) -> dict[str, Any]:
    """The EventBridge event for one described execution, in the shape Step Functions sends."""
    status = execution["status"]
    start = execution["startDate"]
    stop = execution.get("stopDate") if status in FINAL else None
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
        },
    }
    return event


def _epoch_millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class ExecutionStatusPoller(Poller):
    name = "execution-status"

    def __init__(
        self,
        *,
        stepfunctions: Any,
        sqs: Any,
        lambda_client: Any,
        rules: dict[str, dict[str, Any]],
        function_of: Callable[[str], str | None],
        retries_of: Callable[[str], int],
        dead_letter_of: Callable[[str], str | None],
        account: str,
        region: str,
        interval: float,
        told: bool = False,
    ) -> None:
        super().__init__(interval)
        self.told_mode = told
        self._told: deque[str] = deque()
        self._told_lock = threading.Lock()
        self.stepfunctions = stepfunctions
        self.sqs = sqs
        self.lambda_client = lambda_client
        self.rules = [
            {**rule, "pattern": load_pattern(rule["pattern"])}
            for rule in rules.values()
            if rule.get("state", "ENABLED") == "ENABLED"
        ]
        self.function_of = function_of
        self.retries_of = retries_of
        self.dead_letter_of = dead_letter_of
        self.account = account
        self.region = region
        self.known: dict[str, str] = {}  # execution ARN -> last status an event was sent for
        self.events_sent = 0
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._machine_arns: list[str] = []
        self._machines_listed = -MACHINES_REFRESH_SECONDS

    def told(self, execution_arn: str) -> None:
        """An execution started or ended (moto's status point calls this, from moto's threads)."""
        with self._told_lock:
            self._told.append(execution_arn)

    def poll_once(self) -> bool:
        changes = 0
        if self.told_mode:
            with self._told_lock:
                arns = list(self._told)
                self._told.clear()
            for arn in arns:
                changes += self._observe(arn)
            return changes > 0
        for machine_arn in self._machines():
            changes += self._poll_machine(machine_arn)
        return changes > 0

    def _machines(self) -> list[str]:
        """Every state machine in the account; listed again only every few seconds (they rarely change)."""
        now = time.monotonic()
        if now - self._machines_listed > MACHINES_REFRESH_SECONDS:
            paginator = self.stepfunctions.get_paginator("list_state_machines")
            self._machine_arns = [
                machine["stateMachineArn"]
                for page in paginator.paginate()
                for machine in page["stateMachines"]
            ]
            self._machines_listed = now
        return self._machine_arns

    def _poll_machine(self, machine_arn: str) -> int:
        changes = 0
        # New executions: newest first, until a page holds one already seen.
        token: str | None = None
        while True:
            page = self.stepfunctions.list_executions(
                stateMachineArn=machine_arn, maxResults=100, **({"nextToken": token} if token else {})
            )
            fresh = [item for item in page["executions"] if item["executionArn"] not in self.known]
            for item in reversed(fresh):  # oldest first, the order they started in
                changes += self._observe(item["executionArn"])
            token = page.get("nextToken")
            if not token or len(fresh) < len(page["executions"]):
                break
        # Known running executions that are running no more.
        running: set[str] = set()
        token = None
        while True:
            page = self.stepfunctions.list_executions(
                stateMachineArn=machine_arn,
                statusFilter="RUNNING",
                maxResults=100,
                **({"nextToken": token} if token else {}),
            )
            running.update(item["executionArn"] for item in page["executions"])
            token = page.get("nextToken")
            if not token:
                break
        prefix = machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"
        for arn, status in list(self.known.items()):
            if status == "RUNNING" and arn.startswith(prefix) and arn not in running:
                changes += self._observe(arn)
        return changes

    def _observe(self, execution_arn: str) -> int:
        execution = self.stepfunctions.describe_execution(executionArn=execution_arn)
        sent = 0
        if execution_arn not in self.known:
            # Every execution starts RUNNING, and Step Functions says so even if it ended since.
            started = {**execution, "status": "RUNNING", "output": None, "error": None, "cause": None}
            self._publish(status_change_event(started, account=self.account, region=self.region))
            self.known[execution_arn] = "RUNNING"
            sent += 1
        if execution["status"] != self.known[execution_arn]:
            self._publish(status_change_event(execution, account=self.account, region=self.region))
            self.known[execution_arn] = execution["status"]
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
        function_name = self.function_of(target["Arn"])
        if function_name is None:
            logger.warning("rule target not offline rule=%s target=%s", rule["name"], target["Arn"])
            return
        attempts = 1 + self.retries_of(function_name)
        for _attempt in range(attempts):
            if not invoke(self.lambda_client, function_name, event).errored:
                return
        dead_letter = self.dead_letter_of(function_name) or target.get("DeadLetterConfig", {}).get("Arn")
        logger.warning(
            "status event failed function=%s execution_arn=%s dead_letter=%s",
            function_name,
            event["detail"]["executionArn"],
            dead_letter,
        )
        if dead_letter:
            queue_url = self.sqs.get_queue_url(QueueName=dead_letter.rsplit(":", 1)[1])["QueueUrl"]
            self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
