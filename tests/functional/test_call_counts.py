"""AWS calls per operation, counted with botocore's event hooks, at the protocol's minimum.

| operation                         | calls                                              |
|-----------------------------------|----------------------------------------------------|
| new payload, no waiter            | 2: claim (UpdateItem), StartExecution              |
| waiter on a running payload       | 2: put waiter (PutItem), claim refused (UpdateItem) |
| waiter on a finished payload      | 3: put waiter, claim refused, move own waiter      |
| dispatcher, per record            | 2: SendTask*, mark notified (UpdateItem)           |
| update-state, final status        | 1 + a Query page per 100 waiters (+ GetItem after  |
|                                   | the first) + 1 UpdateItem per waiter               |
| re-run of an ended payload        | + 1 DescribeExecution (a redrive under way?)       |
| redrive (`rerun: "redrive"`)      | claim refused, DescribeExecution, claim, Redrive   |
| gate armed, N upstreams running   | 1 claim GATED + N x (by_waiter Query, put gate row) |
|                                   | + 1 BatchGetItem per 100 upstreams                 |
| dispatcher, an upstream counted   | 2: count (UpdateItem), mark notified               |
| dispatcher, the last upstream     | 4: count, open (UpdateItem), StartExecution, mark  |
| dispatcher, a failed upstream     | 3: end the gate (UpdateItem), its waiters' Query,  |
|                                   | mark notified (+ 1 UpdateItem per waiter of its own) |

Counted in a warm container: its first message for a workflow also asks the workflow's type,
once (DescribeStateMachine, `refuse_express`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from coordinator.dispatch import ResolvedWaiter, dispatch, dispatch_gate
from coordinator.gate import Heard
from coordinator.identity import state_machine_arn, token_key
from coordinator.messages import Callback
from coordinator.process import process_request, refuse_express
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.status import ExecutionStatusEvent, apply_status_change
from coordinator.table import from_item, gate_key
from coordinator_tools.kit.events import callback, new_token, request, status_event
from tests.conftest import TABLE, Workflows


class CallCounter:
    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def counter(services: Services, workflows: Workflows) -> CallCounter:
    """Counts the calls of a warm container: one that has learnt the workflow's type."""
    refuse_express(
        services,
        request(id="warm-up"),
        state_machine_arn(services.settings.state_machine_arn_prefix, "ingest"),
    )
    return CallCounter(services.dynamodb, services.stepfunctions, services.sqs)


def test_a_container_asks_a_workflow_type_once(services: Services, workflows: Workflows) -> None:
    cold = CallCounter(services.dynamodb, services.stepfunctions, services.sqs)

    process_request(services, request(id="first"), request_id="m1")
    process_request(services, request(id="second"), request_id="m2")

    assert cold.calls == Counter({"DescribeStateMachine": 1, "UpdateItem": 2, "StartExecution": 2})


def running_payload(services: Services, payload_id: str) -> str:
    process_request(services, request(id=payload_id), request_id="producer")
    current = services.table.get_state(payload_id)
    assert current is not None
    apply_status(services, payload_id, current.execution_arn, State.PROCESSING)
    return current.execution_arn


def test_new_payload_without_waiter_costs_two_calls(
    services: Services, workflows: Workflows, counter: CallCounter
) -> None:
    process_request(services, request(id="new"), request_id="m1")

    assert counter.calls == Counter({"UpdateItem": 1, "StartExecution": 1})


def test_waiter_on_a_running_payload_costs_two_calls(
    services: Services, workflows: Workflows, counter: CallCounter
) -> None:
    running_payload(services, "running")
    counter.reset()

    process_request(services, request(id="running", callback=callback()), request_id="m2")

    assert counter.calls == Counter({"PutItem": 1, "UpdateItem": 1})


def test_waiter_on_a_finished_payload_costs_three_calls(
    services: Services, workflows: Workflows, counter: CallCounter
) -> None:
    arn = running_payload(services, "finished")
    apply_status(services, "finished", arn, State.SUCCEEDED, output="{}")
    counter.reset()

    process_request(services, request(id="finished", callback=callback()), request_id="m2")

    assert counter.calls == Counter({"PutItem": 1, "UpdateItem": 2})


def test_dispatcher_costs_two_calls_per_record(services: Services) -> None:
    services.stepfunctions = boto3.client("stepfunctions")
    counter = CallCounter(services.dynamodb, services.stepfunctions)
    waiters = []
    for index in range(3):
        token = new_token()
        services.table.register_waiter(
            f"p{index}",
            Callback(token=token),
            services.clock(),
            retention_seconds=60,
            state=WaiterState.FAILED,
        )
        waiters.append(
            ResolvedWaiter(
                payload_id=f"p{index}", sk=token_key(token), task_token=token, waiter_state=WaiterState.FAILED
            )
        )
    counter.reset()

    with Stubber(services.stepfunctions) as stubber:
        for _ in waiters:
            stubber.add_response("send_task_failure", {})
        for waiter in waiters:
            dispatch(services, waiter)

    assert counter.calls == Counter({"SendTaskFailure": 3, "UpdateItem": 3})


@pytest.mark.parametrize(("waiters", "pages"), [(0, 1), (3, 1), (250, 3)])
def test_update_state_costs_one_write_a_page_per_hundred_waiters_and_a_write_per_waiter(
    services: Services, workflows: Workflows, counter: CallCounter, waiters: int, pages: int
) -> None:
    arn = running_payload(services, "fan-out")
    for _ in range(waiters):
        process_request(services, request(id="fan-out", callback=callback()), request_id="waiter")
    described = services.stepfunctions.describe_execution(executionArn=arn)
    event = ExecutionStatusEvent.model_validate(
        status_event(arn, "SUCCEEDED", described["input"], output="{}")
    )
    counter.reset()

    settlement = apply_status_change(services, event.detail)

    assert settlement is not None
    assert settlement.waiters_moved == waiters
    # Each page after the first reads the row again (is the run settled still the row's?).
    assert counter.calls == Counter({"UpdateItem": 1 + waiters, "Query": pages, "GetItem": pages - 1})


