"""The process messages the in-process benchmarks send: payload `id` of workflow `ingest`, whose
input names it, and, given a task token, a waiter's callback (the kit's factories, with ids
that stay distinct across thousands of payloads)."""

from __future__ import annotations

from typing import Any

from coordinator_tools.kit.environment import ACCOUNT, REGION
from coordinator_tools.kit.events import body, callback

WORKFLOW = "ingest"


def process_body(payload_id: str, token: str | None = None, **fields: Any) -> dict[str, Any]:
    message = body(WORKFLOW, id=payload_id, input={"granule": payload_id}, **fields)
    if token is not None:
        waiter = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:w:{token[-8:]}"
        message["callback"] = callback(token, waiter=waiter)
    return message
