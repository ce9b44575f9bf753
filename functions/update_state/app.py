"""update-state: Step Functions execution status changes, delivered by EventBridge."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from coordinator.observability import logger, metrics, tracer
from coordinator.services import services
from coordinator.status import ExecutionStatusEvent, apply_status_change


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@event_parser(model=ExecutionStatusEvent)
def lambda_handler(event: ExecutionStatusEvent, context: LambdaContext) -> dict[str, Any]:
    settlement = apply_status_change(services(), event.detail)
    if settlement is None:
        return {"settled": None}
    return {"settled": settlement.settled.value, "waiters_moved": settlement.waiters_moved}
