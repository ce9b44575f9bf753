"""The process Lambda: batches where bad records never block good ones or lose a waiter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordinator.services import Services
from functions.process import app
from tests.conftest import Workflows
from tests.support.factories import body, callback, sqs_event


@pytest.fixture
def handler(services: Services, lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(app, "services", lambda: services)
    return app.lambda_handler


@pytest.fixture
def failures_sent(services: Services) -> list[dict[str, Any]]:
    """SendTaskFailure calls made (moto accepts any token when not executing)."""
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    services.stepfunctions.meta.events.register("provide-client-params.states.SendTaskFailure", record)
    return sent


def dead_letters(services: Services) -> list[dict[str, Any]]:
    response = services.sqs.receive_message(
        QueueUrl=services.settings.dead_letter_queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def test_good_records_go_on_while_bad_ones_are_dead_lettered_with_their_reason(
    services: Services, workflows: Workflows, handler: Any, context: Any, failures_sent: list[dict[str, Any]]
) -> None:
    hook = callback()
    event = sqs_event(
        body(id="good-1"),
        "{not json",
        {"workflow": "ingest", "wrkflow": "typo", "callback": hook},
        body(id="good-2"),
    )

    response = handler(event, context)

    assert response == {"batchItemFailures": []}
    assert len(workflows.executions("ingest")) == 2
    parked = dead_letters(services)
    reasons = sorted(message["MessageAttributes"]["reason"]["StringValue"] for message in parked)
    assert reasons == ["body is not a JSON object", "unknown field 'wrkflow'"]
    assert [(f["taskToken"], f["error"]) for f in failures_sent] == [(hook["token"], "DependencyInvalid")]
    assert json.loads(failures_sent[0]["cause"])["reason"] == "unknown field 'wrkflow'"


def test_unknown_workflow_is_dead_lettered_and_its_payload_invalid(
    services: Services, workflows: Workflows, handler: Any, context: Any
) -> None:
    response = handler(sqs_event(body("nowhere", id="lost")), context)

    assert response == {"batchItemFailures": []}
    [parked] = dead_letters(services)
    assert "StateMachineDoesNotExist" in parked["MessageAttributes"]["reason"]["StringValue"]
    state = services.table.get_state("lost")
    assert state is not None
    assert state.state == "INVALID"


def test_a_transient_error_fails_only_its_own_record(
    services: Services, workflows: Workflows, handler: Any, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = services.stepfunctions.start_execution

    def flaky(**params: Any) -> Any:
        if "flaky" in params["name"]:
            raise services.stepfunctions.exceptions.ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "StartExecution"
            )
        return original(**params)

    monkeypatch.setattr(services.stepfunctions, "start_execution", flaky)

    response = handler(
        sqs_event(body(id="flaky"), body(id="steady"), message_ids=["m-flaky", "m-steady"]), context
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-flaky"}]}
    assert dead_letters(services) == []


def test_redelivery_of_a_record_whose_start_failed_starts_it(
    services: Services, workflows: Workflows, handler: Any, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = services.stepfunctions.start_execution
    calls = {"n": 0}

    def fails_once(**params: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise services.stepfunctions.exceptions.ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}, "StartExecution"
            )
        return original(**params)

    monkeypatch.setattr(services.stepfunctions, "start_execution", fails_once)
    event = sqs_event(body(id="retry-me"), message_ids=["m1"])

    first = handler(event, context)
    second = handler(event, context)

    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert second == {"batchItemFailures": []}
    assert len(workflows.executions("ingest")) == 1
