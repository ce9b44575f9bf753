"""The offline stack's status events: the redrive fields, and one RUNNING and one final event per run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from coordinator_tools.local.provision import Provisioned
from coordinator_tools.local.status_events import ExecutionStatusPoller, status_change_event

ARN = "arn:aws:states:us-east-1:123456789012:execution:dep:dep-a1"
STARTED = datetime(2026, 1, 1, tzinfo=UTC)
REDRIVEN = datetime(2026, 1, 2, tzinfo=UTC)


def described(status: str, redrive_count: int = 0) -> dict[str, Any]:
    execution: dict[str, Any] = {
        "executionArn": ARN,
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:dep",
        "name": "dep-a1",
        "status": status,
        "startDate": STARTED,
        "stopDate": REDRIVEN,
        "redriveCount": redrive_count,
        "redriveStatus": "REDRIVABLE" if status == "FAILED" else "NOT_REDRIVABLE",
    }
    if redrive_count:
        execution["redriveDate"] = REDRIVEN
    return execution


class Describes:
    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return self.answers.pop(0)


def poller(stepfunctions: Any) -> tuple[ExecutionStatusPoller, list[dict[str, Any]]]:
    published: list[dict[str, Any]] = []
    listening = ExecutionStatusPoller(
        stepfunctions=stepfunctions,
        sqs=None,
        lambda_client=None,
        rules={},
        functions=Provisioned(),
        account="123456789012",
        region="us-east-1",
        interval=1.0,
    )
    listening.listeners.append(published.append)
    return listening, published


def test_an_event_carries_the_redrive_fields_with_the_date_in_epoch_millis() -> None:
    detail = status_change_event(described("SUCCEEDED", 1), account="123456789012", region="us-east-1")[
        "detail"
    ]
    assert (detail["redriveCount"], detail["redriveDate"]) == (1, int(REDRIVEN.timestamp() * 1000))
    assert detail["redriveStatus"] == "NOT_REDRIVABLE"


def test_a_redriven_run_that_ended_before_it_was_observed_still_gets_its_running_and_final_events() -> None:
    listening, published = poller(Describes(described("FAILED"), described("FAILED", 1)))
    listening.told(ARN)
    listening.poll_once()
    listening.told(ARN)
    listening.poll_once()
    assert [(event["detail"]["redriveCount"], event["detail"]["status"]) for event in published] == [
        (0, "RUNNING"),
        (0, "FAILED"),
        (1, "RUNNING"),
        (1, "FAILED"),
    ]
