"""update-state: a Step Functions execution status change, applied to its payload.

The event carries the execution's input, where the coordinator put the payload id when it
started the execution (`input.coordinator.payload_id`). EventBridge drops an input or output
over its size limit (`inputDetails.included == false`); the input is then read back with
DescribeExecution, and a dropped output is passed on by reference (the execution's ARN).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

from coordinator.identity import METADATA_KEY
from coordinator.observability import logger
from coordinator.redrive import describe
from coordinator.services import Services
from coordinator.settle import Settlement, apply_status
from coordinator.states import STATE_OF_STATUS


class Included(BaseModel):
    included: bool = True


class ExecutionStatusDetail(BaseModel):
    """`detail` of "Step Functions Execution Status Change"."""

    model_config = ConfigDict(extra="ignore")

    execution_arn: str = Field(alias="executionArn")
    state_machine_arn: str = Field(alias="stateMachineArn")
    status: str
    input: str | None = None
    # Step Functions sends `null` details on events without that part (RUNNING has no output).
    input_details: Included | None = Field(default=None, alias="inputDetails")
    output: str | None = None
    output_details: Included | None = Field(default=None, alias="outputDetails")
    error: str | None = None
    cause: str | None = None
    # 0 for an execution's first run, N for its Nth redrive: the fence's second half.
    redrive_count: int = Field(default=0, alias="redriveCount")
    # Documented as a string, seen as epoch milliseconds in real events: either is accepted.
    redrive_date: str | int | None = Field(default=None, alias="redriveDate")

    @field_validator("redrive_count", mode="before")
    @classmethod
    def _never_redriven(cls, value: Any) -> Any:
        return 0 if value is None else value


class ExecutionStatusEvent(EventBridgeModel):
    detail: ExecutionStatusDetail


def apply_status_change(services: Services, detail: ExecutionStatusDetail) -> Settlement | None:
    """Settle the payload of the execution; None when there is nothing to apply."""
    state = STATE_OF_STATUS.get(detail.status)
    if state is None:
        logger.info(
            "status without a payload state", status=detail.status, execution_arn=detail.execution_arn
        )
        return None
    execution_input = detail.input
    if execution_input is None or (detail.input_details is not None and not detail.input_details.included):
        described = describe(services, detail.execution_arn)
        if described is None:
            # Gone (its history expired, or its state machine was deleted): no input to name
            # its payload, and retrying the event cannot bring it back. Reconcile still sees a
            # pending row of it and `coordinator stuck` shows it.
            logger.warning(
                "status of an execution that no longer exists skipped",
                execution_arn=detail.execution_arn,
                status=detail.status,
            )
            return None
        execution_input = described.get("input")
    payload_id = payload_id_of(execution_input)
    if payload_id is None:
        logger.info("execution not started by the coordinator", execution_arn=detail.execution_arn)
        return None
    output_dropped = (
        detail.output is None and detail.output_details is not None and not detail.output_details.included
    )
    return apply_status(
        services,
        payload_id,
        detail.execution_arn,
        state,
        redrive_count=detail.redrive_count,
        output=detail.output,
        output_ref=detail.execution_arn if output_dropped else None,
        error=detail.error,
        cause=detail.cause,
    )


def payload_id_of(execution_input: str | None) -> str | None:
    if not execution_input:
        return None
    try:
        document: Any = json.loads(execution_input)
    except ValueError:
        return None
    metadata = document.get(METADATA_KEY) if isinstance(document, dict) else None
    payload_id = metadata.get("payload_id") if isinstance(metadata, dict) else None
    return payload_id if isinstance(payload_id, str) else None
