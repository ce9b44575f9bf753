"""Calls and DynamoDB capacity per operation, against the protocol's minimum.

Every path of process, update-state, dispatcher and reconcile runs once on in-process moto with
a `Meter` on its clients: the calls are counted, DynamoDB is asked for its consumed capacity,
and the capacity the pricing rules give is computed from the items' actual sizes before and
after each call (moto does not model capacity: it answers a fixed 1.0 for PutItem and Query,
0.5 for UpdateItem and GetItem, whatever the item, and nothing on a failed condition).

The call minimum is the README's "AWS calls per operation" table; paths the README does not
list carry the minimum derived here from the protocol's steps (docs/design.md), with the reason.

    .venv/bin/python -m bench.calls_and_capacity
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
from moto import mock_aws

from bench.capacity import Meter, describe_counts
from bench.report import Report, Row, emit, prose, table
from bench.samples import WORKFLOW, process_body
from coordinator.dispatch import ResolvedWaiter, dispatch
from coordinator.identity import token_key
from coordinator.messages import Callback, parse_process_message
from coordinator.process import process_request
from coordinator.reconcile import reconcile
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator.settle import settle
from coordinator.states import State, WaiterState
from coordinator.status import ExecutionStatusDetail, apply_status_change
from coordinator_tools.kit.environment import ACCOUNT, REGION, Clock
from coordinator_tools.kit.events import new_token
from coordinator_tools.kit.resources import create_table, create_workflow

TABLE = "coordinator-bench"
PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:cc-bench-"
COMMAND = ".venv/bin/python -m bench.calls_and_capacity"


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
    settle(services, payload_id, current.execution_arn, State.PROCESSING)
    return current.execution_arn


def finished(services: Services, payload_id: str, state: State = State.SUCCEEDED) -> str:
    arn = running(services, payload_id)
    settle(services, payload_id, arn, state, output='{"ok": true}')
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


def new_payload(services: Services, meter: Meter) -> None:
    meter.reset()
    process_request(services, request("p-new"), request_id="m1")


def new_payload_with_waiter(services: Services, meter: Meter) -> None:
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
    settle(services, "p-redelivered-2", current.execution_arn, State.PROCESSING)
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
        Counter(UpdateItem=2, StartExecution=1),
        "as re-run",
        rerun_failed,
    ),
    Case("update-state: final, 0 waiters", Counter(UpdateItem=1, Query=1), "README", final_status(0)),
    Case("update-state: final, 3 waiters", Counter(UpdateItem=4, Query=1), "README", final_status(3)),
    Case("update-state: final, 250 waiters", Counter(UpdateItem=251, Query=3), "README", final_status(250)),
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
        Counter(Query=SHARD_QUERIES + 1, DescribeExecution=1, UpdateItem=4),
        "Describe, then settle as update-state would",
        reconcile_lost_final_event,
    ),
    Case(
        "reconcile: PROCESSING, still running",
        Counter(Query=SHARD_QUERIES, DescribeExecution=1, UpdateItem=1),
        "Describe, then send the row to the back (touch)",
        reconcile_still_running,
    ),
    Case(
        "reconcile: WAITING on a final payload",
        Counter(Query=SHARD_QUERIES, GetItem=1, UpdateItem=1),
        "read the outcome, move the waiter",
        reconcile_lost_waiter,
    ),
]


def fresh_services() -> tuple[Services, Any]:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_table(dynamodb, TABLE)
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    create_workflow(stepfunctions, f"cc-bench-{WORKFLOW}")
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="coordinator-bench-dlq")["QueueUrl"]
    settings = Settings(
        table_name=TABLE,
        state_machine_arn_prefix=PREFIX,
        dead_letter_queue_url=dlq,
        retention_days=7,
        lease_seconds=300,
        reconcile_batch=160,
    )
    services = Services(
        settings=settings, dynamodb=dynamodb, stepfunctions=stepfunctions, sqs=sqs, clock=Clock()
    )
    return services, boto3.client("dynamodb", region_name=REGION)


def units(value: float) -> str:
    return f"{value:g}"


CAPACITY_NOTE = prose(
    """
