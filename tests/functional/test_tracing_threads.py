"""X-Ray traces the AWS calls made on worker threads (settle's moves, the dispatcher's record
groups) under the invocation that made them, nested in its handler's subsegment.

The Tracer is process-wide and the suite runs with it disabled, so the invocations run in a
fresh interpreter (`probe`: this module run as a script, its environment set before it starts)
set up the Lambda way: LAMBDA_TASK_ROOT and a sampled `_X_AMZN_TRACE_ID` per invocation, over
moto, with an emitter that keeps what it is given instead of sending it to a daemon. A botocore
hook on the handlers' own clients notes which thread made each call, so the test knows the
calls it looks for were made on the pools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aws_xray_sdk.core import xray_recorder
from moto import mock_aws

from coordinator.identity import token_key
from coordinator.messages import Callback
from coordinator.observability import in_current_trace, tracer
from coordinator.process import process_request
from coordinator.services import services
from coordinator_tools.kit.environment import ACCOUNT, REGION, FakeContext, fake_environment
from coordinator_tools.kit.events import new_token, request, status_event, stream_event_of_items
from coordinator_tools.kit.resources import create_table, create_workflow
from functions.dispatcher import app as dispatcher
from functions.update_state import app as update_state

ROOT = Path(__file__).resolve().parents[2]
TABLE = "coordinator-traced"
WAITERS = 4
SETUP_TRACE = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=1"
TRACES = {
    "update_state": ("1-6a1b2c3d-0123456789abcdef01234567", "53995c3f42cd8ad8"),
    "dispatcher": ("1-6a1b2c3e-89abcdef0123456789abcdef", "2a7f5c1b9d3e4f60"),
}


def trace_header(invocation: str) -> str:
    root, parent = TRACES[invocation]
    return f"Root={root};Parent={parent};Sampled=1"


# -- in the probe's interpreter --------------------------------------------------------------


class KeptEmitter:
    """An X-Ray emitter that keeps each entity it is sent, serialized, instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address: str | None) -> None:
        pass  # nothing is sent


def probe(out: Path) -> None:
    """update-state settles a payload with WAITERS waiters, then the dispatcher gets their
    stream records in one batch; write what X-Ray was sent and who made which call to `out`."""
    emitter = KeptEmitter()
    xray_recorder.configure(emitter=emitter)
    calls: list[tuple[str, str]] = []

    def note_call(model: Any, **_: Any) -> None:
        calls.append((model.name, threading.current_thread().name))

    results: dict[str, Any] = {}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        os.environ["_X_AMZN_TRACE_ID"] = SETUP_TRACE
        live = services()
        for client in (live.dynamodb, live.stepfunctions, live.sqs):
            client.meta.events.register("before-call.*.*", note_call)
        create_table(live.dynamodb, TABLE)
        create_workflow(live.stepfunctions, "cc-test-ingest")
        process_request(live, request(id="p1"), request_id="m-p1")
        tokens = [new_token() for _ in range(WAITERS)]
        for token in tokens:
            live.table.register_waiter("p1", Callback(token=token), live.clock(), retention_seconds=60)
        current = live.table.get_state("p1")
        assert current is not None
        described = live.stepfunctions.describe_execution(executionArn=current.execution_arn)
        settled = status_event(current.execution_arn, "SUCCEEDED", described["input"], output="{}")
        waiter_keys = [{"payload_id": {"S": "p1"}, "sk": {"S": token_key(token)}} for token in tokens]

        def invoke(name: str, handler: Any, event: dict[str, Any]) -> None:
            os.environ["_X_AMZN_TRACE_ID"] = trace_header(name)
            emitter.sent.clear()
            calls.clear()
            response = handler(event, FakeContext(function_name=name))
            results[name] = {"response": response, "sent": list(emitter.sent), "calls": list(calls)}

        invoke("update_state", update_state.lambda_handler, settled)
        os.environ["_X_AMZN_TRACE_ID"] = SETUP_TRACE
        resolved = [
            live.dynamodb.get_item(TableName=TABLE, Key=k, ConsistentRead=True)["Item"] for k in waiter_keys
        ]
        invoke("dispatcher", dispatcher.lambda_handler, stream_event_of_items(resolved))
    out.write_text(json.dumps(results))


