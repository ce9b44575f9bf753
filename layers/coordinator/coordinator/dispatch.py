"""dispatcher: tell a waiting task token how its dependency ended, then let the row expire.

Acts on WAITER rows that left WAITING (the stream's filter selects them; this module checks
again, so a mis-set filter cannot make it resume a token twice or too early):

- SUCCEEDED: SendTaskSuccess with `{payload_id, state, execution_arn, already_done, output |
  output_ref}`, kept well under Step Functions' 256 KiB.
- any other final state: SendTaskFailure with a typed `Dependency*` error and a JSON cause.

A token that is closed (`TaskTimedOut`, `TaskDoesNotExist`, `InvalidToken`) is an outcome to
record, not an error: retrying cannot help. Anything else (throttling, 5xx after the client's
own retries) fails the record so the stream retries it. Only then is the row stamped with
`notified_at`, `outcome` and its TTL: the audit trail never expires before the callback is
confirmed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor
from botocore.exceptions import ClientError

from coordinator.gate import Heard, hear
from coordinator.identity import token_digest
from coordinator.observability import Metric, in_current_trace, logger, metrics
from coordinator.rejection import CLOSED_TOKEN, MAX_CAUSE
from coordinator.services import Services
from coordinator.settle import error_cause
from coordinator.states import FAILURE_OF, WaiterState
from coordinator.table import WAITER_PREFIX, gate_key


class Dispatched(StrEnum):
    RESUMED = "resumed"
    FAILED = "failed"
    SKIPPED = "skipped"
    COUNTED = "counted"  # a gate's upstream succeeded: counted on the gated payload
    GATE_ENDED = "gate_ended"  # a gate's upstream did not succeed: the gated payload ended
    # The token was closed already (`rejection.CLOSED_TOKEN`): Step Functions' answer is recorded.
    TASK_TIMED_OUT = "TaskTimedOut"
    TASK_DOES_NOT_EXIST = "TaskDoesNotExist"
    INVALID_TOKEN = "InvalidToken"  # noqa: S105 (an error code, not a secret)


@dataclass(frozen=True)
class ResolvedWaiter:
    """A WAITER row as the stream shows it after it left WAITING."""

    payload_id: str
    sk: str
    task_token: str
    waiter_state: WaiterState
    already_done: bool = False
    dependency_execution_arn: str | None = None
    dependency_output: str | None = None
    dependency_output_ref: str | None = None
    dependency_error: str | None = None
    dependency_cause: str | None = None
    cause: str | None = None
    notified_at: str | None = None

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> ResolvedWaiter | None:
        """The waiter in a stream NewImage, or None if the image is not one to act on."""
        if not str(image.get("sk", "")).startswith(WAITER_PREFIX) or "task_token" not in image:
            return None
        state = WaiterState(image.get("waiter_state", WaiterState.WAITING))
        if state is WaiterState.WAITING or image.get("notified_at"):
            return None
        optional = {name: image[name] for name in _OPTIONAL_TEXT if image.get(name) is not None}
        return cls(
            payload_id=str(image["payload_id"]),
            sk=str(image["sk"]),
            task_token=str(image["task_token"]),
            waiter_state=state,
            already_done=bool(image.get("already_done", False)),
            **optional,
        )


_OPTIONAL_TEXT = (
    "dependency_execution_arn",
    "dependency_output",
    "dependency_output_ref",
    "dependency_error",
    "dependency_cause",
    "cause",
)


class ConcurrentBatchProcessor(BatchProcessor):
    """Powertools' batch processor, handling up to `concurrency()` records of a batch at once.

    One shard's records reach the dispatcher in up to ParallelizationFactor batches at once
    already, Lambda keeping order only per item. Within a batch the same holds here: records
    are grouped by their item's key and a group is handled in its order on one thread, while
    groups run side by side. A record of a waiter touches only that waiter's row and token (or,
    for a gate, the gated row, whose count is a set: see `coordinator.gate`), so the records
    of different items are as independent here as in two batches. Failures are reported as
    before; the stream retries from the lowest failed sequence number whatever the order.
    """

    def __init__(self, *args: Any, concurrency: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._concurrency = concurrency

    def process(self) -> list[Any]:
        workers = self._concurrency()
        groups: dict[str, list[int]] = {}
        for index, record in enumerate(self.records):
            key = json.dumps(record.get("dynamodb", {}).get("Keys"), sort_keys=True)
            groups.setdefault(key, []).append(index)
        if workers <= 1 or len(groups) <= 1:
            return super().process()
        results: list[Any] = [None] * len(self.records)

        @in_current_trace  # each group's calls traced in the handler's subsegment
        def handle_group(indexes: list[int]) -> None:
            for index in indexes:
                results[index] = self._process_record(self.records[index])

        with ThreadPoolExecutor(max_workers=min(workers, len(groups)), thread_name_prefix="dispatch") as pool:
            for future in [pool.submit(handle_group, indexes) for indexes in groups.values()]:
                future.result()  # a crash (BaseException) in a group ends the invocation
        return results


def dispatch(services: Services, waiter: ResolvedWaiter) -> Dispatched:
    """Send the callback for one resolved waiter and record what came of it."""
    sfn = services.stepfunctions
    try:
        if waiter.waiter_state is WaiterState.SUCCEEDED:
            sfn.send_task_success(taskToken=waiter.task_token, output=json.dumps(success_output(waiter)))
            outcome = Dispatched.RESUMED
        else:
            error = FAILURE_OF[waiter.waiter_state]
            sfn.send_task_failure(taskToken=waiter.task_token, error=str(error), cause=failure_cause(waiter))
            outcome = Dispatched.FAILED
    except ClientError as failure:
        code = failure.response.get("Error", {}).get("Code", "")
        if code not in CLOSED_TOKEN:
            raise
        outcome = Dispatched(code)
    services.table.mark_notified(
        waiter.payload_id,
        waiter.sk,
        outcome.value,
        services.clock(),
        retention_seconds=services.settings.retention_seconds,
    )
    metrics.add_metric(
        name=Metric.CALLBACKS_SENT
        if outcome in (Dispatched.RESUMED, Dispatched.FAILED)
        else Metric.CALLBACKS_FAILED,
        unit="Count",
        value=1,
    )
    logger.info(
        "callback dispatched",
        payload_id=waiter.payload_id,
        waiter_state=str(waiter.waiter_state),
        outcome=outcome.value,
        token_sha256=token_digest(waiter.task_token),
    )
    return outcome


def dispatch_gate(services: Services, heard: Heard) -> Dispatched:
    """A gate's callback: count the upstream (or end the gate), then record it as for a token.

    Only after `hear` has done its writes is the row stamped, so a crash in between leaves it
    for the stream's retry; hearing twice changes nothing (`coordinator.gate`)."""
    hear(services, heard)
    outcome = Dispatched.COUNTED if heard.upstream_state is WaiterState.SUCCEEDED else Dispatched.GATE_ENDED
    services.table.mark_notified(
        heard.upstream_id,
        gate_key(heard.gated_arn),
        outcome.value,
        services.clock(),
        retention_seconds=services.settings.retention_seconds,
    )
    logger.info(
        "gate heard", payload_id=heard.upstream_id, gated_payload_id=heard.gated_id, outcome=outcome.value
    )
    return outcome


def success_output(waiter: ResolvedWaiter) -> dict[str, Any]:
    result: dict[str, Any] = {
        "payload_id": waiter.payload_id,
        "state": str(waiter.waiter_state),
        "execution_arn": waiter.dependency_execution_arn,
        "already_done": waiter.already_done,
    }
    if waiter.dependency_output is not None:
        try:
            result["output"] = json.loads(waiter.dependency_output)
        except ValueError:
            result["output"] = waiter.dependency_output
    elif waiter.dependency_output_ref is not None:
        result["output_ref"] = waiter.dependency_output_ref
    return result


def failure_cause(waiter: ResolvedWaiter) -> str:
    cause: dict[str, Any] = {
        "payload_id": waiter.payload_id,
        "state": str(waiter.waiter_state),
        "execution_arn": waiter.dependency_execution_arn,
    }
    if waiter.waiter_state is WaiterState.CYCLE and waiter.cause:
        cause.update(json.loads(waiter.cause))
    else:
        cause.update(error_cause(waiter.dependency_error, waiter.dependency_cause))
    text = json.dumps(cause)
    if len(text) > MAX_CAUSE:
        cause["cause"] = "(truncated)"
        text = json.dumps(cause)[:MAX_CAUSE]
    return text
