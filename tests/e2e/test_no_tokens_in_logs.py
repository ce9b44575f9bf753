"""No task token in the logs of an end-to-end run: only their hashes.

A task token is a bearer credential for resuming someone else's execution. The functions'
logs of a run through the offline stack (waiters resumed, one failed, a cycle refused, an
invalid message with a token dead-lettered) are captured as CloudWatch would hold them and
searched for every token the run handled.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from coordinator_tools.local import OfflineStack
from coordinator_tools.local.stack import Intervals

INVALID_TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAA-token-of-an-invalid-message-" + "t" * 120


@pytest.fixture(scope="module")
def logged_run() -> Iterator[tuple[OfflineStack, io.StringIO]]:
    log = io.StringIO()
    with OfflineStack(intervals=Intervals(reconcile=60.0), function_log=log) as stack:
        yield stack, log


def target(payload_id: str, **payload_input: Any) -> dict[str, Any]:
    return {"workflow": "example-target", "id": payload_id, "input": payload_input}


def waiter_on(payload_id: str, *dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"workflow": "example-waiter", "id": payload_id, "input": {"dependencies": list(dependencies)}}


def all_task_tokens(stack: OfflineStack) -> list[str]:
    table = stack.outputs["TableName"]
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [
        item["task_token"]["S"] for page in pages for item in page.get("Items", []) if "task_token" in item
    ]


def test_a_whole_run_logs_no_task_token(logged_run: tuple[OfflineStack, io.StringIO]) -> None:
    stack, log = logged_run
    stack.submit(waiter_on("logged-ok", target("logged-dep-a"), target("logged-dep-b")))
    stack.submit(waiter_on("logged-failed", target("logged-dep-fails", fail=True)))
    stack.submit(
        json.dumps({"workflow": "example-target", "wrkflow": 1, "callback": {"token": INVALID_TOKEN}})
    )
    for payload_id in ("logged-ok", "logged-failed"):
        stack.wait_for_payload(payload_id, timeout=60)

    tokens = [*all_task_tokens(stack), INVALID_TOKEN]
    text = log.getvalue()

    assert len(tokens) >= 4  # three dependency waits and the invalid message's token
    assert "callback dispatched" in text
    assert "invalid message dead-lettered" in text
    leaked = [token[:12] for token in tokens if token in text]
    assert leaked == []
