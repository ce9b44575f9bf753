"""Handler overhead: process and dispatcher per record, against a bare script of the same calls.

Both sides talk to one moto server (`ThreadedMotoServer` on a free loopback port) over HTTP,
as a deployed Lambda talks to AWS. The handler side is `functions.process.app.lambda_handler`
and `functions.dispatcher.app.lambda_handler` on a batch of 100 records, Powertools and all
(logging at INFO into /dev/null, metrics flushed, tracing disabled as without X-Ray). The bare
side replays the very requests the handler just made (recorded by a botocore hook), with the
same client configuration, into a twin table and twin state machine, with the batch's payload
ids renamed (same length), so every conditional write meets the same state and succeeds or
fails exactly as it did for the handler, and both sides' tables grow alike.

Runs are interleaved (the order alternates; each batch is replayed exactly once, right after
or right before the handler's next batch) and the figure is the ratio of the medians.

    .venv/bin/python -m bench.handler_overhead
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from bench.capacity import Meter
from bench.report import Report, Row, emit, prose, table
from bench.samples import WORKFLOW, process_body
from bench.timing import median, stopwatch
from coordinator_tools.kit.environment import ACCOUNT, REGION, FakeContext
from coordinator_tools.kit.events import new_token, sqs_event, stream_event_of_items
from coordinator_tools.kit.resources import create_table, create_workflow

BATCH = 100
PAIRS = 7
COMMAND = ".venv/bin/python -m bench.handler_overhead"
NAMESPACES = ("handler", "bare")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def renamed(payload_id: str) -> str:
    """The twin of a batch's payload id: `p-3-17` becomes `P-3-17` (same length, fresh)."""
    return payload_id[0].upper() + payload_id[1:]


def rewrite(service: str, params: dict[str, Any], namespace: str, prefix: str) -> dict[str, Any]:
    """A recorded request aimed at a twin namespace (its table, its state machine, its ids)."""
    changed: dict[str, Any] = json.loads(json.dumps(params).replace(prefix, renamed(prefix)))
    if service == "dynamodb" and "TableName" in changed:
        changed["TableName"] = f"cc-{namespace}"
    if "stateMachineArn" in changed:
        changed["stateMachineArn"] = changed["stateMachineArn"].replace("cc-handler-", f"cc-{namespace}-")
    return changed


class Bench:
    def __init__(self, endpoint: str) -> None:
        import boto3

        from coordinator.services import CLIENT_CONFIG

        self.clients = {
            name: boto3.client(name, region_name=REGION, endpoint_url=endpoint, config=CLIENT_CONFIG)
            for name in ("dynamodb", "stepfunctions", "sqs")
        }
        for namespace in NAMESPACES:
            create_table(self.clients["dynamodb"], f"cc-{namespace}")
            create_workflow(self.clients["stepfunctions"], f"cc-{namespace}-{WORKFLOW}")
        self.dlq = self.clients["sqs"].create_queue(QueueName="cc-bench-dlq")["QueueUrl"]

    def replay(self, recorded: list[tuple[str, str, dict[str, Any]]], prefix: str) -> None:
        from botocore import xform_name

        for service, operation, params in recorded:
            client = self.clients[service]
            # A refusal is the answer the handler met too (a failed condition, an existing execution).
            with contextlib.suppress(client.exceptions.ClientError):
                getattr(client, xform_name(operation))(**rewrite(service, params, "bare", prefix))


def handler_environment(endpoint: str, dlq: str) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "TABLE_NAME": "cc-handler",
            "STATE_MACHINE_ARN_PREFIX": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:cc-handler-",
            "DEAD_LETTER_QUEUE_URL": dlq,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
    )


def silence_logs() -> Any:
    from coordinator.observability import logger

    sink = open(os.devnull, "w")  # noqa: SIM115 (kept open for the whole run)
    handler = logger.registered_handler
    if hasattr(handler, "setStream"):
        handler.setStream(sink)
    return sink


