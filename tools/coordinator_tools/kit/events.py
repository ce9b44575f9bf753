"""The named sample events of tests/events/, loaded by name, and small factories for their variants.

Every event a test or a benchmark hands a handler starts from one of these samples, so it keeps
the shape AWS sends; a factory changes only what its caller names.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from coordinator.identity import execution_name_of, state_machine_of
from coordinator.messages import PayloadRequest, parse_process_message
from coordinator_tools.kit import ROOT

EVENTS = ROOT / "tests" / "events"

_tokens = itertools.count(1)
_serializer = TypeSerializer()


def load_event(name: str) -> dict[str, Any]:
    """A named sample event from tests/events/ (a fresh copy: callers may mutate it)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def new_token() -> str:
    """A task token as opaque and long as Step Functions' own, different on each call."""
    return f"AQCEAAAAKgAAAAMAAAAAAAAAA{next(_tokens):06d}" + "x" * 200


def body(workflow: str = "ingest", **fields: Any) -> dict[str, Any]:
    """A process message's body: the workflow, its input, and any other field given."""
    return {"workflow": workflow, "input": fields.pop("input", {"granule": "G1"}), **fields}


def request(workflow: str = "ingest", **fields: Any) -> PayloadRequest:
    """`body` parsed as the process handler parses it."""
    return parse_process_message(json.dumps(body(workflow, **fields)), max_bytes=262_144)


def callback(token: str | None = None, **fields: Any) -> dict[str, Any]:
    """A process message's `callback`: a task token (a new one unless given) and other fields."""
    return {"token": token or new_token(), **fields}


def sqs_event(*bodies: str | dict[str, Any], message_ids: list[str] | None = None) -> dict[str, Any]:
    """An SQS batch, one record a body (a string as is, a dict as JSON)."""
    template = load_event("sqs_process_message")["Records"][0]
    records = []
    for index, item in enumerate(bodies):
        record = copy.deepcopy(template)
        record["body"] = item if isinstance(item, str) else json.dumps(item)
        record["messageId"] = message_ids[index] if message_ids else f"message-{index}"
        records.append(record)
    return {"Records": records}


def status_event(
    execution_arn: str, status: str, execution_input: str | None, **detail: Any
) -> dict[str, Any]:
    """An EventBridge "Step Functions Execution Status Change" of one execution."""
    event = load_event("execution_status_succeeded")
    event["resources"] = [execution_arn]
    event["detail"].update(
        {
            "executionArn": execution_arn,
            "stateMachineArn": state_machine_of(execution_arn),
            "name": execution_name_of(execution_arn),
            "status": status,
            "input": execution_input,
            "output": None,
            **detail,
        }
    )
    return event


def stream_event(*images: Mapping[str, Any], event_name: str = "MODIFY") -> dict[str, Any]:
    """Stream records whose images are `images` (plain values, serialized as DynamoDB does)."""
    items = [{k: _serializer.serialize(v) for k, v in image.items()} for image in images]
    return stream_event_of_items(items, event_name=event_name)


def stream_event_of_items(items: list[dict[str, Any]], event_name: str = "MODIFY") -> dict[str, Any]:
    """Stream records whose images are `items`, already in DynamoDB JSON (as a table read gives
    them): the NewImage, or for a REMOVE the OldImage."""
    template = load_event("dynamodb_stream_waiter_resolved")["Records"][0]
    records = []
    for sequence, item in enumerate(items, start=1):
        record = copy.deepcopy(template)
        record["eventName"] = event_name
        record["dynamodb"]["SequenceNumber"] = str(sequence)
        record["dynamodb"]["Keys"] = {k: item[k] for k in ("payload_id", "sk")}
        if event_name == "REMOVE":
            record["dynamodb"].pop("NewImage")
            record["dynamodb"]["OldImage"] = item
        else:
            record["dynamodb"]["NewImage"] = item
        records.append(record)
    return {"Records": records}
