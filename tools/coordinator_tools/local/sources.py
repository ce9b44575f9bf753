"""Event sources that behave like AWS's, driving the functions through moto's Invoke API.

Lambda's event source mappings poll; moto's own run synchronously inside SendMessage and
PutItem, which hides every race the coordinator is built to survive. These pollers do what the
mappings in the template say, with what AWS does around them:

- `QueuePoller` (SQS): batches of up to BatchSize, received with the queue's visibility
  timeout; `ReportBatchItemFailures` deletes only the records that succeeded, so failed ones
  become visible again after the timeout and the queue's redrive moves a record to its DLQ
  once received maxReceiveCount times (moto applies the redrive on receive, as SQS does).
- `StreamPoller` (DynamoDB Streams): records from TRIM_HORIZON, the template's FilterCriteria
  applied (records that match no filter are dropped, as Lambda drops them), batches of
  BatchSize; a partial batch failure retries from the first failed record, a function error
  bisects the batch when asked, and a batch out of retries goes to the OnFailure destination.
- `ScheduleTicker` (EventBridge Scheduler): each enabled schedule fires every `interval`
  seconds offline (not at its real rate), to a Lambda function or an SQS queue, with the
  scheduler's context attributes filled into the target input.

Every invocation goes through `lambda.invoke` on the moto server, and from there through the one
patched invoke point to the in-process handler (`runtime`).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coordinator_tools.local.patterns import load_pattern, matches_any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """A synchronous invocation's outcome: the parsed payload, and whether the function erred."""

    payload: Any
    errored: bool


def invoke(lambda_client: Any, function_name: str, event: Any) -> Result:
    response = lambda_client.invoke(
        FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event, default=str)
    )
    body = response["Payload"].read()
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = body.decode(errors="replace")
    return Result(payload, bool(response.get("FunctionError")))


class Poller:
    """A daemon thread calling `poll_once` until stopped; sleeps `interval` when idle."""

    name = "poller"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"offline-{self.name}", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                busy = self.poll_once()
            except Exception:  # a poller outlives any one failure, as the AWS services do
                self.errors += 1
                logger.exception("poller failed poller=%s", self.name)
                busy = False
            if not busy:
                self._stopped.wait(self.interval)

    def poll_once(self) -> bool:
        """Do one round of work; True when there may be more right away."""
        raise NotImplementedError


