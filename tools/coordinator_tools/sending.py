"""The messages the CLI sends to the process queue: a submission (checked as process would
check it first), a re-run as a new attempt, a redrive."""

from __future__ import annotations

import json
from typing import Any

from coordinator.identity import METADATA_KEY
from coordinator.messages import parse_process_message
from coordinator.states import REDRIVABLE, Rerun, State
from coordinator.table import PayloadState, identity_conflict
from coordinator_tools.inspection import NotFound, payload_state
from coordinator_tools.target import Target


def submission(body: dict[str, Any]) -> str:
    """The payload id a message will have: known before it is sent (ids are deterministic)."""
    return parse_process_message(json.dumps(body), max_bytes=1 << 20).payload_id


def check_submission(target: Target, body: dict[str, Any]) -> None:
    """Refuse here what process would refuse (`identity_conflict`), before anything is sent."""
    request = parse_process_message(json.dumps(body), max_bytes=1 << 20)
    try:
        current = payload_state(target, request.payload_id)
    except NotFound:
        return
    if refusal := identity_conflict(request, current):
        raise ValueError(refusal)


def send(target: Target, body: dict[str, Any]) -> str:
    response = target.client("sqs").send_message(
        QueueUrl=target.output("ProcessQueueUrl"), MessageBody=json.dumps(body)
    )
    return str(response["MessageId"])


def rerun_message(target: Target, payload_id: str) -> dict[str, Any]:
    """A message re-running a payload as it was, as a new attempt (`replace`)."""
    current = payload_state(target, payload_id)
    return {"workflow": current.workflow, "id": payload_id, "input": _payload_input(current), "replace": True}


class NotRedrivable(Exception):
    """A payload whose execution Step Functions would not redrive, with the reason."""


def redrive_message(target: Target, payload_id: str) -> dict[str, Any]:
    """A message redriving a payload's failed execution from the state that failed.

    Checked here first, so the CLI answers at once with the reason rather than leaving it to
    the dead-letter queue: only a FAILED, ABORTED or TIMED_OUT payload has an execution to
    redrive, and Step Functions says whether it would (`redriveStatus`, with its reason).
    """
    current = payload_state(target, payload_id)
    state = current.state
    if state not in REDRIVABLE:
        why = "it never ran" if state is State.INVALID else f"it is {state}"
        raise NotRedrivable(
            f"{payload_id} cannot be redriven: {why}; `coordinator rerun {payload_id}` runs it again"
        )
    described = target.client("stepfunctions").describe_execution(executionArn=current.execution_arn)
    if described.get("redriveStatus") == "NOT_REDRIVABLE":
        reason = described.get("redriveStatusReason") or "Step Functions would not redrive it"
        raise NotRedrivable(
            f"{payload_id} cannot be redriven: {reason}; "
            f"`coordinator rerun {payload_id}` starts a new attempt"
        )
    return {
        "workflow": current.workflow,
        "id": payload_id,
        "input": _payload_input(current),
        "rerun": str(Rerun.REDRIVE),
    }


def _payload_input(current: PayloadState) -> dict[str, Any]:
    execution_input: dict[str, Any] = json.loads(current.input or "{}")
    execution_input.pop(METADATA_KEY, None)
    return execution_input
