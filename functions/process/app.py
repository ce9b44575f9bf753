"""process: SQS records of payloads to run, some carrying a waiting task token."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from coordinator.errors import InvalidMessage
from coordinator.messages import parse_process_message
from coordinator.observability import logger, metrics, tracer
from coordinator.process import Processed, process_request
from coordinator.rejection import reject
from coordinator.services import services

# A batch whose every record failed is reported record by record like any other, so the
# event source retries exactly those (and the response shape never depends on the count).
# Records arrive as Powertools' SQS data class, a typed view of the event: the envelope has
# nothing of ours to validate, and its parser model would cost the cold start its build. The
# body, which is ours, is parsed into a pydantic `PayloadRequest`.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def handle(record: SQSRecord) -> str:
    """One payload. Raising fails only this record (retried); an invalid one is rejected.

    Either way the record's failure is one ERROR line naming the message, the payload when
    known (the appended key) and the reason.
    """
    context = services()
    try:
        request = parse_process_message(record.body, max_bytes=context.settings.max_message_bytes)
        logger.append_keys(payload_id=request.payload_id)
        return process_request(context, request, request_id=record.message_id).value
    except InvalidMessage as problem:
        reject(context, record.body, problem, message_id=record.message_id)
        return Processed.REJECTED.value
    except Exception as error:  # logged and re-raised: the batch retries this record alone
        logger.exception("record failed, to be retried", message_id=record.message_id, reason=repr(error))
        raise
    finally:
        logger.remove_keys(["payload_id"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
