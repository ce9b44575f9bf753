"""dispatcher: DynamoDB stream records of waiters that left WAITING, turned into callbacks."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from coordinator.dispatch import ConcurrentBatchProcessor, Dispatched, ResolvedWaiter, dispatch, dispatch_gate
from coordinator.gate import Heard
from coordinator.observability import logger, metrics, tracer
from coordinator.services import services

# A batch whose every record failed is reported record by record like any other, so the
# event source retries exactly those (and the response shape never depends on the count).
# Records arrive as Powertools' stream data class, whose `new_image` is the image deserialized
# (as the parser model would, without building that model at cold start); `ResolvedWaiter`
# then checks the image is a waiter to act on. Up to DISPATCH_CONCURRENCY records of different
# items are handled at once (`ConcurrentBatchProcessor`).
processor = ConcurrentBatchProcessor(
    event_type=EventType.DynamoDBStreams,
    raise_on_entire_batch_failure=False,
    concurrency=lambda: services().settings.dispatch_concurrency,
)


@tracer.capture_method
def handle(record: DynamoDBRecord) -> str:
    """One waiter, or one gate's upstream (`coordinator.gate`). TTL deletions (REMOVE) and
    rows still WAITING or already notified are skipped."""
    stream = record.dynamodb
    if record.event_name is DynamoDBRecordEventName.REMOVE or stream is None:
        return Dispatched.SKIPPED.value
    image = stream.new_image
    if (gate := Heard.from_image(image)) is not None:
        return dispatch_gate(services(), gate).value
    waiter = ResolvedWaiter.from_image(image)
    if waiter is None:
        return Dispatched.SKIPPED.value
    return dispatch(services(), waiter).value


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
