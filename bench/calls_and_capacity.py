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

import sys
from collections import Counter
from typing import Any

import boto3
from moto import mock_aws

from bench.capacity import Meter, describe_counts
from bench.operation_paths import CASES, PREFIX
from bench.report import Report, Row, emit, prose, table
from bench.samples import WORKFLOW
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator_tools.kit.environment import REGION, Clock
from coordinator_tools.kit.resources import create_table, create_workflow

TABLE = "coordinator-bench"
COMMAND = ".venv/bin/python -m bench.calls_and_capacity"


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
            "Redrive's two paths are counted in `tests/functional/test_call_counts.py` (and the crash "
            "sweep's `CALLS`): `rerun: \"redrive\"` is a refused claim, DescribeExecution, the redrive's "
            "claim (UpdateItem) and RedriveExecution, + PutItem with a waiter; a waiter arriving during a "
            "redrive the row has not heard of is its put, a refused claim, DescribeExecution and the "
            "reopening to PROCESSING. Each added call is the minimum for what it decides: whether an "
            "execution was redriven is known only to Step Functions (or to its event, which may not have "
            "arrived), and a state machine's type only to DescribeStateMachine. The hot paths (a new "
            "payload in a warm container, a waiter on a running or finished payload, the dispatcher) "
            "are the README's.",
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
            f"AWS calls per operation ({len(CASES)} paths) vs protocol minimum",
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