class QueuePoller(Poller):
    name = "sqs"

    def __init__(
        self,
        *,
        sqs: Any,
        lambda_client: Any,
        queue_url: str,
        queue_arn: str,
        function_name: str,
        mapping: dict[str, Any],
        region: str,
        interval: float,
        visibility_timeout: int | None = None,
    ) -> None:
        super().__init__(interval)
        self.sqs = sqs
        self.lambda_client = lambda_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function_name = function_name
        self.region = region
        self.batch_size = int(mapping.get("BatchSize", 10))
        self.report_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        self.visibility_timeout = visibility_timeout
        self.batches = 0

    def poll_once(self) -> bool:
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": min(10, self.batch_size),
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            request["VisibilityTimeout"] = self.visibility_timeout
        messages = self.sqs.receive_message(**request).get("Messages", [])
        if not messages:
            return False
        records = [self._record(message) for message in messages]
        result = invoke(self.lambda_client, self.function_name, {"Records": records})
        self.batches += 1
        if result.errored:
            # The whole batch failed: nothing is deleted, all of it comes back after the timeout.
            logger.warning("queue batch failed function=%s records=%d", self.function_name, len(records))
            return True
        failed = set()
        if self.report_failures and isinstance(result.payload, dict):
            failed = {item["itemIdentifier"] for item in result.payload.get("batchItemFailures") or []}
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done)
                ],
            )
        if failed:
            logger.info(
                "queue records failed function=%s failed=%d deleted=%d",
                self.function_name,
                len(failed),
                len(done),
            )
        return True

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """An SQS message in the shape Lambda hands to the function."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {key[0].lower() + key[1:]: value for key, value in attribute.items()}
                for name, attribute in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


class StreamPoller(Poller):
    name = "dynamodb-stream"

    def __init__(
        self,
        *,
        streams: Any,
        sqs: Any,
        lambda_client: Any,
        stream_arn: str,
        function_name: str,
        mapping: dict[str, Any],
        region: str,
        interval: float,
    ) -> None:
        super().__init__(interval)
        self.streams = streams
        self.sqs = sqs
        self.lambda_client = lambda_client
        self.stream_arn = stream_arn
        self.function_name = function_name
        self.region = region
        self.batch_size = int(mapping.get("BatchSize", 100))
        self.max_retries = int(mapping.get("MaximumRetryAttempts", -1))
        self.bisect = bool(mapping.get("BisectBatchOnFunctionError", False))
        self.report_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        self.starting_position = mapping.get("StartingPosition", "LATEST")
        self.on_failure = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        filters = mapping.get("FilterCriteria", {}).get("Filters", [])
        self.filters = [load_pattern(item["Pattern"]) for item in filters]
        self._iterators: dict[str, str] = {}
        self.delivered = 0
        self.dropped = 0

    def poll_once(self) -> bool:
        if not self._iterators:
            shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
            for shard in shards:
                self._iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=self.starting_position,
                )["ShardIterator"]
        busy = False
        for shard_id, iterator in list(self._iterators.items()):
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = response.get("NextShardIterator") or iterator
            raw = response.get("Records", [])
            if not raw:
                continue
            busy = True
            records = [self._record(item) for item in raw]
            kept = [record for record in records if not self.filters or matches_any(self.filters, record)]
            self.dropped += len(records) - len(kept)
            for start in range(0, len(kept), self.batch_size):
                self._deliver(shard_id, kept[start : start + self.batch_size])
        return busy

    def _deliver(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        """Deliver one batch until it succeeds or runs out of retries (then OnFailure)."""
        pending = [batch]
        attempts = 0
        while pending and not self.stopped:
            current = pending.pop(0)
            result = invoke(self.lambda_client, self.function_name, {"Records": current})
            if not result.errored:
                failed_from = self._first_failure(current, result.payload)
                if failed_from is None:
                    self.delivered += len(current)
                    continue
                self.delivered += failed_from
                current = current[failed_from:]
            attempts += 1
            if self.max_retries >= 0 and attempts > self.max_retries:
                self._give_up(shard_id, current)
                continue
            if result.errored and self.bisect and len(current) > 1:
                middle = len(current) // 2
                pending[:0] = [current[:middle], current[middle:]]
            else:
                pending.insert(0, current)
            self._stopped.wait(self.interval)

    def _first_failure(self, batch: list[dict[str, Any]], payload: Any) -> int | None:
        """Index of the first record reported failed (the checkpoint), or None if none was."""
        if not self.report_failures or not isinstance(payload, dict):
            return None
        failed = {item["itemIdentifier"] for item in payload.get("batchItemFailures") or []}
        for index, record in enumerate(batch):
            if record["dynamodb"]["SequenceNumber"] in failed:
                return index
        return None

    def _give_up(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        """What Lambda sends an on-failure destination: the batch's position, not its records."""
        logger.warning("stream batch out of retries function=%s records=%d", self.function_name, len(batch))
        if not self.on_failure:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        info = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_name,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.max_retries + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first["ApproximateCreationDateTime"],
                "approximateArrivalOfLastRecord": last["ApproximateCreationDateTime"],
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }
        queue_url = self.sqs.get_queue_url(QueueName=self.on_failure.rsplit(":", 1)[1])["QueueUrl"]
        self.sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(info))

    def _record(self, item: dict[str, Any]) -> dict[str, Any]:
        """A stream record in the shape Lambda hands to the function (epoch seconds, source ARN)."""
        record = dict(item)
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        record["dynamodb"] = dynamodb
        record["awsRegion"] = self.region
        record["eventSourceARN"] = self.stream_arn
        return record


class ScheduleTicker(Poller):
    name = "scheduler"

    def __init__(
        self,
        *,
        schedules: dict[str, dict[str, Any]],
        lambda_client: Any,
        sqs: Any,
        is_function: Callable[[str], str | None],
        interval: float,
    ) -> None:
        super().__init__(interval)
        self.schedules = {
            logical_id: schedule
            for logical_id, schedule in schedules.items()
            if schedule.get("State", "ENABLED") == "ENABLED"
        }
        self.lambda_client = lambda_client
        self.sqs = sqs
        self.function_name_of = is_function
        self.ticks = 0

    def poll_once(self) -> bool:
        # Sleep first: the first tick comes one interval after start, as a rate schedule's does.
        if self._stopped.wait(self.interval):
            return False
        for logical_id, schedule in self.schedules.items():
            self._fire(logical_id, schedule)
        self.ticks += 1
        return True

    def _fire(self, logical_id: str, schedule: dict[str, Any]) -> None:
        target = schedule["Target"]
        scheduled_time = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = target.get("Input", "{}")
        for placeholder, value in {
            "<aws.scheduler.scheduled-time>": scheduled_time,
            "<aws.scheduler.execution-id>": str(uuid.uuid4()),
            "<aws.scheduler.schedule-arn>": schedule.get("Arn", logical_id),
            "<aws.scheduler.attempt-number>": "1",
        }.items():
            text = text.replace(placeholder, value)
        arn = target["Arn"]
        function_name = self.function_name_of(arn)
        if function_name is not None:
            result = invoke(self.lambda_client, function_name, json.loads(text))
            logger.info(
                "schedule fired schedule=%s function=%s errored=%s", logical_id, function_name, result.errored
            )
        elif arn.startswith("arn:aws:sqs:"):
            queue_url = self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
            self.sqs.send_message(QueueUrl=queue_url, MessageBody=text)
            logger.info("schedule fired schedule=%s queue=%s", logical_id, arn)
