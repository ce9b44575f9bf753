"""reconcile: a scheduled sweep so nothing stays CLAIMED, PROCESSING or WAITING by mistake."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from coordinator.observability import logger, metrics, tracer
from coordinator.reconcile import reconcile
from coordinator.services import services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return asdict(reconcile(services()))
