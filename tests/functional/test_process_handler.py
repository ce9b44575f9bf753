"""The process Lambda: batches where bad records never block good ones or lose a waiter."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from coordinator.observability import logger
from coordinator.services import Services
from coordinator.table import PayloadTable
from coordinator_tools.kit.events import body, callback, sqs_event
from functions.process import app
from tests.conftest import Workflows


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


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the Powertools logger writes (JSON lines), as the Lambda's log stream has it."""
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)  # type: ignore[arg-type]


def error_lines(logged: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in logged.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"id": "€" * 700}, id="id under the character limit, over 1024 bytes"),
        pytest.param({"callback_waiter_payload_id": "é" * 600}, id="waiter payload id over 1024 bytes"),
        pytest.param(
            {"input": {"blob": "é" * 60_000}}, id="a body in the SQS limit whose execution input is over"
        ),
    ],
)
def test_a_field_over_an_aws_limit_in_bytes_is_dead_lettered_and_its_waiter_failed_at_once(
    services: Services,
    workflows: Workflows,
    handler: Any,
    context: Any,
    failures_sent: list[dict[str, Any]],
    logged: io.StringIO,
    fields: dict[str, Any],
) -> None:
    hook = callback()
    if waiter_payload_id := fields.pop("callback_waiter_payload_id", None):
        hook["waiter_payload_id"] = waiter_payload_id
    message = json.dumps(body(**{"id": "p-limits", **fields}, callback=hook), ensure_ascii=False)
    assert len(message.encode()) < 262_144

    response = handler(sqs_event(message, message_ids=["m-limits"]), context)

    assert response == {"batchItemFailures": []}
    [parked] = dead_letters(services)
    reason = parked["MessageAttributes"]["reason"]["StringValue"]
    assert " bytes" in reason
    assert "over" in reason
    assert [sent["taskToken"] for sent in failures_sent] == [hook["token"]]
    [line] = error_lines(logged)
    assert (line["message_id"], line["reason"]) == ("m-limits", reason)


def test_a_record_dynamodb_refuses_is_invalid_input_not_retried(
    services: Services,
    workflows: Workflows,
    handler: Any,
    context: Any,
    failures_sent: list[dict[str, Any]],
    logged: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = callback()

    def refuse(*_: Any, **__: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ValidationException", "Message": "Item size"}}, "PutItem")

    monkeypatch.setattr(PayloadTable, "register_waiter", refuse)

    response = handler(sqs_event(body(id="p-refused", callback=hook), message_ids=["m-refused"]), context)

    assert response == {"batchItemFailures": []}
    [parked] = dead_letters(services)
    assert "ValidationException" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert [sent["taskToken"] for sent in failures_sent] == [hook["token"]]
    [line] = error_lines(logged)
    assert (line["message_id"], line["payload_id"]) == ("m-refused", "p-refused")


def test_a_record_that_fails_to_be_retried_logs_one_error_line(
    services: Services,
    workflows: Workflows,
    handler: Any,
    context: Any,
    logged: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def throttled(*_: Any, **__: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    monkeypatch.setattr(PayloadTable, "claim_payload", throttled)

    response = handler(sqs_event(body(id="p-throttled"), message_ids=["m-throttled"]), context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-throttled"}]}
    [line] = error_lines(logged)
    assert (line["message_id"], line["payload_id"]) == ("m-throttled", "p-throttled")
    assert "ThrottlingException" in line["reason"]
