"""The fields both message shapes share: the callback, the schedule of a tick, and the limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from coordinator.identity import format_utc
from coordinator.schedule import RateSchedule, compile_schedule, data_interval, zone_of

# Step Functions caps a wait at a year; a waiter's row outlives its token by the retention.
MAX_WAIT_SECONDS = 366 * 86_400

# DynamoDB counts key sizes in UTF-8 bytes: a partition key up to 2,048, a sort key up to 1,024.
# A payload id is the table's partition key and by_waiter's sort key (a waiter's own payload id
# its partition key, and a payload id too): 1,024 bytes, whatever the kind of id.
PAYLOAD_ID_MAX_BYTES = 1024
# Step Functions: an execution's input is at most 256 KiB of UTF-8, the coordinator block included.
EXECUTION_INPUT_MAX_BYTES = 262_144

WorkflowName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=60)]
PayloadId = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class Callback(BaseModel):
    """A Step Functions task token waiting for the payload to reach a final state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]
    waiter: str | None = Field(default=None, description="Execution ARN of the waiting workflow")
    waiter_payload_id: PayloadId | None = None
    timeout_seconds: int = Field(default=MAX_WAIT_SECONDS, ge=1, le=MAX_WAIT_SECONDS)


class TickSchedule(BaseModel):
    """The schedule a `scheduleTime` is a tick of: `{expression, timezone, start}`.

    `expression` is a Scheduler `cron(...)`/`rate(...)` or a five-field cron, `timezone` an IANA
    zone. `start` anchors a `rate(...)` (EventBridge Scheduler's StartDate; a backfill sends its
    own start, where its range anchors the rate too): an ISO-8601 instant, or a wall time in
    `timezone`. A cron ignores it, so a live tick and a backfilled one carry the same block.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    expression: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    timezone: str = "UTC"
    start: datetime | None = None

    @field_validator("expression")
    @classmethod
    def _known_expression(cls, value: str) -> str:
        compile_schedule(value)
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value

    def block(self) -> dict[str, Any]:
        """The schedule as the `coordinator` block carries it (a rate's start in UTC `...Z`)."""
        block: dict[str, Any] = {"expression": self.expression, "timezone": self.timezone}
        if isinstance(compile_schedule(self.expression), RateSchedule) and self.start is not None:
            start = self.start if self.start.tzinfo else self.start.replace(tzinfo=zone_of(self.timezone))
            block["start"] = format_utc(start)
        return block

    def interval(self, tick: datetime) -> dict[str, Any]:
        """The logical-time fields of the `coordinator` block for `tick` (InvalidRange if no tick)."""
        previous, this = data_interval(self.expression, self.timezone, tick, anchor=self.start)
        return {
            "schedule_time": format_utc(this),
            "schedule_time_local": this.astimezone(zone_of(self.timezone)).isoformat(),
            "data_interval_start": format_utc(previous) if previous else None,
            "data_interval_end": format_utc(this),
            "schedule": self.block(),
        }