# -- gated starts (coordinator.gate) ---------------------------------------------------------
#
# Why these are the minimum. Arming: the claim GATED is the attempt's one write, as for any
# claim; each gate row is a waiter, and a waiter must be written before its upstream's state is
# read (the no-lost-wake-up order), so a put per upstream and then one batched read of their
# states; the cycle check is an index query per payload visited, as for a waiter naming its own
# payload. Hearing: the count adds the upstream to a set, which a duplicate cannot count twice
# and which needs no read first; only its answer says whether the gate is complete, and the
# open (GATED -> CLAIMED, conditional, so one of any number of callers takes it) must come
# after it: two writes, then the start, then the row's record (mark notified) last, so a crash
# before it leaves the record for the stream's retry. A failed upstream: one final write (no
# settle's finalize after it: that write is it), then the waiters' query that must follow it,
# then one write per upstream still awaited, taking its gate row out of reconcile's queue.
# The upstream's settle moving the gate row is update-state's "1 UpdateItem per waiter".


def gated_on(services: Services, upstreams: list[str], **fields: Any) -> str:
    """G gated on `upstreams`, each running; the gated attempt's execution ARN."""
    for upstream in upstreams:
        running_payload(services, upstream)
    after = [{"id": upstream} for upstream in upstreams]
    process_request(services, request(id="gated", after=after, **fields), request_id="m-gated")
    current = services.table.get_state("gated")
    assert current is not None
    assert current.state is State.GATED
    return current.execution_arn


def heard(services: Services, upstream: str, gated_arn: str) -> Heard:
    """The gate row on `upstream` as the stream carries it once the upstream's settle moved it."""
    key = {"payload_id": {"S": upstream}, "sk": {"S": gate_key(gated_arn)}}
    found = Heard.from_image(from_item(services.dynamodb.get_item(TableName=TABLE, Key=key)["Item"]))
    assert found is not None
    return found


def finish(services: Services, payload_id: str, state: State) -> None:
    current = services.table.get_state(payload_id)
    assert current is not None
    apply_status(services, payload_id, current.execution_arn, state, output="{}")


@pytest.mark.parametrize("upstreams", [1, 3])
def test_arming_a_gate_costs_a_claim_and_per_upstream_a_cycle_query_and_a_gate_row(
    services: Services, workflows: Workflows, counter: CallCounter, upstreams: int
) -> None:
    names = [f"up-{index}" for index in range(upstreams)]
    for upstream in names:
        running_payload(services, upstream)
    counter.reset()

    after = [{"id": upstream} for upstream in names]
    process_request(services, request(id="gated", after=after), request_id="m-gated")

    assert counter.calls == Counter(
        {"UpdateItem": 1, "Query": upstreams, "PutItem": upstreams, "BatchGetItem": 1}
    )


def test_hearing_an_upstream_that_is_not_the_last_costs_a_count_and_a_mark(
    services: Services, workflows: Workflows, counter: CallCounter
) -> None:
    arn = gated_on(services, ["up-a", "up-b"])
    finish(services, "up-a", State.SUCCEEDED)
    record = heard(services, "up-a", arn)
    counter.reset()

    dispatch_gate(services, record)

    assert counter.calls == Counter({"UpdateItem": 2})


def test_the_last_upstream_opens_the_gate_and_starts_it_in_four_calls(
    services: Services, workflows: Workflows, counter: CallCounter
) -> None:
    arn = gated_on(services, ["up-a", "up-b"])
    finish(services, "up-a", State.SUCCEEDED)
    dispatch_gate(services, heard(services, "up-a", arn))
    finish(services, "up-b", State.SUCCEEDED)
    record = heard(services, "up-b", arn)
    counter.reset()

    dispatch_gate(services, record)

    assert counter.calls == Counter({"UpdateItem": 3, "StartExecution": 1})
    assert services.table.get_state("gated").state is State.CLAIMED  # type: ignore[union-attr]


@pytest.mark.parametrize("waiters", [0, 2])
def test_a_failed_upstream_ends_the_gate_with_one_final_write_and_its_waiters_query(
    services: Services, workflows: Workflows, counter: CallCounter, waiters: int
) -> None:
    arn = gated_on(services, ["up-a", "up-b"])
    after = [{"id": "up-a"}, {"id": "up-b"}]
    for _ in range(waiters):
        process_request(services, request(id="gated", after=after, callback=callback()), request_id="waiter")
    finish(services, "up-a", State.FAILED)
    record = heard(services, "up-a", arn)
    counter.reset()

    dispatch_gate(services, record)

    # + 1 UpdateItem: up-b's gate row, still awaited, leaves reconcile's queue (retired)
    assert counter.calls == Counter({"UpdateItem": 3 + waiters, "Query": 1})
    assert services.table.get_state("gated").state is State.FAILED  # type: ignore[union-attr]
    key = {"payload_id": {"S": "up-b"}, "sk": {"S": gate_key(arn)}}
    row = from_item(services.dynamodb.get_item(TableName=TABLE, Key=key)["Item"])
    assert (row["waiter_state"], "pending_shard" in row) == ("WAITING", False)