**moto does not model capacity.** It returns a constant `CapacityUnits` (PutItem 1.0, Query 1.0,
UpdateItem 0.5, GetItem 0.5) whatever the item size, index or consistency, and nothing on a
failed condition: the `moto said` column is that constant, reported as measured, not a figure to
trust. The *computed* columns apply DynamoDB's rules to the items' actual sizes, read before and
after each call through a client without hooks: a write unit per started KB of the larger of the
old and new item, one write per GSI whose entry appears, changes or goes (two when its key
changes), a failed conditional write one unit per KB of the existing item, a strongly consistent
read unit per 4 KB summed over every item a Query *read* (its filter does not reduce it), half
for an eventually consistent read. On-demand request units follow the same arithmetic.
"""
)


def main(argv: list[str]) -> Report:
    measured = []
    for case in CASES:
        with mock_aws():
            services, probe = fresh_services()
            meter = Meter(services.dynamodb, services.stepfunctions, services.sqs, probe=probe)
            case.run(services, meter)
            measured.append((case, meter.counts, list(meter.calls), meter))
    body = []
    all_equal = True
    for case, counts, calls, _meter in measured:
        equal = counts == case.minimum
        all_equal &= equal
        per = case.per
        wcu = sum(c.units for c in calls if c.kind == "write") / per
        rcu = sum(c.units for c in calls if c.kind == "read") / per
        reported = [c.reported for c in calls if c.reported is not None]
        index: Counter[str] = Counter()
        for call in calls:
            index.update(call.index_units)
        index_text = ", ".join(f"{k} {v / per:g}" for k, v in sorted(index.items())) or "-"
        failed = sum(1 for c in calls if c.error == "ConditionalCheckFailedException")
        body.append(
            [
                case.path,
                describe_counts({k: v // per if per > 1 else v for k, v in counts.items()})
                + (" (per record)" if per > 1 else ""),
                describe_counts({k: v // per if per > 1 else v for k, v in case.minimum.items()}),
                "yes" if equal else "**no**",
                units(wcu),
                index_text,
                units(rcu),
                units(sum(reported) / per) if reported else "none",
                failed // per if per > 1 else failed,
                case.why,
            ]
        )
    detail_text = "\n\n".join(
        [
            "Calls are counted with botocore's `after-call` hook on every client; DynamoDB calls are "
            "sent with `ReturnConsumedCapacity=TOTAL` (injected in `before-parameter-build`).",
            CAPACITY_NOTE,
            table(
                [
                    "path",
                    "calls",
                    "protocol minimum",
                    "equal",
                    "WCU computed (table + GSI)",
                    "of which GSI",
                    "RCU computed",
                    "moto said",
                    "conditional failures",
                    "minimum because",
                ],
                body,
            ),
            "Where the capacity goes:",
            "- Every WAITING waiter and every CLAIMED/PROCESSING STATE row is also an entry of the sparse "
            "`by_pending` index, so registering a waiter, claiming, moving a waiter and finalizing each cost "
            "one extra GSI write (the RUNNING event's `pending_since` change costs two: the index key "
            "moves). That doubles the write units of the hot paths; it buys reconcile's bounded sweep.",
            "- A waiter that names its own payload (`waiter_payload_id`) is also in `by_waiter` and its move "
            "rewrites that entry (`waiter_state` is projected): one more write per such waiter.",
            "- update-state's strongly consistent Query reads every WAITER row of the payload, the ones "
            "already resolved included (the filter runs after the read), and `Limit=100` counts rows read, "
            "not rows WAITING. A payload whose resolved waiters are kept for the audit retention "
            "(RETENTION_DAYS, 30 by default) pays for all of them again on every settle of a later attempt "
            "or a duplicate event: see the duplicate-event row.",
        ]
    )
    report = Report("Calls and capacity per operation", detail=detail_text)
    mismatched = [str(b[0]) for b in body if b[3] != "yes"]
    report.rows.append(
        Row(
            "AWS calls per operation (20 paths) vs protocol minimum",
            COMMAND,
            f"{len(body) - len(mismatched)}/{len(body)} paths equal"
            + (f"; differ: {', '.join(mismatched)}" if mismatched else ""),
            "equal on every path",
            all_equal,
        )
    )
    fan = {b[0]: b for b in body}
    report.rows.append(
        Row(
            "DynamoDB capacity per operation (computed from item sizes)",
            COMMAND,
            f"waiter on running {fan['process: waiter on a running payload'][4]} WCU; "
            f"dispatcher {fan['dispatcher: per record, SUCCEEDED'][4]} WCU/record; "
            f"final with 250 waiters {fan['update-state: final, 250 waiters'][4]} WCU + "
            f"{fan['update-state: final, 250 waiters'][6]} RCU",
            "reported (moto returns constants, see detail)",
            None,
        )
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