def measure(
    bench: Bench,
    handler: Callable[[dict[str, Any], Any], Any],
    kind: str,
    event_for: Callable[[int], dict[str, Any]],
    meter: Meter,
) -> tuple[list[float], list[float], int]:
    """Interleaved pairs: (handler seconds, bare seconds) per batch, and calls per batch.

    Every batch goes through the handler once and is replayed once, so the bare side meets the
    state the handler met (a batch replayed twice would meet only failed conditions and existing
    executions: a different, cheaper workload). Pair k times the replay of batch k and the
    handler on batch k+1, the bare side first in odd pairs. Batches 0 and 1 warm both sides up
    (connections, first imports, operation models) and are not timed.
    """
    context = FakeContext()

    def run_handler(batch: int) -> tuple[float, list[tuple[str, str, dict[str, Any]]]]:
        event = event_for(batch)
        meter.reset()
        with contextlib.redirect_stdout(io.StringIO()):
            took = stopwatch(lambda: handler(event, context))
        return took, list(meter.params)

    def run_bare(batch: int, recorded: list[tuple[str, str, dict[str, Any]]]) -> float:
        return stopwatch(lambda: bench.replay(recorded, prefix(kind, batch)))

    handler_times: list[float] = []
    bare_times: list[float] = []
    _, recorded = run_handler(0)
    run_bare(0, recorded)
    _, recorded = run_handler(1)
    calls = len(recorded)
    for pair in range(1, PAIRS + 1):
        if pair % 2 == 1:
            bare_times.append(run_bare(pair, recorded))
            took, recorded = run_handler(pair + 1)
        else:
            took, following = run_handler(pair + 1)
            bare_times.append(run_bare(pair, recorded))
            recorded = following
        handler_times.append(took)
    return handler_times, bare_times, calls


def prefix(kind: str, pair: int) -> str:
    return f"{kind}-{pair}-"


def process_events(pair: int) -> dict[str, Any]:
    bodies = [process_body(f"{prefix('p', pair)}{index}", new_token()) for index in range(BATCH)]
    return sqs_event(*bodies, message_ids=[f"m-{pair}-{index}" for index in range(len(bodies))])


def dispatcher_events(bench: Bench) -> Callable[[int], dict[str, Any]]:
    """Resolved waiters put in all three tables (untimed); the stream shows them resolved."""
    from datetime import UTC, datetime

    from coordinator.messages import Callback
    from coordinator.states import WaiterState
    from coordinator.table import PayloadTable

    now = datetime.now(UTC)

    def event_for(pair: int) -> dict[str, Any]:
        images = []
        for index in range(BATCH):
            token = new_token()
            payload = f"{prefix('d', pair)}{index}"
            for namespace, twin in (("handler", payload), ("bare", renamed(payload))):
                PayloadTable(bench.clients["dynamodb"], f"cc-{namespace}").register_waiter(
                    twin, Callback(token=token), now, retention_seconds=60, state=WaiterState.SUCCEEDED
                )
            item = bench.clients["dynamodb"].get_item(
                TableName="cc-handler", Key={"payload_id": {"S": payload}, "sk": {"S": _sk(token)}}
            )["Item"]
            item["dependency_output"] = {"S": json.dumps({"granule": payload})}
            images.append(item)
        return stream_event_of_items(images)

    return event_for


def _sk(token: str) -> str:
    from coordinator.identity import token_key

    return token_key(token)


def main(argv: list[str]) -> Report:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        bench = Bench(endpoint)
        handler_environment(endpoint, bench.dlq)
        from coordinator import services as services_module
        from coordinator import settings as settings_module

        settings_module.settings.cache_clear()
        services_module.services.cache_clear()
        from functions.dispatcher import app as dispatcher_app
        from functions.process import app as process_app

        sink = silence_logs()
        context = services_module.services()
        meter = Meter(
            context.dynamodb, context.stepfunctions, context.sqs, record_params=True, ask_capacity=False
        )
        results = {
            "process": measure(bench, process_app.lambda_handler, "p", process_events, meter),
            "dispatcher": measure(bench, dispatcher_app.lambda_handler, "d", dispatcher_events(bench), meter),
        }
        sink.close()
    finally:
        server.stop()

    report = Report("Handler overhead")
    body = []
    for name, (handler_times, bare_times, calls) in results.items():
        ratio = median(handler_times) / median(bare_times)
        per_record = [t / BATCH * 1000 for t in handler_times]
        bare_per_record = [t / BATCH * 1000 for t in bare_times]
        body.append(
            [
                name,
                calls // BATCH,
                f"{median(per_record):.2f}",
                f"{median(bare_per_record):.2f}",
                f"{ratio:.2f}",
                " ".join(f"{h / b:.2f}" for h, b in zip(handler_times, bare_times, strict=True)),
            ]
        )
        report.rows.append(
            Row(
                f"{name} handler vs bare calls, per record (batch of {BATCH})",
                COMMAND,
                f"{ratio:.2f}x",
                "at most 1.5x",
                ratio <= 1.5,
                note=f"median of {PAIRS} interleaved pairs, {calls // BATCH} calls/record",
            )
        )
    report.detail = "\n\n".join(
        [
            prose(
                """Milliseconds per record on this machine (only the ratio is the figure: both
                sides share the same noisy two cores and the same moto server, which does most of
                the work on either side). The bare side replays the handler's own requests
                (same operations, same parameters) into a twin table and state machine, each
                batch exactly once, so its conditional writes meet the state the handler's met."""
            ),
            table(
                [
                    "handler",
                    "calls/record",
                    "handler ms/record",
                    "bare ms/record",
                    "ratio of medians",
                    "per pair",
                ],
                body,
            ),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
