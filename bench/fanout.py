"""Fan-out scaling: update-state and the dispatcher for 100, 1,000 and 10,000 waiters on one payload.

In-process moto (`mock_aws`, non-executing: SendTaskSuccess is accepted for any token). The
waiters are registered untimed; then the timed part is the whole wake-up: update-state's
`apply_status_change` (finalize, page the waiters, move each) and the dispatcher handler over
the stream records of the moved rows, 100 per batch as the event source mapping sends them.

moto's own time is measured apart (every request passes through
`moto.core.botocore_stubber.BotocoreStubber.__call__`, timed here by wrapping it), so the
figure for our code is the total minus moto's. moto's Query walks the whole partition for
every page (it filters and pages after collecting all items), so its time grows with the
square of the waiters; DynamoDB's does not (a page reads its 100 rows).

    .venv/bin/python -m bench.fanout
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from typing import Any

from bench.capacity import Meter
from bench.report import Report, Row, emit, prose, table
from bench.samples import WORKFLOW, process_body
from bench.timing import median
from coordinator_tools.kit.environment import ACCOUNT, REGION, FakeContext
from coordinator_tools.kit.events import new_token, stream_event_of_items
from coordinator_tools.kit.resources import create_table, create_workflow

SIZES = (100, 1_000, 10_000)
REPEATS = {100: 3, 1_000: 1, 10_000: 1}
TABLE = "cc-fanout"
COMMAND = ".venv/bin/python -m bench.fanout"


class MotoClock:
    """Seconds spent inside moto's request dispatch (wrapped once, for the whole run)."""

    def __init__(self) -> None:
        from moto.core.botocore_stubber import BotocoreStubber

        self.seconds = 0.0
        original = BotocoreStubber.__call__
        clock = self

        def timed(stubber: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(stubber, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - started

        BotocoreStubber.__call__ = timed  # type: ignore[method-assign, assignment]


class ItemRecorder:
    """Stands in for the DynamoDB client to see the item `register_waiter` would put."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.items.append(request["Item"])
        return {}


def register_waiters(services: Any, payload: str, count: int) -> None:
    """The rows `register_waiter` writes, put 25 at a time (setup only, untimed)."""
    from coordinator.messages import Callback
    from coordinator.table import PayloadTable

    recorder = ItemRecorder()
    rows = PayloadTable(recorder, services.settings.table_name)
    now = services.clock()
    for _ in range(count):
        rows.register_waiter(payload, Callback(token=new_token()), now, retention_seconds=60)
    for start in range(0, count, 25):
        chunk = recorder.items[start : start + 25]
        services.dynamodb.batch_write_item(
            RequestItems={services.settings.table_name: [{"PutRequest": {"Item": item}} for item in chunk]}
        )


def one_run(waiters: int, moto_clock: MotoClock, run: int) -> dict[str, float]:
    import boto3

    from coordinator import services as services_module
    from coordinator import settings as settings_module
    from coordinator.messages import parse_process_message
    from coordinator.observability import logger
    from coordinator.process import process_request
    from coordinator.settle import apply_status
    from coordinator.states import State
    from coordinator.status import ExecutionStatusDetail, apply_status_change
    from functions.dispatcher import app as dispatcher_app

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    name = f"{TABLE}-{waiters}-{run}"
    create_table(dynamodb, name)
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    machine = f"cc-fan-{waiters}-{run}-"
    create_workflow(stepfunctions, f"{machine}{WORKFLOW}")
    os.environ.update(
        {
            "TABLE_NAME": name,
            "STATE_MACHINE_ARN_PREFIX": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}",
        }
    )
    settings_module.settings.cache_clear()
    services_module.services.cache_clear()
    services = services_module.services()
    handler = logger.registered_handler
    if hasattr(handler, "setStream"):
        handler.setStream(io.StringIO())

    payload = "fan/p1"
    request = parse_process_message(__import__("json").dumps(process_body(payload)), max_bytes=262_144)
    process_request(services, request, request_id="producer")
    state = services.table.get_state(payload)
    assert state is not None
    apply_status(services, payload, state.execution_arn, State.PROCESSING)
    register_waiters(services, payload, waiters)
    described = stepfunctions.describe_execution(executionArn=state.execution_arn)
    detail = ExecutionStatusDetail.model_validate(
        {
            "executionArn": state.execution_arn,
            "stateMachineArn": described["stateMachineArn"],
            "status": "SUCCEEDED",
            "input": described["input"],
            "output": '{"granules": 1}',
        }
    )
    meter = Meter(services.dynamodb, services.stepfunctions)

    moto_before = moto_clock.seconds
    started = time.perf_counter()
    settlement = apply_status_change(services, detail)
    settle_seconds = time.perf_counter() - started
    settle_moto = moto_clock.seconds - moto_before
    settle_calls = len(meter.calls)
    assert settlement is not None
    assert settlement.waiters_moved == waiters

    # The stream's NewImages of the moved rows (untimed: the stream hands them over).
    images = []
    scan: dict[str, Any] = {"TableName": name}
    while True:
        page = dynamodb.scan(**scan)
        images += [item for item in page["Items"] if item["sk"]["S"].startswith("WAITER#")]
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    events = [stream_event_of_items(images[start : start + 100]) for start in range(0, len(images), 100)]

    context = FakeContext()
    moto_before = moto_clock.seconds
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for event in events:
            response = dispatcher_app.lambda_handler(event, context)
            assert not response["batchItemFailures"]
    dispatch_seconds = time.perf_counter() - started
    dispatch_moto = moto_clock.seconds - moto_before
    return {
        "settle": settle_seconds,
        "settle_moto": settle_moto,
        "dispatch": dispatch_seconds,
        "dispatch_moto": dispatch_moto,
        "calls": float(settle_calls),
    }


def main(argv: list[str]) -> Report:
    from moto import mock_aws

    moto_clock = MotoClock()
    results: dict[int, list[dict[str, float]]] = {size: [] for size in SIZES}
    with mock_aws():
        for size in SIZES:
            for run in range(REPEATS[size]):
                results[size].append(one_run(size, moto_clock, run))

    def med(size: int, key: str) -> float:
        return median(r[key] for r in results[size])

    body = []
    for size in SIZES:
        total = med(size, "settle") + med(size, "dispatch")
        moto = med(size, "settle_moto") + med(size, "dispatch_moto")
        body.append(
            [
                f"{size:,}",
                int(med(size, "calls")),
                f"{med(size, 'settle'):.2f} ({med(size, 'settle_moto'):.2f})",
                f"{med(size, 'dispatch'):.2f} ({med(size, 'dispatch_moto'):.2f})",
                f"{total:.2f}",
                f"{total - moto:.2f}",
                f"{(total - moto) / size * 1000:.2f}",
            ]
        )

    def ratio(key_total: tuple[str, ...], minus: tuple[str, ...] = ()) -> float:
        big = sum(med(10_000, k) for k in key_total) - sum(med(10_000, k) for k in minus)
        small = sum(med(1_000, k) for k in key_total) - sum(med(1_000, k) for k in minus)
        return big / small

    ours = ratio(("settle", "dispatch"), ("settle_moto", "dispatch_moto"))
    total = ratio(("settle", "dispatch"))
    moto_settle = med(10_000, "settle_moto") / med(1_000, "settle_moto")
    report = Report("Fan-out scaling")
    report.rows.append(
        Row(
            "fan-out 10,000 over 1,000 waiters, our code (total minus moto)",
            COMMAND,
            f"{ours:.1f}",
            "at most 11",
            ours <= 11,
            note="update-state + dispatcher",
        )
    )
    report.rows.append(
        Row(
            "fan-out 10,000 over 1,000 waiters, total with moto",
            COMMAND,
            f"{total:.1f}",
            "reported (moto's Query is quadratic)",
            None,
            note=f"moto's own settle time grew {moto_settle:.0f}x",
        )
    )
    report.detail = "\n\n".join(
        [
            prose(
                """Seconds on this machine, median of the runs; moto's share in
                parentheses. Calls are counted on the services' clients during update-state
                (the dispatcher's are two per waiter, see the calls benchmark). Runs: 3 of
                100, 1 of 1,000 and 1 of 10,000 (moto's quadratic Query makes more too slow
                for `make bench`)."""
            ),
            table(
                [
                    "waiters",
                    "update-state calls",
                    "update-state s (moto)",
                    "dispatcher s (moto)",
                    "total s",
                    "ours s",
                    "ours ms/waiter",
                ],
                body,
            ),
            prose(
                f"""10,000 over 1,000: {total:.1f} in total, {ours:.1f} for our code. moto's time
                in update-state grew {moto_settle:.0f}-fold for 10 times the waiters: its Query
                collects, filters and sorts the payload's whole partition for every page of 100,
                so settling n waiters costs it n²/100 item visits. On DynamoDB a page reads only
                its own rows; update-state's own work (one finalize, n/100 pages, n moves) is
                linear, which is what the "ours" column shows."""
            ),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
