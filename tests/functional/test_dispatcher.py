"""dispatcher: callbacks for resolved waiters; closed tokens recorded, transient errors retried.

moto accepts any token when it is not executing state machines, so token errors come from
botocore's Stubber on the Step Functions client, while the table stays in moto.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from coordinator.dispatch import ResolvedWaiter, dispatch
from coordinator.identity import token_key
from coordinator.messages import Callback
from coordinator.services import Services
from coordinator.states import State, WaiterState
from coordinator.table import Outcome
from coordinator_tools.kit.events import new_token, stream_event
from functions.dispatcher import app


@pytest.fixture
def stubbed(services: Services) -> Iterator[Stubber]:
    services.stepfunctions = boto3.client("stepfunctions")
    with Stubber(services.stepfunctions) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def resolved(
    services: Services,
    state: WaiterState = WaiterState.SUCCEEDED,
    *,
    payload_id: str = "ingest/p1",
    **outcome: Any,
) -> ResolvedWaiter:
    """A waiter row put as WAITING and moved, as the stream would show it."""
    token = new_token()
    table, now = services.table, services.clock()
    table.register_waiter(payload_id, Callback(token=token), now, retention_seconds=60)
    arn = "arn:aws:states:us-east-1:000000000000:execution:cc-test-ingest:x"
    table.move_waiter(
        payload_id, token_key(token), Outcome(state=State(state), execution_arn=arn, **outcome), now
    )
    return ResolvedWaiter.from_image(row(services, payload_id, token_key(token)))  # type: ignore[return-value]


def row(services: Services, payload_id: str, sk: str) -> dict[str, Any]:
    item = services.dynamodb.get_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": payload_id}, "sk": {"S": sk}},
        ConsistentRead=True,
    )["Item"]
    return boto3.dynamodb.types.TypeDeserializer().deserialize({"M": item})  # type: ignore[no-any-return]


def test_succeeded_dependency_resumes_the_waiter_with_a_small_json_output(
    services: Services, stubbed: Stubber
) -> None:
    waiter = resolved(services, output='{"items": 3}')
    expected = {
        "payload_id": "ingest/p1",
        "state": "SUCCEEDED",
        "execution_arn": waiter.dependency_execution_arn,
        "already_done": False,
        "output": {"items": 3},
    }
    stubbed.add_response(
        "send_task_success", {}, {"taskToken": waiter.task_token, "output": json.dumps(expected)}
    )

    assert dispatch(services, waiter) == "resumed"

    after = row(services, "ingest/p1", waiter.sk)
    assert after["outcome"] == "resumed"
    assert after["expiration_time"] == int(services.clock().timestamp()) + services.settings.retention_seconds


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (WaiterState.FAILED, "DependencyFailed"),
        (WaiterState.INVALID, "DependencyInvalid"),
        (WaiterState.ABORTED, "DependencyAborted"),
        (WaiterState.TIMED_OUT, "DependencyTimedOut"),
    ],
)
def test_unsuccessful_dependency_fails_the_waiter_with_a_typed_error_and_json_cause(
    services: Services, stubbed: Stubber, state: WaiterState, error: str
) -> None:
    waiter = resolved(services, state, error="States.TaskFailed", cause='{"why": "disk full"}')
    cause = {
        "payload_id": "ingest/p1",
        "state": str(state),
        "execution_arn": waiter.dependency_execution_arn,
        "error": "States.TaskFailed",
        "cause": {"why": "disk full"},
    }
    stubbed.add_response(
        "send_task_failure", {}, {"taskToken": waiter.task_token, "error": error, "cause": json.dumps(cause)}
    )

    assert dispatch(services, waiter) == "failed"


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_closed_token_is_a_recorded_outcome_not_a_failure(
    services: Services, stubbed: Stubber, code: str
) -> None:
    waiter = resolved(services)
    stubbed.add_client_error("send_task_success", service_error_code=code, http_status_code=400)

    assert dispatch(services, waiter) == code

    after = row(services, "ingest/p1", waiter.sk)
    assert after["outcome"] == code
    assert "expiration_time" in after


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("ServiceUnavailable", 503)])
def test_throttling_and_server_errors_raise_and_leave_the_row_unnotified(
    services: Services, stubbed: Stubber, code: str, status: int
) -> None:
    waiter = resolved(services)
    stubbed.add_client_error("send_task_success", service_error_code=code, http_status_code=status)

    with pytest.raises(Exception, match=code):
        dispatch(services, waiter)

    assert "notified_at" not in row(services, "ingest/p1", waiter.sk)


def test_the_first_recorded_outcome_is_kept_on_a_repeat(services: Services, stubbed: Stubber) -> None:
    waiter = resolved(services)
    stubbed.add_response("send_task_success", {})
    stubbed.add_client_error("send_task_success", service_error_code="TaskTimedOut", http_status_code=400)

    dispatch(services, waiter)
    dispatch(services, waiter)  # a stream retry of the same record

    assert row(services, "ingest/p1", waiter.sk)["outcome"] == "resumed"


def test_large_output_travels_by_reference(services: Services, stubbed: Stubber) -> None:
    reference = "arn:aws:states:us-east-1:000000000000:execution:cc-test-ingest:x"
    waiter = resolved(services, output_ref=reference)
    expected = {
        "payload_id": "ingest/p1",
        "state": "SUCCEEDED",
        "execution_arn": reference,
        "already_done": False,
        "output_ref": reference,
    }
    stubbed.add_response(
        "send_task_success", {}, {"taskToken": waiter.task_token, "output": json.dumps(expected)}
    )

    assert dispatch(services, waiter) == "resumed"


def test_cycle_failure_names_the_cycle_path(services: Services, stubbed: Stubber) -> None:
    token = new_token()
    services.table.register_waiter(
        "B",
        Callback(token=token, waiter_payload_id="A"),
        services.clock(),
        retention_seconds=60,
        state=WaiterState.CYCLE,
        cause=json.dumps({"payload_id": "B", "cycle": ["A", "B", "A"]}),
    )
    waiter = ResolvedWaiter.from_image(row(services, "B", token_key(token)))
    assert waiter is not None
    stubbed.add_response(
        "send_task_failure",
        {},
        {
            "taskToken": token,
            "error": "DependencyCycle",
            "cause": json.dumps(
                {"payload_id": "B", "state": "CYCLE", "execution_arn": None, "cycle": ["A", "B", "A"]}
            ),
        },
    )

    assert dispatch(services, waiter) == "failed"


# -- through the handler: batches, partial failures, records to skip ---------------------------


def image(services: Services, waiter: ResolvedWaiter) -> dict[str, Any]:
    return row(services, waiter.payload_id, waiter.sk)


def test_one_throttled_record_fails_alone_in_its_batch(
    services: Services, stubbed: Stubber, lambda_env: None, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = resolved(services, payload_id="p-a"), resolved(services, payload_id="p-b")
    monkeypatch.setattr(app, "services", lambda: services)
    stubbed.add_client_error(
        "send_task_success", service_error_code="ThrottlingException", http_status_code=400
    )
    stubbed.add_response("send_task_success", {})
    event = stream_event(image(services, first), image(services, second))

    response = app.lambda_handler(event, context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert row(services, "p-b", second.sk)["outcome"] == "resumed"
    assert "outcome" not in row(services, "p-a", first.sk)


def test_ttl_removals_waiting_rows_and_notified_rows_are_skipped(
    services: Services, stubbed: Stubber, lambda_env: None, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "services", lambda: services)
    done = resolved(services, payload_id="p-done")
    notified = {**image(services, done), "notified_at": "2026-01-05T12:00:00+00:00"}
    token = new_token()
    services.table.register_waiter("p-wait", Callback(token=token), services.clock(), retention_seconds=60)
    waiting = row(services, "p-wait", token_key(token))
    state_row = {"payload_id": "p-wait", "sk": "STATE", "state": "SUCCEEDED"}
    events = [
        stream_event(image(services, done), event_name="REMOVE"),
        stream_event(notified, waiting, state_row),
    ]

    responses = [app.lambda_handler(event, context) for event in events]

    assert responses == [{"batchItemFailures": []}, {"batchItemFailures": []}]


class MeetingStepFunctions:
    """Step Functions whose SendTaskSuccess answers only once `parties` calls are in flight."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.tokens: list[str] = []

    def send_task_success(self, taskToken: str, output: str) -> dict[str, Any]:
        self.barrier.wait()  # raises BrokenBarrierError if the others never come
        self.tokens.append(taskToken)
        return {}


def test_records_of_different_waiters_in_one_batch_are_sent_at_once(
    services: Services, lambda_env: None, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiters = [resolved(services, payload_id=f"p-{n}") for n in range(3)]
    services.settings = services.settings.model_copy(update={"dispatch_concurrency": 3})
    meeting = MeetingStepFunctions(parties=3)
    services.stepfunctions = meeting  # type: ignore[assignment]
    monkeypatch.setattr(app, "services", lambda: services)

    response = app.lambda_handler(stream_event(*(image(services, w) for w in waiters)), context)

    assert response == {"batchItemFailures": []}
    assert sorted(meeting.tokens) == sorted(w.task_token for w in waiters)
    assert all(row(services, w.payload_id, w.sk)["outcome"] == "resumed" for w in waiters)
