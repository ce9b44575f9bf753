"""The Python client against the offline stack: what a team's code sees of a coordinator."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from coordinator_tools.client import Coordinator, NotFound, ProcessMessage, StillRunning, TimedOut
from coordinator_tools.local import OfflineStack
from coordinator_tools.local.stack import Intervals
from coordinator_tools.sending import NotRedrivable
from coordinator_tools.target import Target, TargetError

pytestmark = pytest.mark.e2e

WORKFLOW = "example-target"


@pytest.fixture(scope="module")
def stack() -> Iterator[OfflineStack]:
    with OfflineStack(intervals=Intervals(reconcile=60.0)) as running:
        yield running


@pytest.fixture
def coordinator(stack: OfflineStack) -> Coordinator:
    return Coordinator.from_outputs(stack.outputs, region=stack.region, endpoint_url=stack.endpoint_url)


def unreachable() -> Coordinator:
    """A coordinator no call can reach: a message refused before sending never needs one."""
    return Coordinator(Target(outputs={}, region="us-east-1", endpoint_url="http://127.0.0.1:9"))


@pytest.mark.parametrize(
    ("workflow", "fields"),
    [
        ("not a workflow name", {}),
        (WORKFLOW, {"input": {"coordinator": {}}}),
        (WORKFLOW, {"schedule_time": "yesterday"}),
        (WORKFLOW, {"schedule_time": "2024-01-01T00:00:00"}),  # no offset: which instant?
    ],
)
def test_a_message_process_would_refuse_fails_in_the_callers_code(
    workflow: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        unreachable().submit(workflow, **fields)


def test_the_message_models_are_the_runtimes_own() -> None:
    from coordinator import messages

    assert ProcessMessage is messages.ProcessMessage


def test_submit_returns_the_payload_id_and_wait_its_success(coordinator: Coordinator) -> None:
    payload_id = coordinator.submit(WORKFLOW, {"n": 1}, id="client-ok")

    assert payload_id == "client-ok"
    assert coordinator.wait(payload_id, timeout=60)["state"] == "SUCCEEDED"
    assert coordinator.status(payload_id)["attempt"] == 1


def test_submit_of_a_scheduled_tick_returns_its_deterministic_id(coordinator: Coordinator) -> None:
    message = ProcessMessage(workflow=WORKFLOW, scheduleTime="2024-05-01T06:00:00+02:00")

    payload_id = coordinator.submit(message)

    assert payload_id == f"{WORKFLOW}/2024-05-01T04:00:00Z"
    assert coordinator.wait(payload_id, timeout=60)["state"] == "SUCCEEDED"


def test_wait_returns_a_failure_with_its_error(coordinator: Coordinator) -> None:
    payload_id = coordinator.submit(WORKFLOW, {"fail": True}, id="client-fails")

    status = coordinator.wait(payload_id, timeout=60)

    assert status["state"] == "FAILED"
    assert status["error"]


def test_a_different_input_under_a_known_id_is_refused_before_sending(coordinator: Coordinator) -> None:
    coordinator.wait(coordinator.submit(WORKFLOW, {"n": 1}, id="client-conflict"), timeout=60)

    with pytest.raises(ValueError, match="submitted with another input"):
        coordinator.submit(WORKFLOW, {"n": 2}, id="client-conflict")


def test_status_of_an_unknown_payload_is_not_found(coordinator: Coordinator) -> None:
    with pytest.raises(NotFound):
        coordinator.status("client-never-sent")


def test_wait_times_out_on_a_payload_that_never_comes(coordinator: Coordinator) -> None:
    with pytest.raises(TimedOut, match="QUEUED"):
        coordinator.wait("client-never-sent", timeout=0)


def test_rerun_runs_an_ended_payload_again_as_a_new_attempt(coordinator: Coordinator) -> None:
    payload_id = coordinator.submit(WORKFLOW, id="client-again")
    coordinator.wait(payload_id, timeout=60)

    coordinator.rerun(payload_id)

    def second_attempt_final() -> bool:
        status = coordinator.wait(payload_id, timeout=60)
        return status["attempt"] == 2

    assert _eventually(second_attempt_final)
    assert coordinator.status(payload_id)["state"] == "SUCCEEDED"


def test_a_succeeded_payload_cannot_be_redriven(coordinator: Coordinator) -> None:
    payload_id = coordinator.submit(WORKFLOW, id="client-no-redrive")
    coordinator.wait(payload_id, timeout=60)

    with pytest.raises(NotRedrivable, match="SUCCEEDED"):
        coordinator.rerun(payload_id, redrive=True)


def test_a_failed_payload_is_redriven_to_a_new_redrive_count(coordinator: Coordinator) -> None:
    payload_id = coordinator.submit(WORKFLOW, {"fail": True}, id="client-redrive")
    coordinator.wait(payload_id, timeout=60)

    coordinator.rerun(payload_id, redrive=True)

    assert _eventually(lambda: coordinator.wait(payload_id, timeout=60)["redrive_count"] == 1)


def test_rerun_of_a_running_payload_is_refused(coordinator: Coordinator, stack: OfflineStack) -> None:
    table = stack.client("dynamodb")
    table.put_item(
        TableName=stack.outputs["TableName"],
        Item={
            "payload_id": {"S": "client-running"},
            "sk": {"S": "STATE"},
            "state": {"S": "PROCESSING"},
            "workflow": {"S": WORKFLOW},
            "attempt": {"N": "1"},
        },
    )

    with pytest.raises(StillRunning):
        coordinator.rerun("client-running")


def test_backfill_runs_every_tick_and_reports_them_done(coordinator: Coordinator) -> None:
    backfill_id = coordinator.backfill(
        WORKFLOW, schedule="0 1 * * *", start="2021-06-01T00:00:00Z", stop="2021-06-03T00:00:00Z"
    )

    assert _eventually(lambda: not coordinator.backfill_status(backfill_id).running)
    backfill = coordinator.backfill_status(backfill_id)
    assert backfill.status == "SUCCEEDED", backfill
    assert backfill.done == 2
    for tick in ("2021-06-01T01:00:00Z", "2021-06-02T01:00:00Z"):
        assert coordinator.status(f"{WORKFLOW}/{tick}")["state"] == "SUCCEEDED"


def test_a_backfill_past_its_inline_limit_runs_distributed_with_the_state_machines_defaults(
    coordinator: Coordinator, stack: OfflineStack
) -> None:
    backfill_id = coordinator.backfill(
        WORKFLOW,
        schedule="0 1 * * *",
        start="2021-07-01T00:00:00Z",
        stop="2021-07-03T00:00:00Z",
        inline_limit=1,
    )

    assert _eventually(lambda: not coordinator.backfill_status(backfill_id).running)
    backfill = coordinator.backfill_status(backfill_id)
    assert backfill.status == "SUCCEEDED", backfill
    assert backfill.summary is not None
    assert (backfill.summary["map_mode"], backfill.done) == ("distributed", 2)
    # Nothing the caller left unset is sent: the distributed defaults apply, not the inline ones.
    assert backfill.request["map_mode"] == "auto"
    assert not {"max_concurrency", "page_size", "pages_per_execution"} & set(backfill.request)


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        ({"policy": "x"}, "policy"),
        ({"map_mode": "sideways"}, "map_mode"),
        ({"inline_limit": 10_001}, "inline_limit"),
    ],
)
def test_a_bad_backfill_request_is_refused_before_starting(
    coordinator: Coordinator, change: dict[str, Any], refused: str
) -> None:
    with pytest.raises(ValueError, match=refused):
        coordinator.backfill(WORKFLOW, schedule="0 1 * * *", start="2021-06-01", stop="2021-06-02", **change)


def test_a_missing_stack_is_a_target_error(stack: OfflineStack) -> None:
    with pytest.raises(TargetError, match="no-such-stack"):
        Coordinator.from_stack("no-such-stack", region=stack.region, endpoint_url=stack.endpoint_url)


def _eventually(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll `condition` (itself a wait on the stack) until true or out of time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_wait_reports_each_state_it_passes_through_once(coordinator: Coordinator) -> None:
    seen: list[str] = []

    coordinator.wait(coordinator.submit(WORKFLOW, id="client-states"), timeout=60, on_state=seen.append)

    assert seen[-1] == "SUCCEEDED"
    assert len(seen) == len(set(seen))
