"""Small factories for messages and events, varying the named samples in tests/events/."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from coordinator.identity import token_key
from coordinator.messages import PayloadRequest, parse_process_message
from tests.conftest import load_event

_tokens = itertools.count(1)
_serializer = TypeSerializer()


def new_token() -> str:
    """A task token as opaque and long as Step Functions' own."""
    return f"AQCEAAAAKgAAAAMAAAAAAAAAA{next(_tokens):06d}" + "x" * 200


def body(workflow: str = "ingest", **fields: Any) -> dict[str, Any]:
    return {"workflow": workflow, "input": fields.pop("input", {"granule": "G1"}), **fields}


def request(workflow: str = "ingest", **fields: Any) -> PayloadRequest:
    return parse_process_message(json.dumps(body(workflow, **fields)), max_bytes=262_144)


def callback(token: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"token": token or new_token(), **fields}


def sqs_event(*bodies: str | dict[str, Any], message_ids: list[str] | None = None) -> dict[str, Any]:
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
    event = load_event("execution_status_succeeded")
    event["resources"] = [execution_arn]
    event["detail"].update(
        {
            "executionArn": execution_arn,
            "stateMachineArn": execution_arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
            "name": execution_arn.rsplit(":", 1)[1],
            "status": status,
            "input": execution_input,
            "output": None,
            **detail,
        }
    )
    return event


def stream_event(*images: dict[str, Any], event_name: str = "MODIFY") -> dict[str, Any]:
    """Stream records whose NewImage are `images` (plain values, serialized as DynamoDB does)."""
    template = load_event("dynamodb_stream_waiter_resolved")["Records"][0]
    records = []
    for sequence, image in enumerate(images, start=1):
        record = copy.deepcopy(template)
        record["eventName"] = event_name
        record["dynamodb"]["SequenceNumber"] = str(sequence)
        serialized = {k: _serializer.serialize(v) for k, v in image.items()}
        record["dynamodb"]["Keys"] = {k: serialized[k] for k in ("payload_id", "sk")}
        if event_name == "REMOVE":
            record["dynamodb"].pop("NewImage")
            record["dynamodb"]["OldImage"] = serialized
        else:
            record["dynamodb"]["NewImage"] = serialized
        records.append(record)
    return {"Records": records}


def waiter_row(services: Any, payload_id: str, token: str) -> dict[str, Any]:
    """A WAITER row as plain values (strongly consistent read)."""
    item = services.dynamodb.get_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": payload_id}, "sk": {"S": token_key(token)}},
        ConsistentRead=True,
    )["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}
