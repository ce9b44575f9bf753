"""Gated starts against the table protocol (moto): a payload with `after` holds no execution
until its upstream payloads have succeeded, starts once, and ends naming a failed upstream."""

from __future__ import annotations

import json
from typing import Any

from coordinator.dispatch import dispatch_gate
from coordinator.gate import Heard
from coordinator.process import Processed, process_request
from coordinator.reconcile import reconcile
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.table import from_item
from coordinator_tools.kit.events import callback, request
from tests.conftest import Clock, Workflows


def deliver_gates(services: Services) -> int:
    """What the stream and the dispatcher do for gate rows that left WAITING; how many."""
    items = services.dynamodb.scan(TableName=services.settings.table_name)["Items"]
    heard = [Heard.from_image(from_item(item)) for item in items]
    for each in heard:
        if each is not None:
            dispatch_gate(services, each)
    return sum(each is not None for each in heard)


def finish(services: Services, payload_id: str, state: State = State.SUCCEEDED, **fields: Any) -> None:
    current = services.table.get_state(payload_id)
    assert current is not None
    apply_status(services, payload_id, current.execution_arn, state, **fields)


def state_of(services: Services, payload_id: str) -> Any:
    current = services.table.get_state(payload_id)
    assert current is not None
    return current


def test_a_gated_payload_holds_no_execution_and_starts_once_when_its_last_upstream_succeeds(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("report")
    for upstream in ("up-a", "up-b"):
        process_request(services, request(id=upstream), request_id=f"m-{upstream}")
    gated = request("report", id="report-1", after=[{"id": "up-a"}, {"id": "up-b"}])

    assert process_request(services, gated, request_id="m-report") is Processed.GATED
    assert state_of(services, "report-1").state is State.GATED
    finish(services, "up-a")
    deliver_gates(services)
    assert workflows.executions("report") == []
    assert state_of(services, "report-1").gate_missing == ["up-b"]

    finish(services, "up-b")
    deliver_gates(services)
    deliver_gates(services)  # a duplicated stream record
    process_request(services, gated, request_id="m-report")  # a redelivered message

    assert len(workflows.executions("report")) == 1
    assert state_of(services, "report-1").state is State.CLAIMED


def test_upstreams_already_succeeded_start_the_gated_payload_at_once(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("report")
    process_request(services, request(id="done-a"), request_id="m-a")
    finish(services, "done-a")

    process_request(services, request("report", id="report-2", after=[{"id": "done-a"}]), request_id="m")

    assert len(workflows.executions("report")) == 1


def test_a_failed_upstream_ends_the_gated_payload_naming_it_and_fails_its_waiters(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("report")
    process_request(services, request(id="bad-up"), request_id="m-up")
    token = callback(waiter_payload_id="someone")
    gated = request("report", id="report-3", after=[{"id": "bad-up"}], callback=token)
    process_request(services, gated, request_id="m-report")

    finish(services, "bad-up", State.FAILED, error="Boom", cause="disk full")
    deliver_gates(services)

    ended = state_of(services, "report-3")
    assert (ended.state, ended.error) == (State.FAILED, "DependencyFailed")
    assert json.loads(ended.cause)["upstream"] == "bad-up"
    assert json.loads(ended.cause)["error"] == "Boom"
    assert workflows.executions("report") == []
    [waiter] = [
        from_item(item)
        for item in services.dynamodb.scan(TableName=services.settings.table_name)["Items"]
        if "task_token" in item
    ]
    assert waiter["waiter_state"] == WaiterState.FAILED
    assert waiter["dependency_error"] == "DependencyFailed"


def test_re_running_the_upstream_and_resending_the_message_re_arms_the_gate(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("report")
    process_request(services, request(id="flaky-up"), request_id="m-up-1")
    gated = request("report", id="report-4", after=[{"id": "flaky-up"}], rerun="redrive")
    process_request(services, gated, request_id="m-report-1")
    finish(services, "flaky-up", State.FAILED, error="Boom")
    deliver_gates(services)
    assert state_of(services, "report-4").state is State.FAILED

    process_request(services, request(id="flaky-up"), request_id="m-up-2")
    finish(services, "flaky-up")
    assert process_request(services, gated, request_id="m-report-2") is Processed.GATED
    deliver_gates(services)

    again = state_of(services, "report-4")
    assert (again.state, again.attempt) == (State.CLAIMED, 2)
    assert len(workflows.executions("report")) == 1


def test_a_redelivered_message_whose_arming_ended_the_gate_does_not_run_it_again(
    services: Services, workflows: Workflows
) -> None:
    """The message arms an attempt another message claimed; the upstream's failure, heard by that
    arming, ends it. SQS delivers the message again: it has been answered, so it changes nothing
    (as a claimer's redelivery changes nothing), where a new message would re-arm."""
    workflows.create("report")
    process_request(services, request(id="up"), request_id="m-up")
    gated = request("report", id="report-5", after=[{"id": "up"}])
    process_request(services, gated, request_id="m-first")
    finish(services, "up", State.FAILED, error="Boom")  # its gate row moves; not yet heard

    assert process_request(services, gated, request_id="m-second") is Processed.GATED
    assert state_of(services, "report-5").state is State.FAILED  # the arming heard it
    process_request(services, gated, request_id="m-second")  # the same message, redelivered

    assert (state_of(services, "report-5").state, state_of(services, "report-5").attempt) == (State.FAILED, 1)
    process_request(services, gated, request_id="m-third")  # a message sent again: the re-arm
    # (attempt 2, ended at once: its upstream has not been re-run)
    assert (state_of(services, "report-5").state, state_of(services, "report-5").attempt) == (State.FAILED, 2)


def test_an_absent_upstream_with_a_message_is_submitted_and_an_ended_one_is_not(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("report")
    process_request(services, request(id="failed-up"), request_id="m-f")
    finish(services, "failed-up", State.FAILED)
    after = [
        {"workflow": "ingest", "id": "fresh-up", "input": {"granule": "G2"}},
        {"workflow": "ingest", "id": "failed-up", "input": {"granule": "G1"}},
    ]

    process_request(services, request("report", id="report-5", after=after), request_id="m")

    assert state_of(services, "fresh-up").state is State.CLAIMED
    assert state_of(services, "failed-up").attempt == 1
    deliver_gates(services)
    assert json.loads(state_of(services, "report-5").cause)["upstream"] == "failed-up"


def test_a_window_of_another_schedule_is_its_ticks_inside_the_data_interval(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("daily")
    hourly = {"expression": "cron(0 * * * ? *)", "timezone": "UTC"}
    gated = request(
        "daily",
        scheduleTime="2017-06-02T00:00:00Z",
        schedule={"expression": "cron(0 0 * * ? *)", "timezone": "UTC"},
        after=[{"workflow": "ingest", "schedule": hourly, "within": "data_interval", "input": {}}],
    )

    process_request(services, gated, request_id="m-daily")

    names = sorted(e["name"] for e in workflows.executions("ingest"))
    assert len(names) == 24
    row = state_of(services, "daily/2017-06-02T00:00:00Z")
    assert row.gate_missing[0] == "ingest/2017-06-01T00:00:00Z"
    assert row.gate_missing[-1] == "ingest/2017-06-01T23:00:00Z"
    for upstream in row.gate_missing[:-1]:
        finish(services, upstream)
    deliver_gates(services)
    assert workflows.executions("daily") == []
    finish(services, "ingest/2017-06-01T23:00:00Z")
    deliver_gates(services)
    assert len(workflows.executions("daily")) == 1


def test_previous_ticks_submitted_out_of_order_start_in_order(
    services: Services, workflows: Workflows
) -> None:
    hourly = {"expression": "cron(0 * * * ? *)", "timezone": "UTC"}
    ticks = [f"2017-06-01T0{hour}:00:00Z" for hour in range(3)]
    for tick in reversed(ticks):
        message = request(scheduleTime=tick, schedule=hourly, after=[{"previous": True, "first": ticks[0]}])
        process_request(services, message, request_id=f"m-{tick}")

    started = []
    for tick in ticks:
        deliver_gates(services)
        running = {e["name"] for e in workflows.executions("ingest")}
        assert len(running) == len(started) + 1  # only the next tick in line has started
        started.append(tick)
        finish(services, f"ingest/{tick}")
    assert len(workflows.executions("ingest")) == 3


def test_reconcile_ends_a_gate_past_its_timeout_dependency_timed_out(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    workflows.create("report")
    process_request(
        services,
        request("report", id="report-6", after=[{"id": "never", "timeout_seconds": 600}]),
        request_id="m",
    )
    clock.advance(400)
    reconcile(services)
    assert state_of(services, "report-6").state is State.GATED

    clock.advance(400)
    reconcile(services)

    ended = state_of(services, "report-6")
    assert (ended.state, ended.error) == (State.TIMED_OUT, "DependencyTimedOut")
    assert json.loads(ended.cause)["upstreams"] == ["never"]


def test_reconcile_opens_a_gate_whose_notification_was_lost(
    services: Services, workflows: Workflows, clock: Clock
) -> None:
    workflows.create("report")
    process_request(services, request(id="up-lost"), request_id="m-up")
    process_request(services, request("report", id="report-7", after=[{"id": "up-lost"}]), request_id="m")
    finish(services, "up-lost")  # its gate row moved; the stream record never arrives

    clock.advance(600)
    reconcile(services)

    assert len(workflows.executions("report")) == 1


def test_a_gate_that_would_close_a_cycle_ends_dependency_cycle(
    services: Services, workflows: Workflows
) -> None:
    workflows.create("report")
    process_request(services, request("report", id="cyc-a", after=[{"id": "cyc-b"}]), request_id="m-a")

    process_request(services, request("report", id="cyc-b", after=[{"id": "cyc-a"}]), request_id="m-b")

    ended = state_of(services, "cyc-b")
    assert (ended.state, ended.error) == (State.FAILED, "DependencyCycle")
    assert json.loads(ended.cause)["cycle"][0] == "cyc-b"
