"""The paths each operation can take, set up on in-process moto, and the AWS calls the protocol
needs on each: the README's "AWS calls per operation" table, and for the paths it does not list
the minimum derived from the protocol's steps (docs/design.md), with the reason.

Each path sets up its payload unmetered, resets the meter, then acts once: what the meter holds
afterwards is the path's own cost (`bench.calls_and_capacity` runs and reports them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.capacity import Meter
from bench.samples import WORKFLOW, process_body
from coordinator.dispatch import ResolvedWaiter, dispatch
from coordinator.identity import token_key
from coordinator.messages import Callback, parse_process_message
from coordinator.process import process_request
from coordinator.reconcile import reconcile
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.status import ExecutionStatusDetail, apply_status_change
from coordinator_tools.kit.environment import ACCOUNT, REGION
from coordinator_tools.kit.events import new_token

PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:cc-bench-"


@dataclass
class Case:
    path: str
    minimum: Counter[str]
    why: str
    run: Callable[[Services, Meter], Any]  # sets up (unmetered), resets the meter, acts
    per: int = 1  # divide by this many records


def request(payload_id: str, token: str | None = None, **fields: Any) -> Any:
    return parse_process_message(json.dumps(process_body(payload_id, token, **fields)), max_bytes=262_144)


def running(services: Services, payload_id: str) -> str:
    process_request(services, request(payload_id), request_id="producer")
    current = services.table.get_state(payload_id)
    assert current is not None
    apply_status(services, payload_id, current.execution_arn, State.PROCESSING)
    return current.execution_arn


def finished(services: Services, payload_id: str, state: State = State.SUCCEEDED) -> str:
    arn = running(services, payload_id)
    apply_status(services, payload_id, arn, state, output='{"ok": true}')
    return arn


def detail(services: Services, arn: str, status: str) -> ExecutionStatusDetail:
    described = services.stepfunctions.describe_execution(executionArn=arn)
    return ExecutionStatusDetail.model_validate(
        {
            "executionArn": arn,
            "stateMachineArn": described["stateMachineArn"],
            "status": status,
            "input": described["input"],
            "output": '{"ok": true}',
        }
    )


# -- process -------------------------------------------------------------------------------------


def warm(services: Services) -> None:
    """A container that has processed a message of the workflow before: it knows the state
    machine is STANDARD (process asks DescribeStateMachine once per workflow and container)."""
    process_request(services, request("p-warm-up"), request_id="m0")


def first_message(services: Services, meter: Meter) -> None:
    meter.reset()
    process_request(services, request("p-first"), request_id="m1")


def new_payload(services: Services, meter: Meter) -> None:
    warm(services)
    meter.reset()
    process_request(services, request("p-new"), request_id="m1")


def new_payload_with_waiter(services: Services, meter: Meter) -> None:
    warm(services)
    meter.reset()
    process_request(services, request("p-new-w", new_token()), request_id="m1")


def waiter_on_running(services: Services, meter: Meter) -> None:
    running(services, "p-running")
    meter.reset()
    process_request(services, request("p-running", new_token()), request_id="m2")


def waiter_on_finished(services: Services, meter: Meter) -> None:
    finished(services, "p-finished")
    meter.reset()
    process_request(services, request("p-finished", new_token()), request_id="m2")


def redelivery_claimed(services: Services, meter: Meter) -> None:
    token = new_token()
    process_request(services, request("p-redelivered", token), request_id="m1")
    meter.reset()
    process_request(services, request("p-redelivered", token), request_id="m1")


def redelivery_processing(services: Services, meter: Meter) -> None:
    token = new_token()
    process_request(services, request("p-redelivered-2", token), request_id="m1")
    current = services.table.get_state("p-redelivered-2")
    assert current is not None
    apply_status(services, "p-redelivered-2", current.execution_arn, State.PROCESSING)
    meter.reset()
    process_request(services, request("p-redelivered-2", token), request_id="m1")


def rerun_replace(services: Services, meter: Meter) -> None:
    finished(services, "p-rerun")
    meter.reset()
    process_request(services, request("p-rerun", replace=True), request_id="m3")


def rerun_failed(services: Services, meter: Meter) -> None:
    finished(services, "p-retry", State.FAILED)
    meter.reset()
    process_request(services, request("p-retry"), request_id="m3")


# -- update-state --------------------------------------------------------------------------------


def final_status(waiters: int) -> Callable[[Services, Meter], Any]:
    def run(services: Services, meter: Meter) -> None:
        payload = f"p-fan-{waiters}"
        arn = running(services, payload)
        for _ in range(waiters):
            services.table.register_waiter(
                payload, Callback(token=new_token()), services.clock(), retention_seconds=60
            )
        event = detail(services, arn, "SUCCEEDED")
        meter.reset()
        apply_status_change(services, event)

    return run


def duplicate_final_status(services: Services, meter: Meter) -> None:
    payload = "p-dup"
    arn = running(services, payload)
    for _ in range(250):
        services.table.register_waiter(
            payload, Callback(token=new_token()), services.clock(), retention_seconds=60
        )
    event = detail(services, arn, "SUCCEEDED")
    apply_status_change(services, event)
    meter.reset()
    apply_status_change(services, event)


def stale_status(services: Services, meter: Meter) -> None:
    payload = "p-stale"
    old_arn = finished(services, payload, State.FAILED)
    process_request(services, request(payload), request_id="retry")  # attempt 2 is current
    event = detail(services, old_arn, "SUCCEEDED")
    meter.reset()
    apply_status_change(services, event)


# -- dispatcher ----------------------------------------------------------------------------------

DISPATCHED = 10


def dispatcher(state: WaiterState) -> Callable[[Services, Meter], Any]:
    def run(services: Services, meter: Meter) -> None:
        waiters = []
        for index in range(DISPATCHED):
            token = new_token()
            payload = f"p-dispatch-{state}-{index}"
            services.table.register_waiter(
                payload, Callback(token=token), services.clock(), retention_seconds=60
            )
            waiters.append(
                ResolvedWaiter(payload_id=payload, sk=token_key(token), task_token=token, waiter_state=state)
            )
        meter.reset()
        for waiter in waiters:
            dispatch(services, waiter)

    return run


# -- reconcile -----------------------------------------------------------------------------------


def aged(services: Services) -> None:
    services.clock.now += timedelta(seconds=services.settings.lease_seconds + 60)  # type: ignore[attr-defined]


def reconcile_nothing(services: Services, meter: Meter) -> None:
    meter.reset()
    reconcile(services)


def reconcile_lost_start(services: Services, meter: Meter) -> None:
    services.table.claim_payload(
        request("p-lost-start"), f"{PREFIX}{WORKFLOW}", services.clock(), request_id="crashed"
    )
    aged(services)
    meter.reset()
    reconcile(services)


def reconcile_lost_final_event(services: Services, meter: Meter) -> None:
    arn = running(services, "p-lost-event")
    for _ in range(3):
        services.table.register_waiter(
            "p-lost-event", Callback(token=new_token()), services.clock(), retention_seconds=60
        )
    services.stepfunctions.stop_execution(executionArn=arn)
    aged(services)
    meter.reset()
    reconcile(services)


def reconcile_still_running(services: Services, meter: Meter) -> None:
    running(services, "p-long")
    aged(services)
    meter.reset()
    reconcile(services)


def reconcile_lost_waiter(services: Services, meter: Meter) -> None:
    finished(services, "p-orphan")
    # A waiter row put after settle's query and before its own claim saw the final state, with
    # the process Lambda crashing in between: only reconcile can move it now.
    services.table.register_waiter(
        "p-orphan", Callback(token=new_token()), services.clock(), retention_seconds=60
    )
    aged(services)
    meter.reset()
    reconcile(services)


SHARD_QUERIES = 16  # reconcile pages every by_pending shard each run: STATE#0-7 and WAITER#0-7

CASES = [
    Case("process: new payload, no waiter", Counter(UpdateItem=1, StartExecution=1), "README", new_payload),
    Case(
        "process: new payload with a waiter",
        Counter(PutItem=1, UpdateItem=1, StartExecution=1),
        "README rows 1 + put waiter",
        new_payload_with_waiter,
    ),
    Case(
        "process: a container's first message for a workflow",
        Counter(DescribeStateMachine=1, UpdateItem=1, StartExecution=1),
        "+ DescribeStateMachine: an EXPRESS state machine is refused (it emits no status events); "
        "its type is remembered for the container's life",
        first_message,
    ),
    Case(
        "process: waiter on a running payload", Counter(PutItem=1, UpdateItem=1), "README", waiter_on_running
    ),
    Case(
        "process: waiter on a finished payload",
        Counter(PutItem=1, UpdateItem=2),
        "README",
        waiter_on_finished,
    ),
    Case(
        "process: redelivery, row still CLAIMED",
        Counter(PutItem=1, UpdateItem=1, StartExecution=1),
        "CLAIMED may mean never started: StartExecution again (same name) is the only way to know",
        redelivery_claimed,
    ),
    Case(
        "process: redelivery, row PROCESSING",
        Counter(PutItem=1, UpdateItem=1),
        "as a waiter on a running payload",
        redelivery_processing,
    ),
    Case(
        "process: re-run (replace) of a SUCCEEDED payload",
        Counter(UpdateItem=2, StartExecution=1),
        "the name holds the attempt: the refused first claim returns the attempt, the second takes attempt+1",
        rerun_replace,
    ),
    Case(
        "process: retry of a FAILED payload",
        Counter(UpdateItem=2, StartExecution=1, DescribeExecution=1),
        "as re-run, + DescribeExecution: a redrive under way (known only to Step Functions) is applied first",
        rerun_failed,
    ),
    Case("update-state: final, 0 waiters", Counter(UpdateItem=1, Query=1), "README", final_status(0)),
    Case("update-state: final, 3 waiters", Counter(UpdateItem=4, Query=1), "README", final_status(3)),
    Case(
        "update-state: final, 250 waiters",
        Counter(UpdateItem=251, Query=3, GetItem=2),
        "README, + GetItem a page after the first: is the settled run still the row's "
        "(a redrive may have reopened it)?",
        final_status(250),
    ),
    Case(
        "update-state: duplicate final event, 250 moved waiters",
        Counter(UpdateItem=1, Query=3),
        "moves always re-run after a repeat (a crash may have cut them); none left WAITING",
        duplicate_final_status,
    ),
    Case("update-state: stale event", Counter(UpdateItem=1), "the fence refuses it", stale_status),
    Case(
        "dispatcher: per record, SUCCEEDED",
        Counter(SendTaskSuccess=DISPATCHED, UpdateItem=DISPATCHED),
        "README",
        dispatcher(WaiterState.SUCCEEDED),
        per=DISPATCHED,
    ),
    Case(
        "dispatcher: per record, FAILED",
        Counter(SendTaskFailure=DISPATCHED, UpdateItem=DISPATCHED),
        "README",
        dispatcher(WaiterState.FAILED),
        per=DISPATCHED,
    ),
    Case(
        "reconcile: run with nothing pending",
        Counter(Query=SHARD_QUERIES),
        "one page of each of the 16 by_pending shards",
        reconcile_nothing,
    ),
    Case(
        "reconcile: CLAIMED, never started",
        Counter(Query=SHARD_QUERIES, DescribeExecution=1, GetItem=1, StartExecution=1),
        "the index row may be stale: re-read STATE before starting its attempt",
        reconcile_lost_start,
    ),
    Case(
        "reconcile: PROCESSING, final event lost (3 waiters)",
        Counter(Query=SHARD_QUERIES + 1, DescribeExecution=1, GetItem=1, UpdateItem=4),
        "Describe, re-read STATE (the index row lacks the redrive count), then settle as update-state would",
        reconcile_lost_final_event,
    ),
    Case(
        "reconcile: PROCESSING, still running",
        Counter(Query=SHARD_QUERIES, DescribeExecution=1, GetItem=1, UpdateItem=1),
        "Describe, re-read STATE (the index row lacks the redrive count), "
        "then send the row to the back (touch)",
        reconcile_still_running,
    ),
    Case(
        "reconcile: WAITING on a final payload",
        Counter(Query=SHARD_QUERIES, GetItem=1, UpdateItem=1),
        "read the outcome, move the waiter",
        reconcile_lost_waiter,
    ),
]