# -- in the test's interpreter ---------------------------------------------------------------


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The probe's results, and its stderr (where the X-Ray SDK logs what it could not record)."""
    work = tmp_path_factory.mktemp("traced")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "_X_AMZN"))},
        **fake_environment(metrics_namespace="CallbackCoordinatorTest"),
        "POWERTOOLS_TRACE_DISABLED": "false",
        "LAMBDA_TASK_ROOT": str(work),
        "AWS_XRAY_CONTEXT_MISSING": "RUNTIME_ERROR",
        "TABLE_NAME": TABLE,
        "STATE_MACHINE_ARN_PREFIX": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:cc-test-",
        "DISPATCH_CONCURRENCY": str(WAITERS),
        "SETTLE_MOVE_CONCURRENCY": str(WAITERS),
    }
    out = work / "traced.json"
    done = subprocess.run(  # noqa: S603 (our own probe, our own interpreter)
        [sys.executable, "-m", "tests.functional.test_tracing_threads", str(out)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {**json.loads(out.read_text()), "stderr": done.stderr}


def entities(sent: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every entity sent, by id, a subtree's inline subsegments given their parent's id."""
    found: dict[str, dict[str, Any]] = {}

    def walk(entity: dict[str, Any], parent_id: str | None) -> None:
        entity.setdefault("parent_id", parent_id)
        found[entity["id"]] = entity
        for child in entity.get("subsegments", []):
            walk(child, entity["id"])

    for entity in sent:
        walk(entity, None)
    return found


def aws_calls_under_the_handler(invocation: dict[str, Any], name: str) -> Counter[str]:
    """The AWS operations traced in the invocation's trace and nested in its handler's subsegment."""
    root, _ = TRACES[name]
    by_id = entities(invocation["sent"])
    handlers = [e["id"] for e in by_id.values() if e["name"] == "## lambda_handler" and e["trace_id"] == root]
    assert len(handlers) == 1

    def under_handler(entity: dict[str, Any]) -> bool:
        parent = entity.get("parent_id")
        while parent in by_id:
            if parent == handlers[0]:
                return True
            parent = by_id[parent].get("parent_id")
        return False

    return Counter(
        e["aws"]["operation"]
        for e in by_id.values()
        if e.get("namespace") == "aws" and e.get("trace_id") == root and under_handler(e)
    )


def test_settles_moves_on_its_pool_are_traced_under_update_states_invocation(
    traced: dict[str, Any],
) -> None:
    invocation = traced["update_state"]
    made = Counter(operation for operation, _ in invocation["calls"])
    on_pool = [op for op, thread in invocation["calls"] if thread.startswith("settle-move")]

    assert invocation["response"] == {"settled": "applied", "waiters_moved": WAITERS}
    assert on_pool == ["UpdateItem"] * WAITERS
    assert aws_calls_under_the_handler(invocation, "update_state") == made


def test_callbacks_sent_on_the_dispatchers_pool_are_traced_under_its_invocation(
    traced: dict[str, Any],
) -> None:
    invocation = traced["dispatcher"]
    made = Counter(operation for operation, _ in invocation["calls"])
    on_pool = Counter(op for op, thread in invocation["calls"] if thread.startswith("dispatch"))

    assert invocation["response"] == {"batchItemFailures": []}
    assert on_pool == {"SendTaskSuccess": WAITERS, "UpdateItem": WAITERS}
    assert aws_calls_under_the_handler(invocation, "dispatcher") == made


def test_nothing_is_logged_about_a_missing_segment(traced: dict[str, Any]) -> None:
    assert "segment" not in traced["stderr"].lower()


def test_with_tracing_disabled_work_for_a_pool_is_left_as_it_is() -> None:
    # As in this suite and the offline stack: the race explorer's pools get settle's own calls.
    def work() -> None:
        pass

    assert tracer.disabled
    assert in_current_trace(work) is work


if __name__ == "__main__":
    probe(Path(sys.argv[1]))
