"""Records that can never succeed: fail their waiter now, park them with their reason.

Retrying such a record only delays the failure until the queue's redrive, and keeps its
waiter hanging until its own timeout. So process fails the waiter at once with
`DependencyInvalid` and sends the body to the dead-letter queue itself, reason attached, then
reports the record done. A crash in between repeats both on redelivery: the second
SendTaskFailure meets a closed token (a recorded outcome) and the DLQ may hold a copy twice.
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from coordinator.errors import InvalidMessage
from coordinator.identity import token_digest
from coordinator.observability import Metric, logger, metrics
from coordinator.services import Services
from coordinator.states import DependencyError

# SendTask* answers that mean the token is closed: nothing left to tell, nothing to retry.
CLOSED_TOKEN = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
REASON_ATTRIBUTE = "reason"
MAX_CAUSE = 32_768
MAX_REASON_BYTES = 1024


def attribute_text(text: str) -> str:
    """`text` as an SQS message attribute may carry it: only the characters SQS allows, and at
    most MAX_REASON_BYTES of UTF-8 (the attributes count towards the message's size)."""
    allowed = "".join(c if _sqs_allows(c) else "?" for c in text)
    return allowed.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def _sqs_allows(c: str) -> bool:
    return c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"


def reject(services: Services, body: str, problem: InvalidMessage, *, message_id: str) -> None:
    reason = problem.reason
    if problem.token is not None:
        cause = json.dumps({"reason": reason, "message_id": message_id})[:MAX_CAUSE]
        try:
            services.stepfunctions.send_task_failure(
                taskToken=problem.token, error=str(DependencyError.INVALID), cause=cause
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in CLOSED_TOKEN:
                raise
    services.sqs.send_message(
        QueueUrl=services.settings.dead_letter_queue_url,
        MessageBody=body,
        MessageAttributes={
            REASON_ATTRIBUTE: {"DataType": "String", "StringValue": attribute_text(reason) or "invalid"},
            "message_id": {"DataType": "String", "StringValue": message_id},
        },
    )
    metrics.add_metric(name=Metric.INVALID_MESSAGES, unit="Count", value=1)
    logger.error(
        "invalid message dead-lettered",
        message_id=message_id,
        reason=reason,
        waiter_failed=problem.token is not None,
        token_sha256=token_digest(problem.token) if problem.token else None,
    )
